package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// dist is a sorted sample of durations.
type dist []time.Duration

func newDist(ds []time.Duration) dist {
	d := slices.Clone(ds)
	slices.Sort(d)
	return d
}

// pct is the nearest-rank q-quantile (0 < q ≤ 1), or 0 for no samples.
func (d dist) pct(q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

func (d dist) p50() time.Duration { return d.pct(0.50) }
func (d dist) p99() time.Duration { return d.pct(0.99) }

// us formats a duration in microseconds, or milliseconds past 10 ms.
func us(d time.Duration) string {
	if d >= 10*time.Millisecond || d <= -10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

// added formats a difference with its sign.
func added(d time.Duration) string {
	if d >= 0 {
		return "+" + us(d)
	}
	return us(d)
}

func fmtRate(r float64) string {
	if r == math.Trunc(r) {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// perReq is a CPU time spread over n requests, in µs, or "–" without
// requests.
func perReq(cpu time.Duration, n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(cpu)/1e3/float64(n))
}
