package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Holds on two budgets and three families, for the all-or-none cases.
func threeHolds() []ratelimit.Hold {
	return []ratelimit.Hold{month("a", "k=1", 100, 0), month("b", "k=2", 50, 0), month("a", "k=3", 10, 0)}
}

func testReserveAllOrNone(t *testing.T, f0 *fixture) {
	// Each case starts from spent {20, 10, 2} and reserved {40, 20, 3}.
	before := []ratelimit.Counter{{Spent: 20, Reserved: 40}, {Spent: 10, Reserved: 20}, {Spent: 2, Reserved: 3}}
	tests := []struct {
		name    string
		amounts []int64
		refused int
		// counters is ReserveResult.Counters up to and including the refused
		// hold (after the reservation when nothing was refused).
		counters []ratelimit.Counter
	}{
		{"every_hold_fits_exactly", []int64{40, 20, 5}, -1,
			[]ratelimit.Counter{{Spent: 20, Reserved: 80}, {Spent: 10, Reserved: 40}, {Spent: 2, Reserved: 8}}},
		{"first_refused", []int64{41, 0, 0}, 0, before[:1]},
		{"middle_refused", []int64{10, 21, 1}, 1, before[:2]},
		{"last_refused", []int64{1, 1, 6}, 2, before},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, f0.open)
			holds := threeHolds()
			f.admit("spent", with(holds, 60, 30, 5)...)
			f.settle("spent", holds, []int64{20, 10, 2})
			f.admit("held", with(holds, 40, 20, 3)...)

			res := f.reserve("new", with(holds, tt.amounts...)...)
			if res.Refused != tt.refused {
				t.Fatalf("refused %d, want %d (counters %+v)", res.Refused, tt.refused, res.Counters)
			}
			for i, want := range tt.counters {
				if res.Counters[i] != want {
					t.Errorf("result counter %d = %+v, want %+v", i, res.Counters[i], want)
				}
			}
			if tt.refused >= 0 {
				// Nothing changed, and the refused lease holds nothing: a
				// release of it is a no-op.
				f.want(holds, before...)
				f.settle("new", holds, nil)
				f.want(holds, before...)
				return
			}
			f.want(holds, tt.counters...)
		})
	}
}

func testSettle(t *testing.T, f *fixture) {
	a, b, c := month("a", "k=1", 100, 60), month("b", "k=2", 50, 30), month("c", "k=3", 100, 0)

	// Actual above and below the estimate, and past the limit on b:
	// settling never refuses.
	f.admit("one", a, b)
	f.settle("one", []ratelimit.Hold{a, b}, []int64{45, 70})
	f.want([]ratelimit.Hold{a, b}, ratelimit.Counter{Spent: 45}, ratelimit.Counter{Spent: 70})

	// nil releases without charging; a zero actual charges nothing.
	holds := []ratelimit.Hold{a, c}
	f.admit("two", with(holds, 55, 40)...)
	f.settle("two", holds, nil)
	f.want(holds, ratelimit.Counter{Spent: 45}, ratelimit.Counter{})
	f.admit("three", with(holds, 10, 20)...)
	f.settle("three", holds, []int64{0, 5})
	f.want(holds, ratelimit.Counter{Spent: 45}, ratelimit.Counter{Spent: 5})

	// Settling one lease leaves another's holds on the same counters.
	f.admit("four", with(holds, 20, 1)...)
	f.admit("five", with(holds, 30, 2)...)
	f.settle("four", holds, []int64{1, 0})
	f.want(holds, ratelimit.Counter{Spent: 46, Reserved: 30}, ratelimit.Counter{Spent: 5, Reserved: 2})
	f.settle("five", holds, []int64{2, 0})
	f.want(holds, ratelimit.Counter{Spent: 48}, ratelimit.Counter{Spent: 5})
}

// A lease whose Expires has passed is released by the store on its own; its
// Settle still charges and does not release a second time.
func testLeaseExpiry(t *testing.T, f *fixture) {
	a, b := month("a", "k=1", 100, 80), month("b", "k=2", 50, 40)
	f.admit("leaked", a, b)
	if res := f.reserve("early", with([]ratelimit.Hold{a}, 30)...); res.Refused != 0 {
		t.Fatalf("80 held + 30 > 100 was admitted: %+v", res)
	}
	// The Badger store looks for expired leases at most once a second of its
	// clock: go well past the expiry.
	f.clk.Set(t0.Add(15*time.Minute + 2*time.Second))
	f.want([]ratelimit.Hold{a, b}, ratelimit.Counter{}, ratelimit.Counter{})

	res := f.reserve("later", with([]ratelimit.Hold{a}, 30)...)
	if res.Refused != -1 || res.Counters[0] != (ratelimit.Counter{Reserved: 30}) {
		t.Fatalf("after the lease expired: %+v", res)
	}
	f.settle("leaked", []ratelimit.Hold{a, b}, []int64{50, 5})
	f.want([]ratelimit.Hold{a, b}, ratelimit.Counter{Spent: 50, Reserved: 30}, ratelimit.Counter{Spent: 5})
	f.settle("later", []ratelimit.Hold{a}, []int64{30})
	f.want([]ratelimit.Hold{a, b}, ratelimit.Counter{Spent: 80}, ratelimit.Counter{Spent: 5})
}

// A second Reserve under a lease id already held is an error and holds
// nothing more.
func testDuplicateLease(t *testing.T, f *fixture) {
	a, b, c := month("a", "k=1", 100, 10), month("b", "k=2", 100, 10), month("c", "k=3", 100, 10)
	f.admit("dup", a, b)
	tests := []struct {
		name  string
		holds []ratelimit.Hold
	}{
		{"same_holds", []ratelimit.Hold{a, b}},
		// c comes first: a store that reserves hold by hold must undo it.
		{"overlapping_holds", []ratelimit.Hold{c, with([]ratelimit.Hold{a}, 5)[0]}},
	}
	for _, tt := range tests {
		if _, err := f.s.Reserve(f.ctx, f.lease("dup"), tt.holds); err == nil {
			t.Errorf("%s: a duplicate lease was accepted", tt.name)
		}
		f.want([]ratelimit.Hold{a, b, c}, ratelimit.Counter{Reserved: 10}, ratelimit.Counter{Reserved: 10}, ratelimit.Counter{})
	}
	f.settle("dup", []ratelimit.Hold{a, b}, nil)
	f.want([]ratelimit.Hold{a, b, c}, ratelimit.Counter{}, ratelimit.Counter{}, ratelimit.Counter{})
}

// rolling is a hold on a five-minute rolling window of one-minute buckets,
// as of now.
func rolling(now time.Time, amount int64) ratelimit.Hold {
	start := now.Truncate(time.Minute)
	return ratelimit.Hold{
		ID:    ratelimit.CounterID{Budget: "rpm", Key: "all", Start: start},
		Since: start.Add(-4 * time.Minute),
		Limit: 25, Amount: amount,
		End: start.Add(5 * time.Minute),
	}
}

func testRollingRange(t *testing.T, f *fixture) {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	step := func(min int) ratelimit.Hold { f.clk.Set(at(min)); return rolling(at(min), 0) }

	h := step(0)
	f.admit("r1", with([]ratelimit.Hold{h}, 10)...)
	f.settle("r1", []ratelimit.Hold{h}, []int64{10})

	h = step(2)
	f.want([]ratelimit.Hold{h}, ratelimit.Counter{Spent: 10})
	if res := f.reserve("r2", with([]ratelimit.Hold{h}, 10)...); res.Counters[0] != (ratelimit.Counter{Spent: 10, Reserved: 10}) {
		t.Fatalf("r2: %+v, want after {10 10}", res)
	}
	r2 := h

	h = step(3)
	if res := f.reserve("r3", with([]ratelimit.Hold{h}, 6)...); res.Refused != 0 || res.Counters[0] != (ratelimit.Counter{Spent: 10, Reserved: 10}) {
		t.Fatalf("10+10+6 > 25 in range: %+v", res)
	}
	f.admit("r3", with([]ratelimit.Hold{h}, 5)...)
	f.settle("r2", []ratelimit.Hold{r2}, []int64{10})
	f.want([]ratelimit.Hold{h}, ratelimit.Counter{Spent: 20, Reserved: 5})

	// At 12:05 the range is [12:01, 12:05]: the 12:00 bucket no longer counts.
	h = step(5)
	f.want([]ratelimit.Hold{h}, ratelimit.Counter{Spent: 10, Reserved: 5})
	if res := f.reserve("r4", with([]ratelimit.Hold{h}, 10)...); res.Refused != -1 || res.Counters[0] != (ratelimit.Counter{Spent: 10, Reserved: 15}) {
		t.Fatalf("r4: %+v, want admitted with {10 15}", res)
	}
	f.wantList(at(5), map[string]ratelimit.Counter{
		idString(rolling(at(2), 0).ID): {Spent: 10},
		idString(rolling(at(3), 0).ID): {Reserved: 5},
		idString(rolling(at(5), 0).ID): {Reserved: 10},
	})
	// Since is inclusive: at 12:06 the 12:02 bucket still counts, at 12:07 not.
	f.want([]ratelimit.Hold{step(6)}, ratelimit.Counter{Spent: 10, Reserved: 15})
	f.want([]ratelimit.Hold{step(7)}, ratelimit.Counter{Reserved: 15})
}

func testGet(t *testing.T, f *fixture) {
	a := month("a", "k=1", 100, 0)
	f.want([]ratelimit.Hold{a}, ratelimit.Counter{})
	f.admit("one", with([]ratelimit.Hold{a}, 30)...)
	f.settle("one", []ratelimit.Hold{a}, []int64{12})
	f.admit("two", with([]ratelimit.Hold{a}, 7)...)
	// Amount is ignored, and so is Limit.
	for _, amount := range []int64{0, 1, 1000} {
		h := with([]ratelimit.Hold{a}, amount)[0]
		h.Limit = 1
		f.want([]ratelimit.Hold{h}, ratelimit.Counter{Spent: 12, Reserved: 7})
	}
	// Another key and another window of the same budget are other counters.
	other := month("a", "k=2", 100, 0)
	next := a
	next.ID.Start, next.End = jun, jun.AddDate(0, 1, 0)
	f.want([]ratelimit.Hold{other, next}, ratelimit.Counter{}, ratelimit.Counter{})
}

func testList(t *testing.T, f *fixture) {
	a1, a2 := month("a", "k=1", 100, 10), month("a", "k=2", 100, 4)
	minute := ratelimit.Hold{
		ID:    ratelimit.CounterID{Budget: "m", Key: "all", Start: t0},
		Limit: 100, Amount: 5, End: t0.Add(time.Minute),
	}
	f.admit("a1", a1, minute)
	f.settle("a1", []ratelimit.Hold{a1, minute}, []int64{7, 3})
	f.reserveLease(ratelimit.Lease{ID: "a2", Expires: t0.Add(time.Minute)}, a2)
	f.wantList(t0, map[string]ratelimit.Counter{
		idString(a1.ID):     {Spent: 7},
		idString(a2.ID):     {Reserved: 4},
		idString(minute.ID): {Spent: 3},
	})
	// At the minute's end its counter is no longer live; a2's lease expired.
	end := t0.Add(time.Minute)
	f.clk.Set(end.Add(2 * time.Second))
	f.wantList(end, map[string]ratelimit.Counter{idString(a1.ID): {Spent: 7}})
}

// Reset drops counters and the reservations on them; a lease settled after
// the reset charges what it spent and releases nothing of a newer lease.
func testReset(t *testing.T, f *fixture) {
	a1, a2, b1 := month("a", "k=1", 100, 10), month("a", "k=2", 100, 10), month("b", "k=1", 100, 10)
	all := []ratelimit.Hold{a1, a2, b1}
	f.admit("spent", all...)
	f.settle("spent", all, []int64{10, 20, 30})
	f.admit("old", a1, b1)

	if err := f.s.Reset(f.ctx, "a", "k=1"); err != nil {
		t.Fatal(err)
	}
	f.want(all, ratelimit.Counter{}, ratelimit.Counter{Spent: 20}, ratelimit.Counter{Spent: 30, Reserved: 10})
	f.admit("new", with([]ratelimit.Hold{a1}, 7)...)
	f.settle("old", []ratelimit.Hold{a1, b1}, []int64{3, 4})
	f.want(all, ratelimit.Counter{Spent: 3, Reserved: 7}, ratelimit.Counter{Spent: 20}, ratelimit.Counter{Spent: 34})

	if err := f.s.Reset(f.ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	f.want(all, ratelimit.Counter{}, ratelimit.Counter{}, ratelimit.Counter{Spent: 34})
	f.wantList(t0, map[string]ratelimit.Counter{idString(b1.ID): {Spent: 34}})
	f.settle("new", []ratelimit.Hold{a1}, nil)
	f.want(all, ratelimit.Counter{}, ratelimit.Counter{}, ratelimit.Counter{Spent: 34})
	// No phantom or negative reservation is left: the whole limit fits.
	f.admit("full", with([]ratelimit.Hold{a1}, 100)...)
	// Resetting what does not exist is not an error.
	if err := f.s.Reset(f.ctx, "nobody", ""); err != nil {
		t.Fatal(err)
	}
}

// Counters are exact int64s: no rounding above 2^53 (a store computing in
// float64 fails this) and no overflow at the int64 limit.
func testExactAmounts(t *testing.T, f *fixture) {
	tenM := int64(money.MustParse("10000000"))
	h := month("usd", "all", tenM, 0)
	f.admit("big", with([]ratelimit.Hold{h}, tenM-1)...)
	if res := f.reserve("nano", with([]ratelimit.Hold{h}, 1)...); res.Refused != -1 || res.Counters[0].Reserved != tenM {
		t.Fatalf("$9,999,999.999999999 + 1 nano within $10M: %+v", res)
	}
	if res := f.reserve("over", with([]ratelimit.Hold{h}, 1)...); res.Refused != 0 || res.Counters[0].Reserved != tenM {
		t.Fatalf("$10M + 1 nano: %+v", res)
	}
	f.settle("big", []ratelimit.Hold{h}, []int64{tenM - 3})
	f.want([]ratelimit.Hold{h}, ratelimit.Counter{Spent: tenM - 3, Reserved: 1})

	m := month("max", "all", math.MaxInt64, 0)
	spent := int64(1)<<62 + 3
	f.admit("m1", with([]ratelimit.Hold{m}, 1<<53+1)...)
	f.settle("m1", []ratelimit.Hold{m}, []int64{spent})
	rest := math.MaxInt64 - spent
	if res := f.reserve("m2", with([]ratelimit.Hold{m}, rest)...); res.Refused != -1 || res.Counters[0] != (ratelimit.Counter{Spent: spent, Reserved: rest}) {
		t.Fatalf("up to MaxInt64: %+v", res)
	}
	if res := f.reserve("m3", with([]ratelimit.Hold{m}, 1)...); res.Refused != 0 {
		t.Fatalf("MaxInt64 + 1 was admitted (overflow): %+v", res)
	}
	f.want([]ratelimit.Hold{m}, ratelimit.Counter{Spent: spent, Reserved: rest})
}
