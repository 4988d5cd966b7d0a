// Package bench measures what tokenmeter adds to a request through Envoy.
// Every benchmark runs two Envoys from the same shipped config, one with the
// ext_proc filter and one without, in the same run, and alternates requests
// between them so that machine noise lands on both alike: the ratio and the
// difference are what to read, not the absolute numbers.
//
//	go test -run '^$' -bench . -benchtime 2000x ./bench/
//
// This is the quick look; the full harness, with fixed rates, capacity,
// CPU, memory and per-chunk delays, is bench/cmd/tmbench (make bench).
package bench

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

func BenchmarkOverhead(b *testing.B) {
	dir := b.TempDir()
	bin, err := testbed.Build(dir, false)
	if err != nil {
		b.Fatal(err)
	}
	s := testbed.New(b, testbed.Options{Bin: bin, Bare: true,
		// testbed's debug level logs every record: work a deployment skips.
		ServeArgs: []string{"--log-level", "info"},
		Budgets: `  - {name: per-project, match: {project: "*"}, limit: {money: "1000000"}, window: month}
`})
	scenarios := []struct {
		name    string
		body    string
		headers map[string]string
	}{
		{"chat-json", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + lorem(900) + `"}]}`,
			map[string]string{"x-tokenmeter-project": "bench", "x-mock-completion-tokens": "150"}},
		{"chat-stream-200", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hello"}]}`,
			map[string]string{"x-tokenmeter-project": "bench", "x-mock-completion-tokens": "200"}},
	}
	for _, sc := range scenarios {
		b.Run(sc.name, func(b *testing.B) {
			bare := make([]time.Duration, 0, b.N)
			with := make([]time.Duration, 0, b.N)
			timed := func(p *envoy.Proxy) time.Duration {
				start := time.Now()
				resp := s.PostTo(p, sc.body, sc.headers)
				testbed.ReadAll(b, resp)
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
				return time.Since(start)
			}
			// Warm both connection pools and Envoy's worker caches.
			for i := 0; i < 20; i++ {
				timed(s.Bare)
				timed(s.Proxy)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Alternate which goes first, so neither always follows the other.
				if i%2 == 0 {
					bare = append(bare, timed(s.Bare))
					with = append(with, timed(s.Proxy))
				} else {
					with = append(with, timed(s.Proxy))
					bare = append(bare, timed(s.Bare))
				}
			}
			b.StopTimer()
			report(b, bare, with)
		})
	}
	if os.Getenv("BENCH_VERBOSE") != "" {
		b.Logf("tokenmeter output:\n%s", s.TM.Output())
	}
}

// report adds percentiles, in microseconds, of each side and of the difference.
func report(b *testing.B, bare, with []time.Duration) {
	slices.Sort(bare)
	slices.Sort(with)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) / 1e3
	}
	for _, p := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p99", 0.99}} {
		b.ReportMetric(pct(bare, p.q), "bare-"+p.name+"-µs")
		b.ReportMetric(pct(with, p.q), "tokenmeter-"+p.name+"-µs")
		b.ReportMetric(pct(with, p.q)-pct(bare, p.q), "added-"+p.name+"-µs")
	}
	b.ReportMetric(0, "ns/op") // the pair's wall time says nothing; the percentiles do
}

// lorem returns about n bytes of prompt text.
func lorem(n int) string {
	const w = "lorem ipsum dolor sit amet "
	s := ""
	for len(s) < n {
		s += w
	}
	return fmt.Sprint(s[:n])
}
