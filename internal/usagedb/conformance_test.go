package usagedb_test

import (
	"sync"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/ledgertest"
)

// TestConformance runs the ledger stores' suite against Badger.
func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dirs := map[*testing.T]string{} // a test's second open reopens its directory
	ledgertest.Run(t, func(t *testing.T, dims []string) usagedb.Store {
		mu.Lock()
		dir, ok := dirs[t]
		if !ok {
			dir = t.TempDir()
			dirs[t] = dir
		}
		mu.Unlock()
		db, err := usagedb.Open(usagedb.Options{Dir: dir, Dimensions: dims})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
