// Package ledgertest is the conformance suite every ledger store
// (usagedb.Store) passes: a generated month of varied records appended,
// then every kind of query compared, row for row and to the nano-unit, with
// a reference computed from the records themselves (Want); statements,
// daily costs and exports; exactly-once on a re-appended record; a changed
// dimension list; appends and reports at once.
package ledgertest

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// Open returns a store for the test, with the dimension names dims, closed
// when the test ends. Called again in the same test after the previous
// store was closed, it must open the same storage (a restart).
type Open func(t *testing.T, dims []string) usagedb.Store

// ExactlyOnce is implemented by a store that keeps one copy of a record
// appended twice (the same Start and RequestID): a shared ledger, where a
// retried batch or two replicas' retries can write a record again. The
// suite holds such a store to it. Badger's DB, one process's ledger that
// is handed each record once, does not promise it.
type ExactlyOnce interface {
	ExactlyOnce() bool
}

var march = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// Records is the suite's month: ledgergen's March (6,000 records, a fifth
// on or a nanosecond before an hour or day edge, or on a half hour), and
// records on either side of Paris's spring-forward hour and of Kolkata's
// midnights.
func Records() []*ledger.Record {
	recs := ledgergen.Month(1, 6000, march)
	edges := []time.Time{
		time.Date(2026, 3, 29, 0, 59, 59, 999_999_999, time.UTC), // Paris 01:59:59 CET
		time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC),             // Paris 03:00 CEST
		time.Date(2026, 3, 28, 22, 59, 59, 999_999_999, time.UTC),
		time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC), // Paris midnight
		time.Date(2026, 3, 14, 18, 29, 59, 999_999_999, time.UTC),
		time.Date(2026, 3, 14, 18, 30, 0, 0, time.UTC), // Kolkata midnight
		time.Date(2026, 3, 31, 23, 59, 59, 999_999_999, time.UTC),
	}
	for i, e := range edges {
		r := *recs[i*7]
		r.RequestID, r.Start = "edge-"+strings.Repeat("x", i), e
		recs = append(recs, &r)
	}
	return recs
}

// Run runs the suite against the stores open returns.
func Run(t *testing.T, open Open) {
	t.Run("Reports", func(t *testing.T) { testReports(t, open) })
	t.Run("ExactlyOnce", func(t *testing.T) { testExactlyOnce(t, open) })
	t.Run("DimensionsChange", func(t *testing.T) { testDimensionsChange(t, open) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open) })
}

// appendAll appends recs and waits until they are written, failing on any
// drop or write error.
func appendAll(t *testing.T, s usagedb.Store, recs []*ledger.Record) {
	t.Helper()
	before := s.Stats()
	for _, r := range recs {
		s.Append(r)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Dropped != before.Dropped || st.WriteErrors != before.WriteErrors {
		t.Fatalf("stats %+v: want nothing dropped or failed", st)
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// queries are every kind of query: edges inside hours, every bucket, DST
// zones and a half-hour zone, filters, every key.
func queries(t *testing.T) []struct {
	name string
	q    usagedb.Query
} {
	paris, kolkata := mustLoad(t, "Europe/Paris"), mustLoad(t, "Asia/Kolkata")
	odd := march.Add(36*time.Hour + 17*time.Minute + 23*time.Second + 5e8)
	month := march.AddDate(0, 1, 0)
	type Q = usagedb.Query
	return []struct {
		name string
		q    usagedb.Query
	}{
		{"month total", Q{From: march, To: month}},
		{"month by currency and outcome", Q{From: march, To: month, GroupBy: []string{"currency", "outcome"}}},
		{"odd edges by project×model×day", Q{From: odd, To: odd.Add(20*24*time.Hour + 7*time.Minute), GroupBy: []string{"project", "model"}, Bucket: usagedb.Day}},
		{"team×provider by hour", Q{From: odd, To: odd.Add(50 * time.Hour), GroupBy: []string{"team", "provider"}, Bucket: usagedb.Hour}},
		{"user×currency by week in Paris", Q{From: march, To: month, GroupBy: []string{"user", "currency"}, Bucket: usagedb.Week, Location: paris}},
		{"month in Paris, odd edges", Q{From: odd, To: month.Add(-time.Nanosecond), Bucket: usagedb.Month, Location: paris, GroupBy: []string{"model"}}},
		{"day in Paris across DST", Q{From: march.AddDate(0, 0, 25), To: march.AddDate(0, 0, 31), Bucket: usagedb.Day, Location: paris, GroupBy: []string{"outcome"}}},
		{"hour in Paris across DST", Q{From: march.AddDate(0, 0, 28), To: march.AddDate(0, 0, 30), Bucket: usagedb.Hour, Location: paris}},
		{"day in Kolkata", Q{From: march, To: month, Bucket: usagedb.Day, Location: kolkata, GroupBy: []string{"project"}}},
		{"hour in Kolkata", Q{From: odd, To: odd.Add(72 * time.Hour), Bucket: usagedb.Hour, Location: kolkata, GroupBy: []string{"dialect"}}},
		{"week in Kolkata", Q{From: march, To: month, Bucket: usagedb.Week, Location: kolkata, GroupBy: []string{"team"}}},
		{"filtered", Q{From: march, To: month, Bucket: usagedb.Day, Location: paris,
			Filter: map[string]string{"team": "t1", "outcome": "ok"}, GroupBy: []string{"user"}}},
		{"filtered by currency and unknown user", Q{From: odd, To: month, Filter: map[string]string{"currency": "EUR", "user": "unknown"}, GroupBy: []string{"model"}}},
		{"every key", Q{From: odd, To: odd.Add(9 * 24 * time.Hour), GroupBy: []string{"project", "team", "user", "provider", "model", "dialect", "outcome", "currency"}, Bucket: usagedb.Day}},
		{"inside one hour", Q{From: odd, To: odd.Add(20 * time.Minute), GroupBy: []string{"project"}}},
		{"one exact hour", Q{From: march.Add(5 * time.Hour), To: march.Add(6 * time.Hour), GroupBy: []string{"project"}}},
		{"most of a day", Q{From: march.Add(2 * time.Hour), To: march.Add(22 * time.Hour), GroupBy: []string{"provider"}}},
		{"before the records", Q{From: march.AddDate(0, -1, 0), To: march, Bucket: usagedb.Day}},
	}
}

// sameRows fails unless got equals want row for row, buckets in the same
// zone.
func sameRows(t *testing.T, got, want []usagedb.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Bucket.Equal(w.Bucket) || g.Bucket.Location().String() != w.Bucket.Location().String() {
			t.Fatalf("row %d bucket %v, want %v", i, g.Bucket, w.Bucket)
		}
		g.Bucket, w.Bucket = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func testReports(t *testing.T, open Open) {
	dims := ledgergen.Dims
	recs := Records()
	s := open(t, dims)
	appendAll(t, s, recs)
	ctx := context.Background()
	for _, tt := range queries(t) {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Report(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			w := Want(recs, tt.q, dims)
			if len(w) == 0 && tt.name != "before the records" {
				t.Fatal("the reference report is empty: the test selects nothing")
			}
			sameRows(t, got, w)
		})
	}
	t.Run("bad query", func(t *testing.T) {
		_, err := s.Report(ctx, usagedb.Query{From: march, To: march.Add(time.Hour), GroupBy: []string{"region"}})
		_, want := reference{recs, dims}.Report(ctx, usagedb.Query{From: march, To: march.Add(time.Hour), GroupBy: []string{"region"}})
		if err == nil || err.Error() != want.Error() {
			t.Fatalf("err = %v, want %v", err, want)
		}
	})
	t.Run("statements", func(t *testing.T) { testStatements(t, s, recs, dims) })
	t.Run("export", func(t *testing.T) { testExport(t, s, recs) })
}

func testStatements(t *testing.T, s usagedb.Store, recs []*ledger.Record, dims []string) {
	ctx := context.Background()
	ref := reference{recs, dims}
	for _, loc := range []*time.Location{time.UTC, mustLoad(t, "Europe/Paris"), mustLoad(t, "Asia/Kolkata")} {
		for _, key := range []struct{ dim, value string }{{"project", "p3"}, {"team", "t0"}, {"user", "unknown"}} {
			got, err := usagedb.Statements(ctx, s, march.Add(17*24*time.Hour), key.dim, key.value, loc)
			if err != nil {
				t.Fatal(err)
			}
			want, err := usagedb.Statements(ctx, ref, march.Add(17*24*time.Hour), key.dim, key.value, loc)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Fatalf("%s %s=%s: no reference statement", loc, key.dim, key.value)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s %s=%s:\n got %+v\nwant %+v", loc, key.dim, key.value, got, want)
			}
		}
		from := time.Date(2026, 3, 1, 0, 0, 0, 0, loc)
		filter := map[string]string{"project": "p2", "currency": "EUR"}
		got, gcur, err := usagedb.DailyCost(ctx, s, filter, from, from.AddDate(0, 1, 0), loc)
		if err != nil {
			t.Fatal(err)
		}
		want, wcur, err := usagedb.DailyCost(ctx, ref, filter, from, from.AddDate(0, 1, 0), loc)
		if err != nil || gcur != wcur || !slices.Equal(got, want) {
			t.Fatalf("daily cost in %s: %v %s, want %v %s (%v)", loc, got, gcur, want, wcur, err)
		}
	}
}

// testExport: every record of a range comes back, as appended, in start
// order.
func testExport(t *testing.T, s usagedb.Store, recs []*ledger.Record) {
	from, to := march.Add(12*time.Hour+1), march.AddDate(0, 0, 9)
	var got []*ledger.Record
	err := s.Export(context.Background(), from, to, func(r *ledger.Record) error {
		if n := len(got); n > 0 && r.Start.Before(got[n-1].Start) {
			t.Fatalf("record %s at %v after one at %v", r.RequestID, r.Start, got[n-1].Start)
		}
		got = append(got, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []*ledger.Record
	for _, r := range recs {
		if !r.Start.Before(from) && r.Start.Before(to) {
			c := *r
			c.Start = c.Start.UTC()
			want = append(want, &c)
		}
	}
	byID := func(rs []*ledger.Record) {
		slices.SortStableFunc(rs, func(a, b *ledger.Record) int {
			if c := a.Start.Compare(b.Start); c != 0 {
				return c
			}
			return strings.Compare(a.RequestID, b.RequestID)
		})
	}
	byID(got)
	byID(want)
	if len(got) != len(want) {
		t.Fatalf("exported %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// testExactlyOnce appends part of the month twice, across batches and
// within one: a store that promises ExactlyOnce counts each record once.
func testExactlyOnce(t *testing.T, open Open) {
	s := open(t, ledgergen.Dims)
	eo, ok := s.(ExactlyOnce)
	if !ok || !eo.ExactlyOnce() {
		t.Logf("%T does not promise exactly-once appends; nothing to check", s)
		return
	}
	recs := ledgergen.Month(2, 2000, march)
	appendAll(t, s, recs[:1500])
	again := append(slices.Clone(recs[1000:]), recs[1400:1600]...) // 500 stored, 500 new, 200 twice in one go
	appendAll(t, s, again)
	q := usagedb.Query{From: march, To: march.AddDate(0, 1, 0), GroupBy: []string{"project", "currency"}, Bucket: usagedb.Day}
	got, err := s.Report(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, got, Want(recs, q, ledgergen.Dims))
	n := 0
	if err := s.Export(context.Background(), march, march.AddDate(0, 1, 0), func(*ledger.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != len(recs) {
		t.Fatalf("exported %d records, want %d, once each", n, len(recs))
	}
}

// testDimensionsChange: reopened with another dimension list, a store
// reports by the new dimensions at once.
func testDimensionsChange(t *testing.T, open Open) {
	recs := ledgergen.Month(5, 500, march)
	s := open(t, []string{"project"})
	appendAll(t, s, recs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dims := []string{"user", "team"}
	s = open(t, dims)
	if !slices.Equal(s.Dimensions(), dims) {
		t.Fatalf("dimensions %q, want %q", s.Dimensions(), dims)
	}
	for _, q := range []usagedb.Query{
		{From: march, To: march.AddDate(0, 1, 0), GroupBy: []string{"user", "team"}, Bucket: usagedb.Week},
		{From: march.Add(90 * time.Minute), To: march.AddDate(0, 0, 3), GroupBy: []string{"team"}, Bucket: usagedb.Day},
	} {
		got, err := s.Report(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		sameRows(t, got, Want(recs, q, dims))
	}
}

// testConcurrent appends from several goroutines while reports run (for
// the race detector), then checks the totals exactly.
func testConcurrent(t *testing.T, open Open) {
	s := open(t, ledgergen.Dims)
	q := usagedb.Query{From: march, To: march.AddDate(0, 1, 0), GroupBy: []string{"team"}, Bucket: usagedb.Day}
	var wg sync.WaitGroup
	var all [4][]*ledger.Record
	for g := range all {
		all[g] = ledgergen.Month(uint64(20+g), 1500, march)
		for _, r := range all[g] {
			r.RequestID = string(rune('a'+g)) + r.RequestID // apart across goroutines
		}
		wg.Go(func() {
			for _, r := range all[g] {
				s.Append(r)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 5 {
			if _, err := s.Report(context.Background(), q); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	<-done
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Report(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, got, Want(slices.Concat(all[:]...), q, ledgergen.Dims))
	if st := s.Stats(); st.Written != 6000 || st.Dropped != 0 || st.WriteErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}
