package budgets_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/budgets"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

const cfgText = `catalog: {files: [../config/testdata/prices.yaml]}
budgets:
  - {name: file, limit: {requests: 5}, window: day}
`

// Two registries on one store, as two replicas on one Redis: a budget put
// through one reaches the other at its next refresh, and so does a delete.
func TestReplicasShareRuntimeBudgets(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	a, b := budgets.New(store, log), budgets.New(store, log)
	for _, r := range []*budgets.Registry{a, b} {
		if _, err := r.Refresh(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Put(ctx, cfg, "rt", []byte(`{"name":"rt","limit":{"tokens":100},"window":"hour"}`)); err != nil {
		t.Fatal(err)
	}
	if changed, err := b.Refresh(ctx, cfg); err != nil || !changed {
		t.Fatalf("refresh after put: %v %v", changed, err)
	}
	merged := b.Apply(cfg)
	if len(merged.Budgets) != 2 || merged.Budgets[1].Name != "rt" || merged.Budgets[1].Limit != 100 {
		t.Fatalf("merged budgets %+v", merged.Budgets)
	}
	if changed, _ := b.Refresh(ctx, cfg); changed {
		t.Fatal("a refresh with nothing new reported a change")
	}
	if err := a.Delete(ctx, "rt"); err != nil {
		t.Fatal(err)
	}
	if changed, _ := b.Refresh(ctx, cfg); !changed || len(b.Apply(cfg).Budgets) != 1 {
		t.Fatal("the delete did not reach the other replica")
	}
	if err := a.Delete(ctx, "rt"); !errors.Is(err, budgets.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, err := a.Put(ctx, cfg, "file", []byte(`{"name":"file","limit":{"tokens":1},"window":"day"}`)); !errors.Is(err, config.ErrBudgetName) {
		t.Fatalf("a file budget's name: %v", err)
	}
	if _, err := a.Put(ctx, cfg, "x", []byte(`{"name":"y","limit":{"tokens":1},"window":"day"}`)); err == nil {
		t.Fatal("a definition named differently from its path was stored")
	}
}
