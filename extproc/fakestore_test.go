package extproc

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/storetest"
)

// fakeStore is a ratelimit.Store in plain maps, for FuzzProcess: a Badger
// store costs megabytes and milliseconds to open, which held the fuzzer to
// tens of execs a second, and one shared Badger store cannot be emptied
// between execs without a DropPrefix (it flushes memtables). This one is
// built once per fuzz process and cleared in O(1) per exec, and it can say
// how many leases are still held, which is the invariant the fuzzer checks.
// TestFakeStoreConforms runs the store conformance suite on it, so it keeps
// the contract the real stores keep.
type fakeStore struct {
	mu        sync.Mutex
	now       func() time.Time
	counters  map[ratelimit.CounterID]*fakeCounter
	leases    map[string]*fakeLease
	reserves  int // Reserve calls that held a lease
	badSettle int // Settle calls whose counters differ from the lease's
}

type fakeCounter struct {
	ratelimit.Counter
	end time.Time
}

type fakeLease struct {
	expires time.Time
	holds   []ratelimit.Hold
}

func newFakeStore(now func() time.Time) *fakeStore {
	s := &fakeStore{now: now}
	s.clear()
	return s
}

// clear forgets every counter and lease.
func (s *fakeStore) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters = map[ratelimit.CounterID]*fakeCounter{}
	s.leases = map[string]*fakeLease{}
	s.reserves, s.badSettle = 0, 0
}

// held returns the leases still held and the reserved total over every
// counter: both zero once every request has settled or released.
func (s *fakeStore) held() (leases int, reserved int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.counters {
		reserved += c.Reserved
	}
	return len(s.leases), reserved
}

func (s *fakeStore) counter(id ratelimit.CounterID, end time.Time) *fakeCounter {
	c, ok := s.counters[id]
	if !ok {
		c = &fakeCounter{end: end}
		s.counters[id] = c
	}
	return c
}

// sum adds up the counters h's check covers (ratelimit.Hold's contract).
func (s *fakeStore) sum(h *ratelimit.Hold) ratelimit.Counter {
	if h.Since.IsZero() {
		if c := s.counters[h.ID]; c != nil {
			return c.Counter
		}
		return ratelimit.Counter{}
	}
	var sum ratelimit.Counter
	for id, c := range s.counters {
		if id.Budget == h.ID.Budget && id.Key == h.ID.Key && !id.Start.Before(h.From()) && !id.Start.After(h.ID.Start) {
			sum.Spent += c.Spent
			sum.Reserved += c.Reserved
		}
	}
	return sum
}

// fakeFits is spent + reserved + amount <= limit in 128 bits, so that sums
// near MaxInt64 do not wrap.
func fakeFits(c ratelimit.Counter, amount, limit int64) bool {
	var hi int64
	var lo uint64
	for _, v := range [...]int64{c.Spent, c.Reserved, amount} {
		var carry uint64
		lo, carry = bits.Add64(lo, uint64(v), 0)
		hi += v>>63 + int64(carry)
	}
	return hi < limit>>63 || hi == limit>>63 && lo <= uint64(limit)
}

// sweep releases expired leases. Called with mu held.
func (s *fakeStore) sweep() {
	now := s.now()
	for id, l := range s.leases {
		if !l.expires.After(now) {
			s.release(l.holds)
			delete(s.leases, id)
		}
	}
}

func (s *fakeStore) release(holds []ratelimit.Hold) {
	for _, h := range holds {
		c := s.counter(h.ID, h.End)
		c.Reserved = max(c.Reserved-h.Amount, 0)
	}
}

func (s *fakeStore) Reserve(_ context.Context, l ratelimit.Lease, holds []ratelimit.Hold) (ratelimit.ReserveResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	if _, dup := s.leases[l.ID]; dup {
		return ratelimit.ReserveResult{}, fmt.Errorf("lease %q is already held", l.ID)
	}
	res := ratelimit.ReserveResult{Refused: -1, Counters: make([]ratelimit.Counter, len(holds))}
	for i := range holds {
		res.Counters[i] = s.sum(&holds[i])
		if !fakeFits(res.Counters[i], holds[i].Amount, holds[i].Limit) {
			res.Refused = i
			return res, nil
		}
	}
	for i, h := range holds {
		s.counter(h.ID, h.End).Reserved += h.Amount
		res.Counters[i].Reserved += h.Amount
	}
	s.leases[l.ID] = &fakeLease{expires: l.Expires, holds: slices.Clone(holds)}
	s.reserves++
	return res, nil
}

func (s *fakeStore) Settle(_ context.Context, l ratelimit.Lease, holds []ratelimit.Hold, actual []int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held, ok := s.leases[l.ID]; ok {
		if !sameCounters(held.holds, holds) {
			s.badSettle++
		}
		s.release(held.holds)
		delete(s.leases, l.ID)
	}
	for i, h := range holds {
		if actual != nil && actual[i] != 0 {
			s.counter(h.ID, h.End).Spent += actual[i]
		}
	}
	return nil
}

// sameCounters reports whether a settle names the counters its lease
// reserved, in order (a handoff carries them as text to the observer).
// Only the fuzzer reads the verdict: a Reset legitimately drops holds from
// a lease, which the conformance suite does.
func sameCounters(a, b []ratelimit.Hold) bool {
	return slices.EqualFunc(a, b, func(x, y ratelimit.Hold) bool {
		return x.ID.Budget == y.ID.Budget && x.ID.Key == y.ID.Key && x.ID.Start.Equal(y.ID.Start)
	})
}

func (s *fakeStore) Get(_ context.Context, h ratelimit.Hold) (ratelimit.Counter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	return s.sum(&h), nil
}

func (s *fakeStore) List(_ context.Context, now time.Time) ([]ratelimit.CounterState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	var out []ratelimit.CounterState
	for id, c := range s.counters {
		if c.end.After(now) {
			out = append(out, ratelimit.CounterState{ID: id, Counter: c.Counter})
		}
	}
	return out, nil
}

func (s *fakeStore) Reset(_ context.Context, budget, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	reset := func(h ratelimit.Hold) bool { return h.ID.Budget == budget && (key == "" || h.ID.Key == key) }
	for id := range s.counters {
		if reset(ratelimit.Hold{ID: id}) {
			delete(s.counters, id)
		}
	}
	for _, l := range s.leases {
		l.holds = slices.DeleteFunc(l.holds, reset)
	}
	return nil
}

func (s *fakeStore) Close() error { return nil }

// The fake keeps the contract every store keeps, or the fuzzer's verdict
// on leases would mean nothing.
func TestFakeStoreConforms(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) ratelimit.Store { return newFakeStore(now) })
}
