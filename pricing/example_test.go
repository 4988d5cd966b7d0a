package pricing_test

import (
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
)

func ExampleCatalog_Lookup() {
	catalog, err := pricing.Parse("prices.yaml", []byte(`
currency: USD
models:
  - name: gpt-4o-mini
    provider: openai
    source: https://openai.com/api/pricing
    as_of: 2026-11-01
    prices:
      input: 0.15
      cache_read: 0.075
      output: 0.60
`))
	if err != nil {
		log.Fatal(err)
	}
	start := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC) // when the request started

	// The dated snapshot the provider reports falls back to the undated price.
	entry, ok := catalog.Lookup("openai", "gpt-4o-mini-2024-07-18", start)
	if !ok {
		fmt.Println("unpriced")
		return
	}
	var u usage.Usage
	u.Set(usage.Input, 1000)
	u.Set(usage.CacheRead, 500)
	u.Set(usage.Output, 200)
	cost, err := entry.Cost(&u, pricing.CostOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(entry.Name, cost, catalog.Currency())

	_, ok = catalog.Lookup("openai", "gpt-5", start)
	fmt.Println("gpt-5 priced:", ok)
	// Output:
	// gpt-4o-mini 0.0003075 USD
	// gpt-5 priced: false
}

// A price change on a date, a long-context tier, a batch discount and a
// per-image price, each priced exactly.
func ExampleEntry_Cost() {
	catalog, err := pricing.Parse("prices.yaml", []byte(`
currency: USD
models:
  - name: gemini-2.5-pro
    match: ["gemini-2.5-pro-*"]
    source: https://ai.google.dev/gemini-api/docs/pricing
    as_of: 2026-11-01
    prices: {input: 1.25, cache_read: 0.31, output: 10}
    context_tiers:
      - above_input_tokens: 200000
        prices: {input: 2.50, cache_read: 0.625, output: 15}
    service_tiers:
      batch: {multiplier: 0.5}
  - name: gemini-2.5-pro
    effective_from: 2027-01-01T00:00:00Z
    source: https://ai.google.dev/gemini-api/docs/pricing
    as_of: 2026-12-01
    prices: {input: 1.00, output: 8}
  - name: dall-e-3
    source: https://openai.com/api/pricing
    as_of: 2026-11-01
    prices: {input: 0, output: 0}
    units:
      image: {"1024x1024/standard": 0.04, "1024x1024/hd": 0.08, "1792x1024": 0.12}
`))
	if err != nil {
		log.Fatal(err)
	}
	dec := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	jan := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

	var long usage.Usage
	long.Set(usage.Input, 200_001) // one token above the tier
	long.Set(usage.Output, 1000)
	e, _ := catalog.Lookup("google", "gemini-2.5-pro-preview-06-05", dec) // a glob
	standard, _ := e.Cost(&long, pricing.CostOptions{})
	batch, _ := e.Cost(&long, pricing.CostOptions{ServiceTier: "batch"})
	fmt.Println("December:", standard, "batch:", batch)

	e, _ = catalog.Lookup("google", "gemini-2.5-pro", jan) // the new price, from midnight
	january, _ := e.Cost(&long, pricing.CostOptions{})
	_, err = e.Cost(&long, pricing.CostOptions{ServiceTier: "priority"})
	fmt.Println("January:", january, "priority flagged:", errors.Is(err, pricing.ErrUnknownServiceTier))

	var img usage.Usage
	img.SetUnit(usage.Images, 2)
	img.ImageSize, img.ImageQuality = "1792x1024", "hd" // no 1792x1024/hd: the size price applies
	e, _ = catalog.Lookup("openai", "dall-e-3", jan)
	images, _ := e.Cost(&img, pricing.CostOptions{})
	fmt.Println("two images:", images)
	// Output:
	// December: 0.5150025 batch: 0.25750125
	// January: 0.208001 priority flagged: true
	// two images: 0.24
}
