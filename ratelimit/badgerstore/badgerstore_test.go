package badgerstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/attribution"
	"github.com/tokenmeter/tokenmeter/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func dims(project, user string) attribution.Dimensions {
	return attribution.Dimensions{Names: []string{"project", "user"}, Values: []string{project, user}}
}

func open(t *testing.T, dir string) *badgerstore.Store {
	t.Helper()
	s, err := badgerstore.Open(badgerstore.Options{Dir: dir, InMemory: dir == ""})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWindowsResetAtBoundaries(t *testing.T) {
	tests := []struct {
		window ratelimit.Window
		start  time.Time // just before the boundary
		next   time.Time // the boundary itself
	}{
		{ratelimit.Minute, time.Date(2026, 3, 1, 10, 4, 59, 999e6, time.UTC), time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC)},
		{ratelimit.Hour, time.Date(2026, 3, 1, 10, 59, 59, 0, time.UTC), time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)},
		{ratelimit.Day, time.Date(2026, 3, 1, 23, 59, 59, 0, time.UTC), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)},
		{ratelimit.Month, time.Date(2028, 2, 29, 23, 0, 0, 0, time.UTC), time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC)},
		{ratelimit.Month, time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.window.String()+"/"+tt.start.Format(time.RFC3339), func(t *testing.T) {
			clk := &clock{t: tt.start}
			store := open(t, "")
			defer store.Close()
			l := ratelimit.New([]ratelimit.Budget{{Name: "b", Unit: ratelimit.Requests, Limit: 2, Window: tt.window}}, store, ratelimit.Options{Now: clk.now})
			ctx := context.Background()
			d := dims("demo", "ann")
			for i := 0; i < 2; i++ {
				r, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Requests: 1})
				if err != nil || den != nil {
					t.Fatalf("request %d: denial %v err %v", i, den, err)
				}
				if err := l.Settle(ctx, r, ratelimit.Amounts{Requests: 1}); err != nil {
					t.Fatal(err)
				}
			}
			_, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Requests: 1})
			if err != nil || den == nil {
				t.Fatalf("third request: want denial, got %v %v", den, err)
			}
			wantRetry := tt.next.Sub(tt.start)
			if wantRetry < time.Second {
				wantRetry = time.Second
			}
			if den.RetryAfter != wantRetry {
				t.Fatalf("retry after %v, want %v", den.RetryAfter, wantRetry)
			}
			clk.t = tt.next
			if den, err := l.Precheck(ctx, d); err != nil || den != nil {
				t.Fatalf("after reset: precheck denial %v err %v", den, err)
			}
			if _, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Requests: 1}); err != nil || den != nil {
				t.Fatalf("after reset: denial %v err %v", den, err)
			}
		})
	}
}

func TestReserveIsAllOrNone(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC)}
	store := open(t, "")
	defer store.Close()
	budgets := []ratelimit.Budget{
		{Name: "project", Match: []ratelimit.Match{{Dimension: "project", Value: "demo"}}, Unit: ratelimit.Money, Limit: int64(money.MustParse("1")), Window: ratelimit.Day},
		{Name: "per-user", Match: []ratelimit.Match{{Dimension: "user", Value: ratelimit.Wildcard}}, Unit: ratelimit.Tokens, Limit: 100, Window: ratelimit.Day},
	}
	l := ratelimit.New(budgets, store, ratelimit.Options{Now: clk.now})
	ctx := context.Background()

	// ann's token budget refuses: the project money budget must not be touched.
	_, den, err := l.Reserve(ctx, dims("demo", "ann"), ratelimit.Amounts{Money: money.MustParse("0.5"), Tokens: 101})
	if err != nil || den == nil || den.Budget.Name != "per-user" || den.Key != "user=ann" {
		t.Fatalf("want per-user denial for ann, got %+v %v", den, err)
	}
	st, _ := l.Status(ctx)
	for _, s := range st {
		if s.Counter.Reserved != 0 {
			t.Fatalf("partial reservation left on %s/%s: %+v", s.Budget.Name, s.Key, s.Counter)
		}
	}
	// Wildcard keys are separate counters: bob is unaffected by ann.
	r, den, err := l.Reserve(ctx, dims("demo", "bob"), ratelimit.Amounts{Money: money.MustParse("0.5"), Tokens: 100})
	if err != nil || den != nil {
		t.Fatalf("bob: %v %v", den, err)
	}
	if err := l.Settle(ctx, r, ratelimit.Amounts{Money: money.MustParse("0.25"), Tokens: 40}); err != nil {
		t.Fatal(err)
	}
	got := map[string]ratelimit.Counter{}
	st, _ = l.Status(ctx)
	for _, s := range st {
		got[s.Budget.Name+"/"+s.Key] = s.Counter
	}
	want := map[string]ratelimit.Counter{
		"project/project=demo": {Spent: int64(money.MustParse("0.25"))},
		"per-user/user=bob":    {Spent: 40},
	}
	if len(got) != len(want) {
		t.Fatalf("status = %+v, want %+v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("%s = %+v, want %+v", k, got[k], w)
		}
	}
	// A budget that does not match is not consulted.
	if den, _ := l.Precheck(ctx, dims("other", "ann")); den != nil {
		t.Fatalf("unmatched project denied: %v", den)
	}
}

// Concurrent reservations never overshoot: with a limit of 10 estimates, exactly
// 10 of 64 racing requests are admitted.
func TestConcurrentReserveHolds(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC)}
	store := open(t, "")
	defer store.Close()
	est := money.MustParse("0.01")
	l := ratelimit.New([]ratelimit.Budget{{Name: "b", Unit: ratelimit.Money, Limit: int64(money.MustParse("0.1")), Window: ratelimit.Month}}, store, ratelimit.Options{Now: clk.now})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, den, err := l.Reserve(context.Background(), dims("p", "u"), ratelimit.Amounts{Money: est})
			if err != nil {
				t.Error(err)
				return
			}
			if den == nil {
				admitted.Add(1)
				if err := l.Settle(context.Background(), r, ratelimit.Amounts{Money: est}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 10 {
		t.Fatalf("admitted %d, want exactly 10", admitted.Load())
	}
	c, _ := store.Get(context.Background(), ratelimit.Hold{ID: ratelimit.CounterID{Budget: "b", Key: "all", Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}})
	if c.Spent != int64(money.MustParse("0.1")) || c.Reserved != 0 {
		t.Fatalf("counter = %+v", c)
	}
}

func TestCountersSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	clk := &clock{t: now}
	budgets := []ratelimit.Budget{{Name: "b", Match: []ratelimit.Match{{Dimension: "project", Value: ratelimit.Wildcard}}, Unit: ratelimit.Tokens, Limit: 1000, Window: ratelimit.Day}}
	ctx := context.Background()

	store := open(t, dir)
	l := ratelimit.New(budgets, store, ratelimit.Options{Now: clk.now})
	r, _, err := l.Reserve(ctx, dims("demo", "x"), ratelimit.Amounts{Tokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, r, ratelimit.Amounts{Tokens: 737}); err != nil {
		t.Fatal(err)
	}
	// A reservation in flight when the process stops is not carried over.
	if _, _, err := l.Reserve(ctx, dims("demo", "x"), ratelimit.Amounts{Tokens: 200}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store = open(t, dir)
	defer store.Close()
	l = ratelimit.New(budgets, store, ratelimit.Options{Now: clk.now})
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Key != "project=demo" || st[0].Counter != (ratelimit.Counter{Spent: 737}) {
		t.Fatalf("after reopen: %+v", st)
	}
	// And the limit still holds on the reloaded counter.
	if _, den, _ := l.Reserve(ctx, dims("demo", "x"), ratelimit.Amounts{Tokens: 264}); den == nil {
		t.Fatal("737+264 > 1000 was admitted after reopen")
	}
}

func BenchmarkReserveSettle(b *testing.B) {
	store, err := badgerstore.Open(badgerstore.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	l := ratelimit.New([]ratelimit.Budget{
		{Name: "p", Match: []ratelimit.Match{{Dimension: "project", Value: ratelimit.Wildcard}}, Unit: ratelimit.Money, Limit: int64(money.Max), Window: ratelimit.Month},
	}, store, ratelimit.Options{})
	ctx := context.Background()
	d := dims("demo", "ann")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r, _, err := l.Reserve(ctx, d, ratelimit.Amounts{Money: 1000})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Settle(ctx, r, ratelimit.Amounts{Money: 900}); err != nil {
			b.Fatal(err)
		}
	}
}

// A reservation whose request never settles is released when its lease
// expires, and a settle after that still charges without releasing twice.
func TestLeaseExpires(t *testing.T) {
	clk := &clock{t: time.Date(2026, 5, 5, 12, 0, 0, 0, time.UTC)}
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l := ratelimit.New([]ratelimit.Budget{{Name: "b", Unit: ratelimit.Tokens, Limit: 100, Window: ratelimit.Month}}, store,
		ratelimit.Options{Now: clk.now, LeaseTTL: time.Minute})
	ctx := context.Background()
	d := dims("p", "u")
	leaked, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Tokens: 80})
	if err != nil || den != nil {
		t.Fatal(den, err)
	}
	if _, den, _ := l.Reserve(ctx, d, ratelimit.Amounts{Tokens: 30}); den == nil {
		t.Fatal("80 held + 30 > 100 was admitted")
	}
	clk.t = clk.t.Add(time.Minute)
	r, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Tokens: 30})
	if err != nil || den != nil {
		t.Fatalf("after the lease expired: %v %v", den, err)
	}
	// The leaked request ends after all: it is charged, and releases nothing
	// of the 30 held by the other.
	if err := l.Settle(ctx, leaked, ratelimit.Amounts{Tokens: 50}); err != nil {
		t.Fatal(err)
	}
	id := ratelimit.CounterID{Budget: "b", Key: "all", Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	if c, _ := store.Get(ctx, ratelimit.Hold{ID: id}); c != (ratelimit.Counter{Spent: 50, Reserved: 30}) {
		t.Fatalf("counter = %+v, want spent 50 reserved 30", c)
	}
	if err := l.Settle(ctx, r, ratelimit.Amounts{Tokens: 30}); err != nil {
		t.Fatal(err)
	}
	if c, _ := store.Get(ctx, ratelimit.Hold{ID: id}); c != (ratelimit.Counter{Spent: 80}) {
		t.Fatalf("counter = %+v, want spent 80", c)
	}
}
