// Package money holds exact amounts of money. Nothing here uses float64: an
// Amount is an integer count of nano-units (10⁻⁹) of a currency, and prices
// per million units are multiplied out in 128-bit integers and rounded once.
package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Decimals is the number of decimal places an Amount carries. A request's cost
// is rounded once to this precision; sums of Amounts are exact.
const Decimals = 9

// Scale is the number of nano-units in one unit of a currency.
const Scale = 1_000_000_000

// Amount is an exact amount of money in nano-units of some currency. The
// currency travels beside it (see Currency); an int64 holds about ±9.2 billion
// units, far beyond any single budget or monthly statement.
type Amount int64

// Max is the largest representable Amount.
const Max = Amount(math.MaxInt64)

// Errors returned by Parse, usable with errors.Is.
var (
	ErrSyntax    = errors.New("not a decimal number")
	ErrPrecision = errors.New("more than 9 decimal places")
	ErrRange     = errors.New("out of range")
)

// Parse reads a plain decimal such as "0.075", "-3" or "12.500000001". It
// rejects exponents, separators and more than Decimals places, so that every
// value in a price file is taken exactly as written.
func Parse(s string) (Amount, error) {
	orig := s
	if s == "" {
		return 0, fmt.Errorf("%q: %w", orig, ErrSyntax)
	}
	neg := false
	switch s[0] {
	case '-':
		neg, s = true, s[1:]
	case '+':
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" && (!hasDot || frac == "") {
		return 0, fmt.Errorf("%q: %w", orig, ErrSyntax)
	}
	if !digitsOnly(intPart) || !digitsOnly(frac) {
		return 0, fmt.Errorf("%q: %w", orig, ErrSyntax)
	}
	if len(frac) > Decimals {
		// Trailing zeros beyond the precision carry no value.
		trimmed := strings.TrimRight(frac[Decimals:], "0")
		if trimmed != "" {
			return 0, fmt.Errorf("%q: %w", orig, ErrPrecision)
		}
		frac = frac[:Decimals]
	}
	var units uint64
	if intPart != "" {
		u, err := strconv.ParseUint(intPart, 10, 64)
		if err != nil || u > math.MaxInt64/Scale {
			return 0, fmt.Errorf("%q: %w", orig, ErrRange)
		}
		units = u
	}
	var nanos uint64
	if frac != "" {
		padded := frac + strings.Repeat("0", Decimals-len(frac))
		n, err := strconv.ParseUint(padded, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q: %w", orig, ErrSyntax)
		}
		nanos = n
	}
	total := units*Scale + nanos
	if total > math.MaxInt64 {
		return 0, fmt.Errorf("%q: %w", orig, ErrRange)
	}
	if neg {
		return -Amount(total), nil
	}
	return Amount(total), nil
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MustParse is Parse for constants in tests and examples; it panics on error.
func MustParse(s string) Amount {
	a, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return a
}

// String formats the amount as a plain decimal with trailing zeros removed:
// "0.075", "12", "-0.000000001".
func (a Amount) String() string {
	var buf [32]byte
	return string(a.AppendText(buf[:0]))
}

// AppendText appends the String form to b without allocating.
func (a Amount) AppendText(b []byte) []byte {
	u := uint64(a)
	if a < 0 {
		b = append(b, '-')
		u = uint64(-a) // math.MinInt64 negates to itself, and its uint64 is still right
	}
	b = strconv.AppendUint(b, u/Scale, 10)
	frac := u % Scale
	if frac == 0 {
		return b
	}
	var digits [Decimals]byte
	for i := Decimals - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := Decimals
	for n > 0 && digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// Fixed formats with exactly places decimals (0 ≤ places ≤ 9), rounding half
// away from zero: Fixed(2) of 0.125 is "0.13". It is for display only; stored
// and summed values keep all nine places.
func (a Amount) Fixed(places int) string {
	if places < 0 {
		places = 0
	}
	if places > Decimals {
		places = Decimals
	}
	step := int64(1)
	for i := places; i < Decimals; i++ {
		step *= 10
	}
	v := int64(a)
	neg := v < 0
	if neg {
		v = -v
	}
	v = (v + step/2) / step * step
	if neg {
		v = -v
	}
	s := Amount(v).String()
	whole, frac, _ := strings.Cut(s, ".")
	if places == 0 {
		return whole
	}
	return whole + "." + frac + strings.Repeat("0", places-len(frac))
}

// Units returns the amount as a float64 of whole currency units. It exists
// for Prometheus, whose samples are float64; never use it to compute money.
func (a Amount) Units() float64 {
	return float64(a/Scale) + float64(a%Scale)/Scale
}

// Add returns a+b, or an error when the sum leaves int64.
func (a Amount) Add(b Amount) (Amount, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, fmt.Errorf("%s + %s: %w", a, b, ErrRange)
	}
	return s, nil
}
