package fx

import (
	"errors"
	"math"
	"math/big"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/money"
)

func TestParseDecimal(t *testing.T) {
	tests := []struct {
		in   string
		want Decimal
		err  error
	}{
		{"1.0834", 1_083_400_000_000, nil},
		{"151.37", 151_370_000_000_000, nil},
		{"0.000000000001", 1, nil},
		{"1", One, nil},
		{"+2", 2 * One, nil},
		{"-0.5", -One / 2, nil},
		{".5", One / 2, nil},
		{"3.", 3 * One, nil},
		{"1.0834000000000000", 1_083_400_000_000, nil}, // zeros past 12 places carry nothing
		{"9223372.036854775807", math.MaxInt64, nil},
		{"", 0, money.ErrSyntax},
		{".", 0, money.ErrSyntax},
		{"+", 0, money.ErrSyntax},
		{"1e3", 0, money.ErrSyntax},
		{"1.0834e0", 0, money.ErrSyntax},
		{"1,5", 0, money.ErrSyntax},
		{" 1", 0, money.ErrSyntax},
		{"0x1p-2", 0, money.ErrSyntax},
		{"NaN", 0, money.ErrSyntax},
		{"--1", 0, money.ErrSyntax},
		{"0.0000000000001", 0, ErrPrecision},
		{"9223372.036854775808", 0, money.ErrRange},
		{"9223373", 0, money.ErrRange},
		{"99999999999999999999999", 0, money.ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDecimal(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseDecimal(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("ParseDecimal(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecimalString(t *testing.T) {
	for _, s := range []string{"1.0834", "151.37", "1", "0", "0.000000000001", "-0.5", "9223372.036854775807"} {
		if got := MustParseDecimal(s).String(); got != s {
			t.Errorf("String(%s) = %s", s, got)
		}
	}
	if got := Decimal(math.MinInt64).String(); got != "-9223372.036854775808" {
		t.Errorf("MinInt64 = %s", got)
	}
}

// A parsed rate is exactly the decimal written: the same rational number as
// math/big reads, and it prints back to a string that parses to itself.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"1.0834", "151.37", "-0.5", "1e3", ".5", "9223372.036854775807", "0.0000000000010", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDecimal(s)
		if err != nil {
			if !errors.Is(err, money.ErrSyntax) && !errors.Is(err, money.ErrRange) && !errors.Is(err, ErrPrecision) {
				t.Fatalf("ParseDecimal(%q): unclassified error %v", s, err)
			}
			return
		}
		want, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("ParseDecimal(%q) = %s, but math/big cannot read it", s, d)
		}
		got := new(big.Rat).SetFrac(big.NewInt(int64(d)), big.NewInt(scale))
		if got.Cmp(want) != 0 {
			t.Fatalf("ParseDecimal(%q) = %s, want %s", s, got.FloatString(12), want.FloatString(12))
		}
		back, err := ParseDecimal(d.String())
		if err != nil || back != d {
			t.Fatalf("round trip %q -> %q -> %d, %v", s, d.String(), back, err)
		}
	})
}
