package usagedb

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
)

var testDims = ledgergen.Dims

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openTest(t testing.TB, o Options) *DB {
	t.Helper()
	if o.Dir == "" {
		o.InMemory = true
	}
	if o.Dimensions == nil {
		o.Dimensions = testDims
	}
	db, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// appendAll appends recs and waits until they are written.
func appendAll(t testing.TB, db *DB, recs []*ledger.Record) {
	t.Helper()
	for _, r := range recs {
		db.Append(r)
	}
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := db.Stats(); s.Dropped != 0 || s.WriteErrors != 0 {
		t.Fatalf("stats %+v: want nothing dropped or failed", s)
	}
}
