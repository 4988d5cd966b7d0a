package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

// A money budget in another currency than the catalog's is charged the
// converted amount, at the rate in force when the request was admitted; the
// settlement uses the same instant even when the rate changes before it.
func TestBudgetInOtherCurrency(t *testing.T) {
	switchAt := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	table, err := fx.NewTable([]fx.Rate{
		{From: "EUR", To: "USD", Rate: fx.MustParseDecimal("1.25"), EffectiveFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Source: "test"},
		{From: "EUR", To: "USD", Rate: fx.MustParseDecimal("2"), EffectiveFrom: switchAt, Source: "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := switchAt.Add(-time.Second)
	clock := func() time.Time { return now }
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l := ratelimit.New([]ratelimit.Budget{
		{Name: "eur", Unit: ratelimit.Money, Limit: int64(money.MustParse("1")), Currency: "EUR", Window: ratelimit.Month},
		{Name: "usd", Unit: ratelimit.Money, Limit: int64(money.MustParse("1")), Currency: "USD", Window: ratelimit.Month},
	}, store, ratelimit.Options{Now: clock, Currency: "USD", FX: table})
	ctx := context.Background()
	d := attribution.Dimensions{}

	// $1.00 reserved is €0.80 at 1.25 and $1.00 on the USD budget.
	r, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Money: money.MustParse("1")})
	if err != nil || den != nil {
		t.Fatal(den, err)
	}
	st := status(t, l)
	if st["eur"].Reserved != int64(money.MustParse("0.8")) || st["usd"].Reserved != int64(money.MustParse("1")) {
		t.Fatalf("reserved: %+v", st)
	}
	// The rate doubles before the request ends; it settles at admission's rate:
	// $0.30 is €0.24.
	now = switchAt.Add(time.Second)
	if err := l.Settle(ctx, r, ratelimit.Amounts{Money: money.MustParse("0.3")}); err != nil {
		t.Fatal(err)
	}
	// December's window: the November counters are not shown; read them directly.
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for name, want := range map[string]ratelimit.Counter{"eur": {Spent: int64(money.MustParse("0.24"))}, "usd": {Spent: int64(money.MustParse("0.3"))}} {
		c, err := store.Get(ctx, ratelimit.Hold{ID: ratelimit.CounterID{Budget: name, Key: "all", Start: nov}})
		if err != nil || c != want {
			t.Fatalf("%s: %+v %v, want %+v", name, c, err, want)
		}
	}
	// In December €1 is $2: $2.00 fits the EUR budget exactly, but not the USD one.
	_, den, err = l.Reserve(ctx, d, ratelimit.Amounts{Money: money.MustParse("2")})
	if err != nil || den == nil || den.Budget.Name != "usd" {
		t.Fatalf("want the usd budget to refuse $2: %v %v", den, err)
	}
}

func status(t *testing.T, l *ratelimit.Limiter) map[string]ratelimit.Counter {
	t.Helper()
	st, err := l.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ratelimit.Counter{}
	for _, s := range st {
		out[s.Budget.Name] = s.Counter
	}
	return out
}
