// Package fx converts exact amounts of money between currencies, so that
// finance can report in one currency and set budgets in any configured one.
// Like package money it never uses float64: a rate is a Decimal (an integer
// mantissa of 10⁻¹²) and every product is taken in 128 bits.
//
// # Rates
//
// A Rate says that one unit of From is worth Rate units of To from the
// instant EffectiveFrom on: {From: EUR, To: USD, Rate: 1.0834} makes €1 worth
// $1.0834, the way the ECB and most banks quote. Rates come from
// configuration (see ParseRates), each with the Source it was read from.
//
// # Which rate applies
//
// Convert is given the instant of the charge, the request's start
// (ledger.Record.Start), and uses the rate of the pair with the latest
// EffectiveFrom at or before that instant. A
// rate that takes effect at 00:00:00Z applies to a request that starts at
// 00:00:00Z exactly; one that starts a nanosecond earlier gets the previous
// rate. Before a pair's first rate there is no rate: that is ErrNoRate, never
// a guess.
//
// A currency converts to itself at exactly 1, with no rate configured.
//
// # Inverse rates
//
// When no From→To rate is configured but To→From is, Convert divides by the
// To→From rate: amount × 10¹² ÷ mantissa, in 128 bits, rounded once. It never
// computes 1/rate as a Decimal first, which would round twice. The choice is
// made per pair, not per instant: once any From→To rate is configured only
// From→To rates apply to that direction, so the rate used never flips between
// two sources (a bank's buy and sell rates, say) depending on which was
// published last. The Rate that Convert returns is the configured one; when it
// was used inverted its From is the target currency.
//
// # No triangulation
//
// Convert does not go through a third currency (EUR→USD→JPY): that would
// round twice and hide which rate was used. A pair that is needed is
// configured, directly or in the other direction; otherwise ErrNoRate names
// the pair and the instant.
//
// # Rounding
//
// The result is amount (nano-units) × mantissa ÷ 10¹², rounded ONCE to
// nano-units of the target currency, half up — half away from zero for
// negative amounts (refunds convert to the mirror image of charges). A result
// outside money.Amount is an error wrapping money.ErrRange, never a wrap.
//
// Converting a out and back with one configured rate r (once direct, once
// inverted) returns a within ½ + ½·p nano-units of the original currency,
// where p is what one unit of the other currency is worth in the original
// one: 1/r when the direct leg comes first, r when the inverted leg does.
// Each leg rounds by at most ½ nano-unit, and the first leg's rounding is
// worth p of the original on the way back. When p ≤ 1 that is at most one
// nano-unit. When p > 1 a nano-unit of the other currency is worth more
// than one of the original, and half of it can be lost: yen to dollars at
// 0.0066 and back is exact to 76 nano-yen, far below one yen. Two rates
// configured for the two directions have no such bound: they differ.
//
// # Statements: convert each request, then sum
//
// A statement in the reporting currency is the sum of each request's charge
// converted at that request's own instant and rounded to nano-units — not the
// sum of the original charges converted once at the end. Each request's
// charge is fixed when it happens, in its currency and in the reporting one:
// a budget is settled with it, the ledger records it, and a statement re-run
// next month must give the same number even though rates have moved since.
// Summing first would apply one rate to spend that happened under many, and
// would make a statement depend on when it is run. The per-request rounding
// this costs is at most ½ nano-unit per request.
package fx

import (
	"cmp"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
)

// ErrNoRate is returned by Convert when no configured rate covers the pair at
// the instant; the error names both.
var ErrNoRate = errors.New("fx: no exchange rate")

// Rate is one configured exchange rate.
type Rate struct {
	// From and To are the currencies: one unit of From is worth Rate units
	// of To. They differ.
	From, To money.Currency
	// Rate is positive and exact.
	Rate Decimal
	// EffectiveFrom is the first instant the rate applies; it applies until
	// the next rate of the same pair takes effect.
	EffectiveFrom time.Time
	// Source is where the rate was read, such as "ECB reference rate"; it
	// travels with each conversion so a statement can cite it.
	Source string
}

// Table is an immutable set of rates, safe for concurrent use. A reload
// builds a new one. A nil *Table converts a currency only to itself.
type Table struct {
	series map[pair][]Rate // each sorted by EffectiveFrom, no two equal
}

type pair struct{ from, to money.Currency }

// instantKey identifies an instant whatever its time zone.
type instantKey struct {
	pair
	sec  int64
	nsec int
}

// NewTable checks rates and builds a Table. It rejects a currency that is not
// an active ISO 4217 code, a pair of one currency with itself, a rate that is
// not positive, and two rates of the same pair (same direction) effective at
// the same instant, which would make the rate depend on input order. It
// reports every problem at once. rates is copied.
func NewTable(rates []Rate) (*Table, error) {
	t := &Table{series: make(map[pair][]Rate)}
	seen := make(map[instantKey]int, len(rates))
	var errs []error
	for i, r := range rates {
		if err := check(r); err != nil {
			errs = append(errs, fmt.Errorf("fx: rate %d (%s to %s): %w", i, r.From, r.To, err))
			continue
		}
		// Monotonic clock readings would make comparisons with a request's
		// start disagree with the wall-clock instant that was configured.
		r.EffectiveFrom = r.EffectiveFrom.Round(0)
		p := pair{r.From, r.To}
		k := instantKey{p, r.EffectiveFrom.Unix(), r.EffectiveFrom.Nanosecond()}
		if first, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("fx: rate %d (%s to %s): effective at %s like rate %d",
				i, r.From, r.To, r.EffectiveFrom.Format(time.RFC3339Nano), first))
			continue
		}
		seen[k] = i
		t.series[p] = append(t.series[p], r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, s := range t.series {
		slices.SortFunc(s, func(a, b Rate) int { return a.EffectiveFrom.Compare(b.EffectiveFrom) })
	}
	return t, nil
}

func check(r Rate) error {
	for _, c := range []money.Currency{r.From, r.To} {
		if _, err := money.ParseCurrency(string(c)); err != nil {
			return err
		}
	}
	if r.From == r.To {
		return errors.New("a rate converts between two different currencies")
	}
	if r.Rate <= 0 {
		return fmt.Errorf("rate %s is not positive", r.Rate)
	}
	return nil
}

// Convert converts a from one currency to another at the instant at (the
// request's start), by the rules in the package comment. It returns the
// converted amount and the Rate used (the configured one, possibly used
// inverted; for from == to, Rate{From: from, To: to, Rate: One}). It does not
// allocate unless it fails.
func (t *Table) Convert(a money.Amount, from, to money.Currency, at time.Time) (money.Amount, Rate, error) {
	if from == to {
		return a, Rate{From: from, To: to, Rate: One}, nil
	}
	if t == nil {
		return 0, Rate{}, noRate(from, to, at, nil)
	}
	if s, ok := t.series[pair{from, to}]; ok {
		r, ok := effective(s, at)
		if !ok {
			return 0, Rate{}, noRate(from, to, at, s)
		}
		v, ok := mulRate(a, r.Rate)
		if !ok {
			return 0, r, overflow(a, from, to, r)
		}
		return v, r, nil
	}
	if s, ok := t.series[pair{to, from}]; ok {
		r, ok := effective(s, at)
		if !ok {
			return 0, Rate{}, noRate(from, to, at, s)
		}
		v, ok := divRate(a, r.Rate)
		if !ok {
			return 0, r, overflow(a, from, to, r)
		}
		return v, r, nil
	}
	return 0, Rate{}, noRate(from, to, at, nil)
}

// effective returns the rate of s with the latest EffectiveFrom ≤ at.
func effective(s []Rate, at time.Time) (Rate, bool) {
	// Binary search for the first rate that takes effect after at.
	lo, hi := 0, len(s)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s[mid].EffectiveFrom.After(at) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == 0 {
		return Rate{}, false
	}
	return s[lo-1], true
}

func noRate(from, to money.Currency, at time.Time, s []Rate) error {
	when := at.UTC().Format(time.RFC3339Nano)
	if len(s) == 0 {
		return fmt.Errorf("%w from %s to %s at %s: configure %s to %s or %s to %s",
			ErrNoRate, from, to, when, from, to, to, from)
	}
	first := s[0]
	return fmt.Errorf("%w from %s to %s at %s: the first %s to %s rate takes effect at %s",
		ErrNoRate, from, to, when, first.From, first.To, first.EffectiveFrom.UTC().Format(time.RFC3339Nano))
}

func overflow(a money.Amount, from, to money.Currency, r Rate) error {
	return fmt.Errorf("fx: %s %s to %s at %s %s per %s: %w", a, from, to, r.Rate, r.To, r.From, money.ErrRange)
}

// mulRate returns a × m ÷ 10¹², rounded once, half away from zero; ok is
// false when the result does not fit an Amount.
func mulRate(a money.Amount, m Decimal) (money.Amount, bool) {
	neg, u := magnitude(a)
	hi, lo := bits.Mul64(u, uint64(m)) // ≤ 2⁶³ × (2⁶³−1): always fits 128 bits
	if hi >= scale {
		return 0, false // the quotient would need more than 64 bits
	}
	q, r := bits.Div64(hi, lo, scale)
	return signed(neg, q, r >= scale/2)
}

// divRate returns a × 10¹² ÷ m, rounded once, half away from zero; ok is
// false when the result does not fit an Amount. It applies a rate inverted;
// m is positive, as NewTable guarantees.
func divRate(a money.Amount, m Decimal) (money.Amount, bool) {
	neg, u := magnitude(a)
	d := uint64(m)
	hi, lo := bits.Mul64(u, scale)
	if hi >= d {
		return 0, false // the quotient would need more than 64 bits
	}
	q, r := bits.Div64(hi, lo, d)
	return signed(neg, q, r >= d-r) // r/d ≥ ½, without computing 2r, which could overflow
}

func magnitude(a money.Amount) (neg bool, u uint64) {
	if a < 0 {
		return true, -uint64(a) // right for math.MinInt64 too: 2⁶³
	}
	return false, uint64(a)
}

// signed rounds the magnitude q up when roundUp and applies the sign. The
// magnitude may reach 2⁶³−1, or 2⁶³ when negative (math.MinInt64).
func signed(neg bool, q uint64, roundUp bool) (money.Amount, bool) {
	const maxPos = uint64(money.Max)
	if q > maxPos+1 {
		return 0, false // checked before rounding so that q+1 cannot wrap to 0
	}
	if roundUp {
		q++
	}
	switch {
	case !neg && q <= maxPos:
		return money.Amount(q), true
	case neg && q <= maxPos+1:
		return money.Amount(-q), true // -q wraps to the two's complement, exact for 2⁶³
	}
	return 0, false
}

// InForce returns the rates of the pairs that convert to or from cur that
// were in force at some instant of [from, to): for each pair, the rate in
// force at from and every rate taking effect before to. A statement lists
// them, with their sources, as the rates its month was converted at. They
// are sorted by pair, then EffectiveFrom.
func (t *Table) InForce(cur money.Currency, from, to time.Time) []Rate {
	if t == nil {
		return nil
	}
	var out []Rate
	for p, s := range t.series {
		if p.from != cur && p.to != cur {
			continue
		}
		for i, r := range s {
			next := i+1 < len(s) && !s[i+1].EffectiveFrom.After(from)
			if !next && r.EffectiveFrom.Before(to) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(a, b Rate) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To), a.EffectiveFrom.Compare(b.EffectiveFrom))
	})
	return out
}
