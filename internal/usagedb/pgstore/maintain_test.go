package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/ledgertest"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
)

func flush(t *testing.T, s *pgstore.Store) {
	t.Helper()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func partitions(t *testing.T, dsn string) []string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, _ := c.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'tokenmeter_ledger_records' ORDER BY 1`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// Retention drops whole months: with 30 days kept on April 15th, January
// and February go (they ended before March 16th), March stays whole, and
// the rollups go with their records.
func TestRetentionByMonth(t *testing.T) {
	dsn := pgtest.Start(t)
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var recs []*ledger.Record
	for i, m := range []time.Time{jan, jan.AddDate(0, 1, 0), jan.AddDate(0, 2, 0)} {
		for _, r := range ledgergen.Month(uint64(40+i), 300, m) {
			r.RequestID = m.Format("200601") + r.RequestID
			recs = append(recs, r)
		}
	}
	now := time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC)
	s := open(t, pgstore.Options{DSN: dsn, Dimensions: ledgergen.Dims})
	for _, r := range recs {
		s.Append(r)
	}
	flush(t, s)
	s.Close()
	if got := partitions(t, dsn); len(got) != 3 {
		t.Fatalf("partitions %q, want three months", got)
	}
	s = open(t, pgstore.Options{DSN: dsn, Dimensions: ledgergen.Dims, Retention: 30 * 24 * time.Hour, Now: func() time.Time { return now }})
	if got := partitions(t, dsn); len(got) != 1 || !strings.HasSuffix(got[0], "_p202603") {
		t.Fatalf("partitions %q after retention, want March's", got)
	}
	if st := s.Stats(); st.Expired != 600 {
		t.Fatalf("expired %d, want 600", st.Expired)
	}
	q := usagedb.Query{From: jan, To: now, GroupBy: []string{"project", "currency"}, Bucket: usagedb.Month}
	got, err := s.Report(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := ledgertest.Want(recs[600:], q, ledgergen.Dims)
	if len(got) != len(want) || got[0].Bucket.Month() != time.March {
		t.Fatalf("%d rows from %v, want %d, all March", len(got), got[0].Bucket, len(want))
	}
}

// A short outage loses nothing: the writer retries the batch until
// Postgres is back, and every record lands once.
func TestOutageRetried(t *testing.T) {
	srv := pgtest.StartServer(t)
	s := open(t, pgstore.Options{DSN: srv.DSN, Dimensions: ledgergen.Dims, BatchSize: 100})
	recs := ledgergen.Month(7, 2000, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	for _, r := range recs[:1000] {
		s.Append(r)
	}
	flush(t, s)
	srv.Stop()
	for _, r := range recs[1000:] {
		s.Append(r)
	}
	time.Sleep(500 * time.Millisecond) // the writer fails and retries meanwhile
	srv.Restart()
	flush(t, s)
	if st := s.Stats(); st.Written != 2000 || st.WriteErrors != 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v, want 2000 written", st)
	}
	n := 0
	if err := s.Export(context.Background(), recs[0].Start.AddDate(-1, 0, 0), recs[0].Start.AddDate(1, 0, 0), func(*ledger.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2000 {
		t.Fatalf("%d records stored, want 2000", n)
	}
}

// An outage longer than RetryFor loses the batch, counted and logged, never
// silently.
func TestOutageCounted(t *testing.T) {
	srv := pgtest.StartServer(t)
	s := open(t, pgstore.Options{DSN: srv.DSN, Dimensions: ledgergen.Dims, RetryFor: 300 * time.Millisecond})
	srv.Stop()
	for _, r := range ledgergen.Month(8, 50, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) {
		s.Append(r)
	}
	flush(t, s)
	if st := s.Stats(); st.WriteErrors != 50 || st.Written != 0 {
		t.Fatalf("stats %+v, want 50 write errors", st)
	}
}

// A replica still running with an old dimension list fails its writes
// once another has rebuilt the rollups under a new one: nothing is rolled
// up under the wrong names.
func TestDimensionsDisagree(t *testing.T) {
	dsn := pgtest.Start(t)
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	old := open(t, pgstore.Options{DSN: dsn, Dimensions: []string{"project"}, RetryFor: 200 * time.Millisecond})
	open(t, pgstore.Options{DSN: dsn, Dimensions: []string{"team"}})
	for _, r := range ledgergen.Month(9, 10, march) {
		old.Append(r)
	}
	flush(t, old)
	if st := old.Stats(); st.WriteErrors != 10 {
		t.Fatalf("stats %+v, want 10 write errors", st)
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := pgstore.Open(context.Background(), pgstore.Options{DSN: "postgres://u:secret@[::1"})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v: want an error that does not quote the password", err)
	}
	if _, err := pgstore.Open(context.Background(), pgstore.Options{}); err == nil {
		t.Fatal("no DSN: no error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = pgstore.Open(ctx, pgstore.Options{DSN: "postgres://u@127.0.0.1:1/x?connect_timeout=1"})
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("unreachable server: err = %v", err)
	}
}

// A month another replica's retention dropped is created again when a
// late record needs it: the writer forgets its partition cache after a
// failed write, so the retry succeeds.
func TestPartitionDroppedElsewhere(t *testing.T) {
	dsn := pgtest.Start(t)
	recs := uniqueMonth(4, 20)
	a := open(t, pgstore.Options{DSN: dsn, Dimensions: ledgergen.Dims})
	for _, r := range recs[:10] {
		a.Append(r)
	}
	flush(t, a)
	b := open(t, pgstore.Options{DSN: dsn, Dimensions: ledgergen.Dims, Retention: 24 * time.Hour,
		Now: func() time.Time { return time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) }})
	if st := b.Stats(); st.Expired != 10 {
		t.Fatalf("stats %+v, want March expired", st)
	}
	for _, r := range recs[10:] {
		a.Append(r)
	}
	flush(t, a)
	if st := a.Stats(); st.Written != 20 || st.WriteErrors != 0 {
		t.Fatalf("stats %+v, want the late records written", st)
	}
	if n := stored(t, a); n != 10 {
		t.Fatalf("%d records stored, want the 10 late ones", n)
	}
}
