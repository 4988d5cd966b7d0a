package money

import (
	"fmt"
	"math/bits"
)

// PerMillion is a price for one million units (tokens, characters, ...),
// written the way providers publish it: "$0.075 per million tokens" is
// PerMillion(MustParse("0.075")). One token then costs 75 nano-units exactly;
// a price of 0.0375/M makes a single token cost 37.5 nano-units, which is why
// costs are summed as products and rounded once per request by Sum.
type PerMillion Amount

// Sum accumulates units × price products exactly, in 128 bits, and rounds once.
// Its zero value is ready to use and it never allocates.
type Sum struct {
	hi, lo uint64 // unsigned 128-bit total of n × price, in nano-units × 10⁻⁶
}

// Add adds n units at price p. Negative n or p are rejected by the caller's
// validation (catalogs hold no negative prices, decoders no negative counts);
// here they are treated as zero so that bad input cannot wrap the total.
func (s *Sum) Add(n int64, p PerMillion) {
	if n <= 0 || p <= 0 {
		return
	}
	hi, lo := bits.Mul64(uint64(n), uint64(p))
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, lo, 0)
	s.hi, _ = bits.Add64(s.hi, hi, carry)
}

// Amount rounds the accumulated total to whole nano-units, half up, and
// returns it. It fails only when the total does not fit an Amount.
func (s *Sum) Amount() (Amount, error) {
	const million = 1_000_000
	if s.hi >= million {
		return 0, fmt.Errorf("cost overflows: %w", ErrRange)
	}
	q, r := bits.Div64(s.hi, s.lo, million)
	if r >= million/2 {
		q++
	}
	if q > uint64(Max) {
		return 0, fmt.Errorf("cost overflows: %w", ErrRange)
	}
	return Amount(q), nil
}

// Cost prices n units at p, rounded once to nano-units.
func Cost(n int64, p PerMillion) (Amount, error) {
	var s Sum
	s.Add(n, p)
	return s.Amount()
}
