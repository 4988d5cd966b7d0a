package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
)

// ledgerFlag is the usage commands' --config: read the ledger a config file
// names directly, with no server running. Without it they ask a running
// tokenmeter through its admin API (--admin), because Badger lets one
// process at a time open a directory, and that is the server.
type ledgerFlag struct {
	Config string `name:"config" placeholder:"FILE" help:"Read the ledger this config file names directly, without a running server (a stopped server's ledger.dir, or the Postgres ledger). Default: ask the server at --admin."`
}

// usageClient is where a usage command reads: the admin API at a.Admin, or,
// with --config, the same API served in this process on a loopback port
// over the ledger the config names, so that both give the same answers in
// the same shapes. stop closes it.
func (l ledgerFlag) usageClient(ctx context.Context, a adminFlags) (c *adminClient, stop func(), err error) {
	if l.Config == "" {
		return a.client(), func() {}, nil
	}
	cfg, err := config.Load(l.Config)
	if err != nil {
		return nil, nil, configError{err}
	}
	store, err := openLedger(cfg)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("serve the ledger: %w", err)
	}
	srv := &http.Server{
		Handler: admin.New(http.NotFoundHandler(), "").WithUsage(usagedb.Ledger{Store: store}, cfg.Ledger.TimeZone).
			WithStatements(cfg.StatementSettings),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close below
	stop = func() {
		srv.Close()
		store.Close()
	}
	return &adminClient{base: "http://" + ln.Addr().String()}, stop, nil
}

// openLedger opens the ledger cfg names, to read. Retention is left to the
// server: a report never deletes.
func openLedger(cfg *config.Config) (usagedb.Store, error) {
	if cfg.Ledger.Dir == "" && cfg.Ledger.Type != "postgres" {
		return nil, usageError{fmt.Sprintf("%s keeps no ledger (ledger.dir is empty)", cfg.File)}
	}
	names := make([]string, len(cfg.Dimensions))
	for i, d := range cfg.Dimensions {
		names[i] = d.Name
	}
	if cfg.Ledger.Type == "postgres" {
		// One ledger every replica writes: read it while they run. No
		// retention and no spool here: a reader deletes and writes nothing.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := pgstore.Open(ctx, pgstore.Options{DSN: cfg.Ledger.Postgres.DSN, Dimensions: names, MaxConns: 2,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, fmt.Errorf("ledger on Postgres: %w", err)
		}
		return s, nil
	}
	db, err := usagedb.Open(usagedb.Options{Dir: cfg.Ledger.Dir, Dimensions: names, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		// Badger's words for a directory another process holds.
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("ledger %s is open in a running tokenmeter; ask it instead (--admin, without --config): %w", cfg.Ledger.Dir, err)
		}
		return nil, fmt.Errorf("ledger %s: %w", cfg.Ledger.Dir, err)
	}
	return db, nil
}
