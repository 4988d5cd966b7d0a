package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// BenchReserveSettle measures one request's budget work through the
// Limiter, reserve then settle, with n budgets matching every request, and
// reports ns/op with the throughput (reserve+settle/s) and the p50 and p99 of
// single operations. With parallel, callers run on every P at once, as
// concurrent requests do; the percentiles then include waiting for the store.
func BenchReserveSettle(b *testing.B, store ratelimit.Store, n int, parallel bool) {
	budgets := make([]ratelimit.Budget, n)
	for i := range budgets {
		budgets[i] = ratelimit.Budget{
			Name:  fmt.Sprintf("b%d", i),
			Match: []ratelimit.Match{{Dimension: "project", Value: ratelimit.Wildcard}},
			Unit:  ratelimit.Money, Limit: int64(money.Max), Window: ratelimit.Month,
		}
	}
	l := ratelimit.New(budgets, store, ratelimit.Options{})
	ctx := context.Background()
	d := attribution.Dimensions{Names: []string{"project"}, Values: []string{"demo"}}
	op := func() time.Duration {
		start := time.Now()
		r, _, err := l.Reserve(ctx, d, ratelimit.Amounts{Money: 1000})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Settle(ctx, r, ratelimit.Amounts{Money: 900}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	wall := time.Now()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			var mine []time.Duration
			for pb.Next() {
				mine = append(mine, op())
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	} else {
		lat = make([]time.Duration, 0, b.N)
		for range b.N {
			lat = append(lat, op())
		}
	}
	elapsed := time.Since(wall)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
