package redisstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// scanBatch is the COUNT hint of each SCAN and the size of each pipeline.
const scanBatch = 512

// scan returns the keys matching pattern, from every primary in Cluster.
func (s *Store) scan(ctx context.Context, pattern string) ([]string, error) {
	var mu sync.Mutex
	seen := map[string]bool{}
	each := func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, scanBatch).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			for _, k := range keys {
				seen[k] = true // SCAN may return a key twice
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	if s.cluster != nil {
		err = s.cluster.ForEachMaster(ctx, each)
	} else {
		err = each(ctx, s.rdb.(*redis.Client))
	}
	if err != nil {
		return nil, fmt.Errorf("scan %q: %w", pattern, err)
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	return out, nil
}

// List implements ratelimit.Store. It scans every counters key under the
// prefix and runs a script per family (pipelined), which also releases the
// family's expired leases: O(families), for status and metrics.
func (s *Store) List(ctx context.Context, now time.Time) ([]ratelimit.CounterState, error) {
	keys, err := s.scan(ctx, globEscape(s.prefix)+":{*}:c")
	if err != nil {
		return nil, fmt.Errorf("list counters: %w", err)
	}
	var out []ratelimit.CounterState
	for len(keys) > 0 {
		n := min(len(keys), scanBatch)
		batch, err := s.listBatch(ctx, keys[:n], now)
		if err != nil {
			return nil, fmt.Errorf("list counters: %w", err)
		}
		out = append(out, batch...)
		keys = keys[n:]
	}
	return out, nil
}

func (s *Store) listBatch(ctx context.Context, keys []string, now time.Time) ([]ratelimit.CounterState, error) {
	type item struct {
		budget, key string
		fam         family
		cmd         *redis.Cmd
	}
	items := make([]item, 0, len(keys))
	for _, k := range keys {
		budget, key, f, err := s.parseCounters(k)
		if err != nil {
			continue // not ours: another program's key under the prefix
		}
		items = append(items, item{budget: budget, key: key, fam: f})
	}
	pipe := s.rdb.Pipeline()
	for i := range items {
		items[i].cmd = listScript.EvalSha(ctx, pipe, items[i].fam.keys[:], ms(now))
	}
	_, _ = pipe.Exec(ctx) // errors are per command, below
	var out []ratelimit.CounterState
	for _, it := range items {
		reply, err := it.cmd.Result()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			reply, err = listScript.Run(ctx, s.rdb, it.fam.keys[:], ms(now)).Result()
		}
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", it.budget, it.key, err)
		}
		rows, err := decodeList(reply)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", it.budget, it.key, err)
		}
		for _, r := range rows {
			out = append(out, ratelimit.CounterState{
				ID:      ratelimit.CounterID{Budget: it.budget, Key: it.key, Start: time.UnixMilli(r[0]).UTC()},
				Counter: ratelimit.Counter{Spent: r[1], Reserved: r[2]},
			})
		}
	}
	return out, nil
}

// Reset implements ratelimit.Store. One key's family goes in one UNLINK; a
// whole budget's families are found with SCAN, so a reservation made while
// the scan runs may survive the reset.
func (s *Store) Reset(ctx context.Context, budget, key string) error {
	var keys []string
	if key != "" {
		f := s.family(budget, key)
		keys = f.keys[:]
	} else {
		base, _ := s.base(budget, "")
		// base ends with "␟}:"; every key of the budget starts with base
		// minus "}:". Escaped names hold no glob metacharacter.
		var err error
		if keys, err = s.scan(ctx, globEscape(base[:len(base)-2])+"*"); err != nil {
			return fmt.Errorf("reset budget %q: %w", budget, err)
		}
	}
	if err := s.unlink(ctx, keys, key != ""); err != nil {
		return fmt.Errorf("reset budget %q: %w", budget, err)
	}
	return nil
}

// unlink deletes keys: in one command when they share a slot, else one
// pipelined command each.
func (s *Store) unlink(ctx context.Context, keys []string, sameSlot bool) error {
	if len(keys) == 0 {
		return nil
	}
	if sameSlot {
		return s.rdb.Unlink(ctx, keys...).Err()
	}
	for len(keys) > 0 {
		n := min(len(keys), scanBatch)
		pipe := s.rdb.Pipeline()
		for _, k := range keys[:n] {
			pipe.Unlink(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}
