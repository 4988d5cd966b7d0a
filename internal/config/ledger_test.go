package config

import (
	"path/filepath"
	"testing"
)

func TestLedgerPostgres(t *testing.T) {
	t.Setenv("TOKENMETER_TEST_LEDGER_DSN", "postgres://tm@db/ledger")
	c, err := Load(filepath.Join("testdata", "ledger_postgres.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := LedgerPostgres{DSN: "postgres://tm@db/ledger", DSNEnv: "TOKENMETER_TEST_LEDGER_DSN", MaxConns: 8, BatchSize: 2000,
		SpoolDir: "/var/lib/tokenmeter/spool", SpoolMaxMB: 64}
	if c.Ledger.Type != "postgres" || c.Ledger.Postgres != want {
		t.Fatalf("ledger %+v, want type postgres and %+v", c.Ledger, want)
	}
	if c, err := Load(filepath.Join("testdata", "minimal.yaml")); err != nil || c.Ledger.Type != "badger" {
		t.Fatalf("default ledger type %q (%v), want badger", c.Ledger.Type, err)
	}
}

func TestLedgerErrors(t *testing.T) {
	tests := []badFile{
		{"ledger_dsn_env_unset.yaml", `testdata/ledger_dsn_env_unset.yaml:5: ledger.postgres.dsn_env: "TOKENMETER_TEST_UNSET_VARIABLE": this environment variable is empty or unset`},
		{"ledger_postgres_without_dsn.yaml", `testdata/ledger_postgres_without_dsn.yaml:3: ledger.postgres.dsn_env: required with ledger type postgres`},
		{"ledger_misspelled_type.yaml", `testdata/ledger_misspelled_type.yaml:3: ledger.type: "postgress": want badger (embedded, the default) or postgres (one ledger shared by replicas)`},
	}
	badFiles(t, tests)
}
