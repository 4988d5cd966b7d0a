package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
)

// offlineLedger writes a stopped server's ledger: three charged requests of
// project alpha and one denied, in November 2026, and the config naming it.
func offlineLedger(t *testing.T) (cfg, dir string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "ledger")
	db, err := usagedb.Open(usagedb.Options{Dir: dir, Dimensions: []string{"project"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i, o := range []ledger.Outcome{ledger.OK, ledger.OK, ledger.OK, ledger.Denied} {
		r := &ledger.Record{RequestID: "r" + string(rune('0'+i)), Start: start.Add(time.Duration(i) * time.Minute),
			Provider: "openai", Model: "gpt-4o-mini", PricedModel: "gpt-4o-mini", Dialect: "openai_chat", Outcome: o,
			Priced: true, Currency: money.USD, Dimensions: attribution.Dimensions{Names: []string{"project"}, Values: []string{"alpha"}}}
		if o == ledger.OK {
			r.Cost, r.ListCost = money.MustParse("0.00018"), money.MustParse("0.00018")
			r.Usage.Set(usage.Input, 1000)
			r.Usage.Set(usage.Output, 50)
		}
		db.Append(r)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(root, "tokenmeter.yaml")
	yaml := "catalog: {builtin: true}\nledger: {dir: " + dir + "}\nattribution:\n  dimensions: [{name: project, header: x-tokenmeter-project}]\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

// With --config the usage commands read a stopped server's ledger
// directly, in the same shapes as through a server's admin API; a ledger a
// running server holds is refused with what to do instead.
func TestUsageOffline(t *testing.T) {
	cfg, dir := offlineLedger(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"report", []string{"report", "--config", cfg, "--from", "2026-11-01", "--to", "2026-12-01", "--group-by", "project,outcome"},
			"  PROJECT  OUTCOME  REQUESTS  TOKENS  UNPRICED         COST\n" +
				"    alpha   denied         1       0         0        0 USD\n" +
				"    alpha       ok         3    3150         0  0.00054 USD\n" +
				"total: 4 requests, 0.00054 USD\n"},
		{"statement", []string{"statement", "--config", cfg, "--month", "2026-11", "--dimension", "project", "--value", "alpha"},
			"Statement 2026-11 for project=alpha, in USD\n\n" +
				"  PROVIDER        MODEL  SERVED  UNPRICED  DENIED  FAILED  TOKENS     COST\n" +
				"    openai  gpt-4o-mini       3         0       1       0    3150  0.00054\n" +
				"     TOTAL                    3         0       1       0          0.00054\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(append([]string{"usage"}, tt.args...)...)
			if code != exitOK || stdout != tt.want {
				t.Fatalf("exit %d, stderr %q\nstdout:\n%s\nwant:\n%s", code, stderr, stdout, tt.want)
			}
		})
	}
	code, stdout, stderr := runCLI("usage", "statement", "--config", cfg, "--month", "2026-11", "--dimension", "project", "--value", "alpha", "--format", "html")
	if code != exitOK || !strings.Contains(stdout, "TM-202611-") || !strings.Contains(stdout, "0.00054") {
		t.Fatalf("statement --format html: exit %d, stderr %q, stdout:\n%.400s", code, stderr, stdout)
	}
	code, stdout, stderr = runCLI("usage", "export", "--config", cfg, "--from", "2026-11-01", "--to", "2026-12-01", "--format", "jsonl")
	if code != exitOK || strings.Count(stdout, "\n") != 4 || !strings.Contains(stdout, `"request_id":"r3"`) {
		t.Fatalf("export: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}

	held, err := usagedb.Open(usagedb.Options{Dir: dir, Dimensions: []string{"project"}})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	code, _, stderr = runCLI("usage", "report", "--config", cfg, "--from", "2026-11-01", "--to", "2026-12-01")
	if code == exitOK || !strings.Contains(stderr, "is open in a running tokenmeter; ask it instead (--admin, without --config)") {
		t.Fatalf("a held ledger: exit %d, stderr %q", code, stderr)
	}
}

// The Postgres ledger is read with --config while its writers may run: the
// same report from the same records.
func TestUsageOfflinePostgres(t *testing.T) {
	dsn := pgtest.Start(t)
	t.Setenv("TM_TEST_LEDGER_DSN", dsn)
	s, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, Dimensions: []string{"project"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		r := &ledger.Record{RequestID: fmt.Sprintf("pg-%d", i), Start: start.Add(time.Duration(i) * time.Minute),
			Provider: "openai", Model: "gpt-4o-mini", PricedModel: "gpt-4o-mini", Dialect: "openai_chat", Outcome: ledger.OK,
			Priced: true, Currency: money.USD, Cost: money.MustParse("0.00018"), ListCost: money.MustParse("0.00018"),
			Dimensions: attribution.Dimensions{Names: []string{"project"}, Values: []string{"alpha"}}}
		r.Usage.Set(usage.Input, 1000)
		r.Usage.Set(usage.Output, 50)
		s.Append(r)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Close() // a writer still running: the read does not need it stopped
	cfg := filepath.Join(t.TempDir(), "tokenmeter.yaml")
	yaml := "catalog: {builtin: true}\nledger: {type: postgres, postgres: {dsn_env: TM_TEST_LEDGER_DSN}}\n" +
		"attribution:\n  dimensions: [{name: project, header: x-tokenmeter-project}]\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("usage", "report", "--config", cfg, "--from", "2026-11-01", "--to", "2026-12-01", "--group-by", "project")
	want := "  PROJECT  REQUESTS  TOKENS  UNPRICED         COST\n    alpha         3    3150         0  0.00054 USD\ntotal: 3 requests, 0.00054 USD\n"
	if code != exitOK || stdout != want {
		t.Fatalf("exit %d, stderr %q\nstdout:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}
}
