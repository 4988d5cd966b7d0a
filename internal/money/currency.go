package money

import (
	"errors"
	"fmt"
)

// Currency is an ISO 4217 alphabetic code such as "USD".
type Currency string

// USD is the default currency of catalogs and budgets.
const USD Currency = "USD"

// Errors returned by ParseCurrency, usable with errors.Is. Their text is the
// reason a config error shows, so it says what is accepted.
var (
	ErrCurrencySyntax  = errors.New("want a three-letter upper-case ISO 4217 code such as USD")
	ErrUnknownCurrency = errors.New("not an active ISO 4217 code (List One, 2026-01-01); want one such as USD, EUR or JPY")
)

// ParseCurrency accepts the active codes of ISO 4217 List One (see
// iso4217.go), written in upper case as the standard writes them. A typo
// such as "usd", "US$" or "EUT", or a withdrawn code such as "BGN", is
// rejected rather than becoming a currency no rate or price can ever match.
func ParseCurrency(s string) (Currency, error) {
	if len(s) != 3 {
		return "", fmt.Errorf("currency %q: %w", s, ErrCurrencySyntax)
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return "", fmt.Errorf("currency %q: %w", s, ErrCurrencySyntax)
		}
	}
	if _, ok := iso4217[Currency(s)]; !ok {
		return "", fmt.Errorf("currency %q: %w", s, ErrUnknownCurrency)
	}
	return Currency(s), nil
}
