package alerting_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

type history struct {
	daily   map[string][]int64 // by project
	groups  map[string][]int64
	lastLen int
}

func (h *history) Daily(_ context.Context, filter map[string]string, _ ratelimit.Unit, from, to time.Time, _ *time.Location) ([]int64, error) {
	h.lastLen = int(to.Sub(from) / (24 * time.Hour))
	return h.daily[filter["project"]], nil
}

func (h *history) DailyByGroup(context.Context, []string, time.Time, time.Time, *time.Location) (map[string][]int64, error) {
	return maps.Clone(h.groups), nil
}

func usd(s string) int64 { return int64(money.MustParse(s)) }

// Month-end projections from the run rate of the last full days, an alert
// once when one passes the limit, and spikes against a trailing median.
func TestForecastsAndAnomalies(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) // 8.5 days left in November
	clock := func() time.Time { return now }
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l := ratelimit.New([]ratelimit.Budget{{
		Name: "monthly", Match: []ratelimit.Match{{Dimension: "project", Value: ratelimit.Wildcard}},
		Unit: ratelimit.Money, Limit: usd("100"), Window: ratelimit.Month, Currency: "USD",
	}}, store, ratelimit.Options{Now: clock, Currency: "USD"})
	ctx := context.Background()
	for project, spent := range map[string]string{"steady": "60", "young": "30", "new": "60"} {
		d := attribution.Dimensions{Names: []string{"project"}, Values: []string{project}}
		r, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Money: 1})
		if err != nil || den != nil {
			t.Fatal(den, err)
		}
		if err := l.Settle(ctx, r, ratelimit.Amounts{Money: money.MustParse(spent)}); err != nil {
			t.Fatal(err)
		}
	}
	five, ten := usd("5"), usd("10")
	h := &history{
		daily: map[string][]int64{
			"steady": {five, five, five, five, five, five, five}, // $5 a day
			"young":  {0, 0, 0, 0, 0, ten, ten},                  // two days old: $10 a day, not $20/7
			"new":    {},                                         // nothing yet: the window's own average
		},
		groups: map[string][]int64{
			"project=alpha": {usd("1"), usd("1"), usd("1"), usd("2"), usd("1"), usd("1"), usd("1"), usd("6")}, // 6 > 3 × median 1
			"project=beta":  {usd("1"), usd("1"), usd("1"), usd("1"), usd("1"), usd("1"), usd("1"), usd("3")}, // 3 is not > 3 × 1
			"project=gamma": {0, 0, 0, 0, 0, 0, 0, usd("4")},                                                  // under the $5 minimum
		},
	}
	out := &sent{}
	w := alerting.New(alerting.Options{Limiter: func() *ratelimit.Limiter { return l }, Sender: out, Now: clock, Currency: "USD"})
	f := alerting.NewForecaster(w, h, &alerting.Anomaly{GroupBy: []string{"project"}, Factor: money.MustParse("3"), BaselineDays: 7, MinSpend: money.MustParse("5")}, "USD")
	for i := 0; i < 2; i++ { // the second check sends nothing new
		if err := f.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if h.lastLen != alerting.RunRateDays {
		t.Fatalf("asked for %d days of history, want %d", h.lastLen, alerting.RunRateDays)
	}
	got := map[string]int64{}
	for _, fc := range f.Forecasts() {
		got[fc.Key] = fc.Projected
	}
	want := map[string]int64{
		"project=steady": usd("102.5"), // 60 + 5 × 8.5
		"project=young":  usd("115"),   // 30 + 10 × 8.5
		// 60 over the 21.5 days elapsed, × 8.5 left: 60 + 23.720930232 (truncated once).
		"project=new": usd("83.720930232"),
	}
	if !maps.Equal(got, want) {
		t.Fatalf("forecasts %v, want %v", got, want)
	}
	kinds := map[string][]string{}
	for _, a := range out.alerts {
		kinds[a.Kind] = append(kinds[a.Kind], a.CounterKey)
	}
	if len(out.alerts) != 3 || len(kinds[webhook.KindProjectedOverrun]) != 2 || len(kinds[webhook.KindAnomaly]) != 1 || kinds[webhook.KindAnomaly][0] != "project=alpha" {
		t.Fatalf("alerts %+v", out.alerts)
	}
	for _, a := range out.alerts {
		if a.Kind == webhook.KindAnomaly && (a.Spent != "6" || a.Limit != "1") {
			t.Fatalf("anomaly alert %+v", a)
		}
		if a.Kind == webhook.KindProjectedOverrun && a.CounterKey == "project=steady" &&
			a.Message != "Budget monthly for project=steady is projected to reach 102.5 by the end of its month (limit 100), at the run rate of the last 7 days." {
			t.Fatalf("message %q", a.Message)
		}
	}
}
