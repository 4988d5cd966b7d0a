package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/ledgertest"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
)

// uniqueMonth is a generated month whose request ids are apart from other
// seeds'.
func uniqueMonth(seed uint64, n int) []*ledger.Record {
	recs := ledgergen.Month(seed, n, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	for _, r := range recs {
		r.RequestID = string(rune('a'+seed%26)) + r.RequestID
	}
	return recs
}

// stored returns how many records Postgres holds, failing on a duplicate.
func stored(t *testing.T, s *pgstore.Store) int {
	t.Helper()
	seen := map[string]bool{}
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	err := s.Export(context.Background(), march, march.AddDate(0, 1, 0), func(r *ledger.Record) error {
		if seen[r.RequestID] {
			t.Fatalf("record %s stored twice", r.RequestID)
		}
		seen[r.RequestID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(seen)
}

// waitSpoolEmpty waits for the writer to replay the spool (it tries the
// database again after a backoff of at most 5 seconds).
func waitSpoolEmpty(t *testing.T, s *pgstore.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a bound on a hang, not a measurement
	for s.Stats().Spooled != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool not replayed: %+v", s.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Postgres stops and restarts while records arrive: what came meanwhile
// waits in the spool, is written when the database is back, and every
// record is stored once; the report equals the records.
func TestSpoolOutageUnderLoad(t *testing.T) {
	srv := pgtest.StartServer(t)
	s := open(t, pgstore.Options{DSN: srv.DSN, Dimensions: ledgergen.Dims, SpoolDir: t.TempDir(), BatchSize: 200})
	recs := uniqueMonth(1, 12_000)
	sawSpool := false
	for i, r := range recs {
		switch i {
		case 3000:
			flush(t, s)
			srv.Stop()
		case 9000:
			flush(t, s)
			if st := s.Stats(); st.Spooled == 0 || st.SpoolBytes == 0 || st.SpoolOldest.IsZero() {
				t.Fatalf("Postgres down, stats %+v: want records spooled", st)
			}
			sawSpool = true
			srv.Restart()
		}
		s.Append(r)
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // load, not a flood: the queue never fills
		}
	}
	flush(t, s)
	waitSpoolEmpty(t, s)
	if st := s.Stats(); !sawSpool || st.Dropped != 0 || st.WriteErrors != 0 || st.Written < int64(len(recs)) {
		t.Fatalf("stats %+v", st)
	}
	if n := stored(t, s); n != len(recs) {
		t.Fatalf("%d records stored, want %d", n, len(recs))
	}
	q := usagedb.Query{From: recs[0].Start.AddDate(0, -1, 0), To: recs[0].Start.AddDate(0, 1, 0), GroupBy: []string{"project", "currency"}, Bucket: usagedb.Day}
	got, err := s.Report(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := ledgertest.Want(recs, q, ledgergen.Dims)
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Requests != want[i].Requests || got[i].Cost != want[i].Cost {
			t.Fatalf("row %d: %d requests %s, want %d %s", i, got[i].Requests, got[i].Cost, want[i].Requests, want[i].Cost)
		}
	}
}

// A process stopped with batches in the spool leaves them on disk; the
// next Open writes them.
func TestSpoolSurvivesRestart(t *testing.T) {
	srv := pgtest.StartServer(t)
	dir := t.TempDir()
	s := open(t, pgstore.Options{DSN: srv.DSN, Dimensions: ledgergen.Dims, SpoolDir: dir})
	srv.Stop()
	recs := uniqueMonth(2, 500)
	for _, r := range recs {
		s.Append(r)
	}
	flush(t, s)
	if st := s.Stats(); st.Spooled != 500 {
		t.Fatalf("stats %+v, want 500 spooled", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	s = open(t, pgstore.Options{DSN: srv.DSN, Dimensions: ledgergen.Dims, SpoolDir: dir})
	waitSpoolEmpty(t, s)
	if n := stored(t, s); n != 500 {
		t.Fatalf("%d records stored, want 500", n)
	}
}

// A full spool refuses a batch: lost, counted, never silent.
func TestSpoolFull(t *testing.T) {
	srv := pgtest.StartServer(t)
	s := open(t, pgstore.Options{DSN: srv.DSN, Dimensions: ledgergen.Dims, SpoolDir: t.TempDir(), SpoolMaxBytes: 20_000, BatchSize: 50})
	srv.Stop()
	for _, r := range uniqueMonth(3, 500) {
		s.Append(r)
	}
	flush(t, s)
	st := s.Stats()
	if st.WriteErrors == 0 || st.Spooled == 0 || st.Spooled+st.WriteErrors != 500 || st.SpoolBytes > 20_000 {
		t.Fatalf("stats %+v: want the spool full at 20,000 bytes and the rest counted lost", st)
	}
}
