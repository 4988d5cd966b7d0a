package litellm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/tokenmeter/tokenmeter/internal/money"
)

// Why a conversion failed. Each maps to a Reason in the report.
var (
	errNotExact = errors.New("more than 9 decimal places; left out, not rounded")
	errRange    = errors.New("out of range")
	errNotPrice = errors.New("not a price")
)

// Bounds on the JSON number text. LiteLLM writes at most 17 digits; the
// bounds keep hostile input (1e999999999) from allocating a huge big.Int.
const (
	maxMantissaDigits = 100
	maxExponent       = 1_000_000
)

// decimal is coef × 10^exp, exactly. LiteLLM's costs are decimal text such
// as 3e-06 or 0.0000025; scaling them by powers of ten (per token → per
// million) and by whole pixel counts is exact on this representation,
// whereas a float64 would already have lost 3e-06 on parsing.
type decimal struct {
	coef *big.Int
	exp  int
}

// parseDecimal reads a JSON number: an optional minus, digits with an
// optional fraction, an optional exponent.
func parseDecimal(s string) (decimal, error) {
	bad := fmt.Errorf("%q: %w", s, errNotPrice)
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	exp := 0
	if hasExp {
		e, ok := parseExponent(expText)
		if !ok {
			return decimal{}, bad
		}
		exp = e
	}
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	whole, frac, _ := strings.Cut(mant, ".")
	digits := whole + frac
	if whole == "" || !allDigits(digits) || len(digits) > maxMantissaDigits {
		return decimal{}, bad
	}
	coef, _ := new(big.Int).SetString(digits, 10)
	if neg {
		coef.Neg(coef)
	}
	return decimal{coef: coef, exp: exp - len(frac)}, nil
}

// parseExponent reads an exponent, clamping absurd ones to ±maxExponent:
// any such value is zero, out of range or not exact, whichever way it goes.
func parseExponent(s string) (int, bool) {
	sign := 1
	switch {
	case strings.HasPrefix(s, "-"):
		sign, s = -1, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	if s == "" || !allDigits(s) {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 7 {
		return sign * maxExponent, true
	}
	n, _ := strconv.Atoi("0" + s)
	return sign * min(n, maxExponent), true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// scaled returns d × mul × 10^shift, normalised (no trailing zeros in coef).
func (d decimal) scaled(mul int64, shift int) decimal {
	c := new(big.Int).Mul(d.coef, big.NewInt(mul))
	exp := d.exp + shift
	if c.Sign() == 0 {
		return decimal{coef: c}
	}
	ten, q, r := big.NewInt(10), new(big.Int), new(big.Int)
	for {
		q.QuoRem(c, ten, r)
		if r.Sign() != 0 {
			break
		}
		c, q = q, c
		exp++
	}
	return decimal{coef: c, exp: exp}
}

// String writes d in plain decimal notation when that is short enough to
// read, and as digits×10^exp otherwise (only for report messages).
func (d decimal) String() string {
	digits := new(big.Int).Abs(d.coef).String()
	sign := ""
	if d.coef.Sign() < 0 {
		sign = "-"
	}
	switch {
	case d.coef.Sign() == 0:
		return "0"
	case d.exp >= 0 && d.exp <= 30:
		return sign + digits + strings.Repeat("0", d.exp)
	case d.exp < 0 && -d.exp <= 40:
		n := -d.exp
		if len(digits) <= n {
			digits = strings.Repeat("0", n-len(digits)+1) + digits
		}
		return sign + digits[:len(digits)-n] + "." + digits[len(digits)-n:]
	}
	return fmt.Sprintf("%s%se%d", sign, digits, d.exp)
}

// floatNoise bounds the relative difference that counts as an artifact of
// binary floating point rather than part of a price. LiteLLM's file is
// written by Python, whose repr of a float computed from a decimal price
// (1.6e-06 × a factor) can read 1.6000000000000001e-06: 17 significant
// digits, a few ulps (2.2e-16 each) away from the price meant. 1e-14 allows
// some 45 ulps; a real price finer than 9 decimal places, such as
// 0.0002833333 per second, differs from its 9-place rounding by far more.
const floatNoise = 1e14 // the inverse: |exact − rounded| × floatNoise ≤ |exact|

// convert turns a LiteLLM cost into the catalog's decimal text: the value ×
// mul × 10^shift (shift 6 turns per token into per million); unit names
// the result's unit in messages.
//
// A result with more than 9 decimal places is rounded (half to even) only
// when the difference is float noise (see floatNoise); exact then holds the
// unrounded value, for the report. Any other such result is errNotExact:
// left out, never rounded, since the catalog promises exact prices. A
// result that does not fit a money.Amount is errRange; a negative or
// non-numeric value is errNotPrice. Error texts carry the exact value.
func convert(v any, mul int64, shift int, unit string) (price, exact string, err error) {
	var num string
	switch v := v.(type) {
	case json.Number:
		num = string(v)
	case string:
		// LiteLLM's cost code accepts a number written as a string ("3e-7",
		// as a YAML config may produce), so the converter does too.
		num = v
	default:
		return "", "", fmt.Errorf("%s: %w; want a JSON number", describe(v), errNotPrice)
	}
	d, err := parseDecimal(num)
	if err != nil {
		return "", "", err
	}
	if d.coef.Sign() < 0 {
		return "", "", fmt.Errorf("%s is negative: %w", num, errNotPrice)
	}
	r := d.scaled(mul, shift)
	if r.exp < -money.Decimals {
		rounded, ok := r.denoise()
		if !ok {
			return "", "", fmt.Errorf("%s is %s %s: %w", num, r, unit, errNotExact)
		}
		exact, r = r.String(), rounded
	}
	if r.exp+len(r.coef.String()) > 20 {
		return "", "", fmt.Errorf("%s is %s %s: %w", num, r, unit, errRange)
	}
	s := r.String()
	if _, err := money.Parse(s); err != nil {
		return "", "", fmt.Errorf("%s is %s %s: %w", num, s, unit, errRange)
	}
	return s, exact, nil
}

// denoise rounds d (which has more than 9 decimal places) to 9, half to
// even, and reports whether the difference is float noise. Zero is never
// the rounding of a positive price: a price that small is not noise.
func (d decimal) denoise() (decimal, bool) {
	drop := -money.Decimals - d.exp // decimal places to drop
	if drop >= len(d.coef.String()) {
		return decimal{}, false // rounds to zero; also bounds the power of ten below
	}
	div := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(drop)), nil)
	q, rem := new(big.Int).QuoRem(d.coef, div, new(big.Int))
	twice := new(big.Int).Lsh(rem, 1)
	if c := twice.Cmp(div); c > 0 || (c == 0 && q.Bit(0) == 1) {
		q.Add(q, big.NewInt(1))
		rem.Sub(rem, div)
	}
	diff := new(big.Int).Mul(rem.Abs(rem), big.NewInt(floatNoise))
	if q.Sign() == 0 || diff.Cmp(d.coef) > 0 {
		return decimal{}, false
	}
	return decimal{coef: q, exp: -money.Decimals}.scaled(1, 0), true
}

// describe names a non-number JSON value for a report message.
func describe(v any) string {
	switch v := v.(type) {
	case json.Number:
		return string(v)
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}
