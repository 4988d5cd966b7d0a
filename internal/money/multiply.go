package money

import (
	"fmt"
	"math"
	"math/bits"
)

// Prices that are not per million units (per image, per second, per
// thousand characters) join the same Sum, whose unit is 10⁻⁶ nano-units: a
// price per unit is scaled by a million, a price per thousand by a thousand.
// The division they imply then waits for the one rounding at the end.
const (
	perEach     = 1_000_000
	perThousand = 1_000
)

// AddSaturating is Add for totals that might pass 128 bits: instead of
// wrapping to a small number, the total sticks at its maximum, which Amount
// and AmountTimes report as ErrRange. Mix it only with the other saturating
// adds below; Add itself wraps.
func (s *Sum) AddSaturating(n int64, p PerMillion) { s.addMul(n, int64(p), 1) }

// AddEach adds n units at p each (an image, a second of audio, a request),
// saturating like AddSaturating.
func (s *Sum) AddEach(n int64, p Amount) { s.addMul(n, int64(p), perEach) }

// AddPerThousand adds n units at p per thousand units (text-to-speech bills
// characters so), saturating like AddSaturating. n × p / 1000 is kept exact:
// 1,500 characters at 0.015 per thousand add exactly 0.0225.
func (s *Sum) AddPerThousand(n int64, p Amount) { s.addMul(n, int64(p), perThousand) }

// addMul adds n × p × k. Negative or zero n or p add nothing, as in Add.
func (s *Sum) addMul(n, p int64, k uint64) {
	if n <= 0 || p <= 0 {
		return
	}
	hi, lo := bits.Mul64(uint64(n), uint64(p))
	if k != 1 {
		// (hi, lo) × k in three words; the top one must be zero.
		h0, l0 := bits.Mul64(lo, k)
		h1, l1 := bits.Mul64(hi, k)
		mid, c := bits.Add64(h0, l1, 0)
		if h1 != 0 || c != 0 {
			s.saturate()
			return
		}
		hi, lo = mid, l0
	}
	var carry uint64
	s.lo, carry = bits.Add64(s.lo, lo, 0)
	s.hi, carry = bits.Add64(s.hi, hi, carry)
	if carry != 0 {
		s.saturate()
	}
}

func (s *Sum) saturate() { s.hi, s.lo = math.MaxUint64, math.MaxUint64 }

// AmountTimes returns the accumulated total times m, rounded once, half up,
// to whole nano-units. m is a decimal factor held as an Amount, so a 50%
// batch discount is MustParse("0.5"). The product is formed exactly (up to
// 192 bits) before the single division, so applying a multiplier never
// rounds twice: 0.6 nano-units × 0.5 is 0.3, which rounds to 0, where
// rounding first would give 1 × 0.5, rounded to 1. AmountTimes(Scale)
// equals Amount.
func (s *Sum) AmountTimes(m Amount) (Amount, error) {
	if m < 0 {
		return 0, fmt.Errorf("negative multiplier %s: %w", m, ErrRange)
	}
	const d = 1_000_000 * Scale // Sum units (10⁻⁶ nano) × factor units (10⁻⁹)
	h0, w0 := bits.Mul64(s.lo, uint64(m))
	h1, l1 := bits.Mul64(s.hi, uint64(m))
	w1, c := bits.Add64(h0, l1, 0)
	w2 := h1 + c // h1 ≤ 2⁶⁴-2, so this cannot wrap
	// w1 ≥ d would make the quotient pass 64 bits (and Div64 panic).
	if w2 != 0 || w1 >= d {
		return 0, fmt.Errorf("cost overflows: %w", ErrRange)
	}
	q, r := bits.Div64(w1, w0, d)
	if r >= d/2 {
		q++
	}
	if q > uint64(Max) {
		return 0, fmt.Errorf("cost overflows: %w", ErrRange)
	}
	return Amount(q), nil
}
