package badgerstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
	"github.com/tokenmeter/tokenmeter/ratelimit/storetest"
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

// TestStore runs the shared conformance suite on the in-memory store.
func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) ratelimit.Store {
		s, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
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

// BenchmarkReserveSettle is one request's admission and settlement through
// the Limiter, with 1, 5 and 20 matching budgets, on a Badger directory, from
// one caller and from every P at once.
func BenchmarkReserveSettle(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		for _, n := range []int{1, 5, 20} {
			b.Run(fmt.Sprintf("parallel=%t/budgets=%d", parallel, n), func(b *testing.B) {
				store, err := badgerstore.Open(badgerstore.Options{Dir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				defer store.Close()
				storetest.BenchReserveSettle(b, store, n, parallel)
			})
		}
	}
}

// BenchmarkReserveWhileSettling is what a gate's reservation waits for in
// the store while observers settle other requests: b.N reserves (each
// released at once, which writes nothing) from one caller, with settlers
// writing charges to disk all along. It reports the reserve's p99 and its worst.
func BenchmarkReserveWhileSettling(b *testing.B) {
	store, err := badgerstore.Open(badgerstore.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	end := time.Now().Add(24 * time.Hour)
	hold := func(key string) []ratelimit.Hold {
		return []ratelimit.Hold{{ID: ratelimit.CounterID{Budget: "b", Key: key, Start: time.Unix(0, 0).UTC()}, Limit: 1 << 62, Amount: 1, End: end}}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				h := hold(fmt.Sprintf("settler-%d-%d", w, i%64))
				l := ratelimit.Lease{ID: fmt.Sprintf("s%d-%d", w, i), Expires: end}
				if _, err := store.Reserve(ctx, l, h); err != nil {
					b.Error(err)
					return
				}
				if err := store.Settle(ctx, l, h, []int64{1}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	h := hold("gate")
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		l := ratelimit.Lease{ID: fmt.Sprintf("g%d", i), Expires: end}
		start := time.Now()
		if _, err := store.Reserve(ctx, l, h); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		if err := store.Settle(ctx, l, h, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-reserve-µs")
	b.ReportMetric(float64(took[len(took)-1].Microseconds()), "max-reserve-µs")
}
