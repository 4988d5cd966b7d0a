package usagedb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
)

// load reads the meta table at Open: the format, the last sequence number,
// the dimension-name lists, and the dimensions the aggregates were built
// with, rebuilding the aggregates when those differ from the configured ones.
func (db *DB) load() error {
	names := &nameTable{byID: map[uint64][]string{}, byKey: map[string]uint64{}}
	var (
		format, aggDims []byte
		seqFound        bool
		haveRecords     bool
	)
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		if format, err = getValue(txn, metaFormat); err != nil {
			return err
		}
		seq, err := getValue(txn, metaSeq)
		if err != nil {
			return err
		}
		if seq != nil {
			if len(seq) != 8 {
				return fmt.Errorf("usagedb: meta sequence: value of %d bytes, want 8", len(seq))
			}
			db.seq, seqFound = binary.BigEndian.Uint64(seq), true
		}
		if aggDims, err = getValue(txn, metaAggDims); err != nil {
			return err
		}
		if err := loadNames(txn, names); err != nil {
			return err
		}
		haveRecords = hasPrefix(txn, prefixRecord)
		return nil
	})
	if err != nil {
		return err
	}
	db.names.Store(names)
	if format != nil && !bytes.Equal(format, []byte{storageFormat}) {
		return fmt.Errorf("usagedb: storage format %v, this version reads %d", format, storageFormat)
	}
	if haveRecords && !seqFound {
		return errors.New("usagedb: records but no sequence number: not a usagedb directory, or damaged")
	}
	built, err := decodeNames(aggDims)
	if err != nil {
		return fmt.Errorf("usagedb: meta aggregate dimensions: %w", err)
	}
	if aggDims == nil || !slices.Equal(built, db.dims) {
		if haveRecords {
			db.log.Warn("usage ledger dimensions changed; rebuilding aggregates from the records",
				"was", built, "now", db.dims)
			if err := db.rebuild(); err != nil {
				return err
			}
		}
	}
	err = db.bdb.Update(func(txn *badger.Txn) error {
		var v []byte
		for _, n := range db.dims {
			v = appendString(v, n)
		}
		if err := txn.Set(metaAggDims, v); err != nil {
			return err
		}
		return txn.Set(metaFormat, []byte{storageFormat})
	})
	if err != nil {
		return fmt.Errorf("usagedb: write meta: %w", err)
	}
	return nil
}

// getValue returns a copy of key's value, or nil when it is absent.
func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("usagedb: read %s: %w", keyString(key), err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("usagedb: read %s: %w", keyString(key), err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func hasPrefix(txn *badger.Txn, prefix byte) bool {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
	defer it.Close()
	it.Rewind()
	return it.Valid()
}

func decodeNames(v []byte) ([]string, error) {
	d := reader{b: v}
	var names []string
	for len(d.b) > 0 && d.err == nil {
		names = append(names, d.str())
	}
	return names, d.done()
}

func loadNames(txn *badger.Txn, t *nameTable) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: metaNames, PrefetchValues: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		id, n := binary.Uvarint(k[len(metaNames):])
		if n <= 0 || n != len(k)-len(metaNames) || id == 0 {
			return fmt.Errorf("usagedb: malformed meta key %q", k)
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("usagedb: read %q: %w", k, err)
		}
		names, err := decodeNames(v)
		if err != nil {
			return fmt.Errorf("usagedb: meta %q: %w", k, err)
		}
		t.byID[id], t.byKey[namesKey(names)], t.last = names, id, max(t.last, id)
	}
	return nil
}

// rebuild recomputes every aggregate from the records, in transactions of
// maxBatchRecords records. It runs at Open, before the writer starts.
func (db *DB) rebuild() error {
	if err := db.bdb.DropPrefix([]byte{prefixHour}, []byte{prefixDay}); err != nil {
		return fmt.Errorf("usagedb: drop aggregates: %w", err)
	}
	names := db.names.Load()
	recs := make([]*ledger.Record, 0, maxBatchRecords)
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r *ledger.Record
			err := it.Item().Value(func(v []byte) error {
				var err error
				r, err = decodeRecord(it.Item().Key(), v, names)
				return err
			})
			if err != nil {
				return err
			}
			if recs = append(recs, r); len(recs) == maxBatchRecords {
				if err := db.addAggregates(recs); err != nil {
					return err
				}
				n += len(recs)
				recs = recs[:0]
			}
		}
		return nil
	})
	if err == nil {
		err = db.addAggregates(recs)
		n += len(recs)
	}
	if err != nil {
		return fmt.Errorf("usagedb: rebuild aggregates: %w", err)
	}
	db.log.Info("usage ledger aggregates rebuilt", "records", n)
	return nil
}

// addAggregates adds recs (already stored) into their aggregates.
func (db *DB) addAggregates(recs []*ledger.Record) error {
	if len(recs) == 0 {
		return nil
	}
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	pending := make(map[string]*aggVal, 2*len(recs))
	var key []byte
	for _, r := range recs {
		var err error
		if key, err = db.pendAggregates(pending, key, r); err != nil {
			return err
		}
	}
	if err := db.mergeStored(txn, pending); err != nil {
		return err
	}
	return txn.Commit()
}

// sweepAndLog applies retention and logs what happened.
func (db *DB) sweepAndLog() {
	if err := db.sweep(); err != nil {
		db.log.Error("usage ledger retention sweep", "err", err)
	}
}

// sweep deletes the whole UTC days that ended before now-Retention: their
// records, hour and day aggregates. Only the writer runs it, so no batch
// can re-create an aggregate it is deleting. A crash part way leaves the
// rest for the next sweep.
func (db *DB) sweep() error {
	if db.retention <= 0 {
		return nil
	}
	cutoff := floorTo(db.now().Add(-db.retention).UnixNano(), nanosPerDay)
	for _, r := range [...]struct{ from, to []byte }{
		{periodKey(prefixDay, math.MinInt64), periodKey(prefixDay, cutoff/1e9)},
		{periodKey(prefixHour, math.MinInt64), periodKey(prefixHour, cutoff/1e9)},
		{recordBound(math.MinInt64), recordBound(cutoff)},
	} {
		n, err := db.deleteRange(r.from, r.to)
		if r.from[0] == prefixRecord {
			db.expired.Add(n)
			if n > 0 {
				db.log.Info("usage ledger retention: records deleted", "records", n, "before", time.Unix(0, cutoff).UTC())
			}
		}
		if err != nil {
			return fmt.Errorf("usagedb: sweep: %w", err)
		}
	}
	return nil
}

// deleteRange deletes the keys in [from, to), which share from's prefix byte.
func (db *DB) deleteRange(from, to []byte) (int64, error) {
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	var n int64
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: from[:1]})
		defer it.Close()
		for it.Seek(from); it.Valid() && bytes.Compare(it.Item().Key(), to) < 0; it.Next() {
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := wb.Flush(); err != nil {
		return 0, err
	}
	return n, nil
}
