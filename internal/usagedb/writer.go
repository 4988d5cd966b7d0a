package usagedb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
)

// Record starts must fit int64 nanoseconds since 1970 (the raw key); a zero
// or absurd Start is a producer bug, reported rather than filed at a made-up
// instant.
var (
	minStart = time.Unix(0, 0)
	maxStart = time.Unix(0, 1<<63-1)
)

// run is the writer goroutine: the only one that writes to Badger after
// Open, so read-modify-writes of aggregates need no locking and no conflict
// detection.
func (db *DB) run() {
	defer close(db.exited)
	var tick <-chan time.Time
	if db.retention > 0 {
		t := time.NewTicker(db.sweepEvery)
		defer t.Stop()
		tick = t.C
		db.sweepAndLog()
	}
	batch := make([]*ledger.Record, 0, maxBatchRecords)
	for {
		select {
		case it := <-db.queue:
			if stop := db.handle(it, &batch); stop {
				return
			}
		case <-tick:
			db.sweepAndLog()
		}
	}
}

// handle takes first and whatever else is queued, up to a batch, writes the
// records and answers markers in queue order.
func (db *DB) handle(first item, batch *[]*ledger.Record) (stop bool) {
	b := (*batch)[:0]
	defer func() { clear(b[:cap(b)]); *batch = b[:0] }() // let the written records go
	it := first
	for {
		if it.kind == itemRecord {
			b = append(b, it.rec)
		} else {
			db.writeRecords(b)
			b = b[:0]
			if db.answer(it) {
				return true
			}
		}
		if len(b) >= maxBatchRecords {
			break
		}
		more := false
		select {
		case it = <-db.queue:
			more = true
		default:
		}
		if !more {
			break
		}
	}
	db.writeRecords(b)
	return false
}

// answer handles a marker; it reports whether the writer must stop.
func (db *DB) answer(it item) (stop bool) {
	switch it.kind {
	case itemFlush:
		it.done <- nil
	case itemSweep:
		it.done <- db.sweep()
	case itemStop:
		return true
	}
	return false
}

// writeRecords commits recs with their aggregates, counting them written
// or lost.
func (db *DB) writeRecords(recs []*ledger.Record) {
	if len(recs) == 0 {
		return
	}
	if db.beforeWrite != nil {
		db.beforeWrite()
	}
	ok := recs[:0:0]
	for _, r := range recs {
		if r.Start.Before(minStart) || r.Start.After(maxStart) {
			db.writeErrors.Add(1)
			db.log.Error("usage record not written: start out of range", "request_id", r.RequestID, "start", r.Start)
			continue
		}
		ok = append(ok, r)
	}
	db.commitSplit(ok)
}

// commitSplit commits recs in one transaction, halving the batch when
// Badger finds it too big (records with very long fields).
func (db *DB) commitSplit(recs []*ledger.Record) {
	if len(recs) == 0 {
		return
	}
	err := db.commit(recs)
	if errors.Is(err, badger.ErrTxnTooBig) && len(recs) > 1 {
		db.commitSplit(recs[:len(recs)/2])
		db.commitSplit(recs[len(recs)/2:])
		return
	}
	if err != nil {
		db.writeErrors.Add(int64(len(recs)))
		db.log.Error("usage records not written", "records", len(recs), "first_request_id", recs[0].RequestID, "err", err)
		return
	}
	db.written.Add(int64(len(recs)))
}

// commit writes recs and adds them into their hour and day aggregates in
// one transaction, so the aggregates are always the exact sums of the
// records, across crashes too.
func (db *DB) commit(recs []*ledger.Record) error {
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	seq := db.seq
	pending := make(map[string]*aggVal, 2*len(recs))
	var val, key []byte
	for _, r := range recs {
		id, err := db.namesID(r.Dimensions.Names)
		if err != nil {
			return err
		}
		seq++
		val = encodeRecord(val[:0], r, id)
		if err := txn.Set(recordKey(r.Start.UnixNano(), seq), slices.Clone(val)); err != nil {
			return fmt.Errorf("set record: %w", err)
		}
		if key, err = db.pendAggregates(pending, key, r); err != nil {
			return err
		}
	}
	if err := db.mergeStored(txn, pending); err != nil {
		return err
	}
	if err := txn.Set(metaSeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return fmt.Errorf("set sequence: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.seq = seq
	return nil
}

// levels are the aggregate granularities: UTC hours and UTC days.
var levels = [...]struct {
	prefix byte
	unit   int64 // nanoseconds
}{{prefixHour, nanosPerHour}, {prefixDay, nanosPerDay}}

// pendAggregates adds r into the pending hour and day aggregates it belongs
// to; key is scratch space, returned for reuse.
func (db *DB) pendAggregates(pending map[string]*aggVal, key []byte, r *ledger.Record) ([]byte, error) {
	cur, c := db.conv.contribution(r)
	nanos := r.Start.UnixNano()
	for _, l := range levels {
		key = appendAggKey(key[:0], l.prefix, floorTo(nanos, l.unit)/1e9, cur, r, db.dims)
		if err := mergePending(pending, key, &c); err != nil {
			return key, err
		}
	}
	return key, nil
}

func mergePending(pending map[string]*aggVal, key []byte, c *aggVal) error {
	if v, ok := pending[string(key)]; ok {
		if err := v.merge(c); err != nil {
			return fmt.Errorf("usagedb: %s: %w", keyString(key), err)
		}
		return nil
	}
	v := *c
	pending[string(key)] = &v
	return nil
}

// mergeStored adds each pending aggregate to its stored value and sets it.
func (db *DB) mergeStored(txn *badger.Txn, pending map[string]*aggVal) error {
	var buf []byte
	for k, v := range pending {
		key := []byte(k)
		item, err := txn.Get(key)
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("usagedb: read %s: %w", keyString(key), err)
		default:
			var stored aggVal
			if err := item.Value(func(b []byte) error { return decodeAgg(b, &stored) }); err != nil {
				return fmt.Errorf("usagedb: %s: corrupt value: %w", keyString(key), err)
			}
			if err := v.merge(&stored); err != nil {
				return fmt.Errorf("usagedb: %s: %w", keyString(key), err)
			}
		}
		buf = encodeAgg(buf[:0], v)
		if err := txn.Set(key, slices.Clone(buf)); err != nil {
			return fmt.Errorf("usagedb: set %s: %w", keyString(key), err)
		}
	}
	return nil
}

// nameTable maps the dimension-name lists records carry to small ids
// stored once in the meta table. It is immutable: the writer swaps in a
// copy when it adds a list, and readers load the pointer.
type nameTable struct {
	byID  map[uint64][]string
	byKey map[string]uint64
	last  uint64
}

// maxNameSets bounds the table; past it, records carry their names inline.
// Names come from the config, so only a config change adds a list.
const maxNameSets = 1000

func (t *nameTable) names(id uint64) ([]string, bool) {
	n, ok := t.byID[id]
	return n, ok
}

func namesKey(names []string) string { return strings.Join(names, "\x00") }

// namesID returns the id of names, storing a new list first.
func (db *DB) namesID(names []string) (uint64, error) {
	// Records share their extractor's Names slice, so the last list seen
	// is nearly always the same array: skip building its lookup key.
	if len(names) > 0 && len(names) == len(db.lastNames) && &names[0] == &db.lastNames[0] {
		return db.lastNamesID, nil
	}
	t := db.names.Load()
	if id, ok := t.byKey[namesKey(names)]; ok {
		db.lastNames, db.lastNamesID = names, id
		return id, nil
	}
	if len(t.byID) >= maxNameSets {
		return 0, nil
	}
	id := t.last + 1
	// Its own transaction, committed before any record refers to it.
	var v []byte
	for _, n := range names {
		v = appendString(v, n)
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(binary.AppendUvarint(slices.Clone(metaNames), id), v)
	}); err != nil {
		return 0, fmt.Errorf("usagedb: store dimension names: %w", err)
	}
	db.names.Store(t.with(id, slices.Clone(names)))
	return id, nil
}

func (t *nameTable) with(id uint64, names []string) *nameTable {
	n := &nameTable{byID: make(map[uint64][]string, len(t.byID)+1), byKey: make(map[string]uint64, len(t.byKey)+1), last: max(t.last, id)}
	for k, v := range t.byID {
		n.byID[k] = v
	}
	for k, v := range t.byKey {
		n.byKey[k] = v
	}
	n.byID[id] = names
	n.byKey[namesKey(names)] = id
	return n
}
