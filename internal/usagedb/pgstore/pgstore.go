// Package pgstore is the usage ledger on PostgreSQL: one ledger that every
// replica of a fleet writes, read with the same reports, statements and
// exports as the embedded Badger ledger (usagedb.DB), to the nano-unit.
//
// # Writing
//
// Append copies the record into a bounded queue and returns: it never
// blocks, and a record the full queue cannot take is dropped, counted
// (Stats.Dropped) and logged. One writer takes batches of up to
// Options.BatchSize records, COPYs them with their rollup contributions
// (computed in Go by usagedb.Converter, as DB computes its aggregates) into
// a temporary staging table, and in the same transaction inserts them into
// the records table with ON CONFLICT DO NOTHING and adds exactly the rows
// inserted (RETURNING) to the hour and day rollups. So the rollups are
// always the sums of the stored records, and a record is counted once
// however often it is written: a batch retried after a lost commit reply,
// or the same record from two replicas. A record's identity is its start
// and its RequestID (unique per server: a random prefix and a counter).
//
// A batch that fails (Postgres away, a deadlock between replicas) is
// retried with backoff for Options.RetryFor; then its records are counted
// in Stats.WriteErrors and logged. Meanwhile Appends fill the queue.
//
// # Spool
//
// With Options.SpoolDir, a batch that fails goes to an on-disk spool at
// once instead (one synced file per batch), and so do the batches after
// it until the database answers again (tried after a backoff of up to 5
// seconds); then the spool is replayed, oldest first, before new batches.
// A replay is an ordinary write, exactly once as every write is. The spool
// is bounded (Options.SpoolMaxBytes): a batch it has no room for is lost,
// counted in Stats.WriteErrors and logged, never silently. Its records,
// bytes and the age of its oldest batch are in Stats (metrics export
// them). Segments a stopped process left are replayed by the next Open.
//
// # Tables
//
// tokenmeter_ledger_records holds each record's start (unix nanoseconds),
// its RequestID and its compact encoding (usagedb.EncodeRecord, ~150
// bytes), partitioned by UTC month of the start; a month's partition is
// created when its first record is written. tokenmeter_ledger_hour and
// tokenmeter_ledger_day hold the rollups: one row per period and group
// (reporting currency, the configured dimensions' values as a text[] in the
// configured order, provider, model, dialect, outcome) with exact bigint
// sums. tokenmeter_ledger_meta holds the format and the dimension names the
// rollups were built with.
//
// # Dimensions
//
// A record keeps its own dimension names and values (in its encoding), as
// in DB. The rollups are keyed by the configured names, in order. When a
// store opens with a list that differs from the meta row's, it rebuilds the
// rollups from the records, in one transaction (logged; it reads every
// record once), as DB does. Every batch checks the list under a shared lock
// on the meta row, so a replica still running with the old list fails its
// writes (and retries, then counts them lost) rather than roll up under the
// wrong names: replicas of one fleet must be configured alike.
//
// # Reports
//
// Report follows DB's plan (usagedb.Plan): whole hours and days from the
// rollups, partial hours at the edges from the records, each counted in
// its bucket, all in one REPEATABLE READ snapshot. The rollups are
// grouped, filtered and counted by outcome in SQL, with the charged rule's
// list of outcomes from Go (usagedb.ChargedOutcomes); the records at the
// edges are decoded and added in Go by the same code DB uses
// (usagedb.Accumulator), which also merges the SQL's rows. So every query
// gives DB's rows: buckets in any zone, the charged rule, currencies never
// summed together; ledgertest holds both stores to it.
//
// # Retention
//
// Retention is monthly here, where DB's is daily: a UTC month's partition
// is dropped, and its rollups deleted, in one transaction once the month
// ended before Now()-Retention. So a record lives at least Retention and
// less than Retention plus a month, and a report sees all of a month or
// none of it.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// Defaults.
const (
	DefaultQueueSize     = 65536
	DefaultBatchSize     = 5000
	DefaultRetryFor      = 30 * time.Second
	DefaultSweepInterval = time.Hour
	DefaultMaxConns      = 4
	// DefaultSpoolMaxBytes holds about 6 million records (~170 bytes each):
	// an hour's outage at 1,500 requests a second.
	DefaultSpoolMaxBytes = 1 << 30
)

// Options configure Open.
type Options struct {
	// DSN is the database's connection string (a URL or key=value pairs).
	// Required.
	DSN string
	// Dimensions are the configured dimension names, in order: see the
	// package doc, Dimensions.
	Dimensions []string
	// Retention is how long records are kept, in whole UTC months (see the
	// package doc); 0 keeps them forever.
	Retention time.Duration
	// SweepInterval is how often the writer applies retention (it also does
	// at Open). Default DefaultSweepInterval.
	SweepInterval time.Duration
	// QueueSize bounds the records waiting to be written. Default
	// DefaultQueueSize.
	QueueSize int
	// BatchSize bounds the records of one transaction. Default
	// DefaultBatchSize.
	BatchSize int
	// MaxConns bounds the connection pool: the writer takes one, reports
	// and exports the others. Default DefaultMaxConns.
	MaxConns int
	// RetryFor is how long a failed batch is retried before its records
	// count as lost. Default DefaultRetryFor.
	RetryFor time.Duration
	// SpoolDir, when set, is where batches wait on disk while Postgres is
	// away (see the package doc, Spool); "" keeps none: a failed batch is
	// retried for RetryFor, then lost and counted.
	SpoolDir string
	// SpoolMaxBytes bounds the spool. Default DefaultSpoolMaxBytes.
	SpoolMaxBytes int64
	// Now is the clock retention is measured against; default time.Now.
	Now func() time.Time
	// Logger receives drops, write errors and rebuilds. Default: discard.
	Logger *slog.Logger
}

// Store is the Postgres ledger. It implements usagedb.Store.
type Store struct {
	pool      *pgxpool.Pool
	dims      []string
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger
	batchSize int
	retryFor  time.Duration
	sweep     time.Duration

	queue   chan item
	closeMu sync.RWMutex
	closed  bool
	exited  chan struct{}

	// Writer state.
	spool      *spool    // nil without Options.SpoolDir
	nextTry    time.Time // while Postgres fails, batches go straight to the spool until then
	backoff    time.Duration
	conv       usagedb.Converter
	partMu     sync.Mutex
	partitions map[time.Time]bool // months whose partition exists

	written, dropped, writeErrors, expired atomic.Int64
	lastDropLog                            atomic.Int64
}

var _ usagedb.Store = (*Store)(nil)

type item struct {
	rec  *ledger.Record
	done chan error // a flush marker when not nil
	stop bool
}

// Open connects, creates the tables when missing, rebuilds the rollups when
// the dimension list changed, applies retention and starts the writer.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.DSN == "" {
		return nil, errors.New("pgstore: no DSN")
	}
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		// pgx's message can quote the DSN, password and all: say less.
		return nil, errors.New("pgstore: malformed DSN (not a postgres:// URL or key=value list)")
	}
	cfg.MaxConns = int32(orDefault(o.MaxConns, DefaultMaxConns))
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// An unreachable host (not a refused port) must not hold the
		// writer for long: batches go to the spool meanwhile.
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	s := &Store{
		dims: slices.Clone(o.Dimensions), retention: o.Retention, now: o.Now, log: o.Logger,
		batchSize: orDefault(o.BatchSize, DefaultBatchSize), retryFor: o.RetryFor, sweep: o.SweepInterval,
		queue: make(chan item, orDefault(o.QueueSize, DefaultQueueSize)), exited: make(chan struct{}),
		partitions: map[time.Time]bool{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.retryFor <= 0 {
		s.retryFor = DefaultRetryFor
	}
	if s.sweep <= 0 {
		s.sweep = DefaultSweepInterval
	}
	if o.SpoolDir != "" {
		if s.spool, err = openSpool(o.SpoolDir, orDefault64(o.SpoolMaxBytes, DefaultSpoolMaxBytes)); err != nil {
			return nil, err
		}
	}
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if err := s.setup(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	if s.retention > 0 {
		if err := s.Sweep(ctx); err != nil {
			s.pool.Close()
			return nil, err
		}
	}
	go s.run()
	return s, nil
}

func orDefault64(n, d int64) int64 {
	if n <= 0 {
		return d
	}
	return n
}

func orDefault(n, d int) int {
	if n <= 0 {
		return d
	}
	return n
}

// Dimensions implements usagedb.Reader.
func (s *Store) Dimensions() []string { return slices.Clone(s.dims) }

// Append implements ledger.Sink: it copies r and queues it, never
// blocking; a full queue drops and counts.
func (s *Store) Append(r *ledger.Record) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		s.drop("usage ledger closed; record dropped")
		return
	}
	select {
	case s.queue <- item{rec: r.Clone()}:
	default:
		s.drop("usage ledger queue full; records dropped")
	}
}

func (s *Store) drop(msg string) {
	n := s.dropped.Add(1)
	now := time.Now().UnixNano()
	last := s.lastDropLog.Load()
	if (last == 0 || now-last >= int64(time.Second)) && s.lastDropLog.CompareAndSwap(last, now) {
		s.log.Warn(msg, "dropped_total", n, "queue_size", cap(s.queue))
	}
}

var errClosed = errors.New("pgstore: closed")

// Flush returns once every record appended before it is written, spooled
// or counted lost.
func (s *Store) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case s.queue <- item{done: done}:
	case <-s.exited:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-s.exited:
		select {
		case err := <-done:
			return err
		default:
			return errClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats implements usagedb.Store. Written counts records stored in
// Postgres, once each (a record already stored, a retry, counts as
// written); Spooled and SpoolBytes are what waits in the spool now.
func (s *Store) Stats() usagedb.Stats {
	sp := s.spool.stats()
	return usagedb.Stats{Written: s.written.Load(), Dropped: s.dropped.Load(), Queued: int64(len(s.queue)),
		WriteErrors: s.writeErrors.Load(), Expired: s.expired.Load(),
		Spooled: sp.Records, SpoolBytes: sp.Bytes, SpoolOldest: sp.Oldest}
}

// Close writes what is queued (retrying a failing batch for at most
// RetryFor), stops the writer and closes the pool.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	s.queue <- item{stop: true}
	<-s.exited
	s.pool.Close()
	return nil
}

// ExactlyOnce reports that a record appended twice (the same Start and
// RequestID) is stored and counted once (ledgertest.ExactlyOnce).
func (s *Store) ExactlyOnce() bool { return true }
