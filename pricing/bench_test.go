package pricing

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

var sinkEntry *Entry

func benchLookup(b *testing.B, c *Catalog, provider, model string, at time.Time) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		e, ok := c.Lookup(provider, model, at)
		if !ok {
			b.Fatalf("Lookup(%q, %q) missed", provider, model)
		}
		sinkEntry = e
	}
}

func BenchmarkLookup(b *testing.B) {
	benchLookup(b, loadValid(b), "openai", "gpt-4o-mini", now)
}

func BenchmarkLookupDated(b *testing.B) {
	benchLookup(b, loadValid(b), "anthropic", "claude-3-5-sonnet-20241022", now)
}

func BenchmarkLookupUpperCase(b *testing.B) {
	benchLookup(b, loadValid(b), "OpenAI", "GPT-4o-Mini", now)
}

// A qualified glob: two exact misses, no date, then the glob.
func BenchmarkLookupGlob(b *testing.B) {
	benchLookup(b, loadV2(b), "openai", "gpt-4o-mini-search-preview", now)
}

// An unqualified glob: every step before it misses.
func BenchmarkLookupGlobUnqualified(b *testing.B) {
	benchLookup(b, loadV2(b), "together", "llama-3.3-70b-instruct", now)
}

// large is a catalog of 2,000 models in 3 effective versions each (6,000
// entries), 200 of which models carry a glob, spread over 7 providers.
func large(b *testing.B) *Catalog {
	b.Helper()
	var y strings.Builder
	y.WriteString("currency: USD\nmodels:\n")
	froms := []string{"", "    effective_from: 2026-01-01T00:00:00Z\n", "    effective_from: 2027-01-01T00:00:00Z\n"}
	for i := range 2000 {
		for v, from := range froms {
			fmt.Fprintf(&y, "  - name: vendor-model-%04d\n    provider: p%d\n%s    source: s\n    as_of: 2026-11-01\n"+
				"    prices: {input: %d.%03d, output: 1.%03d}\n", i, i%7, from, v, i%1000, i%1000)
			if i%10 == 0 {
				fmt.Fprintf(&y, "    match: [\"family-%04d-*\"]\n", i)
			}
		}
	}
	c, err := Parse("gen.yaml", []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	if c.Len() != 6000 || len(c.globLens) == 0 {
		b.Fatalf("len = %d", c.Len())
	}
	return c
}

func BenchmarkLookup2000(b *testing.B) {
	c := large(b)
	const i = 1733
	b.Run("exact", func(b *testing.B) {
		benchLookup(b, c, fmt.Sprintf("p%d", i%7), fmt.Sprintf("vendor-model-%04d", i), now)
	})
	b.Run("exact-first-version", func(b *testing.B) {
		benchLookup(b, c, fmt.Sprintf("p%d", i%7), fmt.Sprintf("vendor-model-%04d", i), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	})
	b.Run("glob", func(b *testing.B) {
		benchLookup(b, c, fmt.Sprintf("p%d", 1730%7), "family-1730-2026-preview", now)
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := c.Lookup("p0", "family-1731-2026-preview", now); ok {
				b.Fatal("hit")
			}
		}
	})
}

func BenchmarkCost(b *testing.B) {
	e, _ := loadValid(b).Lookup("openai", "gpt-4o-mini", now)
	var u usage.Usage
	u.Set(usage.Input, 1000)
	u.Set(usage.CacheRead, 500)
	u.Set(usage.Output, 200)
	u.Set(usage.Reasoning, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Cost(&u, CostOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// Every step of Cost at once: a context tier, a service-tier multiplier, a
// request fee, audio seconds, characters and images with a fallback.
func BenchmarkCostTiersUnits(b *testing.B) {
	c, err := Parse("c.yaml", []byte(`models:
  - name: everything
    source: s
    as_of: 2026-11-01
    prices: {input: 1.25, cache_read: 0.31, output: 10, audio_input: 1.25, image_input: 1.25}
    units:
      request: 0.001
      audio_second: 0.0001
      characters_1k: 0.015
      image: {"1024x1024/hd": 0.08, "1024x1024": 0.04, default: 0.02}
    context_tiers:
      - above_input_tokens: 128000
        prices: {input: 2, output: 12}
      - above_input_tokens: 200000
        prices: {input: 2.50, cache_read: 0.625, output: 15}
    service_tiers:
      batch: {multiplier: 0.5}
`))
	if err != nil {
		b.Fatal(err)
	}
	e, _ := c.Lookup("", "everything", now)
	var u usage.Usage
	u.Set(usage.Input, 150_000)
	u.Set(usage.CacheRead, 60_000)
	u.Set(usage.AudioInput, 1000)
	u.Set(usage.Output, 2000)
	u.Set(usage.Reasoning, 500)
	u.SetUnit(usage.AudioMillis, 61_001)
	u.SetUnit(usage.Characters, 1500)
	u.SetUnit(usage.Images, 2)
	u.ImageSize, u.ImageQuality = "1024x1024", "standard"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Cost(&u, CostOptions{ServiceTier: "batch"}); err != nil {
			b.Fatal(err)
		}
	}
}
