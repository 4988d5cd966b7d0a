package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Records live beside the counters under their own prefixes, written
// through with the store's durability (SyncWrites).
const (
	recordPrefix = "r\x00"
	claimPrefix  = "k\x00"
)

func recordKey(kind, name string) []byte {
	return append(append(append([]byte(recordPrefix), kind...), 0), name...)
}

// PutRecord implements ratelimit.Records.
func (s *Store) PutRecord(_ context.Context, kind, name string, data []byte) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(recordKey(kind, name), data) }); err != nil {
		return fmt.Errorf("store %s %q: %w", kind, name, err)
	}
	return nil
}

// DeleteRecord implements ratelimit.Records.
func (s *Store) DeleteRecord(_ context.Context, kind, name string) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(recordKey(kind, name)) }); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	return nil
}

// ListRecords implements ratelimit.Records.
func (s *Store) ListRecords(_ context.Context, kind string) (map[string][]byte, error) {
	out := map[string][]byte{}
	prefix := recordKey(kind, "")
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().Key()[len(prefix):])] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return out, nil
}

// Claim implements ratelimit.Records. The claim is an entry with a TTL, set
// in a transaction that fails if it exists: Badger's optimistic transactions
// make two racing claims of one key conflict, and the loser sees it taken.
func (s *Store) Claim(_ context.Context, key string, until time.Time) (bool, error) {
	k := append([]byte(claimPrefix), key...)
	ttl := until.Sub(s.now())
	if ttl <= 0 {
		return false, nil // the window it claims for is over
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if _, err := txn.Get(k); err == nil {
			return errClaimed
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return txn.SetEntry(&badger.Entry{Key: k, ExpiresAt: expiresAt(time.Now().Add(ttl))})
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errClaimed), errors.Is(err, badger.ErrConflict):
		return false, nil
	}
	return false, fmt.Errorf("claim %q: %w", key, err)
}

var errClaimed = errors.New("already claimed")

// expiresAt is Badger's expiry for an entry that must live until t. Badger
// keeps expiry in whole Unix seconds and Entry.WithTTL rounds down, so a
// claim for less than a second could be expired as it is written, and any
// claim could end up to a second early; rounding up keeps it until t, and at
// most a second longer.
func expiresAt(t time.Time) uint64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return uint64(sec)
}
