package pricing_test

import (
	"fmt"
	"log"

	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/usage"
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

	// The dated snapshot the provider reports falls back to the undated price.
	entry, ok := catalog.Lookup("openai", "gpt-4o-mini-2024-07-18")
	if !ok {
		fmt.Println("unpriced")
		return
	}
	var u usage.Usage
	u.Set(usage.Input, 1000)
	u.Set(usage.CacheRead, 500)
	u.Set(usage.Output, 200)
	cost, err := entry.Cost(&u)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(entry.Name, cost, catalog.Currency())

	_, ok = catalog.Lookup("openai", "gpt-5")
	fmt.Println("gpt-5 priced:", ok)
	// Output:
	// gpt-4o-mini 0.0003075 USD
	// gpt-5 priced: false
}
