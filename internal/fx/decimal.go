package fx

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tokenmeter/tokenmeter/internal/money"
)

// Places is the number of decimal places a Decimal carries. Central banks
// publish four to six significant digits; twelve places keep every digit of
// a small rate such as JPY→USD 0.006606 with room to spare.
const Places = 12

// scale is the number of mantissa steps in 1.
const scale = 1_000_000_000_000

// Decimal is an exact exchange rate: an integer mantissa counting 10⁻¹²,
// so 1.0834 is Decimal(1_083_400_000_000). Like money.Amount it never passes
// through float64. An int64 mantissa holds rates up to 9223372.036854775807,
// far above any ISO currency pair quoted today (USD→IRR at market is ~10⁶).
type Decimal int64

// One is the rate 1, the rate of a currency to itself.
const One Decimal = scale

// ErrPrecision is returned by ParseDecimal for a rate with more than Places
// decimals. Syntax and range errors reuse money.ErrSyntax and money.ErrRange.
var ErrPrecision = errors.New("more than 12 decimal places")

// ParseDecimal reads a plain decimal such as "1.0834", "151.37" or "-2". It
// rejects exponents, separators, and non-zero digits beyond Places decimals,
// so that a rate is taken exactly as written. Signs are accepted here so a
// caller can say "not positive" rather than "not a number".
func ParseDecimal(s string) (Decimal, error) {
	orig := s
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if (intPart == "" && (!hasDot || frac == "")) || !digitsOnly(intPart) || !digitsOnly(frac) {
		return 0, fmt.Errorf("%q: %w", orig, money.ErrSyntax)
	}
	if len(frac) > Places {
		// Trailing zeros beyond the precision carry no value.
		if strings.TrimRight(frac[Places:], "0") != "" {
			return 0, fmt.Errorf("%q: %w", orig, ErrPrecision)
		}
		frac = frac[:Places]
	}
	var units uint64
	if intPart != "" {
		u, err := strconv.ParseUint(intPart, 10, 64)
		if err != nil || u > math.MaxInt64/scale {
			return 0, fmt.Errorf("%q: %w", orig, money.ErrRange)
		}
		units = u
	}
	var fraction uint64
	if frac != "" {
		// At most 12 digits: always fits, so the error cannot happen.
		fraction, _ = strconv.ParseUint(frac+strings.Repeat("0", Places-len(frac)), 10, 64)
	}
	total := units*scale + fraction
	if total > math.MaxInt64 {
		return 0, fmt.Errorf("%q: %w", orig, money.ErrRange)
	}
	if neg {
		return -Decimal(total), nil
	}
	return Decimal(total), nil
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MustParseDecimal is ParseDecimal for constants in tests and examples; it
// panics on error.
func MustParseDecimal(s string) Decimal {
	d, err := ParseDecimal(s)
	if err != nil {
		panic(err)
	}
	return d
}

// String formats the rate as a plain decimal without trailing zeros, the
// form ParseDecimal reads back: "1.0834", "151.37", "1".
func (d Decimal) String() string {
	var buf [32]byte
	return string(d.AppendText(buf[:0]))
}

// AppendText appends the String form to b without allocating.
func (d Decimal) AppendText(b []byte) []byte {
	u := uint64(d)
	if d < 0 {
		b = append(b, '-')
		u = -u // math.MinInt64 negates to itself, and its uint64 is still right
	}
	b = strconv.AppendUint(b, u/scale, 10)
	f := u % scale
	if f == 0 {
		return b
	}
	var digits [Places]byte
	for i := Places - 1; i >= 0; i-- {
		digits[i] = byte('0' + f%10)
		f /= 10
	}
	n := Places
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}
