package fx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

func parseFixture(t *testing.T, file string) ([]Rate, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return ParseRates(file, &doc)
}

func TestParseRatesValid(t *testing.T) {
	rates, err := parseFixture(t, "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Rate{
		{From: "EUR", To: "USD", Rate: 1_083_400_000_000, EffectiveFrom: instant(t, "2026-11-01T00:00:00Z"), Source: "ECB reference rate"},
		{From: "EUR", To: "USD", Rate: 1_101_200_000_000, EffectiveFrom: instant(t, "2026-11-30T23:00:00Z"), Source: "ECB reference rate"},
		{From: "USD", To: "JPY", Rate: 151_370_000_000_000, EffectiveFrom: instant(t, "2026-11-01T00:00:00Z"), Source: "Bank of Japan"},
	}
	if len(rates) != len(want) {
		t.Fatalf("%d rates, want %d", len(rates), len(want))
	}
	for i := range want {
		got := rates[i]
		if got.From != want[i].From || got.To != want[i].To || got.Rate != want[i].Rate ||
			!got.EffectiveFrom.Equal(want[i].EffectiveFrom) || got.Source != want[i].Source {
			t.Errorf("rate %d = %+v, want %+v", i, got, want[i])
		}
	}
	if _, err := NewTable(rates); err != nil {
		t.Fatalf("NewTable rejects what ParseRates accepted: %v", err)
	}
}

// Each fixture is named after the mistake it makes; want is the whole error.
func TestParseRatesFixtures(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown_currency.yaml",
			`unknown_currency.yaml:2: rates[0].to: "XYZ": ` + money.ErrUnknownCurrency.Error()},
		{"withdrawn_currency.yaml",
			`withdrawn_currency.yaml:2: rates[0].from: "BGN": ` + money.ErrUnknownCurrency.Error()},
		{"lower_case_currency.yaml",
			`lower_case_currency.yaml:2: rates[0].from: "eur": want a three-letter upper-case ISO 4217 code such as USD`},
		{"same_currency.yaml",
			`same_currency.yaml:2: rates[0].to: "USD": same currency as from; a rate converts between two currencies`},
		{"zero_rate.yaml",
			`zero_rate.yaml:2: rates[0].rate: "0": not positive; want the units of to that one unit of from buys`},
		{"negative_rate.yaml",
			`negative_rate.yaml:2: rates[0].rate: "-1.0834": not positive; want the units of to that one unit of from buys`},
		{"float_exponent_rate.yaml",
			`float_exponent_rate.yaml:2: rates[0].rate: "1.0834e0": not a plain decimal (no exponent or separators); want a rate such as "1.0834"`},
		{"too_precise_rate.yaml",
			`too_precise_rate.yaml:2: rates[0].rate: "151.3700000000001": more than 12 decimal places; a rate is exact to 10⁻¹²`},
		{"too_large_rate.yaml",
			`too_large_rate.yaml:2: rates[0].rate: "113400000": too large; a rate is at most 9223372.036854775807`},
		{"date_without_time.yaml",
			`date_without_time.yaml:2: rates[0].effective_from: "2026-11-01": want an RFC 3339 instant with a UTC offset, such as 2026-11-01T00:00:00Z`},
		{"time_without_offset.yaml",
			`time_without_offset.yaml:2: rates[0].effective_from: "2026-11-01T00:00:00": want an RFC 3339 instant with a UTC offset, such as 2026-11-01T00:00:00Z`},
		{"duplicate_pair_instant.yaml",
			`duplicate_pair_instant.yaml:4: rates[2].effective_from: "2026-11-01T01:00:00+01:00": EUR to USD already has a rate effective at this instant, at line 2`},
		{"unknown_key.yaml",
			"unknown_key.yaml:5: rates[0].efective_from: unknown key; want one of from, to, rate, effective_from, source\n" +
				"unknown_key.yaml:2: rates[0].effective_from: missing; want the instant the rate takes effect, such as 2026-11-01T00:00:00Z"},
		{"missing_source.yaml",
			`missing_source.yaml:2: rates[0].source: missing; want where the rate was read, such as "ECB reference rate"`},
		{"repeated_key.yaml",
			"repeated_key.yaml:5: rates[0].rate: repeated key; first at line 4"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			rates, err := parseFixture(t, tt.file)
			if rates != nil || err == nil {
				t.Fatalf("ParseRates = %v, %v; want an error", rates, err)
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n%s\nwant\n%s", err, tt.want)
			}
			var ce *cfgerr.Error
			if !errors.As(err, &ce) || ce.File != tt.file {
				t.Fatalf("error does not unwrap to a *cfgerr.Error of %s: %#v", tt.file, err)
			}
		})
	}
}

func TestParseRatesShapes(t *testing.T) {
	const ok = "{from: EUR, to: USD, rate: 1, effective_from: 2026-11-01T00:00:00Z, source: s}"
	tests := []struct {
		name, yaml, want string
	}{
		{"empty document", "", `r.yaml: empty; want a mapping with a "rates" list`},
		{"null document", "~\n", `r.yaml: empty; want a mapping with a "rates" list`},
		{"not a mapping", "[1]\n", "r.yaml:1: want a mapping with keys rates"},
		{"no rates", "pivot: USD\n", "r.yaml:1: pivot: unknown key; want one of rates\nr.yaml:1: rates: missing; want a list of rates"},
		{"rates not a list", "rates: EUR\n", `r.yaml:1: rates: "EUR": want a list of rates`},
		{"rates null", "rates:\n", "r.yaml:1: rates: missing value; want a list of rates"},
		{"item not a mapping", "rates: [EUR]\n", `r.yaml:1: rates[0]: "EUR": want a mapping with keys from, to, rate, effective_from, source`},
		{"alias", "rates:\n  - &a " + ok + "\n  - *a\n", "r.yaml:3: rates[1]: YAML aliases are not supported; write the value out"},
		{"rate a list", "rates: [{from: EUR, to: USD, rate: [1], effective_from: 2026-11-01T00:00:00Z, source: s}]\n",
			`r.yaml:1: rates[0].rate: want a rate such as "1.0834"`},
		{"null rate", "rates: [{from: EUR, to: USD, rate: ~, effective_from: 2026-11-01T00:00:00Z, source: s}]\n",
			`r.yaml:1: rates[0].rate: "~": missing value; want a rate such as "1.0834"`},
		{"blank source", "rates: [{from: EUR, to: USD, rate: 1, effective_from: 2026-11-01T00:00:00Z, source: \" \"}]\n",
			`r.yaml:1: rates[0].source: " ": empty; want where the rate was read, such as "ECB reference rate"`},
		{"every problem at once", "rates:\n  - {from: usd, to: USD, rate: 0, effective_from: soon, source: s}\n",
			"r.yaml:2: rates[0].from: \"usd\": want a three-letter upper-case ISO 4217 code such as USD\n" +
				"r.yaml:2: rates[0].rate: \"0\": not positive; want the units of to that one unit of from buys\n" +
				"r.yaml:2: rates[0].effective_from: \"soon\": want an RFC 3339 instant with a UTC offset, such as 2026-11-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
				t.Fatal(err)
			}
			_, err := ParseRates("r.yaml", &doc)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error\n%v\nwant\n%s", err, tt.want)
			}
		})
	}
	if _, err := ParseRates("r.yaml", nil); err == nil {
		t.Fatal("nil node: no error")
	}
}

// An empty list is a table without rates, not an error: only identity
// conversions then succeed.
func TestParseRatesEmptyList(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("rates: []\n"), &doc); err != nil {
		t.Fatal(err)
	}
	rates, err := ParseRates("r.yaml", &doc)
	if err != nil || len(rates) != 0 {
		t.Fatalf("ParseRates = %v, %v", rates, err)
	}
}

// Whatever ParseRates accepts, NewTable accepts.
func FuzzParseRates(f *testing.F) {
	for _, name := range []string{"valid.yaml", "duplicate_pair_instant.yaml", "unknown_key.yaml", "float_exponent_rate.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil {
			return
		}
		rates, err := ParseRates("f.yaml", &doc)
		if err != nil {
			if !cfgerr.Is(err) {
				t.Fatalf("error is not a config error: %v", err)
			}
			return
		}
		if _, err := NewTable(rates); err != nil {
			t.Fatalf("NewTable rejects what ParseRates accepted: %v", err)
		}
	})
}
