// Package ledgergen generates varied usage records for tests of the
// ledger stores: several currencies (converted at a record's own rate, or
// not convertible), every outcome, dimension lists in another order or
// missing, unpriced and fallback records, and starts on and around hour and
// day boundaries. It imports no store, so every store's tests (and the
// conformance suite, usagedb/ledgertest) can use it.
package ledgergen

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Dims are the dimension names generated records carry (most of them: some
// carry another order, or none).
var Dims = []string{"project", "team", "user"}

// The exchange rates records are converted at.
var (
	USDEUR = fx.Rate{From: money.USD, To: "EUR", Rate: fx.MustParseDecimal("0.9183"), EffectiveFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Source: "ECB"}
	GBPUSD = fx.Rate{From: "GBP", To: money.USD, Rate: fx.MustParseDecimal("1.27"), EffectiveFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Source: "BoE"}
)

var models = []struct{ provider, dialect, model string }{
	{"openai", "openai_chat", "gpt-4o"},
	{"openai", "openai_responses", "o3"},
	{"anthropic", "anthropic_messages", "claude-sonnet-4"},
	{"google", "gemini", "gemini-2.5-pro"},
	{"bedrock", "bedrock_converse", "nova-pro"},
}

var outcomes = []ledger.Outcome{ledger.OK, ledger.OK, ledger.OK, ledger.OK, ledger.Denied, ledger.UpstreamError,
	ledger.Partial, ledger.Estimated, ledger.Unmetered, ledger.ProviderError, ledger.Unobserved, ledger.GateTimeout}

// Record makes a record starting at start with varied attribution,
// models, outcomes, usage and currencies, including the awkward cases: a
// dimension list in another order or missing one, a reporting currency
// without a usable rate, unpriced and fallback records.
func Record(rng *rand.Rand, start time.Time, i int) *ledger.Record {
	m := models[rng.IntN(len(models))]
	r := &ledger.Record{
		RequestID: fmt.Sprintf("req-%06d", i), Start: start,
		Duration: time.Duration(rng.Int64N(int64(30 * time.Second))), TTFT: time.Duration(rng.Int64N(int64(time.Second))),
		Dimensions: attribution.Dimensions{Names: Dims, Values: []string{
			fmt.Sprintf("p%d", rng.IntN(7)), fmt.Sprintf("t%d", rng.IntN(3)), fmt.Sprintf("u%d", rng.IntN(5))}},
		Provider: m.provider, Dialect: m.dialect, Model: m.model, Status: 200, Stream: rng.IntN(2) == 0,
		Outcome: outcomes[rng.IntN(len(outcomes))], Priced: true, Currency: money.USD,
	}
	switch rng.IntN(10) {
	case 0:
		r.Dimensions = attribution.Dimensions{Names: []string{"user", "project"}, Values: []string{r.Dimensions.Values[2], r.Dimensions.Values[0]}}
	case 1:
		r.Dimensions = attribution.Dimensions{}
	}
	switch rng.IntN(4) {
	case 0:
		r.ResponseModel = m.model + "-2026-01-01"
	case 1:
		r.PricedModel = m.model
	}
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		if rng.IntN(3) == 0 {
			r.Usage.Tokens[c] = usage.Count{N: rng.Int64N(200_000), Reported: rng.IntN(4) != 0}
		}
	}
	if rng.IntN(8) == 0 {
		r.Usage.SetUnit(usage.Images, rng.Int64N(4))
		r.Usage.SetUnit(usage.AudioMillis, rng.Int64N(100_000))
	}
	r.ListCost = money.Amount(rng.Int64N(5 * money.Scale))
	r.Cost = r.ListCost
	if rng.IntN(5) == 0 {
		r.Cost = r.ListCost * 9 / 10
		r.Adjustment = "enterprise-discount"
	}
	switch rng.IntN(12) {
	case 0:
		r.Priced, r.ListCost, r.Cost, r.Reason = false, 0, 0, "unpriced_model"
	case 1:
		r.Fallback, r.Reason = true, "fallback_price"
	}
	// Clients repeat their ids, and Envoy's are UUIDs; derived from i,
	// not drawn, so the random stream (and every figure from it) is as before.
	switch i % 3 {
	case 0:
		r.ClientRequestID = fmt.Sprintf("client-%d", i%50)
	case 1:
		r.ClientRequestID = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	}
	setCurrency(rng, r)
	return r
}

func setCurrency(rng *rand.Rand, r *ledger.Record) {
	switch rng.IntN(6) {
	case 0: // no reporting currency configured
	case 1, 2: // reported in EUR at the record's own rate
		tbl, _ := fx.NewTable([]fx.Rate{USDEUR})
		r.ReportingCost, r.FX, _ = tbl.Convert(r.Cost, money.USD, "EUR", r.Start)
		r.ReportingCurrency = "EUR"
	case 3: // a GBP catalog reported in USD, the rate used inverted
		r.Currency = "GBP"
		tbl, _ := fx.NewTable([]fx.Rate{GBPUSD})
		r.ReportingCost, r.FX, _ = tbl.Convert(r.Cost, "GBP", money.USD, r.Start)
		r.ReportingCurrency = money.USD
	case 4: // a reporting currency but no usable rate: reported in USD
		r.ReportingCurrency, r.ReportingCost = "EUR", r.Cost
	default:
		r.ReportingCurrency, r.ReportingCost = money.USD, r.Cost
	}
}

// Month spreads n records over the month starting at start, a fifth
// of them on or one nanosecond before an hour or a day boundary.
func Month(seed uint64, n int, start time.Time) []*ledger.Record {
	rng := rand.New(rand.NewPCG(seed, seed))
	month := start.AddDate(0, 1, 0).Sub(start)
	recs := make([]*ledger.Record, n)
	for i := range recs {
		off := time.Duration(rng.Int64N(int64(month)))
		switch rng.IntN(10) {
		case 0:
			off = off.Truncate(time.Hour)
		case 1:
			off = off.Truncate(time.Hour) - 1
		case 2:
			off = off.Truncate(30 * time.Minute) // Kolkata's midnight is :30 UTC
		}
		recs[i] = Record(rng, start.Add(max(off, 0)), i)
	}
	return recs
}

// ExpectedMoney is what a record contributes in its reporting currency,
// worked out from the fx package directly.
func ExpectedMoney(r *ledger.Record) (money.Currency, money.Amount, money.Amount) {
	if r.ReportingCurrency == "" {
		return r.Currency, r.Cost, r.ListCost
	}
	if r.ReportingCurrency == r.Currency {
		return r.Currency, r.ReportingCost, r.ListCost
	}
	tbl, err := fx.NewTable([]fx.Rate{r.FX})
	if err != nil {
		return r.Currency, r.Cost, r.ListCost
	}
	list, _, err := tbl.Convert(r.ListCost, r.Currency, r.ReportingCurrency, r.Start)
	if err != nil {
		return r.Currency, r.Cost, r.ListCost
	}
	return r.ReportingCurrency, r.ReportingCost, list
}
