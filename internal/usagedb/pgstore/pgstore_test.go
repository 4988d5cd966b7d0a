package pgstore_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/ledgertest"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
)

// TestConformance runs the ledger stores' suite against Postgres: one
// server, a database per test.
func TestConformance(t *testing.T) {
	srv := pgtest.StartServer(t)
	var mu sync.Mutex
	dsns := map[*testing.T]string{}
	ledgertest.Run(t, func(t *testing.T, dims []string) usagedb.Store {
		mu.Lock()
		dsn, ok := dsns[t]
		mu.Unlock()
		if !ok {
			dsn = srv.Database(t)
			mu.Lock()
			dsns[t] = dsn
			mu.Unlock()
		}
		return open(t, pgstore.Options{DSN: dsn, Dimensions: dims})
	})
}

func open(t *testing.T, o pgstore.Options) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
