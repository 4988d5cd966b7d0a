package money

import "fmt"

// Currency is an ISO 4217 alphabetic code such as "USD".
type Currency string

// USD is the default currency of catalogs and budgets.
const USD Currency = "USD"

// ParseCurrency accepts three upper-case ASCII letters. The full ISO 4217 list
// and FX rates arrive with multi-currency support; until then the shape check
// keeps typos such as "usd" or "US$" out of a config.
func ParseCurrency(s string) (Currency, error) {
	if len(s) != 3 {
		return "", fmt.Errorf("currency %q: want a three-letter ISO 4217 code such as USD", s)
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return "", fmt.Errorf("currency %q: want a three-letter ISO 4217 code such as USD", s)
		}
	}
	return Currency(s), nil
}
