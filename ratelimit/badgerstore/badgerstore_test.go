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
			l := ratelimit.New([]ratelimit.Budget{{Name: "b", Unit: ratelimit.Requests, Limit: 2, Window: tt.window}}, store, clk.now)
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
	l := ratelimit.New(budgets, store, clk.now)
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
	l := ratelimit.New([]ratelimit.Budget{{Name: "b", Unit: ratelimit.Money, Limit: int64(money.MustParse("0.1")), Window: ratelimit.Month}}, store, clk.now)
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
	c, _ := store.Get(context.Background(), ratelimit.CounterID{Budget: "b", Key: "all", Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)})
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
	l := ratelimit.New(budgets, store, clk.now)
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
	l = ratelimit.New(budgets, store, clk.now)
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
	}, store, time.Now)
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
