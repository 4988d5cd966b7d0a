package ratelimit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

// A reservation made by one limiter (the gate) settles through its text on
// another over the same store (the observer, perhaps another replica, perhaps
// after a reload that dropped a budget): the counters end exactly as if the
// first had settled it.
func TestReservationHandoff(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	budgets := []ratelimit.Budget{
		{Name: "money, team", Unit: ratelimit.Money, Limit: int64(money.MustParse("10")), Window: ratelimit.Month,
			Match: []ratelimit.Match{{Dimension: "team", Value: ratelimit.Wildcard}}},
		{Name: "tokens", Unit: ratelimit.Tokens, Limit: 1000, Window: ratelimit.Day},
		{Name: "in flight", Unit: ratelimit.Concurrent, Limit: 5, Window: ratelimit.Total},
		{Name: "ever", Unit: ratelimit.Requests, Limit: 100, Window: ratelimit.Total}, // its counter starts at the epoch
		{Name: "rpm", Unit: ratelimit.Requests, Limit: 60, Rolling: time.Minute},
	}
	gate := ratelimit.New(budgets, store, ratelimit.Options{Now: clock, Currency: "USD"})
	d := attribution.Dimensions{Names: []string{"team"}, Values: []string{"a b,c=%d"}}
	ctx := context.Background()

	r, den, err := gate.Reserve(ctx, d, ratelimit.Amounts{Money: money.MustParse("0.5"), Tokens: 300, Requests: 1})
	if err != nil || den != nil {
		t.Fatal(den, err)
	}
	text := r.Text()
	if strings.ContainsAny(text, "\n\t") || len(text) > 1024 {
		t.Fatalf("text %q", text)
	}

	for _, tc := range []struct {
		name     string
		budgets  []ratelimit.Budget
		settle   ratelimit.Amounts
		release  bool
		want     map[string]ratelimit.Counter
		wantKeys int
	}{
		{name: "settle on the same configuration", budgets: budgets,
			settle: ratelimit.Amounts{Money: money.MustParse("0.123"), Tokens: 120, Requests: 1},
			want: map[string]ratelimit.Counter{"money, team": {Spent: int64(money.MustParse("0.123"))}, "tokens": {Spent: 120},
				"in flight": {}, "rpm": {Spent: 1}, "ever": {Spent: 1}}},
		// The observer's configuration lost two budgets: their holds still
		// settle, in the unit they were admitted in.
		{name: "settle after a reload removed budgets", budgets: budgets[:1],
			settle: ratelimit.Amounts{Money: money.MustParse("0.2"), Tokens: 80, Requests: 1},
			want:   map[string]ratelimit.Counter{"money, team": {Spent: int64(money.MustParse("0.323"))}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "settle on the same configuration" {
				// A second request, reserved the same way.
				r, den, err = gate.Reserve(ctx, d, ratelimit.Amounts{Money: money.MustParse("0.5"), Tokens: 300, Requests: 1})
				if err != nil || den != nil {
					t.Fatal(den, err)
				}
				text = r.Text()
			}
			observer := ratelimit.New(tc.budgets, store, ratelimit.Options{Now: clock, Currency: "USD"})
			got, err := observer.UnmarshalReservation(text)
			if err != nil {
				t.Fatal(err)
			}
			if err := observer.Settle(ctx, got, tc.settle); err != nil {
				t.Fatal(err)
			}
			st := status(t, gate)
			for name, want := range tc.want {
				if st[name] != want {
					t.Errorf("%s: %+v, want %+v", name, st[name], want)
				}
			}
		})
	}
	// Tokens: 120 + 80, nothing held; the concurrency slot is free again.
	st := status(t, gate)
	if st["tokens"] != (ratelimit.Counter{Spent: 200}) || st["in flight"] != (ratelimit.Counter{}) || st["rpm"] != (ratelimit.Counter{Spent: 2}) ||
		st["ever"] != (ratelimit.Counter{Spent: 2}) {
		t.Fatalf("after both: %+v", st)
	}
}

func TestUnmarshalReservationErrors(t *testing.T) {
	l := ratelimit.New(nil, nil, ratelimit.Options{})
	if r, err := l.UnmarshalReservation(""); err != nil || r == nil {
		t.Fatalf("empty: %v %v", r, err)
	}
	for _, text := range []string{
		"v2 id 1 2",
		"v1 id 1",
		"v1 %zz 1 2",
		"v1 id x 2",
		"v1 id 1 2 b,k,9,USD,1,0,2,10,1",  // unknown unit
		"v1 id 1 2 b,k,0,USD,1,0,2,10",    // 8 fields
		"v1 id 1 2 b,k,0,USD,1,0,2,10,-1", // negative amount
		"v1 id 1 2 b,%zz,0,USD,1,0,2,10,1",
		"v1 id 1 2 b,k,0,USD,1,0,x,10,1",
	} {
		if _, err := l.UnmarshalReservation(text); !errors.Is(err, ratelimit.ErrBadReservation) {
			t.Errorf("%q: %v, want ErrBadReservation", text, err)
		}
	}
}

// FuzzUnmarshalReservation: whatever Envoy hands the observer, decoding
// returns a reservation or an error, never a panic, and what decodes
// re-encodes to something that decodes the same.
func FuzzUnmarshalReservation(f *testing.F) {
	f.Add("v1 abc-1 1795000000000000000 1795000000000000000 b,k,0,USD,1793491200000000000,0,1796083200000000000,100,5")
	f.Add("v1 id - 0 a%2Cb,team%3Dx,3,,0,-,-,5,1 c,+,1,EUR,1,2,3,4,5")
	f.Add("")
	l := ratelimit.New([]ratelimit.Budget{{Name: "b", Unit: ratelimit.Money, Limit: 100}}, nil, ratelimit.Options{})
	f.Fuzz(func(t *testing.T, text string) {
		r, err := l.UnmarshalReservation(text)
		if err != nil {
			return
		}
		again := r.Text()
		r2, err := l.UnmarshalReservation(again)
		if err != nil {
			t.Fatalf("%q re-encoded as %q: %v", text, again, err)
		}
		if third := r2.Text(); third != again {
			t.Fatalf("%q then %q", again, third)
		}
	})
}
