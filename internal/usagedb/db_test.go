package usagedb

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

// syncBuffer is a log destination the writer goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(substr string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestQueueOverflow fills a 4-record queue behind a stalled writer: Append
// keeps returning at once, drops are counted exactly and logged once a
// second, and after Flush every record is either written or dropped.
func TestQueueOverflow(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var logs syncBuffer
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	db := openTest(t, Options{
		QueueSize: 4, Now: clk.now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		beforeWrite: func() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
		},
	})
	rec := &ledger.Record{Start: clk.now(), Currency: money.USD, Outcome: ledger.OK}
	db.Append(rec) // the writer takes it and stalls
	<-entered
	appended := 1
	for range 4 + 6 { // four fit, six do not
		db.Append(rec)
		appended++
	}
	if s := db.Stats(); s.Dropped != 6 || s.Queued != 4 || s.Written != 0 {
		t.Fatalf("stalled: %+v, want 6 dropped, 4 queued", s)
	}
	if got := logs.lines("queue full"); len(got) != 1 || !strings.Contains(got[0], "dropped=1 dropped_total=1 queue_size=4") {
		t.Fatalf("drop warnings %q: want one, for the first drop", got)
	}
	clk.add(time.Second)
	db.Append(rec)
	appended++
	if got := logs.lines("queue full"); len(got) != 2 || !strings.Contains(got[1], "dropped=6 dropped_total=7") {
		t.Fatalf("drop warnings %q: want a second one a second later, with the 6 since", got)
	}
	close(release)
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := db.Stats()
	if s.Written != 5 || s.Dropped != 7 || s.Written+s.Dropped != int64(appended) || s.Queued != 0 || s.WriteErrors != 0 {
		t.Fatalf("after flush: %+v, want 5 written + 7 dropped = %d appended", s, appended)
	}
}

func TestCloseDrainsAndLaterAppendsDrop(t *testing.T) {
	db, err := Open(Options{InMemory: true, Dimensions: testDims})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2500 {
		db.Append(&ledger.Record{Start: time.Unix(1_770_000_000+int64(i), 0), Outcome: ledger.OK})
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db.Append(&ledger.Record{Start: time.Now()})
	if s := db.Stats(); s.Written != 2500 || s.Dropped != 1 {
		t.Fatalf("stats %+v: want the 2500 queued written, the late one dropped", s)
	}
	if err := db.Flush(context.Background()); err != errClosed {
		t.Fatalf("Flush after Close = %v", err)
	}
	q := Query{From: time.Unix(1_770_000_000, 0), To: time.Unix(1_770_003_600, 0)}
	if _, err := db.Report(context.Background(), q); err != errClosed {
		t.Fatalf("Report after Close = %v", err)
	}
	if err := db.Export(context.Background(), q.From, q.To, func(*ledger.Record) error { return nil }); err != errClosed {
		t.Fatalf("Export after Close = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartOutOfRange(t *testing.T) {
	db := openTest(t, Options{})
	db.Append(&ledger.Record{RequestID: "zero-start"})
	db.Append(&ledger.Record{RequestID: "fine", Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := db.Stats(); s.Written != 1 || s.WriteErrors != 1 {
		t.Fatalf("stats %+v: want the zero start counted as a write error", s)
	}
}

// TestReopen: records, aggregates and the sequence survive a restart, and
// records with equal starts written in two sessions are both kept.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	rec := func(id string) *ledger.Record {
		return &ledger.Record{RequestID: id, Start: at, Cost: 5, Currency: money.USD, Priced: true, Outcome: ledger.OK, Dimensions: dimsOf(testDims)}
	}
	for _, id := range []string{"first", "second"} {
		db, err := Open(Options{Dir: dir, Dimensions: testDims})
		if err != nil {
			t.Fatal(err)
		}
		appendAll(t, db, []*ledger.Record{rec(id)})
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := openTest(t, Options{Dir: dir})
	var ids []string
	err := db.Export(context.Background(), at, at.Add(time.Second), func(r *ledger.Record) error {
		ids = append(ids, r.RequestID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{"first", "second"}) {
		t.Fatalf("exported %v", ids)
	}
	rows, err := db.Report(context.Background(), Query{From: at.Add(-time.Hour), To: at.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 2 || rows[0].Cost != 10 {
		t.Fatalf("rows %+v", rows)
	}
}

// TestCorruptValues: a damaged value is an error naming its key, never a
// panic or a silently wrong sum.
func TestCorruptValues(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		name    string
		key     []byte
		q       Query
		wantErr string
	}{
		{"aggregate", periodKey(prefixDay, at.Truncate(24*time.Hour).Unix()),
			Query{From: at.Truncate(24 * time.Hour), To: at.Truncate(24 * time.Hour).Add(24 * time.Hour)},
			`usagedb: day aggregate 2026-03-01T00:00:00Z "": malformed key`},
		{"aggregate value", appendAggKey(nil, prefixHour, at.Truncate(time.Hour).Unix(), money.USD, &ledger.Record{Outcome: ledger.OK}, testDims),
			Query{From: at.Truncate(time.Hour), To: at.Truncate(time.Hour).Add(time.Hour)},
			`usagedb: hour aggregate 2026-03-01T10:00:00Z "\x03USD\aunknown\aunknown\aunknown\x00\aunknown\x00\x02ok": corrupt value: aggregate format 255, want 1`},
		{"record", recordKey(at.UnixNano(), 99),
			Query{From: at.Add(-time.Minute), To: at.Add(time.Minute)},
			`usagedb: record 2026-03-01T10:30:00Z #99: corrupt value: record format 255, want 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{})
			if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(tt.key, []byte{0xff, 0xff}) }); err != nil {
				t.Fatal(err)
			}
			_, err := db.Report(context.Background(), tt.q)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %s...", err, tt.wantErr)
			}
		})
	}
}

// TestRetention sweeps with a fake clock: whole UTC days older than
// now-Retention lose their records and aggregates; newer days keep theirs.
func TestRetention(t *testing.T) {
	clk := &clock{t: time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)}
	db := openTest(t, Options{Retention: 48 * time.Hour, Now: clk.now})
	var recs []*ledger.Record
	for day := 1; day <= 10; day++ {
		for _, h := range []int{0, 13, 23} {
			recs = append(recs, &ledger.Record{Start: time.Date(2026, 3, day, h, 59, 59, 0, time.UTC), Cost: 1, Currency: money.USD, Outcome: ledger.OK})
		}
	}
	appendAll(t, db, recs)
	tests := []struct {
		advance   time.Duration
		firstKept int // day of March
		expired   int64
	}{
		{0, 8, 21}, // now-48h = Mar 8 15:00: days 1..7 have ended before it
		{8*time.Hour + 59*time.Minute, 8, 21},
		{time.Minute, 9, 24}, // Mar 11 00:00: now-48h = Mar 9 00:00, Mar 8 has ended
		{30 * 24 * time.Hour, 11, 30},
	}
	for _, tt := range tests {
		clk.add(tt.advance)
		t.Run(clk.now().Format(time.RFC3339), func(t *testing.T) {
			if err := db.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			var first time.Time
			n := 0
			err := db.Export(context.Background(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), func(r *ledger.Record) error {
				if n++; n == 1 {
					first = r.Start
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if wantN := 3 * (10 - tt.firstKept + 1); n != wantN || (n > 0 && first.Day() != tt.firstKept) {
				t.Fatalf("%d records kept from %v, want %d from March %d", n, first, wantN, tt.firstKept)
			}
			if s := db.Stats(); s.Expired != tt.expired {
				t.Fatalf("expired %d, want %d", s.Expired, tt.expired)
			}
			// No aggregate of a swept day is left either.
			cutoff := time.Date(2026, 3, tt.firstKept, 0, 0, 0, 0, time.UTC)
			for _, prefix := range []byte{prefixHour, prefixDay} {
				if k := firstKey(t, db, prefix); k != nil {
					if sec, _ := parsePeriod(k); sec < cutoff.Unix() {
						t.Fatalf("%s left behind", keyString(k))
					}
				}
			}
			rows, err := db.Report(context.Background(), Query{From: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)})
			if err != nil {
				t.Fatal(err)
			}
			if got := sumRequests(rows); got != int64(n) {
				t.Fatalf("report counts %d requests, the records %d", got, n)
			}
		})
	}
}

func firstKey(t *testing.T, db *DB, prefix byte) []byte {
	var k []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
		defer it.Close()
		if it.Rewind(); it.Valid() {
			k = it.Item().KeyCopy(nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sumRequests(rows []Row) int64 {
	var n int64
	for _, r := range rows {
		n += r.Requests
	}
	return n
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{InMemory: true, Dimensions: []string{"project", "model"}}, `usagedb: dimension name "model": reserved for a built-in group key`},
		{Options{InMemory: true, Dimensions: []string{"team", "team"}}, `usagedb: dimension name "team": listed twice`},
		{Options{InMemory: true, Dimensions: []string{""}}, `usagedb: empty dimension name`},
		{Options{InMemory: true, Retention: -time.Hour}, `usagedb: retention -1h0m0s: want 0 (forever) or more`},
		{Options{}, `usagedb: Dir is required unless InMemory`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			db, err := Open(tt.o)
			if err == nil {
				db.Close()
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
}

// TestSweepAtOpen: the writer applies retention when it starts, before
// anything queued.
func TestSweepAtOpen(t *testing.T) {
	dir := t.TempDir()
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	db, err := Open(Options{Dir: dir, Dimensions: testDims})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, db, ledgergen.Month(6, 300, march))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: march.AddDate(0, 2, 0)}
	db = openTest(t, Options{Dir: dir, Retention: 24 * time.Hour, Now: clk.now})
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := db.Stats(); s.Expired != 300 {
		t.Fatalf("expired %d, want all 300", s.Expired)
	}
	for _, prefix := range []byte{prefixRecord, prefixHour, prefixDay} {
		if k := firstKey(t, db, prefix); k != nil {
			t.Fatalf("%s left behind", keyString(k))
		}
	}
}
