package pricing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/cfgerr"
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
		{"syntax error", "models: [\n", "c.yaml:1: invalid YAML: did not find expected node content"},
		{"no models", "currency: USD\n", "c.yaml:1: models: missing; want a list of models"},
		{"empty models", "models: []\n", "c.yaml:1: models: empty; want at least one model"},
		{"models not a list", "models: gpt-4o\n", `c.yaml:1: models: "gpt-4o": want a list of models`},
		{"entry not a mapping", "models:\n  - gpt-4o\n",
			`c.yaml:2: models[0]: "gpt-4o": want a mapping with keys name, provider, aliases, source, as_of, prices`},
		{"unknown top-level key", "currency: USD\nmodel:\n" + entry,
			"c.yaml:1: models: missing; want a list of models\nc.yaml:2: model: unknown key; want one of currency, models"},
		{"second document", "models:\n" + entry + "---\nmodels: []\n",
			"c.yaml:6: a second YAML document; a catalog file holds one, split others into their own files"},
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
		// A catalog that loads prices every entry it holds, never below zero.
		for _, e := range c.entries {
			for _, p := range e.Prices {
				if p < 0 {
					t.Fatalf("%s has a negative price", e.Name)
				}
			}
			if got, ok := c.Lookup(e.Provider, e.Name); !ok || got.Name != e.Name {
				t.Fatalf("Lookup(%q, %q) misses its own entry", e.Provider, e.Name)
			}
		}
	})
}
