// Package daemon runs tokenmeter: it opens the budget store, binds the ext_proc
// gRPC listener and the admin HTTP listener, and serves until its context
// ends. Run returns only after both listeners are closed and the store is
// flushed, so counters survive a restart.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenmeter/tokenmeter/extproc"
	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/internal/budgets"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/metrics"
	"github.com/tokenmeter/tokenmeter/internal/statement"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
	"github.com/tokenmeter/tokenmeter/ratelimit/redisstore"
)

// Addrs are the bound listener addresses, reported once serving starts
// (useful when the config asks for port 0).
type Addrs struct {
	GRPC  string
	Admin string
}

// Run serves cfg until ctx is done. ready, when not nil, is called once both
// listeners are bound.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, ready func(Addrs)) error {
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeLogged(store, "close store", log)
	records, _ := store.(ratelimit.Records)
	runtime := budgets.New(records, log)
	if _, err := runtime.Refresh(ctx, cfg); err != nil {
		return err
	}
	keys, err := openKeys(ctx, cfg, records, log)
	if err != nil {
		return err
	}
	// file is the config file's config; the server runs it with the runtime
	// budgets added.
	var file atomic.Pointer[config.Config]
	file.Store(cfg)
	newSnapshot := func(c *config.Config) *extproc.Snapshot {
		s := extproc.NewSnapshot(runtime.Apply(c), store, time.Now)
		if keys != nil { // not a typed nil in the interface
			s.Keys = keys
		}
		return s
	}

	snap := newSnapshot(cfg)
	var srv *extproc.Server
	m := metrics.New(metricsOptions(cfg.Metrics), func(ctx context.Context) ([]ratelimit.Status, error) {
		return srv.Snapshot().Limiter.Status(ctx)
	}, log)
	sinks, stopSinks, err := recordSinks(ctx, cfg, m, log)
	if err != nil {
		return err
	}
	defer stopSinks() // after the servers stop and the ledger closes (deferred later): no record follows the last export or event
	book, err := openLedger(cfg, snap.Extractor.Names(), log)
	if err != nil {
		return err
	}
	if book != nil {
		// Closed after the gRPC server stops (defers run last-in first-out),
		// so the records of the last requests are written.
		defer closeLogged(book, "close ledger", log)
		m.WatchLedger(book.Stats)
		sinks = append(sinks, book)
	}
	srv = extproc.NewServer(snap, sinks, m, log, time.Now)
	alerts := newAlerts(cfg, srv, m, records, book, log)

	gl, al, err := listen(cfg)
	if err != nil {
		return err
	}

	streams := &streamCount{}
	g, hs := grpcServer(cfg, srv, streams)

	var swapMu sync.Mutex // one rebuild at a time, so an older one never lands last
	rebuild := func() {
		swapMu.Lock()
		defer swapMu.Unlock()
		srv.Swap(newSnapshot(file.Load()))
	}
	adm := admin.New(m.Handler(), cfg.AdminToken).WithBudgets(&budgets.API{
		Registry: runtime, File: file.Load, Limiter: func() *ratelimit.Limiter { return srv.Snapshot().Limiter },
		Store: store, Changed: rebuild, Forecasts: alerts.forecasts,
	})
	// Always: with keys off, /v1/keys answers a 404 that says so.
	adm.WithKeys(&apikey.API{Registry: keys})
	if book != nil {
		adm.WithUsage(usagedb.Ledger{Store: book}, cfg.Ledger.TimeZone).
			WithStatements(func() statement.Settings { return file.Load().StatementSettings() })
	}
	hsrv := &http.Server{Handler: adm, ReadHeaderTimeout: 10 * time.Second}

	errc := serveBoth(g, gl, hsrv, al)
	reloadCtx, stopReload := context.WithCancel(ctx)
	defer stopReload()
	startReloading(reloadCtx, cfg, reloading{file: &file, runtime: runtime, keys: keys, rebuild: rebuild, metrics: m, log: log})
	alerts.run(reloadCtx)

	adm.SetReady(true)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	addrs := Addrs{GRPC: gl.Addr().String(), Admin: al.Addr().String()}
	log.Info("tokenmeter serving", "grpc", addrs.GRPC, "admin", addrs.Admin,
		"config", cfg.File, "catalog_models", cfg.Catalog.Len(), "budgets", len(cfg.Budgets))
	if ready != nil {
		ready(addrs)
	}
	st := stopping{grpc: g, health: hs, admin: adm, http: hsrv, streams: streams, log: log}
	return st.until(ctx, errc, func() config.Shutdown { return file.Load().Shutdown })
}

// closeLogged closes c, logging a failure: at shutdown there is nobody
// else to tell.
func closeLogged(c io.Closer, what string, log *slog.Logger) {
	if err := c.Close(); err != nil {
		log.Error(what, "err", err)
	}
}

// grpcServer serves srv and gRPC health, taking messages as large as the
// bodies Envoy may send (max_message_bytes and Envoy's headroom). Its Stop
// waits for the stream handlers to return, so a stream cut at shutdown has
// written its record before the ledger closes.
func grpcServer(cfg *config.Config, srv *extproc.Server, streams *streamCount) (*grpc.Server, *health.Server) {
	g := grpc.NewServer(
		grpc.MaxRecvMsgSize(int(cfg.MaxMessageBytes+config.EnvoyBufferHeadroom)),
		grpc.MaxSendMsgSize(int(cfg.MaxMessageBytes+config.EnvoyBufferHeadroom)),
		grpc.StreamInterceptor(streams.intercept),
		grpc.WaitForHandlers(true),
	)
	srv.Register(g)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	return g, hs
}

// serveBoth serves gRPC on gl and HTTP on al; the channel gets each
// server's end (nil for the admin server's orderly close).
func serveBoth(g *grpc.Server, gl net.Listener, hsrv *http.Server, al net.Listener) <-chan error {
	errc := make(chan error, 2)
	go func() { errc <- g.Serve(gl) }()
	go func() {
		if err := hsrv.Serve(al); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	return errc
}

// openLedger opens the ledger: Postgres for ledger.type postgres, else
// Badger in ledger.dir, or nil when that is empty (no ledger).
func openLedger(cfg *config.Config, dims []string, log *slog.Logger) (usagedb.Store, error) {
	if cfg.Ledger.Type == "postgres" {
		pg := cfg.Ledger.Postgres
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := pgstore.Open(ctx, pgstore.Options{DSN: pg.DSN, Dimensions: dims, Retention: cfg.Ledger.Retention,
			QueueSize: int(cfg.Ledger.QueueSize), MaxConns: int(pg.MaxConns), BatchSize: int(pg.BatchSize),
			SpoolDir: pg.SpoolDir, SpoolMaxBytes: pg.SpoolMaxMB << 20, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("ledger postgres (from $%s): %w", pg.DSNEnv, err)
		}
		return s, nil
	}
	if cfg.Ledger.Dir == "" {
		return nil, nil
	}
	db, err := usagedb.Open(usagedb.Options{Dir: cfg.Ledger.Dir, Dimensions: dims,
		Retention: cfg.Ledger.Retention, QueueSize: int(cfg.Ledger.QueueSize), SyncWrites: cfg.StoreSyncWrites, Logger: log})
	if err != nil {
		return nil, err // not a nil *DB in the interface
	}
	return db, nil
}

// listen binds the gRPC and admin listeners, or neither.
func listen(cfg *config.Config) (grpcL, adminL net.Listener, err error) {
	grpcL, err = net.Listen("tcp", cfg.GRPCListen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen grpc %s: %w", cfg.GRPCListen, err)
	}
	adminL, err = net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		grpcL.Close()
		return nil, nil, fmt.Errorf("listen admin %s: %w", cfg.AdminListen, err)
	}
	return grpcL, adminL, nil
}

// reloading is what a reload changes: the file's config, the runtime
// budgets merged into it, the server's snapshot.
type reloading struct {
	file    *atomic.Pointer[config.Config]
	runtime *budgets.Registry
	keys    *apikey.Registry // nil when API keys are off
	rebuild func()
	metrics *metrics.Metrics
	log     *slog.Logger
}

// startReloading polls the config and its catalogs (and reloads on SIGHUP)
// and re-reads the runtime budgets, until ctx is done.
func startReloading(ctx context.Context, cfg *config.Config, r reloading) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		<-ctx.Done()
		signal.Stop(hup)
	}()
	reloader := config.NewReloader(cfg, func(next *config.Config) {
		r.file.Store(next)
		configureKeys(r.keys, next)
		if _, err := r.runtime.Refresh(ctx, next); err != nil {
			r.log.Error("runtime budgets", "err", err)
		}
		r.rebuild()
		r.metrics.Reloaded()
		r.log.Info("config reloaded", "config", next.File, "catalog_models", next.Catalog.Len(), "budgets", len(next.Budgets))
	}, func(err error) {
		r.metrics.ReloadFailed()
		r.log.Error("config reload refused; keeping the running config", "err", err)
	})
	interval := cfg.ReloadInterval
	if interval == 0 {
		interval = 24 * time.Hour * 365 // polling off: SIGHUP only
	}
	go reloader.Run(ctx, interval, hup)
	go refreshRuntime(ctx, interval, r, r.log)
}

// openStore opens the configured budget store.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (ratelimit.Store, error) {
	if cfg.StoreType == "redis" {
		r := cfg.Redis
		return redisstore.Open(ctx, redisstore.Options{Addrs: r.Addrs, Cluster: r.Cluster, Username: r.Username,
			Password: r.Password, DB: int(r.DB), KeyPrefix: r.KeyPrefix, DialTimeout: r.Timeout, ReadTimeout: r.Timeout, Logger: log})
	}
	return badgerstore.Open(badgerstore.Options{Dir: cfg.StoreDir, SyncWrites: cfg.StoreSyncWrites, Logger: log})
}

// refreshRuntime picks up the API keys and runtime budgets that other replicas created,
// changed or deleted in the shared store.
func refreshRuntime(ctx context.Context, every time.Duration, r reloading, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r.keys != nil {
				// Keys created, revoked or rotated on another replica.
				if _, err := r.keys.Refresh(ctx); err != nil {
					log.Warn("API keys", "err", err)
				}
			}
			changed, err := r.runtime.Refresh(ctx, r.file.Load())
			if err != nil {
				log.Warn("runtime budgets", "err", err)
				continue
			}
			if changed {
				r.rebuild()
			}
		}
	}
}

// alerts runs the threshold watcher, the forecaster and the webhook sender.
type alerts struct {
	sender     *webhook.Sender
	watcher    *alerting.Watcher
	forecaster *alerting.Forecaster
	every      time.Duration
}

// newAlerts builds what the config asks for. Without webhooks nothing is
// sent, and nothing is claimed either, so that alerts still fire once
// webhooks are configured; forecasts are still made when there is a ledger,
// for the budget status and the metrics.
func newAlerts(cfg *config.Config, srv *extproc.Server, m *metrics.Metrics, claims ratelimit.Records, book usagedb.Store, log *slog.Logger) *alerts {
	a := &alerts{every: cfg.Alerts.ForecastInterval}
	var sender alerting.Sender = noSender{}
	var claimer alerting.Claimer = noSender{}
	if len(cfg.Alerts.Webhooks) > 0 {
		a.sender = webhook.New(webhook.Options{Targets: cfg.Alerts.Webhooks, Logger: log})
		m.WatchAlerts(a.sender.Stats)
		sender, claimer = a.sender, nil
		if claims != nil {
			claimer = claims
		}
	}
	a.watcher = alerting.New(alerting.Options{
		Limiter:  func() *ratelimit.Limiter { return srv.Snapshot().Limiter },
		Sender:   sender,
		Claimer:  claimer,
		Currency: cfg.Reporting,
		Interval: cfg.Alerts.Interval,
		Log:      log,
	})
	if book != nil {
		a.forecaster = alerting.NewForecaster(a.watcher, ledgerHistory{book}, cfg.Alerts.Anomaly, cfg.Reporting)
		m.WatchForecasts(a.forecasts)
	}
	return a
}

func (a *alerts) forecasts() []alerting.Forecast {
	if a.forecaster == nil {
		return nil
	}
	return a.forecaster.Forecasts()
}

func (a *alerts) run(ctx context.Context) {
	if a.sender != nil {
		go a.sender.Run(ctx)
		go a.watcher.Run(ctx)
	}
	if a.forecaster != nil {
		go a.forecaster.Run(ctx, a.every)
	}
}

// noSender drops alerts and never grants a claim: with no webhook configured
// there is nowhere to send them.
type noSender struct{}

func (noSender) Send(webhook.Alert) bool                                { return false }
func (noSender) Claim(context.Context, string, time.Time) (bool, error) { return false, nil }

// logSink writes one debug line per record; the ledger proper arrives with
// its own storage.
type logSink struct{ log *slog.Logger }

func (l logSink) Append(r *ledger.Record) {
	l.log.Debug("record", "request_id", r.RequestID, "provider", r.Provider, "model", r.Model,
		"outcome", r.Outcome, "reason", r.Reason, "tokens", r.Usage.Total(), "cost", r.Cost.String(),
		"priced", r.Priced, "status", r.Status)
}

// metricsOptions carries the metrics section into the metrics package,
// which does not read config.
func metricsOptions(c config.Metrics) metrics.Options {
	o := metrics.Options{MaxLabelSets: int(c.MaxLabelSets), MaxBudgetKeys: int(c.MaxBudgetKeys)}
	for _, d := range c.Dimensions {
		o.Dimensions = append(o.Dimensions, metrics.Dimension{Name: d.Name, Disabled: !d.Enabled, MaxValues: int(d.MaxValues)})
	}
	return o
}
