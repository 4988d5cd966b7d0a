package pricing

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/usage"
)

var sinkEntry *Entry

func benchLookup(b *testing.B, c *Catalog, provider, model string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		e, ok := c.Lookup(provider, model)
		if !ok {
			b.Fatalf("Lookup(%q, %q) missed", provider, model)
		}
		sinkEntry = e
	}
}

func BenchmarkLookup(b *testing.B) {
	benchLookup(b, loadValid(b), "openai", "gpt-4o-mini")
}

func BenchmarkLookupDated(b *testing.B) {
	benchLookup(b, loadValid(b), "anthropic", "claude-3-5-sonnet-20241022")
}

func BenchmarkLookupUpperCase(b *testing.B) {
	benchLookup(b, loadValid(b), "OpenAI", "GPT-4o-Mini")
}

func BenchmarkLookup2000(b *testing.B) {
	var y strings.Builder
	y.WriteString("currency: USD\nmodels:\n")
	for i := range 2000 {
		fmt.Fprintf(&y, "  - name: vendor-model-%04d\n    provider: p%d\n    source: s\n    as_of: 2026-11-01\n"+
			"    prices: {input: 0.%03d, output: 1.%03d}\n", i, i%7, i%1000, i%1000)
	}
	c, err := Parse("gen.yaml", []byte(y.String()))
	if err != nil {
		b.Fatal(err)
	}
	if c.Len() != 2000 {
		b.Fatalf("len = %d", c.Len())
	}
	const i = 1733
	benchLookup(b, c, fmt.Sprintf("p%d", i%7), fmt.Sprintf("vendor-model-%04d", i))
}

func BenchmarkCost(b *testing.B) {
	e, _ := loadValid(b).Lookup("openai", "gpt-4o-mini")
	var u usage.Usage
	u.Set(usage.Input, 1000)
	u.Set(usage.CacheRead, 500)
	u.Set(usage.Output, 200)
	u.Set(usage.Reasoning, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Cost(&u); err != nil {
			b.Fatal(err)
		}
	}
}
