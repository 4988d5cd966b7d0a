package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

var _ ratelimit.Records = (*Store)(nil)

// roleSep separates a role ("rec", "claim") from the escaped name in the hash
// tag of a record or claim key. It is not sep: a family's tag is
// <budget>\x1f<key>, and Reset(budget, "") unlinks everything matching
// <prefix>:{<budget>\x1f*, so a tag "rec\x1f…" would be wiped by a reset of a
// budget named "rec". Escaped names hold no control byte, so no family's tag
// or Reset pattern can reach a tag containing \x1e.
const roleSep = "\x1e"

// recordsKey is the hash holding every record of kind: one key, so
// ListRecords is a single HGETALL and, in Cluster, one slot.
func (s *Store) recordsKey(kind string) string {
	return s.prefix + ":{rec" + roleSep + escape(kind) + "}:h"
}

// claimKey is the string key of claim key. Its hash tag is the claim itself, so
// claims spread over slots (and nodes) in Cluster: each is one single-key
// SET, which nothing needs to run with another key, and a tag shared by all
// claims would only pile them on one node. The tag also keeps the layout's
// one shape, <prefix>:{<tag>}:<type>.
func (s *Store) claimKey(key string) string {
	return s.prefix + ":{claim" + roleSep + escape(key) + "}:k"
}

// PutRecord implements ratelimit.Records.
func (s *Store) PutRecord(ctx context.Context, kind, name string, data []byte) error {
	if err := s.rdb.HSet(ctx, s.recordsKey(kind), name, data).Err(); err != nil {
		return fmt.Errorf("put %s record %q: %w", kind, name, err)
	}
	return nil
}

// DeleteRecord implements ratelimit.Records.
func (s *Store) DeleteRecord(ctx context.Context, kind, name string) error {
	if err := s.rdb.HDel(ctx, s.recordsKey(kind), name).Err(); err != nil {
		return fmt.Errorf("delete %s record %q: %w", kind, name, err)
	}
	return nil
}

// ListRecords implements ratelimit.Records. go-redis's typed command rejects
// a reply that is not a map of strings; another program's key of another
// type under the name is Redis's WRONGTYPE error.
func (s *Store) ListRecords(ctx context.Context, kind string) (map[string][]byte, error) {
	m, err := s.rdb.HGetAll(ctx, s.recordsKey(kind)).Result()
	if err != nil {
		return nil, fmt.Errorf("list %s records: %w", kind, err)
	}
	out := make(map[string][]byte, len(m))
	for name, v := range m {
		out[name] = []byte(v)
	}
	return out, nil
}

// Claim implements ratelimit.Records with SET NX: of racing claims Redis
// grants one. The claim lives for until minus the store's clock, as a
// relative PX (see the package doc's Expiry), rounded up to the millisecond
// so that it never ends before until.
func (s *Store) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	ttl := until.Sub(s.now())
	if ttl <= 0 {
		return false, nil // the window it claims for is over
	}
	px := ttl.Milliseconds()
	if ttl%time.Millisecond != 0 {
		px++
	}
	reply, err := s.rdb.Do(ctx, "SET", s.claimKey(key), "1", "NX", "PX", px).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil // already claimed
	case err != nil:
		return false, fmt.Errorf("claim %q: %w", key, err)
	case reply != "OK":
		return false, fmt.Errorf("claim %q: SET NX answered %T %v, want OK", key, reply, reply)
	}
	return true, nil
}
