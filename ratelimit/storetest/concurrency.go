package storetest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// RunShared runs the racing cases over stores that share their counters: one
// store, or several instances of one shared store (the replicas of a
// deployment), each request going to stores[i%len(stores)]. The stores must
// be empty, and their clocks read now.
func RunShared(t *testing.T, now func() time.Time, stores ...ratelimit.Store) {
	t.Run("overshoot_bound", func(t *testing.T) { testOvershoot(t, now, stores) })
	t.Run("exact_admission", func(t *testing.T) { testExactAdmission(t, now, stores) })
}

const racers = 200

// monthOf returns the UTC calendar month around t.
func monthOf(t time.Time) (start, end time.Time) {
	t = t.UTC()
	start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0)
}

// SharedFamilies returns the counters (budget and key; Start is the month of
// now) that RunShared's overshoot case holds, three per request. A store that
// shards counters can check that they land on different shards, so that the
// case exercises a reservation spanning shards.
func SharedFamilies(now time.Time) []ratelimit.CounterID {
	start, _ := monthOf(now)
	return []ratelimit.CounterID{
		{Budget: "spend", Key: "all", Start: start},
		{Budget: "team", Key: "team=t0", Start: start},
		{Budget: "team", Key: "team=t1", Start: start},
		{Budget: "calls", Key: "all", Start: start},
	}
}

// racer is request i of the overshoot case: its holds (estimates) and what it
// really costs. Estimates are $0.004 to $0.012; actuals differ by -3, -1.5,
// 0, +1.5 or +3 tenths of a cent. Of the $1.60 asked for, team t1 asks $1.07
// of its $0.60 and t0 $0.53, so t1's refusals come from its team budget and
// t0's from the $1 overall one.
func racer(now time.Time, i int) (holds []ratelimit.Hold, actual []int64) {
	fam := SharedFamilies(now)
	_, end := monthOf(now)
	est := int64(money.MustParse("0.004")) + int64(i%9)*int64(money.MustParse("0.001"))
	spend := est + int64(i%5-2)*int64(money.MustParse("0.0015"))
	team := fam[1] // a third of the requests
	if i%3 != 0 {
		team = fam[2]
	}
	holds = []ratelimit.Hold{
		{ID: team, Limit: int64(money.MustParse("0.6")), Amount: est, End: end},
		{ID: fam[0], Limit: int64(money.MustParse("1")), Amount: est, End: end},
		{ID: fam[3], Limit: 130, Amount: 1, End: end},
	}
	return holds, []int64{spend, spend, 1}
}

type raced struct {
	res ratelimit.ReserveResult
	err error
}

// testOvershoot races 200 requests that settle above or below their estimate.
//
// What a store guarantees is its check: a request is admitted only when
// spent + reserved + its estimate fits every limit. Settling then swaps the
// estimate for the actual, so the final spend can pass the limit only by the
// excess (actual - estimate) of requests still in flight at the last
// admission. The exact bound checked here, limit + the sum of the positive
// excesses of the admitted requests, is that bound made independent of
// timing; a store that let replicas or shards admit against stale totals
// overshoots it by whole multiples of the limit. "limit + the largest single
// excess" is not a bound: ten requests in flight at once that each go one
// cent over overshoot by ten cents.
func testOvershoot(t *testing.T, now func() time.Time, stores []ratelimit.Store) {
	ctx := context.Background()
	out := make([]raced, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[i%len(stores)]
			holds, actual := racer(now(), i)
			lease := ratelimit.Lease{ID: fmt.Sprintf("overshoot-%d", i), Expires: now().Add(time.Hour)}
			<-start
			out[i].res, out[i].err = s.Reserve(ctx, lease, holds)
			if out[i].err != nil || out[i].res.Refused >= 0 {
				return
			}
			runtime.Gosched() // let others in while this one is in flight
			if err := s.Settle(ctx, lease, holds, actual); err != nil {
				t.Errorf("settle %d: %v", i, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	checkOvershoot(t, now(), stores[0], out)
}

type famWant struct {
	hold      ratelimit.Hold
	spent     int64 // sum of the admitted requests' actuals
	overshoot int64 // sum of their positive excesses
}

func checkOvershoot(t *testing.T, now time.Time, s ratelimit.Store, out []raced) {
	want := map[ratelimit.CounterID]*famWant{}
	admitted := 0
	refusedBy := map[string]int{}
	for i, o := range out {
		holds, actual := racer(now, i)
		if o.err != nil {
			t.Errorf("reserve %d: %v", i, o.err)
			continue
		}
		if len(o.res.Counters) != len(holds) {
			t.Fatalf("reserve %d: %d counters for %d holds", i, len(o.res.Counters), len(holds))
		}
		if r := o.res.Refused; r >= 0 {
			c, h := o.res.Counters[r], holds[r]
			refusedBy[h.ID.Budget]++
			if c.Spent+c.Reserved+h.Amount <= h.Limit {
				t.Errorf("request %d refused on %s/%s with room: %+v + %d <= %d", i, h.ID.Budget, h.ID.Key, c, h.Amount, h.Limit)
			}
			continue
		}
		admitted++
		for j, h := range holds {
			if c := o.res.Counters[j]; c.Spent+c.Reserved > h.Limit {
				t.Errorf("request %d admitted past %s/%s: %+v > %d", i, h.ID.Budget, h.ID.Key, c, h.Limit)
			}
			w := want[h.ID]
			if w == nil {
				w = &famWant{hold: h}
				want[h.ID] = w
			}
			w.spent += actual[j]
			w.overshoot += max(0, actual[j]-h.Amount)
		}
	}
	if admitted == 0 || admitted == len(out) {
		t.Fatalf("%d of %d admitted: the limits were not reached", admitted, len(out))
	}
	for _, w := range want {
		c, err := s.Get(context.Background(), w.hold)
		if err != nil {
			t.Fatal(err)
		}
		id := w.hold.ID.Budget + "/" + w.hold.ID.Key
		switch {
		case c.Reserved != 0:
			t.Errorf("%s: %d still reserved after every request settled", id, c.Reserved)
		case c.Spent != w.spent:
			t.Errorf("%s: spent %d, want the admitted requests' %d", id, c.Spent, w.spent)
		case c.Spent > w.hold.Limit+w.overshoot:
			t.Errorf("%s: spent %d > limit %d + excess %d", id, c.Spent, w.hold.Limit, w.overshoot)
		}
		// The measured overshoot, for the record: how far past its limit
		// the counter ended, beside the bound it must stay within.
		t.Logf("%s: spent %d of limit %d: overshoot %d, bound %d (the admitted requests' excess over their reservations)",
			id, c.Spent, w.hold.Limit, max(0, c.Spent-w.hold.Limit), w.overshoot)
	}
	t.Logf("%d of %d admitted; refused by %v", admitted, len(out), refusedBy)
}

// testExactAdmission: with actual == estimate and a limit of ten estimates,
// exactly ten of 64 racing requests get through, whichever store they use.
func testExactAdmission(t *testing.T, now func() time.Time, stores []ratelimit.Store) {
	est := money.MustParse("0.01")
	budgets := []ratelimit.Budget{{Name: "ten", Unit: ratelimit.Money, Limit: int64(money.MustParse("0.1")), Window: ratelimit.Month}}
	limiters := make([]*ratelimit.Limiter, len(stores))
	for i, s := range stores {
		limiters[i] = ratelimit.New(budgets, s, ratelimit.Options{Now: now})
	}
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	d := attribution.Dimensions{}
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := limiters[i%len(limiters)]
			<-start
			r, den, err := l.Reserve(context.Background(), d, ratelimit.Amounts{Money: est})
			if err != nil {
				t.Error(err)
				return
			}
			if den != nil {
				return
			}
			mu.Lock()
			admitted++
			mu.Unlock()
			if err := l.Settle(context.Background(), r, ratelimit.Amounts{Money: est}); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if admitted != 10 {
		t.Fatalf("admitted %d, want exactly 10", admitted)
	}
	start0, _ := monthOf(now())
	c, err := stores[0].Get(context.Background(), ratelimit.Hold{ID: ratelimit.CounterID{Budget: "ten", Key: "all", Start: start0}})
	if err != nil {
		t.Fatal(err)
	}
	if c != (ratelimit.Counter{Spent: int64(money.MustParse("0.1"))}) {
		t.Fatalf("counter = %+v, want spent $0.1", c)
	}
}
