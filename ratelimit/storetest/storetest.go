// Package storetest is the conformance suite of ratelimit.Store: every store
// (the embedded Badger one, the shared Redis one, a fake) runs the same cases,
// so they agree on the contract written in ratelimit/store.go.
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) ratelimit.Store {
//			s, err := mystore.Open(mystore.Options{Now: now})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Time is a fake clock: leases expire and windows end because a case moves
// the clock, never because it sleeps.
//
// RunRecords is the suite of ratelimit.Records, run the same way. Its one
// exception to the fake clock is a claim's end, which both stores leave to a
// TTL their backend counts in real time: that case waits, at most a few
// seconds.
package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Open returns a new, empty store whose clock is now. Run calls it once per
// case and closes the store when the case ends.
type Open func(t *testing.T, now func() time.Time) ratelimit.Store

// Run runs every case of the suite, each on a store of its own.
func Run(t *testing.T, open Open) {
	cases := []struct {
		name string
		run  func(*testing.T, *fixture)
	}{
		{"reserve_all_or_none", testReserveAllOrNone},
		{"settle", testSettle},
		{"lease_expiry", testLeaseExpiry},
		{"duplicate_lease", testDuplicateLease},
		{"rolling_range", testRollingRange},
		{"get", testGet},
		{"list", testList},
		{"reset", testReset},
		{"exact_amounts", testExactAmounts},
		{"limiter_all_or_none", testLimiterAllOrNone},
		{"limiter_lease_expires", testLimiterLeaseExpires},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newFixture(t, open)) })
	}
	t.Run("concurrency", func(t *testing.T) {
		clk := newClock(t0)
		s := open(t, clk.Now)
		t.Cleanup(func() { closeStore(t, s) })
		RunShared(t, clk.Now, s)
	})
}

// t0 is the suite's "now": 2026-05-05 12:00 UTC, inside the month [may, jun).
var (
	t0  = time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC)
	may = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	jun = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
)

// clock is a fake clock safe for concurrent readers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func closeStore(t *testing.T, s ratelimit.Store) {
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// fixture is one case's store and clock, with helpers that fail the test on
// a store error.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	clk  *clock
	s    ratelimit.Store
	open Open // for a case that needs more stores
}

func newFixture(t *testing.T, open Open) *fixture {
	clk := newClock(t0)
	s := open(t, clk.Now)
	t.Cleanup(func() { closeStore(t, s) })
	return &fixture{t: t, ctx: context.Background(), clk: clk, s: s, open: open}
}

// month is a hold on the calendar month of t0.
func month(budget, key string, limit, amount int64) ratelimit.Hold {
	return ratelimit.Hold{
		ID:    ratelimit.CounterID{Budget: budget, Key: key, Start: may},
		Limit: limit, Amount: amount, End: jun,
	}
}

// with returns holds with their amounts replaced.
func with(holds []ratelimit.Hold, amounts ...int64) []ratelimit.Hold {
	out := make([]ratelimit.Hold, len(holds))
	for i, h := range holds {
		h.Amount = amounts[i]
		out[i] = h
	}
	return out
}

// lease expires 15 minutes after the clock's now.
func (f *fixture) lease(id string) ratelimit.Lease {
	return ratelimit.Lease{ID: id, Expires: f.clk.Now().Add(15 * time.Minute)}
}

func (f *fixture) reserveLease(l ratelimit.Lease, holds ...ratelimit.Hold) ratelimit.ReserveResult {
	f.t.Helper()
	res, err := f.s.Reserve(f.ctx, l, holds)
	if err != nil {
		f.t.Fatalf("reserve %s: %v", l.ID, err)
	}
	if len(res.Counters) != len(holds) {
		f.t.Fatalf("reserve %s: %d counters for %d holds", l.ID, len(res.Counters), len(holds))
	}
	return res
}

func (f *fixture) reserve(id string, holds ...ratelimit.Hold) ratelimit.ReserveResult {
	f.t.Helper()
	return f.reserveLease(f.lease(id), holds...)
}

// admit reserves and fails the test unless every hold fitted.
func (f *fixture) admit(id string, holds ...ratelimit.Hold) {
	f.t.Helper()
	if res := f.reserve(id, holds...); res.Refused != -1 {
		f.t.Fatalf("reserve %s: refused hold %d (%+v)", id, res.Refused, res.Counters)
	}
}

func (f *fixture) settle(id string, holds []ratelimit.Hold, actual []int64) {
	f.t.Helper()
	if err := f.s.Settle(f.ctx, ratelimit.Lease{ID: id}, holds, actual); err != nil {
		f.t.Fatalf("settle %s: %v", id, err)
	}
}

func (f *fixture) get(h ratelimit.Hold) ratelimit.Counter {
	f.t.Helper()
	c, err := f.s.Get(f.ctx, h)
	if err != nil {
		f.t.Fatalf("get %v: %v", h.ID, err)
	}
	return c
}

// want checks Get of each hold against the counters, in order.
func (f *fixture) want(holds []ratelimit.Hold, want ...ratelimit.Counter) {
	f.t.Helper()
	for i, h := range holds {
		if got := f.get(h); got != want[i] {
			f.t.Errorf("%s/%s: counter %+v, want %+v", h.ID.Budget, h.ID.Key, got, want[i])
		}
	}
}

// list returns List's non-zero counters by "budget/key/start". A counter at
// zero (every hold released, nothing spent) may or may not be listed.
func (f *fixture) list(now time.Time) map[string]ratelimit.Counter {
	f.t.Helper()
	states, err := f.s.List(f.ctx, now)
	if err != nil {
		f.t.Fatalf("list: %v", err)
	}
	out := map[string]ratelimit.Counter{}
	for _, s := range states {
		if s.Counter == (ratelimit.Counter{}) {
			continue
		}
		k := idString(s.ID)
		if _, dup := out[k]; dup {
			f.t.Errorf("list: %s twice", k)
		}
		out[k] = s.Counter
	}
	return out
}

func idString(id ratelimit.CounterID) string {
	return fmt.Sprintf("%s/%s/%s", id.Budget, id.Key, id.Start.UTC().Format(time.RFC3339Nano))
}

func (f *fixture) wantList(now time.Time, want map[string]ratelimit.Counter) {
	f.t.Helper()
	got := f.list(now)
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if got[k] != want[k] {
			f.t.Errorf("list(%s): %s = %+v, want %+v", now.Format(time.TimeOnly), k, got[k], want[k])
		}
	}
}
