package money

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestAmountTimes(t *testing.T) {
	tests := []struct {
		name string
		add  func(*Sum)
		m    string
		want string
	}{
		{"identity", func(s *Sum) { s.AddSaturating(1000, PerMillion(MustParse("0.15"))) }, "1", "0.00015"},
		// 6 × 0.1 nano = 0.6 nano; × 0.5 = 0.3 → 0. Rounding before the
		// multiplier would give round(0.6) × 0.5 = 0.5 → 1.
		{"no double rounding down", func(s *Sum) { s.AddSaturating(6, PerMillion(MustParse("0.0001"))) }, "0.5", "0"},
		// 3 nano × 0.5 = 1.5 → 2; folding 0.5 into the price (0.0000000015/M)
		// is not representable in nine decimals.
		{"half up after the multiplier", func(s *Sum) { s.AddSaturating(1_000_000, PerMillion(MustParse("0.000000003"))) }, "0.5", "0.000000002"},
		{"each", func(s *Sum) { s.AddEach(3, MustParse("0.04")) }, "1", "0.12"},
		{"per thousand", func(s *Sum) { s.AddPerThousand(1500, MustParse("0.015")) }, "1", "0.0225"},
		{"per thousand below a nano rounds once", func(s *Sum) { s.AddPerThousand(1, MustParse("0.000000001")) }, "1", "0"},
		{"per thousand halves add up", func(s *Sum) {
			s.AddPerThousand(500, MustParse("0.000000001"))
			s.AddSaturating(1, PerMillion(MustParse("0.0005")))
		}, "1", "0.000000001"},
		{"mixed with a factor above one", func(s *Sum) {
			s.AddSaturating(1000, PerMillion(MustParse("2.5")))
			s.AddEach(1, MustParse("0.01"))
		}, "1.7", "0.02125"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sum
			tt.add(&s)
			got, err := s.AmountTimes(MustParse(tt.m))
			if err != nil || got != MustParse(tt.want) {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// AmountTimes(Scale) and Amount agree, and both match an exact rational
// reference, on random sums.
func TestAmountTimesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20_000 {
		var s Sum
		exact := new(big.Rat)
		for range 1 + r.IntN(4) {
			n, p := r.Int64N(1<<40), r.Int64N(1<<40)
			switch r.IntN(3) {
			case 0:
				s.AddSaturating(n, PerMillion(p))
				exact.Add(exact, ratMul(n, p, 1, 1_000_000))
			case 1:
				s.AddEach(n, Amount(p))
				exact.Add(exact, ratMul(n, p, 1, 1))
			default:
				s.AddPerThousand(n, Amount(p))
				exact.Add(exact, ratMul(n, p, 1, 1000))
			}
		}
		m := r.Int64N(3 * Scale)
		got, err := s.AmountTimes(Amount(m))
		want, ok := roundHalfUp(new(big.Rat).Mul(exact, big.NewRat(m, Scale)))
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("AmountTimes(%d) = %d, %v; want %d (fits %v)", m, got, err, want, ok)
		}
		a, err1 := s.Amount()
		b, err2 := s.AmountTimes(Scale)
		if a != b || (err1 == nil) != (err2 == nil) {
			t.Fatalf("Amount = %d, %v; AmountTimes(Scale) = %d, %v", a, err1, b, err2)
		}
	}
}

func ratMul(n, p, num, den int64) *big.Rat {
	x := new(big.Rat).SetInt(new(big.Int).Mul(big.NewInt(n), big.NewInt(p)))
	return x.Mul(x, big.NewRat(num, den))
}

func roundHalfUp(x *big.Rat) (Amount, bool) {
	q, r := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if new(big.Int).Mul(r, big.NewInt(2)).Cmp(x.Denom()) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, false
	}
	return Amount(q.Int64()), true
}

func TestSaturatingOverflow(t *testing.T) {
	tests := []struct {
		name string
		add  func(*Sum)
	}{
		{"tokens past 128 bits", func(s *Sum) {
			for range 64 {
				s.AddSaturating(math.MaxInt64, PerMillion(Max))
			}
		}},
		{"each past 128 bits in one product", func(s *Sum) { s.AddEach(math.MaxInt64, Max) }},
		{"per thousand past 128 bits", func(s *Sum) { s.AddPerThousand(math.MaxInt64, Max) }},
		{"saturation sticks", func(s *Sum) {
			s.AddEach(math.MaxInt64, Max)
			s.AddEach(1, 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sum
			tt.add(&s)
			if _, err := s.Amount(); !errors.Is(err, ErrRange) {
				t.Errorf("Amount: %v, want ErrRange", err)
			}
			if _, err := s.AmountTimes(1); !errors.Is(err, ErrRange) {
				t.Errorf("AmountTimes: %v, want ErrRange", err)
			}
		})
	}
	var s Sum
	s.AddEach(1, 1)
	if _, err := s.AmountTimes(-1); !errors.Is(err, ErrRange) {
		t.Errorf("negative multiplier: %v", err)
	}
}
