// Package badgerstore is the embedded, durable ratelimit.Store: counters are
// held in memory under one mutex, so Reserve is atomic across budgets and
// costs microseconds, and every settled total is written through to Badger
// before Settle returns, so counters survive a restart.
//
// Reservations are not persisted: a restart drops in-flight holds, which is
// the right outcome, since the requests that made them died with the process.
package badgerstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Options configure Open.
type Options struct {
	// Dir is the Badger directory. Required unless InMemory.
	Dir string
	// InMemory keeps everything in memory (tests).
	InMemory bool
	// SyncWrites makes each settle fsync. Off by default: a process crash
	// loses nothing either way (writes are in the OS page cache); only a
	// machine crash can lose the last writes.
	SyncWrites bool
	// Logger receives Badger's own messages at debug level. Default: discard.
	Logger *slog.Logger
}

// Store is a Badger-backed ratelimit.Store.
type Store struct {
	db *badger.DB

	mu       sync.Mutex
	counters map[ratelimit.CounterID]*entry
}

type entry struct {
	ratelimit.Counter
	end time.Time
}

// Open opens (or creates) the store and loads the counters it holds.
func Open(opts Options) (*Store, error) {
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(opts.SyncWrites).
		WithLogger(badgerLogger{opts.Logger}).
		// Counters are tiny; the default 64 MB memtables and caches are for
		// bulk data and would dominate tokenmeter's RSS.
		WithMemTableSize(8 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		WithNumVersionsToKeep(1)
	if opts.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open badger at %q: %w", opts.Dir, err)
	}
	s := &Store{db: db, counters: map[ratelimit.CounterID]*entry{}}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

const prefix = "c\x00"

// key encodes a counter id. Budget names and keys never hold NUL: budget names
// are validated at load and attribution values reject control characters.
func key(id ratelimit.CounterID) []byte {
	b := make([]byte, 0, len(prefix)+len(id.Budget)+len(id.Key)+2+8)
	b = append(b, prefix...)
	b = append(b, id.Budget...)
	b = append(b, 0)
	b = append(b, id.Key...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(id.Start.Unix()))
}

func parseKey(k []byte) (ratelimit.CounterID, error) {
	if len(k) < len(prefix)+2+8 {
		return ratelimit.CounterID{}, errors.New("short counter key")
	}
	body := k[len(prefix) : len(k)-8]
	start := int64(binary.BigEndian.Uint64(k[len(k)-8:]))
	for i, c := range body {
		if c == 0 {
			rest := body[i+1:]
			if len(rest) == 0 || rest[len(rest)-1] != 0 {
				break
			}
			return ratelimit.CounterID{
				Budget: string(body[:i]),
				Key:    string(rest[:len(rest)-1]),
				Start:  time.Unix(start, 0).UTC(),
			}, nil
		}
	}
	return ratelimit.CounterID{}, fmt.Errorf("malformed counter key %q", k)
}

// value is spent (8 bytes) then window end (8 bytes, unix seconds).
func value(spent int64, end time.Time) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(spent))
	return binary.BigEndian.AppendUint64(b, uint64(end.Unix()))
}

func (s *Store) load() error {
	now := time.Now()
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id, err := parseKey(item.Key())
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read counter %v: %w", id, err)
			}
			if len(v) != 16 {
				return fmt.Errorf("counter %v: value of %d bytes, want 16", id, len(v))
			}
			end := time.Unix(int64(binary.BigEndian.Uint64(v[8:])), 0).UTC()
			if !end.After(now) {
				continue
			}
			s.counters[id] = &entry{Counter: ratelimit.Counter{Spent: int64(binary.BigEndian.Uint64(v))}, end: end}
		}
		return nil
	})
}

func (s *Store) entry(id ratelimit.CounterID, end time.Time) *entry {
	e, ok := s.counters[id]
	if !ok {
		e = &entry{end: end}
		s.counters[id] = e
	}
	return e
}

// Reserve implements ratelimit.Store.
func (s *Store) Reserve(_ context.Context, holds []ratelimit.Hold) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, h := range holds {
		c := s.counters[h.ID]
		var spent, reserved int64
		if c != nil {
			spent, reserved = c.Spent, c.Reserved
		}
		if spent+reserved+h.Amount > h.Limit {
			return i, nil
		}
	}
	for _, h := range holds {
		s.entry(h.ID, h.End).Reserved += h.Amount
	}
	return -1, nil
}

// Settle implements ratelimit.Store. The write to Badger happens under the
// lock so that concurrent settles of one counter persist in order.
func (s *Store) Settle(_ context.Context, holds []ratelimit.Hold, actual []int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i, h := range holds {
		e := s.entry(h.ID, h.End)
		e.Reserved -= h.Amount
		if e.Reserved < 0 {
			e.Reserved = 0
		}
		if actual == nil || actual[i] == 0 {
			continue
		}
		e.Spent += actual[i]
		ttl := time.Until(h.End) + time.Hour // keep a closed window an hour for late readers
		if ttl <= 0 {
			ttl = time.Hour
		}
		if err := wb.SetEntry(badger.NewEntry(key(h.ID), value(e.Spent, h.End)).WithTTL(ttl)); err != nil {
			return fmt.Errorf("persist counter %s/%s: %w", h.ID.Budget, h.ID.Key, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("persist counters: %w", err)
	}
	return nil
}

// Get implements ratelimit.Store.
func (s *Store) Get(_ context.Context, id ratelimit.CounterID) (ratelimit.Counter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.counters[id]; ok {
		return e.Counter, nil
	}
	return ratelimit.Counter{}, nil
}

// List implements ratelimit.Store. It also forgets counters whose window
// ended, which bounds memory to the live windows.
func (s *Store) List(_ context.Context, now time.Time) ([]ratelimit.CounterState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ratelimit.CounterState, 0, len(s.counters))
	for id, e := range s.counters {
		if !e.end.After(now) {
			if e.Reserved == 0 {
				delete(s.counters, id)
			}
			continue
		}
		out = append(out, ratelimit.CounterState{ID: id, Counter: e.Counter})
	}
	return out, nil
}

// Close implements ratelimit.Store.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close badger: %w", err)
	}
	return nil
}

// badgerLogger sends Badger's chatter to slog at debug level.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) log(level slog.Level, f string, args ...any) {
	if b.l != nil {
		b.l.Log(context.Background(), level, fmt.Sprintf(f, args...), "component", "badger")
	}
}
func (b badgerLogger) Errorf(f string, a ...any)   { b.log(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.log(slog.LevelDebug, f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug, f, a...) }
