package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
	"github.com/tokenmeter/tokenmeter/ratelimit/redisstore/redistest"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// Two tokenmeters with ledger type postgres write one ledger (and share
// budgets in Redis, as replicas do): requests
// through either Envoy land in Postgres once each, and either replica's
// report, statement and export read all of them, at their exact cost.
func TestLedgerOnPostgres(t *testing.T) {
	dsn := pgtest.StartServer(t).Database(t)
	t.Setenv("TOKENMETER_TEST_LEDGER_DSN", dsn)
	s := testbed.New(t, testbed.Options{Bin: bin, Redis: redistest.Start(t, false), Extra: "ledger: {type: postgres, postgres: {dsn_env: TOKENMETER_TEST_LEDGER_DSN}}"})
	r := s.AddReplica()
	h := func(project string) map[string]string {
		return map[string]string{"x-tokenmeter-project": project, "x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "50"}
	}
	for i, p := range []string{"alpha", "alpha", "alpha", "beta"} {
		proxy := s.Proxy
		if i%2 == 1 {
			proxy = r.Proxy
		}
		resp := s.PostTo(proxy, chatBody, h(p))
		if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
	}
	now := time.Now().UTC()
	from, to := now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	checkUsageReport(t, waitUsageReport(t, s, from, to, 4))
	checkUsageStatement(t, s, now)
	checkUsageExport(t, s, from, to)

	store, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, Dimensions: []string{"project", "team", "user"}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ids := map[string]bool{}
	err = store.Export(context.Background(), now.Add(-time.Hour), now.Add(time.Hour), func(rec *ledger.Record) error {
		if ids[rec.RequestID] {
			t.Errorf("record %s stored twice", rec.RequestID)
		}
		ids[rec.RequestID] = true
		return nil
	})
	if err != nil || len(ids) != 4 {
		t.Fatalf("%d records in Postgres (%v), want 4", len(ids), err)
	}
}
