package pricing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Each fixture is named after the mistake it makes; want is the whole error.
func TestMalformedFixtures(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"negative_price.yaml",
			`negative_price.yaml:7: models[0].prices.input: "-0.15": negative; a price is zero or more`},
		{"unknown_key.yaml",
			"unknown_key.yaml:7: models[0].prices.inptu: unknown key; want one of input, cache_read, cache_write, cache_write_1h, output, reasoning, audio_input, audio_output, image_input, image_output\n" +
				"unknown_key.yaml:7: models[0].prices.input: missing; every model needs input and output prices"},
		{"unknown_currency.yaml",
			`unknown_currency.yaml:1: currency: "usd": want a three-letter upper-case ISO 4217 code such as USD`},
		{"duplicate_alias.yaml",
			`duplicate_alias.yaml:10: models[1].aliases[0]: "GPT-4o-mini-latest": already defined at line 4`},
		{"duplicate_name.yaml",
			`duplicate_name.yaml:14: models[2].name: "gpt-4o-mini": already defined for provider "openai" at line 3`},
		{"missing_source.yaml",
			`missing_source.yaml:3: models[0].source: missing; want the URL or document the prices were read from`},
		{"bad_as_of.yaml",
			`bad_as_of.yaml:5: models[0].as_of: "2026-13-01": want a date as YYYY-MM-DD`},
		{"too_precise_price.yaml",
			`too_precise_price.yaml:7: models[0].prices.input: "0.0000000001": more than 9 decimal places; prices are exact to a nano-unit`},
		{"float_exponent_price.yaml",
			`float_exponent_price.yaml:7: models[0].prices.input: "1e-6": not a plain decimal (no exponent or separators); want a price per million tokens such as 0.15`},
		{"missing_output_price.yaml",
			`missing_output_price.yaml:7: models[0].prices.output: missing; every model needs input and output prices`},
		{"empty.yaml",
			`empty.yaml: empty catalog; want a "models" list`},
		{"overlapping_glob.yaml",
			`overlapping_glob.yaml:12: models[1].match[0]: "gemini-*-preview*": can match the same names as "gemini-*-pro*" at line 7 (such as "gemini--pro-preview") and has the same literal prefix "gemini-", so neither is more specific; lengthen one literal prefix or make them disjoint`},
		{"bad_glob.yaml",
			`bad_glob.yaml:5: models[0].match[0]: "gpt-4o-[0-9]*": want a glob whose only wildcards are * and ?; [ ] { } and \ are not supported` + "\n" +
				`bad_glob.yaml:6: models[0].match[1]: "gpt-4o-2024-08-06": no * or ?; an exact name belongs in name or aliases`},
		{"tiers_not_ascending.yaml",
			`tiers_not_ascending.yaml:10: models[0].context_tiers[1].above_input_tokens: "128000": not above the previous tier's 200000; list tiers in ascending order`},
		{"bad_multiplier.yaml",
			`bad_multiplier.yaml:8: models[0].service_tiers.batch.multiplier: "0": want a factor above zero such as 0.5` + "\n" +
				`bad_multiplier.yaml:9: models[0].service_tiers.flex.multiplier: "-0.5": want a factor above zero such as 0.5`},
		{"unknown_service_tier.yaml",
			`unknown_service_tier.yaml:9: models[0].service_tiers.scale: unknown key; want one of batch, flex, priority`},
		{"duplicate_effective_from.yaml",
			`duplicate_effective_from.yaml:12: models[1].effective_from: "2026-01-01T01:00:00+01:00": gpt-4o already has a version effective from this instant at line 6; give each version its own effective_from`},
		{"bad_effective_from.yaml",
			`bad_effective_from.yaml:6: models[0].effective_from: "2026-01-01": want an RFC 3339 instant with a time zone, such as 2026-01-01T00:00:00Z`},
		{"unknown_unit.yaml",
			`unknown_unit.yaml:8: models[0].units.minute: unknown key; want one of request, audio_second, characters_1k, image`},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(tt.file, data)
			if c != nil || err == nil {
				t.Fatalf("Parse = %v, %v; want an error", c, err)
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

func TestParseErrors(t *testing.T) {
	const entry = "  - name: m\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"comment only", "# nothing yet\n", `c.yaml: empty catalog; want a "models" list`},
		{"null document", "~\n", `c.yaml: empty catalog; want a "models" list`},
		{"not a mapping", "[1, 2]\n", "c.yaml:1: want a mapping with keys currency, models"},
		{"syntax error", "models: [\n", "c.yaml:1: not valid YAML: did not find expected node content"},
		{"no models", "currency: USD\n", "c.yaml:1: models: missing; want a list of models"},
		{"empty models", "models: []\n", "c.yaml:1: models: empty; want at least one model"},
		{"models not a list", "models: gpt-4o\n", `c.yaml:1: models: "gpt-4o": want a list of models`},
		{"entry not a mapping", "models:\n  - gpt-4o\n",
			`c.yaml:2: models[0]: "gpt-4o": want a mapping with keys name, provider, aliases, match, source, as_of, effective_from, prices, units, context_tiers, service_tiers`},
		{"unknown top-level key", "currency: USD\nmodel:\n" + entry,
			"c.yaml:1: models: missing; want a list of models\nc.yaml:2: model: unknown key; want one of currency, models"},
		{"second document", "models:\n" + entry + "---\nmodels: []\n",
			"c.yaml:6: a second YAML document; a file holds one, split others into their own files"},
		{"repeated key", "models:\n" + entry + "    prices: {input: 3, output: 4}\n",
			"c.yaml:6: models[0].prices: repeated key; first at line 5"},
		{"alias node", "models:\n  - name: &n m\n    aliases: [*n]\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n",
			"c.yaml:3: models[0].aliases[0]: YAML aliases are not supported; write the value out"},
		{"missing name", "models:\n  - source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n",
			"c.yaml:2: models[0].name: missing; want the model name"},
		{"empty name", "models:\n  - name: ''\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n",
			`c.yaml:2: models[0].name: empty; want a model name`},
		{"null price", "models:\n  - name: m\n    source: s\n    as_of: 2026-11-01\n    prices: {input: ~, output: 2}\n",
			`c.yaml:5: models[0].prices.input: "~": missing value; want a price per million tokens such as 0.15`},
		{"list where a price goes", "models:\n  - name: m\n    source: s\n    as_of: 2026-11-01\n    prices: {input: [1], output: 2}\n",
			"c.yaml:5: models[0].prices.input: want a price per million tokens such as 0.15"},
		{"name with a space", "models:\n  - name: gpt 4o\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n",
			`c.yaml:2: models[0].name: "gpt 4o": want a model name without spaces or control characters`},
		// In a flow mapping "output: 1,000" is output 1 and a key "000": only
		// the unknown key gives the mistake away.
		{"all problems at once, in line order",
			"currency: US$\nmodels:\n  - name: m\n    as_of: 11/01/2026\n    prices: {input: 1e3, output: 1,000}\n",
			"c.yaml:1: currency: \"US$\": want a three-letter upper-case ISO 4217 code such as USD\n" +
				"c.yaml:3: models[0].source: missing; want the URL or document the prices were read from\n" +
				"c.yaml:4: models[0].as_of: \"11/01/2026\": want a date as YYYY-MM-DD\n" +
				"c.yaml:5: models[0].prices.000: unknown key; want one of input, cache_read, cache_write, cache_write_1h, output, reasoning, audio_input, audio_output, image_input, image_output\n" +
				"c.yaml:5: models[0].prices.input: \"1e3\": not a plain decimal (no exponent or separators); want a price per million tokens such as 0.15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(tt.yaml))
			if c != nil || err == nil || err.Error() != tt.want {
				t.Fatalf("Parse = %v, error\n%v\nwant\n%s", c, err, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("models: &a [*a]\n"))
	f.Add([]byte("models:\n- {name: a, prices: {input: .5, output: 9223372036.854775807}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of catalog and error", c, err)
		}
		if err != nil {
			if !cfgerr.Is(err) {
				t.Fatalf("error is not a cfgerr: %v", err)
			}
			return
		}
		for _, e := range c.entries {
			checkLoadedEntry(t, c, e)
		}
	})
}

// checkLoadedEntry holds for every entry of a catalog that loads: it is
// found at its own effective instant, any name its globs match is priced,
// and it prices plain text usage at every tier, never below zero.
func checkLoadedEntry(t *testing.T, c *Catalog, e *Entry) {
	got, ok := c.Lookup(e.Provider, e.Name, e.EffectiveFrom)
	if !ok || !strings.EqualFold(got.Name, e.Name) || got.Provider != e.Provider ||
		(!e.EffectiveFrom.IsZero() && got != e) {
		t.Fatalf("Lookup(%q, %q, %s) = %v, %v: misses its own entry", e.Provider, e.Name, e.EffectiveFrom, got, ok)
	}
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // after any RFC 3339 instant
	for _, g := range e.Match {
		name := strings.NewReplacer("*", "", "?", "x").Replace(g)
		if _, ok := c.Lookup(e.Provider, name, far); !ok {
			t.Fatalf("%q, which glob %q matches, is not priced", name, g)
		}
	}
	var u usage.Usage
	u.Set(usage.Input, 1000)
	u.Set(usage.Output, 1000)
	base, err := e.Cost(&u, CostOptions{})
	if err != nil && !errors.Is(err, money.ErrRange) || base < 0 {
		t.Fatalf("%s: base cost %s, %v", e.Name, base, err)
	}
	for _, st := range e.ServiceTiers {
		if a, err := e.Cost(&u, CostOptions{ServiceTier: st.Name}); err != nil && !errors.Is(err, money.ErrRange) || a < 0 {
			t.Fatalf("%s: %s cost %s, %v", e.Name, st.Name, a, err)
		}
	}
	a, err := e.Cost(&u, CostOptions{ServiceTier: "no-such-tier"})
	switch {
	case errors.Is(err, ErrUnknownServiceTier):
		if a != base {
			t.Fatalf("%s: unknown tier priced %s, base %s", e.Name, a, base)
		}
	case !errors.Is(err, money.ErrRange):
		t.Fatalf("%s: unknown tier: %s, %v", e.Name, a, err)
	}
}

func TestUnknownISOCurrency(t *testing.T) {
	_, err := Parse("c.yaml", []byte("currency: XYZ\nmodels:\n  - {name: m, source: s, as_of: 2025-06-01, prices: {input: 1, output: 1}}\n"))
	if err == nil || err.Error() != `c.yaml:1: currency: "XYZ": not an active ISO 4217 currency code` {
		t.Fatalf("got %v", err)
	}
}
