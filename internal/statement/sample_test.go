package statement

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// The sample month: project atlas in November 2026, Brussels time, billed
// in EUR from a USD catalog, for two legal entities with VAT of their own
// (the UK rate changes mid-month). docs/statement-sample.* are this
// statement (TestSampleDocument).
var (
	brussels    = mustLoad("Europe/Brussels")
	sampleMonth = time.Date(2026, 11, 1, 0, 0, 0, 0, brussels)
	sampleNow   = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	sampleDims  = []string{"project", "entity"}
)

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func sampleRates() []fx.Rate {
	return []fx.Rate{
		{From: "USD", To: "EUR", Rate: fx.MustParseDecimal("0.92"), EffectiveFrom: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
			Source: "ECB euro reference rate, 2026-09-30"},
		{From: "USD", To: "EUR", Rate: fx.MustParseDecimal("0.9315"), EffectiveFrom: time.Date(2026, 11, 16, 0, 0, 0, 0, brussels),
			Source: "ECB euro reference rate, 2026-11-13"},
		{From: "USD", To: "EUR", Rate: fx.MustParseDecimal("0.95"), EffectiveFrom: time.Date(2026, 12, 1, 0, 0, 0, 0, brussels),
			Source: "ECB euro reference rate, 2026-11-30"},
	}
}

func sampleSettings(t testing.TB) Settings {
	tab, err := fx.NewTable(sampleRates())
	if err != nil {
		t.Fatal(err)
	}
	return Settings{
		Issuer: "Example Platform SA, Platform engineering", FX: tab, Currency: "EUR",
		Tax: []TaxRule{
			{Name: "VAT", Percent: money.MustParse("21"), Match: []ratelimit.Match{{Dimension: "entity", Value: "be"}}},
			{Name: "VAT", Percent: money.MustParse("17.5"), Match: []ratelimit.Match{{Dimension: "entity", Value: "uk"}}, Until: "2026-11-15"},
			{Name: "VAT", Percent: money.MustParse("20"), Match: []ratelimit.Match{{Dimension: "entity", Value: "uk"}}, From: "2026-11-16"},
		},
	}
}

// sampleRecord is one request of the sample ledger.
type sampleRecord struct {
	at              time.Time
	entity          string
	provider, model string
	outcome         ledger.Outcome
	usd             string // list and charged cost in USD; "" for no price
	in, out         int64
}

func at(day, hour, minute int) time.Time {
	return time.Date(2026, 11, day, hour, minute, 0, 0, brussels)
}

var sampleRecords = []sampleRecord{
	// Brussels' November starts at 23:00 UTC on October 31.
	{time.Date(2026, 10, 31, 23, 30, 0, 0, time.UTC), "be", "openai", "gpt-4o-mini", ledger.OK, "0.00108", 4200, 300},
	{at(3, 10, 0), "be", "openai", "gpt-4o-mini", ledger.OK, "0.0054", 21000, 1800},
	{at(20, 10, 0), "be", "openai", "gpt-4o-mini", ledger.Estimated, "0.000213", 900, 60},
	{at(5, 14, 12), "be", "anthropic", "claude-sonnet-4", ledger.OK, "1.234567891", 250000, 32000},
	{at(25, 9, 1), "be", "anthropic", "claude-sonnet-4", ledger.Partial, "0.5", 90000, 15000},
	{at(6, 11, 0), "be", "anthropic", "claude-sonnet-4", ledger.Denied, "", 0, 0},
	{at(7, 16, 0), "be", "openai", "gpt-4o", ledger.Denied, "", 0, 0},
	{at(7, 16, 1), "be", "openai", "gpt-4o", ledger.Denied, "", 0, 0},
	{at(8, 8, 0), "be", "openai", "mystery-model", ledger.OK, "", 1000, 200},
	{at(9, 8, 0), "be", "openai", "gpt-4o-mini", ledger.UpstreamError, "", 0, 0},
	{at(10, 12, 0), "uk", "openai", "gpt-4o-mini", ledger.OK, "0.25", 1_600_000, 20000},
	{at(15, 23, 59), "uk", "openai", "gpt-4o-mini", ledger.OK, "0.125", 800_000, 10000},
	{at(18, 12, 0), "uk", "openai", "gpt-4o-mini", ledger.OK, "0.75", 4_800_000, 60000},
	{at(30, 23, 30), "uk", "anthropic", "claude-sonnet-4", ledger.OK, "2", 500000, 33000},
	// December in Brussels (still November 30 in UTC): not on the statement.
	{time.Date(2026, 11, 30, 23, 30, 0, 0, time.UTC), "uk", "anthropic", "claude-sonnet-4", ledger.OK, "7", 1, 1},
	// Another project: not on the statement.
	{at(12, 12, 0), "zz-other", "openai", "gpt-4o-mini", ledger.OK, "3", 1, 1},
}

// record makes the ledger record of s as metering would: USD list and
// charged cost, converted to EUR with the rate in force at its start.
func (s sampleRecord) record(t testing.TB, i int, tab *fx.Table) *ledger.Record {
	project := "atlas"
	if s.entity == "zz-other" {
		project = "other"
	}
	r := &ledger.Record{
		RequestID: "sample-" + string(rune('a'+i)), Start: s.at.UTC(), Provider: s.provider, Dialect: "openai_chat", Model: s.model,
		Outcome: s.outcome, Status: 200,
		Dimensions: attribution.Dimensions{Names: sampleDims, Values: []string{project, s.entity}},
	}
	if s.outcome == ledger.Denied {
		r.Status, r.Reason, r.Budget = 0, "", "atlas-monthly"
	}
	r.Usage.Set(usage.Input, s.in)
	r.Usage.Set(usage.Output, s.out)
	if s.usd == "" {
		if s.outcome.Charged() {
			r.Reason = "unpriced_model"
		}
		return r
	}
	cost := money.MustParse(s.usd)
	eur, rate, err := tab.Convert(cost, "USD", "EUR", r.Start)
	if err != nil {
		t.Fatal(err)
	}
	r.PricedModel, r.Priced, r.Currency, r.ListCost, r.Cost = s.model, true, "USD", cost, cost
	r.ReportingCost, r.ReportingCurrency, r.FX = eur, "EUR", rate
	return r
}

// sampleLedger is an in-memory ledger holding the sample records.
func sampleLedger(t testing.TB, set Settings) (*usagedb.DB, []*ledger.Record) {
	db, err := usagedb.Open(usagedb.Options{InMemory: true, Dimensions: sampleDims,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var recs []*ledger.Record
	for i, s := range sampleRecords {
		r := s.record(t, i, set.FX)
		recs = append(recs, r)
		db.Append(r)
	}
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, recs
}

func sampleDocuments(t testing.TB) ([]Document, []*ledger.Record) {
	set := sampleSettings(t)
	db, recs := sampleLedger(t, set)
	docs, err := Build(context.Background(), db, Request{Month: sampleMonth, Dimension: "project", Value: "atlas", Location: brussels}, set, sampleNow)
	if err != nil {
		t.Fatal(err)
	}
	return docs, recs
}
