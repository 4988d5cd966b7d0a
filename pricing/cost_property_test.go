package pricing

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// exactCost is an independent reference for Entry.Cost: the same rules in
// big.Rat arithmetic, in nano-units, before rounding. ok is false where Cost
// must fail with ErrNoPrice.
func exactCost(e *Entry, u *usage.Usage, tier string) (r *big.Rat, ok bool) {
	var p int64
	for _, c := range []usage.Class{usage.Input, usage.CacheRead, usage.CacheWrite, usage.CacheWrite1h, usage.AudioInput, usage.ImageInput} {
		p += u.Tokens[c].N
	}
	level := 0
	for i, t := range e.ContextTiers {
		if p > t.AboveInputTokens {
			level = i + 1
		}
	}
	l := e.levels()[level]
	mult := big.NewRat(1, 1)
	for _, st := range e.ServiceTiers {
		if st.Name != tier {
			continue
		}
		mult = big.NewRat(int64(st.Multiplier), money.Scale)
		if st.lists != nil {
			l = st.lists[level]
		}
	}
	sum := new(big.Rat)
	add := func(n int64, price int64, per int64) {
		sum.Add(sum, new(big.Rat).Mul(big.NewRat(n, 1), big.NewRat(price, per)))
	}
	for c, n := range u.Tokens {
		if n.N > 0 && !l.has[c] {
			return nil, false
		}
		add(n.N, int64(l.prices[c]), 1_000_000)
	}
	add(1, int64(e.Units.Request), 1)
	if ms := u.Units[usage.AudioMillis].N; ms > 0 {
		if !e.Units.HasAudioSecond {
			return nil, false
		}
		add((ms+999)/1000, int64(e.Units.AudioSecond), 1)
	}
	if n := u.Units[usage.Characters].N; n > 0 {
		if !e.Units.HasCharacters1k {
			return nil, false
		}
		add(n, int64(e.Units.Characters1k), 1000)
	}
	// Images are billed per image only when no token count was reported.
	anyTokens := false
	for _, c := range u.Tokens {
		anyTokens = anyTokens || c.Reported
	}
	if n := u.Units[usage.Images].N; n > 0 && !anyTokens {
		price, ok := e.Units.imagePrice(u.ImageSize, u.ImageQuality)
		if !ok {
			return nil, false
		}
		add(n, int64(price), 1)
	}
	return sum.Mul(sum, mult), true
}

// roundHalfUp rounds a non-negative rational to whole nano-units.
func roundHalfUp(x *big.Rat) money.Amount {
	q, r := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if r.Mul(r, big.NewInt(2)).Cmp(x.Denom()) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	return money.Amount(q.Int64())
}

// randomUsage draws counts of every size class by class, a few units and an
// image spec, with zeros common.
func randomUsage(r *rand.Rand) usage.Usage {
	var u usage.Usage
	count := func() int64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return r.Int64N(10)
		case 2:
			return r.Int64N(5000)
		}
		return r.Int64N(400_000)
	}
	for c := range usage.NumClasses {
		if r.IntN(3) == 0 {
			u.Set(c, count())
		}
	}
	for k := range usage.NumUnits {
		if r.IntN(4) == 0 {
			u.SetUnit(k, count())
		}
	}
	sizes := []string{"", "1024x1024", "1792x1024", "256x256", "512x512"}
	qualities := []string{"", "standard", "hd", "HD"}
	u.ImageSize, u.ImageQuality = sizes[r.IntN(len(sizes))], qualities[r.IntN(len(qualities))]
	return u
}

// Cost equals the exact reference rounded once, half up, over random
// usages of every v2 entry at every tier.
func TestCostMatchesExactReference(t *testing.T) {
	c := loadV2(t)
	r := rand.New(rand.NewPCG(2026, 11))
	tiers := []string{"", "batch", "flex", "priority"}
	priced := 0
	for range 50_000 {
		e := c.entries[r.IntN(len(c.entries))]
		u := randomUsage(r)
		tier := tiers[r.IntN(len(tiers))]
		got, err := e.Cost(&u, CostOptions{ServiceTier: tier})
		exact, ok := exactCost(e, &u, tier)
		switch {
		case !ok:
			if !errors.Is(err, ErrNoPrice) {
				t.Fatalf("%s %s %+v: err %v, want ErrNoPrice", e.Name, tier, u, err)
			}
		case err != nil && !errors.Is(err, ErrUnknownServiceTier):
			t.Fatalf("%s %s %+v: %v", e.Name, tier, u, err)
		case got != roundHalfUp(exact):
			t.Fatalf("%s %s %+v: cost %s, exact %s", e.Name, tier, u, got, exact.FloatString(12))
		default:
			priced++
		}
	}
	if priced < 10_000 {
		t.Fatalf("only %d random requests were priced", priced)
	}
}

// Summing N small charges equals pricing their summed usage when no
// per-request rounding happens, that is when every request's exact cost is
// a whole number of nano-units; in general the two differ by at most
// (N+1)/2 nano-units, half a nano-unit per rounding. Linearity itself needs
// what this catalog has: no per-request fee (a fee is charged per call),
// audio in whole seconds (seconds round up per request) and no context tier
// (a tier applies to the whole request).
func TestSplitChargesSumExactly(t *testing.T) {
	c, err := Parse("c.yaml", []byte(`models:
  - name: awkward
    source: s
    as_of: 2026-11-01
    prices: {input: 0.0375, cache_read: 0.0003, output: 0.1875, audio_input: 0.05}
    units: {characters_1k: 0.0000015, audio_second: 0.0000001}
    service_tiers:
      batch: {multiplier: 0.5}
      priority: {multiplier: 1.3}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := mustLookup(t, c, "", "awkward", now)
	r := rand.New(rand.NewPCG(7, 7))
	exactRuns, differ := 0, 0
	for range 5000 {
		tier := []string{"", "batch", "priority"}[r.IntN(3)]
		n := 1 + r.IntN(20)
		var total usage.Usage
		var sum money.Amount
		whole := true
		// Counts in steps of 20,000 make every product whole (20,000 ×
		// 0.0015 nano per character is 30); steps of 1 rarely do.
		step := []int64{1, 20_000}[r.IntN(2)]
		for range n {
			var u usage.Usage
			for _, cl := range []usage.Class{usage.Input, usage.CacheRead, usage.Output, usage.AudioInput} {
				u.Set(cl, step*r.Int64N(3)*r.Int64N(2000))
			}
			u.SetUnit(usage.Characters, step*r.Int64N(3)*r.Int64N(2000))
			u.SetUnit(usage.AudioMillis, 1000*r.Int64N(100))
			a, err := e.Cost(&u, CostOptions{ServiceTier: tier})
			if err != nil {
				t.Fatal(err)
			}
			exact, _ := exactCost(e, &u, tier)
			whole = whole && exact.IsInt()
			sum += a
			for cl := range usage.NumClasses {
				total.Set(cl, total.Get(cl)+u.Get(cl))
			}
			for k := range usage.NumUnits {
				total.SetUnit(k, total.Units[k].N+u.Units[k].N)
			}
		}
		once, err := e.Cost(&total, CostOptions{ServiceTier: tier})
		if err != nil {
			t.Fatal(err)
		}
		diff := int64(sum - once)
		if whole {
			exactRuns++
			if diff != 0 {
				t.Fatalf("%d whole-nano requests sum to %s, their total prices at %s", n, sum, once)
			}
			continue
		}
		if diff != 0 {
			differ++
		}
		if 2*max(diff, -diff) > int64(n+1) {
			t.Fatalf("%d requests sum to %s, their total prices at %s: off by more than (N+1)/2 nano", n, sum, once)
		}
	}
	// Both sides of the condition must be exercised: runs where it holds,
	// and runs where per-request rounding really does move the sum.
	if exactRuns < 1000 || differ < 100 {
		t.Fatalf("%d runs with every request whole, %d where rounding moved the sum", exactRuns, differ)
	}
}
