package alerting_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

type sent struct{ alerts []webhook.Alert }

func (s *sent) Send(a webhook.Alert) bool { s.alerts = append(s.alerts, a); return true }

// Thresholds fire once per key and window, the highest when several were
// crossed between two checks, and again in the next window.
func TestThresholds(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l := ratelimit.New([]ratelimit.Budget{{
		Name: "team", Match: []ratelimit.Match{{Dimension: "team", Value: ratelimit.Wildcard}},
		Unit: ratelimit.Money, Limit: int64(money.MustParse("10")), Window: ratelimit.Day, Currency: "EUR",
		AlertAt: []int{50, 80, 100},
	}}, store, ratelimit.Options{Now: clock, Currency: "EUR"})
	out := &sent{}
	w := alerting.New(alerting.Options{Limiter: func() *ratelimit.Limiter { return l }, Sender: out, Now: clock})
	ctx := context.Background()
	d := attribution.Dimensions{Names: []string{"team"}, Values: []string{"search"}}
	spend := func(amount string) {
		t.Helper()
		r, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Money: money.MustParse("0.01")})
		if err != nil || den != nil {
			t.Fatal(den, err)
		}
		if err := l.Settle(ctx, r, ratelimit.Amounts{Money: money.MustParse(amount)}); err != nil {
			t.Fatal(err)
		}
		if err := w.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	spend("4.999999999") // 49.99999999%: nothing
	spend("0.000000001") // exactly 50%
	spend("1")           // 60%: 50 was sent already
	spend("4.5")         // 105%: 80 and 100 crossed at once; only 100 is sent
	if err := w.Check(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(24 * time.Hour) // a new day, a new window
	spend("5")
	want := []struct {
		pct   int
		spent string
		start time.Time
	}{
		{50, "5", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)},
		{100, "10.5", time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)},
		{50, "5", time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
	}
	if len(out.alerts) != len(want) {
		t.Fatalf("alerts: %+v", out.alerts)
	}
	for i, w := range want {
		a := out.alerts[i]
		if a.Threshold != w.pct || a.Spent != w.spent || a.Limit != "10" || a.Currency != "EUR" || a.CounterKey != "team=search" ||
			!a.WindowStart.Equal(w.start) || !a.WindowEnd.Equal(w.start.Add(24*time.Hour)) || a.Kind != webhook.KindBudgetThreshold {
			t.Errorf("alert %d: %+v, want %d%% at %s", i, a, w.pct, w.spent)
		}
	}
	if out.alerts[0].Message != "Budget team has used 50% of its money limit for team=search this day." {
		t.Errorf("message %q", out.alerts[0].Message)
	}
}

type countingClaims struct{ asked map[string]int }

func (c *countingClaims) Claim(_ context.Context, key string, _ time.Time) (bool, error) {
	c.asked[key]++
	return c.asked[key] == 1, nil
}

// A crossed threshold is asked of the store once, not on every check.
func TestClaimsAskedOnce(t *testing.T) {
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l := ratelimit.New([]ratelimit.Budget{{Name: "b", Unit: ratelimit.Tokens, Limit: 10, Window: ratelimit.Day, AlertAt: []int{50}}},
		store, ratelimit.Options{Now: clock})
	ctx := context.Background()
	r, _, err := l.Reserve(ctx, attribution.Dimensions{}, ratelimit.Amounts{Tokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, r, ratelimit.Amounts{Tokens: 6}); err != nil {
		t.Fatal(err)
	}
	claims := &countingClaims{asked: map[string]int{}}
	out := &sent{}
	w := alerting.New(alerting.Options{Limiter: func() *ratelimit.Limiter { return l }, Sender: out, Claimer: claims, Now: clock})
	for i := 0; i < 5; i++ {
		if err := w.Check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.alerts) != 1 || len(claims.asked) != 1 {
		t.Fatalf("%d alerts, claims asked %v", len(out.alerts), claims.asked)
	}
	for k, n := range claims.asked {
		if n != 1 {
			t.Fatalf("%s asked %d times", k, n)
		}
	}
}
