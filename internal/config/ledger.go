package config

import (
	"os"

	"go.yaml.in/yaml/v3"
)

// LedgerPostgres is the ledger.postgres section: the shared ledger's
// database.
type LedgerPostgres struct {
	// DSN is read from DSNEnv; it never appears in the file (it can hold a
	// password).
	DSN    string
	DSNEnv string
	// MaxConns bounds the connection pool (the writer, reports, exports); 0
	// is pgstore's default.
	MaxConns int64
	// BatchSize bounds the records of one write transaction; 0 is
	// pgstore's default.
	BatchSize int64
	// SpoolDir is where batches wait on disk while Postgres is away
	// (absolute, or relative to the working directory); by default
	// ledger.dir's spool/, and "" (with ledger.dir empty) keeps no spool.
	SpoolDir string
	// SpoolMaxMB bounds the spool, in MiB; 0 is pgstore's default.
	SpoolMaxMB int64
}

func (w *walker) ledgerType(l *Ledger) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.value(n, k, "badger (embedded, the default) or postgres (one ledger shared by replicas)", func(v string) bool {
			switch v {
			case "badger", "postgres":
				l.Type = v
				return true
			}
			return false
		})
	}
}

// ledgerPostgres reads:
//
//	ledger:
//	  type: postgres
//	  postgres:
//	    dsn_env: LEDGER_DSN   # the connection string, from the environment
//	    max_conns: 4
//	    batch_size: 5000
//	    spool_dir: /var/lib/tokenmeter/ledger-spool
//	    spool_max_mb: 1024
func (w *walker) ledgerPostgres(p *LedgerPostgres) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"dsn_env": func(n *yaml.Node, k string) {
				w.str(&p.DSNEnv)(n, k)
				if p.DSN = os.Getenv(p.DSNEnv); p.DSN == "" {
					w.Fail(n, k, "this environment variable is empty or unset")
				}
			},
			"max_conns":    w.integer(&p.MaxConns, 2, 1000),
			"batch_size":   w.integer(&p.BatchSize, 1, 100_000),
			"spool_dir":    w.str(&p.SpoolDir),
			"spool_max_mb": w.integer(&p.SpoolMaxMB, 1, 1<<20),
		})
	}
}
