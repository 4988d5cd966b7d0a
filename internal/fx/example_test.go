package fx_test

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

func Example() {
	const config = `
rates:
  - {from: EUR, to: USD, rate: "1.0834", effective_from: 2026-11-01T00:00:00Z, source: "ECB reference rate"}
  - {from: EUR, to: USD, rate: "1.1012", effective_from: 2026-12-01T00:00:00Z, source: "ECB reference rate"}
`
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(config), &doc); err != nil {
		panic(err)
	}
	rates, err := fx.ParseRates("fx.yaml", &doc)
	if err != nil {
		panic(err)
	}
	table, err := fx.NewTable(rates)
	if err != nil {
		panic(err)
	}

	// A statement in USD: each request is converted at its own start, then summed.
	requests := []struct {
		cost  money.Amount
		start time.Time
	}{
		{money.MustParse("12.50"), time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC)},
		{money.MustParse("12.50"), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
	}
	var total money.Amount
	for _, r := range requests {
		usd, rate, err := table.Convert(r.cost, "EUR", "USD", r.start)
		if err != nil {
			panic(err)
		}
		fmt.Printf("€%s at %s (%s) = $%s\n", r.cost, rate.Rate, rate.Source, usd)
		total += usd
	}
	fmt.Printf("total $%s, shown as $%s\n", total, total.Fixed(money.USD.MinorUnits()))

	// Dollars back to euros uses the EUR→USD rate inverted.
	eur, _, _ := table.Convert(money.MustParse("10.834"), "USD", "EUR", requests[0].start)
	fmt.Printf("$10.834 = €%s\n", eur)

	_, _, err = table.Convert(1, "EUR", "JPY", requests[0].start)
	fmt.Println(err)
	// Output:
	// €12.5 at 1.0834 (ECB reference rate) = $13.5425
	// €12.5 at 1.1012 (ECB reference rate) = $13.765
	// total $27.3075, shown as $27.31
	// $10.834 = €10
	// fx: no exchange rate from EUR to JPY at 2026-11-30T23:59:59Z: configure EUR to JPY or JPY to EUR
}
