package storetest

import (
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

func dims(project, user string) attribution.Dimensions {
	return attribution.Dimensions{Names: []string{"project", "user"}, Values: []string{project, user}}
}

// Through the Limiter: a refusal on one budget leaves the others untouched,
// and wildcard keys are separate counters.
func testLimiterAllOrNone(t *testing.T, f *fixture) {
	budgets := []ratelimit.Budget{
		{Name: "project", Match: []ratelimit.Match{{Dimension: "project", Value: "demo"}}, Unit: ratelimit.Money, Limit: int64(money.MustParse("1")), Window: ratelimit.Day},
		{Name: "per-user", Match: []ratelimit.Match{{Dimension: "user", Value: ratelimit.Wildcard}}, Unit: ratelimit.Tokens, Limit: 100, Window: ratelimit.Day},
	}
	l := ratelimit.New(budgets, f.s, ratelimit.Options{Now: f.clk.Now})
	ctx := f.ctx

	_, den, err := l.Reserve(ctx, dims("demo", "ann"), ratelimit.Amounts{Money: money.MustParse("0.5"), Tokens: 101})
	if err != nil || den == nil || den.Budget.Name != "per-user" || den.Key != "user=ann" {
		t.Fatalf("want per-user denial for ann, got %+v %v", den, err)
	}
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Counter.Reserved != 0 {
			t.Fatalf("partial reservation left on %s/%s: %+v", s.Budget.Name, s.Key, s.Counter)
		}
	}
	r, den, err := l.Reserve(ctx, dims("demo", "bob"), ratelimit.Amounts{Money: money.MustParse("0.5"), Tokens: 100})
	if err != nil || den != nil {
		t.Fatalf("bob: %v %v", den, err)
	}
	if err := l.Settle(ctx, r, ratelimit.Amounts{Money: money.MustParse("0.25"), Tokens: 40}); err != nil {
		t.Fatal(err)
	}
	got := map[string]ratelimit.Counter{}
	if st, err = l.Status(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Counter != (ratelimit.Counter{}) {
			got[s.Budget.Name+"/"+s.Key] = s.Counter
		}
	}
	want := map[string]ratelimit.Counter{
		"project/project=demo": {Spent: int64(money.MustParse("0.25"))},
		"per-user/user=bob":    {Spent: 40},
	}
	if len(got) != len(want) {
		t.Fatalf("status = %+v, want %+v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("%s = %+v, want %+v", k, got[k], w)
		}
	}
	if den, err := l.Precheck(ctx, dims("other", "ann")); err != nil || den != nil {
		t.Fatalf("unmatched project: %v %v", den, err)
	}
}

// Through the Limiter: a reservation whose request never settles is released
// when its lease expires, and a settle after that still charges without
// releasing twice.
func testLimiterLeaseExpires(t *testing.T, f *fixture) {
	l := ratelimit.New([]ratelimit.Budget{{Name: "b", Unit: ratelimit.Tokens, Limit: 100, Window: ratelimit.Month}}, f.s,
		ratelimit.Options{Now: f.clk.Now, LeaseTTL: time.Minute})
	ctx := f.ctx
	d := dims("p", "u")
	leaked, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Tokens: 80})
	if err != nil || den != nil {
		t.Fatal(den, err)
	}
	if _, den, _ := l.Reserve(ctx, d, ratelimit.Amounts{Tokens: 30}); den == nil {
		t.Fatal("80 held + 30 > 100 was admitted")
	}
	f.clk.Set(t0.Add(time.Minute + 2*time.Second))
	if den, err := l.Precheck(ctx, d); err != nil || den != nil {
		t.Fatalf("precheck after the lease expired: %v %v", den, err)
	}
	r, den, err := l.Reserve(ctx, d, ratelimit.Amounts{Tokens: 30})
	if err != nil || den != nil {
		t.Fatalf("after the lease expired: %v %v", den, err)
	}
	if err := l.Settle(ctx, leaked, ratelimit.Amounts{Tokens: 50}); err != nil {
		t.Fatal(err)
	}
	h := month("b", "all", 100, 0)
	f.want([]ratelimit.Hold{h}, ratelimit.Counter{Spent: 50, Reserved: 30})
	if err := l.Settle(ctx, r, ratelimit.Amounts{Tokens: 30}); err != nil {
		t.Fatal(err)
	}
	f.want([]ratelimit.Hold{h}, ratelimit.Counter{Spent: 80})
}
