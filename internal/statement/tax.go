package statement

import (
	"fmt"
	"math/big"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// TaxRule is one configured tax: Percent of the charged amount of the
// requests whose dimensions match, on the days from From to Until.
type TaxRule struct {
	// Name is what the statement calls the tax ("VAT"). For each name, the
	// first rule (in configuration order) that matches a request's
	// dimensions on its day applies; rules of different names add up.
	Name string
	// Percent is the rate in percent, exact: 20% is money.MustParse("20").
	Percent money.Amount
	// Match selects by dimension value, as a budget's match; empty matches
	// every request.
	Match []ratelimit.Match
	// From and Until bound the days the rate applies, both included, as
	// YYYY-MM-DD in the statement's time zone; empty is unbounded.
	From, Until string
}

// applies reports whether r applies on day (YYYY-MM-DD) to a request with
// dimension values vals.
func (r *TaxRule) applies(day string, vals map[string]string) bool {
	if (r.From != "" && day < r.From) || (r.Until != "" && day > r.Until) {
		return false
	}
	for _, m := range r.Match {
		if m.Value != ratelimit.Wildcard && vals[m.Dimension] != m.Value {
			return false
		}
	}
	return true
}

// Tax is one tax of a document: Percent of Base, rounded once (Amount).
type Tax struct {
	Name    string
	Percent money.Amount
	Base    money.Amount
	Amount  money.Amount
}

// roundMinor returns a × num / den rounded half away from zero to minor
// decimal places (0..9), exactly: the product is formed in big integers and
// divided once.
func roundMinor(a money.Amount, num, den int64, minor int) (money.Amount, error) {
	if minor < 0 || minor > money.Decimals {
		minor = money.Decimals
	}
	unit := int64(1)
	for i := minor; i < money.Decimals; i++ {
		unit *= 10
	}
	n := new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(num))
	d := new(big.Int).Mul(big.NewInt(den), big.NewInt(unit))
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	// Half away from zero: |2r| ≥ d rounds the quotient outward.
	if r.Abs(r).Lsh(r, 1).Cmp(d) >= 0 {
		q.Add(q, big.NewInt(int64(n.Sign())))
	}
	q.Mul(q, big.NewInt(unit))
	if !q.IsInt64() {
		return 0, fmt.Errorf("statement: %s × %d / %d overflows: %w", a, num, den, money.ErrRange)
	}
	return money.Amount(q.Int64()), nil
}

// taxOf is base × percent / 100, rounded once to minor places.
func taxOf(base, percent money.Amount, minor int) (money.Amount, error) {
	return roundMinor(base, int64(percent), 100*money.Scale, minor)
}
