package daemon

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// The forecaster's daily history counts what the budgets counted: a request
// budget is charged only for requests whose outcome carries a charge, so a
// refusal, a gate timeout or an upstream error is not a request there.
func TestDailyCountsWhatBudgetsCharged(t *testing.T) {
	db, err := usagedb.Open(usagedb.Options{Dir: t.TempDir(), Dimensions: []string{"project"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i, o := range ledger.Outcomes {
		var u usage.Usage
		if o.Charged() {
			u.Set(usage.Input, 10)
		}
		db.Append(&ledger.Record{
			RequestID: "r" + string(rune('a'+i)), Start: day.Add(time.Duration(i) * time.Minute), Outcome: o,
			Provider: "openai", Model: "gpt-4o-mini", Currency: "USD", Priced: o.Charged(),
			Cost: money.MustParse("0.001"), ReportingCost: money.MustParse("0.001"), ReportingCurrency: "USD",
			Usage: u, Dimensions: attribution.Dimensions{Names: []string{"project"}, Values: []string{"p"}},
		})
	}
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	charged := int64(0)
	for _, o := range ledger.Outcomes {
		if o.Charged() {
			charged++
		}
	}
	got, err := ledgerHistory{db}.Daily(context.Background(), map[string]string{"project": "p"}, ratelimit.Requests,
		day, day.AddDate(0, 0, 2), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{charged, 0}; !slices.Equal(got, want) {
		t.Fatalf("daily requests %v, want %v (the %d charged outcomes of %d)", got, want, charged, len(ledger.Outcomes))
	}
}
