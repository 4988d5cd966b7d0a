package money

import (
	"errors"
	"testing"
)

func TestParseCurrency(t *testing.T) {
	tests := []struct {
		in    string
		minor int
		err   error
	}{
		{"USD", 2, nil},
		{"EUR", 2, nil},
		{"JPY", 0, nil},
		{"KWD", 3, nil},
		{"CLF", 4, nil},
		{"XCG", 2, nil}, // replaced ANG in 2025
		{"ZWG", 2, nil}, // replaced ZWL in 2024
		{"XAU", -1, nil},
		{"XYZ", -1, ErrUnknownCurrency},
		{"BGN", -1, ErrUnknownCurrency}, // Bulgaria adopted the euro on 2026-01-01
		{"ANG", -1, ErrUnknownCurrency},
		{"HRK", -1, ErrUnknownCurrency},
		{"usd", -1, ErrCurrencySyntax},
		{"Usd", -1, ErrCurrencySyntax},
		{"US$", -1, ErrCurrencySyntax},
		{"USDT", -1, ErrCurrencySyntax},
		{"", -1, ErrCurrencySyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := ParseCurrency(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseCurrency(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if err == nil && string(c) != tt.in {
				t.Fatalf("ParseCurrency(%q) = %q", tt.in, c)
			}
			if got := Currency(tt.in).MinorUnits(); got != tt.minor {
				t.Fatalf("MinorUnits(%q) = %d, want %d", tt.in, got, tt.minor)
			}
		})
	}
}

func TestParseCurrencyMessage(t *testing.T) {
	_, err := ParseCurrency("XYZ")
	want := `currency "XYZ": not an active ISO 4217 code (List One, 2026-01-01); want one such as USD, EUR or JPY`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

// The counts are those of List One published 2026-01-01: 178 distinct codes,
// of which 17 have no minor unit digits, 139 two, 7 three, 2 four and 13 none
// ("N.A."). A miskeyed entry moves a count.
func TestISO4217Table(t *testing.T) {
	if len(iso4217) != 178 {
		t.Errorf("%d codes, want 178", len(iso4217))
	}
	counts := map[int]int{}
	for c, m := range iso4217 {
		counts[int(m)]++
		if _, err := ParseCurrency(string(c)); err != nil {
			t.Errorf("table code %q does not parse: %v", c, err)
		}
	}
	want := map[int]int{0: 17, 2: 139, 3: 7, 4: 2, naMinor: 13}
	for m, n := range want {
		if counts[m] != n {
			t.Errorf("%d codes with minor units %d, want %d", counts[m], m, n)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("minor units in use: %v, want only %v", counts, want)
	}
}
