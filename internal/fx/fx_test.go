package fx

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
)

func instant(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func rate(t testing.TB, from, to, r, at string) Rate {
	t.Helper()
	return Rate{From: money.Currency(from), To: money.Currency(to), Rate: MustParseDecimal(r),
		EffectiveFrom: instant(t, at), Source: "test"}
}

// testTable holds one pair of each shape the tests need.
func testTable(t testing.TB) *Table {
	t.Helper()
	tab, err := NewTable([]Rate{
		rate(t, "EUR", "USD", "1.10", "2026-12-01T00:00:00Z"), // out of order on purpose
		rate(t, "EUR", "USD", "1.0834", "2026-11-01T00:00:00Z"),
		rate(t, "GBP", "USD", "0.5", "2026-01-01T00:00:00Z"),
		rate(t, "USD", "JPY", "151.37", "2026-01-01T00:00:00Z"),
		rate(t, "CHF", "USD", "2", "2026-01-01T00:00:00Z"),
		rate(t, "SEK", "USD", "3", "2026-01-01T00:00:00Z"),
		rate(t, "CAD", "USD", "1", "2026-01-01T00:00:00Z"),
		rate(t, "AUD", "USD", "1.5", "2026-01-01T00:00:00Z"),
		rate(t, "NZD", "USD", "2.000000000041", "2026-01-01T00:00:00Z"),
		rate(t, "MXN", "USD", "0.49999999901", "2026-01-01T00:00:00Z"),
		rate(t, "BRL", "USD", "1.000000000001", "2026-01-01T00:00:00Z"),
		rate(t, "INR", "USD", "0.499999999999", "2026-01-01T00:00:00Z"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestConvert(t *testing.T) {
	const nov, dec = "2026-11-15T12:00:00Z", "2026-12-01T00:00:00Z"
	tests := []struct {
		name     string
		a        money.Amount
		from, to string
		at       string
		want     money.Amount
		rate     string // the configured rate used, "" for none
		err      error
	}{
		{"identity", 123, "USD", "USD", nov, 123, "1", nil},
		{"identity of a currency without rates", -7, "KWD", "KWD", nov, -7, "1", nil},
		{"direct", money.MustParse("10"), "EUR", "USD", nov, money.MustParse("10.834"), "1.0834", nil},
		{"direct negative", money.MustParse("-10"), "EUR", "USD", nov, money.MustParse("-10.834"), "1.0834", nil},
		{"direct to a zero-decimal currency", money.MustParse("1.5"), "USD", "JPY", nov, money.MustParse("227.055"), "151.37", nil},
		{"inverse exact", money.MustParse("10.834"), "USD", "EUR", nov, money.MustParse("10"), "1.0834", nil},
		{"inverse rounds up above half", money.MustParse("1"), "USD", "EUR", nov, 923_020_122, "1.0834", nil},     // 923020121.84
		{"inverse rounds down below half", money.MustParse("4"), "USD", "EUR", nov, 3_692_080_487, "1.0834", nil}, // 3692080487.35
		{"inverse negative", money.MustParse("-1"), "USD", "EUR", nov, -923_020_122, "1.0834", nil},
		{"rate switches exactly at its instant", money.MustParse("10"), "EUR", "USD", dec, money.MustParse("11"), "1.1", nil},
		{"same instant in another offset", money.MustParse("10"), "EUR", "USD", "2026-12-01T01:00:00+01:00", money.MustParse("11"), "1.1", nil},
		{"a nanosecond before the switch", money.MustParse("10"), "EUR", "USD", "2026-11-30T23:59:59.999999999Z", money.MustParse("10.834"), "1.0834", nil},
		{"first rate at its instant", 1000, "EUR", "USD", "2026-11-01T00:00:00Z", 1083, "1.0834", nil}, // 1083.4
		{"before the first rate", 1, "EUR", "USD", "2026-10-31T23:59:59Z", 0, "", ErrNoRate},
		{"inverse before the first rate", 1, "USD", "EUR", "2026-10-31T23:59:59Z", 0, "", ErrNoRate},
		{"no rate either way", 1, "EUR", "JPY", nov, 0, "", ErrNoRate},

		// Rounding: once, half up, away from zero for negatives.
		{"half a nano rounds up", 1, "GBP", "USD", nov, 1, "0.5", nil},
		{"one and a half rounds up", 3, "GBP", "USD", nov, 2, "0.5", nil},
		{"negative half rounds away from zero", -1, "GBP", "USD", nov, -1, "0.5", nil},
		{"just below half rounds down", 1, "INR", "USD", nov, 0, "0.499999999999", nil},
		{"inverse half rounds up", 1, "USD", "CHF", nov, 1, "2", nil},
		{"inverse negative half away from zero", -3, "USD", "CHF", nov, -2, "2", nil},
		{"inverse third rounds down", 1, "USD", "SEK", nov, 0, "3", nil},
		{"inverse two thirds rounds up", 2, "USD", "SEK", nov, 1, "3", nil},

		// Near overflow.
		{"max at rate 1", money.Max, "CAD", "USD", nov, money.Max, "1", nil},
		{"min at rate 1", math.MinInt64, "CAD", "USD", nov, math.MinInt64, "1", nil},
		{"min inverted at rate 1", math.MinInt64, "USD", "CAD", nov, math.MinInt64, "1", nil},
		{"max just over", money.Max, "BRL", "USD", nov, 0, "1.000000000001", money.ErrRange},
		{"largest product that fits", 6148914691236517204, "AUD", "USD", nov, money.Max - 1, "1.5", nil},
		{"max plus a half rounds out of range", 6148914691236517205, "AUD", "USD", nov, 0, "1.5", money.ErrRange},
		{"minus max minus a half rounds to min", -6148914691236517205, "AUD", "USD", nov, math.MinInt64, "1.5", nil},
		{"double overflows", money.Max/2 + 1, "CHF", "USD", nov, 0, "2", money.ErrRange},
		{"inverse overflows", money.Max/2 + 1, "USD", "GBP", nov, 0, "0.5", money.ErrRange},
		{"max at 151.37 overflows", money.Max, "USD", "JPY", nov, 0, "151.37", money.ErrRange},
		// The quotient is 2⁶⁴−1 with a remainder over half: rounding up must not wrap to 0.
		{"quotient 2⁶⁴−1 rounding up", 9223372036665696681, "NZD", "USD", nov, 0, "2.000000000041", money.ErrRange},
		{"inverse quotient 2⁶⁴−1 rounding up", 9223372018592499175, "USD", "MXN", nov, 0, "0.49999999901", money.ErrRange},
	}
	tab := testTable(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, r, err := tab.Convert(tt.a, money.Currency(tt.from), money.Currency(tt.to), instant(t, tt.at))
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("got %s (%d), want %s (%d)", got, int64(got), tt.want, int64(tt.want))
			}
			if tt.rate != "" && r.Rate != MustParseDecimal(tt.rate) {
				t.Fatalf("rate used = %s, want %s", r.Rate, tt.rate)
			}
		})
	}
}

func TestConvertReportsTheRateUsed(t *testing.T) {
	tab := testTable(t)
	at := instant(t, "2026-11-15T00:00:00Z")
	_, r, err := tab.Convert(money.MustParse("1"), "USD", "EUR", at)
	if err != nil {
		t.Fatal(err)
	}
	// Used inverted: the configured rate, whose From is the target.
	if r.From != "EUR" || r.To != "USD" || r.Source != "test" || !r.EffectiveFrom.Equal(instant(t, "2026-11-01T00:00:00Z")) {
		t.Fatalf("rate = %+v", r)
	}
	_, r, _ = tab.Convert(5, "USD", "USD", at)
	if r != (Rate{From: "USD", To: "USD", Rate: One}) {
		t.Fatalf("identity rate = %+v", r)
	}
}

func TestConvertErrorsNameThePairAndInstant(t *testing.T) {
	tab := testTable(t)
	tests := []struct {
		from, to, at, want string
	}{
		{"EUR", "USD", "2026-10-31T21:00:00-02:00",
			"fx: no exchange rate from EUR to USD at 2026-10-31T23:00:00Z: the first EUR to USD rate takes effect at 2026-11-01T00:00:00Z"},
		{"USD", "EUR", "2026-10-01T00:00:00Z",
			"fx: no exchange rate from USD to EUR at 2026-10-01T00:00:00Z: the first EUR to USD rate takes effect at 2026-11-01T00:00:00Z"},
		{"EUR", "JPY", "2026-11-01T00:00:00Z",
			"fx: no exchange rate from EUR to JPY at 2026-11-01T00:00:00Z: configure EUR to JPY or JPY to EUR"},
	}
	for _, tt := range tests {
		_, _, err := tab.Convert(1, money.Currency(tt.from), money.Currency(tt.to), instant(t, tt.at))
		if err == nil || err.Error() != tt.want {
			t.Errorf("error = %v\nwant    %s", err, tt.want)
		}
	}
	_, _, err := tab.Convert(money.Max, "BRL", "USD", instant(t, "2026-11-01T00:00:00Z"))
	if want := "fx: 9223372036.854775807 BRL to USD at 1.000000000001 USD per BRL: out of range"; err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

// The direction is chosen per pair: once USD→EUR is configured, EUR's rate
// to USD is not used inverted, not even before USD→EUR takes effect.
func TestDirectRatesWinOverInverse(t *testing.T) {
	tab, err := NewTable([]Rate{
		rate(t, "EUR", "USD", "1.25", "2026-01-01T00:00:00Z"),
		rate(t, "USD", "EUR", "0.79", "2026-06-01T00:00:00Z"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := tab.Convert(money.MustParse("100"), "USD", "EUR", instant(t, "2026-07-01T00:00:00Z"))
	if err != nil || got != money.MustParse("79") {
		t.Fatalf("got %s, %v; want 79 at the direct rate", got, err)
	}
	if _, _, err := tab.Convert(1, "USD", "EUR", instant(t, "2026-02-01T00:00:00Z")); !errors.Is(err, ErrNoRate) {
		t.Fatalf("error = %v, want ErrNoRate", err)
	}
	got, _, err = tab.Convert(money.MustParse("100"), "EUR", "USD", instant(t, "2026-07-01T00:00:00Z"))
	if err != nil || got != money.MustParse("125") {
		t.Fatalf("got %s, %v; want 125", got, err)
	}
}

func TestNilTable(t *testing.T) {
	var tab *Table
	if got, _, err := tab.Convert(42, "EUR", "EUR", time.Time{}); err != nil || got != 42 {
		t.Fatalf("identity on nil table = %d, %v", got, err)
	}
	if _, _, err := tab.Convert(42, "EUR", "USD", time.Time{}); !errors.Is(err, ErrNoRate) {
		t.Fatalf("error = %v, want ErrNoRate", err)
	}
}

func TestNewTableRejects(t *testing.T) {
	const at = "2026-11-01T00:00:00Z"
	tests := []struct {
		name  string
		rates []Rate
		want  string
	}{
		{"duplicate pair and instant, written in two offsets",
			[]Rate{rate(t, "EUR", "USD", "1.08", at), rate(t, "EUR", "USD", "1.09", "2026-11-01T01:00:00+01:00")},
			"fx: rate 1 (EUR to USD): effective at 2026-11-01T01:00:00+01:00 like rate 0"},
		{"zero rate", []Rate{rate(t, "EUR", "USD", "0", at)}, "fx: rate 0 (EUR to USD): rate 0 is not positive"},
		{"negative rate", []Rate{rate(t, "EUR", "USD", "-1.08", at)}, "fx: rate 0 (EUR to USD): rate -1.08 is not positive"},
		{"same currency", []Rate{rate(t, "USD", "USD", "1", at)},
			"fx: rate 0 (USD to USD): a rate converts between two different currencies"},
		{"unknown currency", []Rate{rate(t, "EUR", "XYZ", "1", at)},
			`fx: rate 0 (EUR to XYZ): currency "XYZ": ` + money.ErrUnknownCurrency.Error()},
		{"lower-case currency", []Rate{rate(t, "eur", "USD", "1", at)},
			`fx: rate 0 (eur to USD): currency "eur": ` + money.ErrCurrencySyntax.Error()},
		{"every problem at once",
			[]Rate{rate(t, "EUR", "USD", "0", at), rate(t, "USD", "USD", "1", at)},
			"fx: rate 0 (EUR to USD): rate 0 is not positive\nfx: rate 1 (USD to USD): a rate converts between two different currencies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable(tt.rates)
			if tab != nil || err == nil || err.Error() != tt.want {
				t.Fatalf("NewTable = %v, %v\nwant error %s", tab, err, tt.want)
			}
		})
	}
	// The same instant in the other direction is not a duplicate.
	if _, err := NewTable([]Rate{rate(t, "EUR", "USD", "1.08", at), rate(t, "USD", "EUR", "0.92", at)}); err != nil {
		t.Fatalf("both directions: %v", err)
	}
}

func TestNewTableCopiesItsInput(t *testing.T) {
	rates := []Rate{rate(t, "EUR", "USD", "2", "2026-01-01T00:00:00Z")}
	tab, err := NewTable(rates)
	if err != nil {
		t.Fatal(err)
	}
	rates[0].Rate = MustParseDecimal("3")
	got, _, _ := tab.Convert(1, "EUR", "USD", instant(t, "2026-02-01T00:00:00Z"))
	if got != 2 {
		t.Fatalf("got %d; the table changed with its input", got)
	}
}

// The package comment's bound: out and back with one rate r returns the
// original within ½ + ½·p nano-units (p = 1/r direct leg first, r inverted leg
// first). In integers, with m the mantissa of r:
// 2·m·|back−a| ≤ m + 10¹² direct first, 2·10¹²·|back−a| ≤ 10¹² + m inverted first.
func TestRoundTripBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var checked int
	for range 200_000 {
		a := money.Amount(rng.Int64() >> rng.IntN(63))
		if rng.IntN(2) == 0 {
			a = -a
		}
		m := Decimal(1 + rng.Int64N(1<<(1+rng.IntN(62))))
		mid, ok := mulRate(a, m)
		if ok {
			back, ok := divRate(mid, m)
			if ok {
				checkBound(t, a, back, m, scale, "direct first")
				checked++
			}
		}
		mid, ok = divRate(a, m)
		if ok {
			back, ok := mulRate(mid, m)
			if ok {
				checkBound(t, a, back, scale, int64(m), "inverted first")
				checked++
			}
		}
	}
	if checked < 200_000 {
		t.Fatalf("only %d round trips fitted; the generator is off", checked)
	}
}

// checkBound asserts 2·den·|back−a| ≤ den + num, exactly.
func checkBound(t *testing.T, a, back money.Amount, den Decimal, num int64, how string) {
	t.Helper()
	diff := new(big.Int).Sub(big.NewInt(int64(back)), big.NewInt(int64(a)))
	diff.Abs(diff)
	lhs := new(big.Int).Mul(diff, big.NewInt(2*int64(den)))
	rhs := new(big.Int).Add(big.NewInt(int64(den)), big.NewInt(num))
	if lhs.Cmp(rhs) > 0 {
		t.Fatalf("%s: %d → %d differs by %s, over the bound for rate %d/10¹²", how, a, back, diff, max(int64(den), num))
	}
}

// Exactness against math/big: every conversion is the exact quotient
// rounded once, half away from zero.
func TestConvertMatchesBigRat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		a := money.Amount(rng.Int64() >> rng.IntN(63))
		if rng.IntN(2) == 0 {
			a = -a
		}
		m := Decimal(1 + rng.Int64N(1<<(1+rng.IntN(62))))
		if got, ok := mulRate(a, m); ok {
			want := roundHalfAway(new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(int64(m))), big.NewInt(scale)))
			if big.NewInt(int64(got)).Cmp(want) != 0 {
				t.Fatalf("mulRate(%d, %d) = %d, want %s", a, m, got, want)
			}
		}
		if got, ok := divRate(a, m); ok {
			want := roundHalfAway(new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(int64(a)), big.NewInt(scale)), big.NewInt(int64(m))))
			if big.NewInt(int64(got)).Cmp(want) != 0 {
				t.Fatalf("divRate(%d, %d) = %d, want %s", a, m, got, want)
			}
		}
	}
}

func roundHalfAway(r *big.Rat) *big.Int {
	neg := r.Sign() < 0
	abs := new(big.Rat).Abs(r)
	num := new(big.Int).Mul(abs.Num(), big.NewInt(2))
	num.Add(num, abs.Denom())
	q := num.Quo(num, new(big.Int).Mul(abs.Denom(), big.NewInt(2))) // ⌊|r| + ½⌋
	if neg {
		q.Neg(q)
	}
	return q
}

func TestSignedNeverWraps(t *testing.T) {
	if _, ok := signed(false, math.MaxUint64, true); ok {
		t.Fatal("2⁶⁴−1 rounded up came back in range")
	}
	if v, ok := signed(true, 1<<63, false); !ok || v != math.MinInt64 {
		t.Fatalf("−2⁶³ = %d, %v", v, ok)
	}
	if _, ok := signed(true, 1<<63, true); ok {
		t.Fatal("−2⁶³−1 came back in range")
	}
}

func TestConvertDoesNotAllocate(t *testing.T) {
	tab := testTable(t)
	at := instant(t, "2026-11-15T00:00:00Z")
	for _, p := range [][2]money.Currency{{"EUR", "USD"}, {"USD", "EUR"}, {"USD", "USD"}} {
		allocs := testing.AllocsPerRun(100, func() {
			if _, _, err := tab.Convert(123_456_789, p[0], p[1], at); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s to %s: %v allocations per Convert", p[0], p[1], allocs)
		}
	}
}

// A year of daily rates for a dozen pairs, looked up in the middle.
func BenchmarkConvert(b *testing.B) {
	codes := []string{"EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK", "NOK", "DKK", "PLN", "INR", "BRL"}
	start := instant(b, "2026-01-01T00:00:00Z")
	var rates []Rate
	for _, c := range codes {
		for d := range 365 {
			rates = append(rates, Rate{From: money.Currency(c), To: "USD", Rate: MustParseDecimal("1.0834") + Decimal(d),
				EffectiveFrom: start.AddDate(0, 0, d), Source: "bench"})
		}
	}
	tab, err := NewTable(rates)
	if err != nil {
		b.Fatal(err)
	}
	at := instant(b, "2026-07-02T13:14:15Z")
	for _, bc := range []struct{ name, from, to string }{{"direct", "EUR", "USD"}, {"inverse", "USD", "EUR"}, {"identity", "USD", "USD"}} {
		b.Run(bc.name, func(b *testing.B) {
			from, to := money.Currency(bc.from), money.Currency(bc.to)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := tab.Convert(123_456_789, from, to, at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The package comment's example: yen to dollars at 0.0066 and back is exact
// to 76 nano-yen.
func TestDocumentedBoundExample(t *testing.T) {
	m := MustParseDecimal("0.0066")
	worst := int64(0)
	for a := money.Amount(0); a < 1_000_000; a += 7 {
		mid, _ := mulRate(a, m)
		back, _ := divRate(mid, m)
		worst = max(worst, int64(back-a), int64(a-back))
	}
	if worst != 76 {
		t.Fatalf("worst round trip %d nano-yen; the package comment says 76", worst)
	}
}
