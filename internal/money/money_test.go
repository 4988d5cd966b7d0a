package money

import (
	"errors"
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Amount
		err  error
	}{
		{"0.075", 75_000_000, nil},
		{"1", Scale, nil},
		{"+2.5", 2_500_000_000, nil},
		{"-0.000000001", -1, nil},
		{".5", 500_000_000, nil},
		{"3.", 3 * Scale, nil},
		{"0.1000000000000", 100_000_000, nil},
		{"9223372036.854775807", Max, nil},
		{"", 0, ErrSyntax},
		{".", 0, ErrSyntax},
		{"-", 0, ErrSyntax},
		{"1e6", 0, ErrSyntax},
		{"1,000", 0, ErrSyntax},
		{" 1", 0, ErrSyntax},
		{"0x10", 0, ErrSyntax},
		{"0.0000000001", 0, ErrPrecision},
		{"9223372037", 0, ErrRange},
		{"9223372036.854775808", 0, ErrRange},
		{"99999999999999999999999", 0, ErrRange},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestStringRoundTrip(t *testing.T) {
	for _, s := range []string{"0", "0.075", "12", "-0.000000001", "9223372036.854775807", "1.5"} {
		a := MustParse(s)
		if a.String() != s {
			t.Errorf("String(%q) = %q", s, a.String())
		}
	}
	if got := Amount(math.MinInt64).String(); got != "-9223372036.854775808" {
		t.Errorf("MinInt64 = %q", got)
	}
}

func TestFixed(t *testing.T) {
	tests := []struct {
		in     string
		places int
		want   string
	}{
		{"0.125", 2, "0.13"},
		{"0.124", 2, "0.12"},
		{"-0.125", 2, "-0.13"},
		{"3", 2, "3.00"},
		{"0.000000075", 9, "0.000000075"},
		{"1.5", 0, "2"},
	}
	for _, tt := range tests {
		if got := MustParse(tt.in).Fixed(tt.places); got != tt.want {
			t.Errorf("Fixed(%s, %d) = %s, want %s", tt.in, tt.places, got, tt.want)
		}
	}
}

// The acceptance case: one cache_read token of a $0.075/M model,
// charged a million times, totals exactly $0.075.
func TestMillionSingleTokenCharges(t *testing.T) {
	price := PerMillion(MustParse("0.075"))
	var total Amount
	for i := 0; i < 1_000_000; i++ {
		c, err := Cost(1, price)
		if err != nil {
			t.Fatal(err)
		}
		total += c
	}
	if total != MustParse("0.075") {
		t.Fatalf("total = %s, want 0.075", total)
	}
}

func TestSumRoundsOnceHalfUp(t *testing.T) {
	tests := []struct {
		name  string
		n     []int64
		price []string
		want  string
	}{
		{"one token at 0.0375/M is 37.5 nanos, rounds up", []int64{1}, []string{"0.0375"}, "0.000000038"},
		{"two halves make a whole, not two round-ups", []int64{1, 1}, []string{"0.0375", "0.0375"}, "0.000000075"},
		{"below half rounds down", []int64{1}, []string{"0.0004"}, "0"},
		{"gpt-4o-mini mixed", []int64{1000, 500, 200}, []string{"0.15", "0.075", "0.6"}, "0.0003075"},
		{"large counts at large prices stay exact", []int64{2_000_000_000}, []string{"600"}, "1200000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sum
			for i, n := range tt.n {
				s.Add(n, PerMillion(MustParse(tt.price[i])))
			}
			got, err := s.Amount()
			if err != nil {
				t.Fatal(err)
			}
			if got != MustParse(tt.want) {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSumOverflow(t *testing.T) {
	var s Sum
	s.Add(math.MaxInt64, PerMillion(Max))
	if _, err := s.Amount(); !errors.Is(err, ErrRange) {
		t.Fatalf("want ErrRange, got %v", err)
	}
}

func TestAddOverflow(t *testing.T) {
	if _, err := Max.Add(1); !errors.Is(err, ErrRange) {
		t.Fatalf("want ErrRange, got %v", err)
	}
	if s, err := Amount(1).Add(2); err != nil || s != 3 {
		t.Fatalf("1+2 = %d, %v", s, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0.075", "-1", "1e3", "9223372036.854775807", ".", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(a.String())
		if err != nil || back != a {
			t.Fatalf("round trip %q -> %q -> %d, %v", s, a.String(), back, err)
		}
	})
}

func BenchmarkSum(b *testing.B) {
	p := PerMillion(MustParse("0.15"))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var s Sum
		s.Add(1234, p)
		s.Add(567, p)
		if _, err := s.Amount(); err != nil {
			b.Fatal(err)
		}
	}
}
