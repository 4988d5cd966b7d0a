package usagedb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
)

// Defaults.
const (
	// DefaultQueueSize is the default Options.QueueSize: at 1,000 requests a
	// second it absorbs a minute-long stall of the disk.
	DefaultQueueSize = 65536
	// DefaultSweepInterval is how often the writer applies retention.
	DefaultSweepInterval = time.Hour
)

// maxBatchRecords bounds one Badger transaction: large enough to amortise
// the commit, small enough to stay well below Badger's transaction size
// limit (15% of the memtable; a batch too big for it is split) and to keep
// Flush latency low.
const maxBatchRecords = 1000

// Options configure Open.
type Options struct {
	// Dir is the Badger directory. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory (tests).
	InMemory bool
	// Dimensions are the configured dimension names, in order. Aggregates
	// are keyed by every one of them, and only they can be grouped or
	// filtered on. When the list differs from the one the stored aggregates
	// were built with, Open rebuilds the aggregates from the records.
	Dimensions []string
	// Retention is how long records and aggregates are kept; 0 keeps them
	// forever. Retention is applied in whole UTC days: a day's records and
	// aggregates are deleted together once the day ends before
	// Now()-Retention, so a record lives at least Retention and less than
	// Retention+24h, and every report sees all of a day or none of it.
	Retention time.Duration
	// SweepInterval is how often the writer applies retention (it also does
	// at Open). Default DefaultSweepInterval.
	SweepInterval time.Duration
	// QueueSize bounds the records waiting to be written (each slot holds
	// a copy of its record). Default DefaultQueueSize. When it is full,
	// Append drops and counts.
	QueueSize int
	// Now is the clock retention is measured against (tests); default
	// time.Now.
	Now func() time.Time
	// Logger receives dropped-record warnings, write errors and Badger's
	// warnings and errors (its chatter at debug level). Default: discard.
	Logger *slog.Logger
	// SyncWrites makes each batch fsync before it counts as written.
	SyncWrites bool

	// beforeWrite, when set, runs in the writer before each batch of records
	// is written: tests block it to fill the queue.
	beforeWrite func()
}

// Stats are the ledger's counters since Open. After Flush, every appended
// record is in exactly one of Written, Dropped and WriteErrors.
type Stats struct {
	Written     int64 // records committed to Badger
	Dropped     int64 // records refused because the queue was full or the DB closed
	Queued      int64 // records (and Flush/Sweep requests) waiting in the queue now
	WriteErrors int64 // records lost to a failed write (logged with the error)
	Expired     int64 // records deleted by retention
	// Spooled and SpoolBytes are the records waiting in an on-disk spool
	// for the database to return (pgstore; DB has none), SpoolOldest when
	// the oldest of them was spooled (zero when none). After Flush a
	// spooled record is in none of Written, Dropped and WriteErrors yet.
	Spooled, SpoolBytes int64
	SpoolOldest         time.Time
}

// DB is the usage ledger. It implements ledger.Sink.
type DB struct {
	bdb       *badger.DB
	dims      []string
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger

	queue chan item
	// closeMu makes Close wait for Appends in progress, so none lands in the
	// queue after the writer's last item.
	closeMu sync.RWMutex
	closed  bool
	exited  chan struct{}
	// readMu keeps Badger open while a report or export runs: Close takes
	// it after the writer has stopped. It is apart from closeMu so that a
	// long export never holds up an Append.
	readMu     sync.RWMutex
	readClosed bool

	names atomic.Pointer[nameTable]

	// Writer state: only the writer goroutine touches these after Open.
	seq         uint64
	lastNames   []string // the dimension-name list namesID last resolved, and its id
	lastNamesID uint64
	conv        converter
	beforeWrite func()
	sweepEvery  time.Duration

	written, dropped, writeErrors, expired atomic.Int64
	lastDropLog                            atomic.Int64 // unix nanos of the last drop warning
	droppedAtLog                           atomic.Int64
}

var _ ledger.Sink = (*DB)(nil)

type itemKind uint8

const (
	itemRecord itemKind = iota
	itemFlush
	itemSweep
	itemStop
)

type item struct {
	kind itemKind
	rec  *ledger.Record
	done chan error
}

// Open opens (or creates) the ledger and starts its writer.
func Open(o Options) (*DB, error) {
	if err := checkDimensions(o.Dimensions); err != nil {
		return nil, err
	}
	if o.Retention < 0 {
		return nil, fmt.Errorf("usagedb: retention %v: want 0 (forever) or more", o.Retention)
	}
	if o.Dir == "" && !o.InMemory {
		return nil, errors.New("usagedb: Dir is required unless InMemory")
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	bdb, err := badger.Open(badgerOptions(o))
	if err != nil {
		return nil, fmt.Errorf("usagedb: open badger at %q: %w", o.Dir, err)
	}
	db := &DB{
		bdb: bdb, dims: slices.Clone(o.Dimensions), retention: o.Retention, now: o.Now, log: o.Logger,
		queue: make(chan item, o.QueueSize), exited: make(chan struct{}),
		beforeWrite: o.beforeWrite, sweepEvery: o.SweepInterval,
	}
	if err := db.load(); err != nil {
		bdb.Close()
		return nil, err
	}
	go db.run()
	return db, nil
}

func badgerOptions(o Options) badger.Options {
	bo := badger.DefaultOptions(o.Dir).
		WithInMemory(o.InMemory).
		WithSyncWrites(o.SyncWrites).
		WithLogger(badgerLogger{o.Logger}).
		// One writer goroutine does every write, so there is nothing for
		// conflict detection to find.
		WithDetectConflicts(false).
		// The ledger is bulk data, but tokenmeter is a sidecar: 16 MB
		// memtables (three at most) keep its RSS modest while leaving a
		// 2.4 MB transaction limit, five times the largest batch.
		WithMemTableSize(16 << 20).
		WithNumMemtables(3).
		// Reports read hundreds of thousands of aggregates; a block cache
		// spares decompressing the same blocks on every report.
		WithBlockCacheSize(64 << 20).
		WithIndexCacheSize(16 << 20).
		WithNumVersionsToKeep(1).
		// Each compactor wakes every 50 ms even with nothing to do (idle
		// CPU of a sidecar); one writer's batches need the fewest Badger
		// allows (2), not 4.
		WithNumCompactors(2).
		WithMetricsEnabled(false)
	if o.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	return bo
}

var builtinKeys = []string{KeyProvider, KeyModel, KeyDialect, KeyOutcome, KeyCurrency}

func checkDimensions(dims []string) error {
	seen := map[string]bool{}
	for _, d := range dims {
		switch {
		case d == "":
			return errors.New("usagedb: empty dimension name")
		case slices.Contains(builtinKeys, d):
			return fmt.Errorf("usagedb: dimension name %q: reserved for a built-in group key", d)
		case seen[d]:
			return fmt.Errorf("usagedb: dimension name %q: listed twice", d)
		}
		seen[d] = true
	}
	return nil
}

// Dimensions returns the configured dimension names.
func (db *DB) Dimensions() []string { return slices.Clone(db.dims) }

// Append implements ledger.Sink. It copies r and queues it; it never
// blocks. When the queue is full the record is dropped, counted in
// Stats.Dropped and logged (at most once a second, with the count).
func (db *DB) Append(r *ledger.Record) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		db.drop("usage ledger closed; record dropped")
		return
	}
	select {
	case db.queue <- item{kind: itemRecord, rec: r.Clone()}:
	default:
		db.drop("usage ledger queue full; records dropped")
	}
}

func (db *DB) drop(msg string) {
	n := db.dropped.Add(1)
	now := db.now().UnixNano()
	last := db.lastDropLog.Load()
	if last != 0 && now-last < int64(time.Second) {
		return
	}
	if !db.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	since := n - db.droppedAtLog.Swap(n)
	db.log.Warn(msg, "dropped", since, "dropped_total", n, "queue_size", cap(db.queue))
}

// Flush waits until every record appended before the call is written (or
// counted as a write error).
func (db *DB) Flush(ctx context.Context) error { return db.request(ctx, itemFlush) }

// Sweep deletes the records and aggregates retention has expired. The
// writer also sweeps every SweepInterval.
func (db *DB) Sweep(ctx context.Context) error { return db.request(ctx, itemSweep) }

// request hands the writer a marker behind every record queued so far and
// waits for it to be handled.
func (db *DB) request(ctx context.Context, kind itemKind) error {
	done := make(chan error, 1)
	// Not under closeMu: a Flush waiting for room must not hold up Close,
	// which would hold up every Append behind Close's lock. A marker that
	// lands behind the writer's stop is never handled; exited says so.
	select {
	case db.queue <- item{kind: kind, done: done}:
	case <-db.exited:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-db.exited:
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

var errClosed = errors.New("usagedb: closed")

// read runs f while Badger is open, or fails once Close has begun closing
// it (Badger panics on a closed DB).
func (db *DB) read(f func() error) error {
	db.readMu.RLock()
	defer db.readMu.RUnlock()
	if db.readClosed {
		return errClosed
	}
	return f()
}

// Stats returns the counters.
func (db *DB) Stats() Stats {
	return Stats{
		Written: db.written.Load(), Dropped: db.dropped.Load(), Queued: int64(len(db.queue)),
		WriteErrors: db.writeErrors.Load(), Expired: db.expired.Load(),
	}
}

// Close writes what is queued, stops the writer and closes Badger. Appends
// after Close are dropped and counted.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	db.closeMu.Unlock()
	// No Append can enqueue now; the stop marker goes behind the last one.
	db.queue <- item{kind: itemStop}
	<-db.exited
	db.readMu.Lock()
	defer db.readMu.Unlock()
	db.readClosed = true
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("usagedb: close badger: %w", err)
	}
	return nil
}

// badgerLogger sends Badger's chatter to slog at debug level, its warnings
// and errors at their own.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, f string, args ...any) {
	b.l.Log(context.Background(), level, fmt.Sprintf(f, args...), "component", "badger", "db", "usagedb")
}
func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a...) }
