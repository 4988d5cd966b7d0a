package pricing

import (
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// entryWith is one valid entry (lines 2 to 5) followed by extra, from line 6.
func entryWith(extra string) string {
	return "models:\n  - name: m\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n" + extra
}

// parseErrorCase is a catalog and the whole error it loads with.
type parseErrorCase struct{ name, yaml, want string }

func checkParseErrors(t *testing.T, tests []parseErrorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(tt.yaml))
			if c != nil || err == nil || err.Error() != tt.want {
				t.Fatalf("Parse = %v, error\n%v\nwant\n%s", c, err, tt.want)
			}
		})
	}
}

// The mistakes of effective_from and match, and of names across versions.
func TestParseErrorsVersionsAndGlobs(t *testing.T) {
	const second = "  - name: n\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n"
	checkParseErrors(t, []parseErrorCase{
		{"effective_from without a zone", entryWith("    effective_from: 2026-01-01T00:00:00\n"),
			`c.yaml:6: models[0].effective_from: "2026-01-01T00:00:00": want an RFC 3339 instant with a time zone, such as 2026-01-01T00:00:00Z`},
		{"a bad effective_from is not also a duplicate", entryWith("  - name: m\n    effective_from: tomorrow\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n"),
			`c.yaml:7: models[1].effective_from: "tomorrow": want an RFC 3339 instant with a time zone, such as 2026-01-01T00:00:00Z`},
		{"effective_from a list", entryWith("    effective_from: [2026-01-01T00:00:00Z]\n"),
			`c.yaml:6: models[0].effective_from: want an RFC 3339 instant with a time zone, such as 2026-01-01T00:00:00Z`},
		{"two versions without effective_from", entryWith("  - name: M\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n"),
			`c.yaml:6: models[1].name: "M": already defined at line 2`},
		{"alias of two models, even from different instants",
			entryWith("    aliases: [a]\n  - name: n\n    aliases: [A]\n    effective_from: 2027-01-01T00:00:00Z\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n"),
			`c.yaml:8: models[1].aliases[0]: "A": already defined at line 6`},
		{"match not a list", entryWith("    match: gpt-*\n"),
			`c.yaml:6: models[0].match: "gpt-*": want a list of globs such as gpt-4o-*`},
		{"glob with a space", entryWith("    match: [\"gpt *\"]\n"),
			`c.yaml:6: models[0].match[0]: "gpt *": want a glob such as gpt-4o-* without spaces or control characters`},
		{"glob with braces", entryWith("    match: [\"gpt-{4o,4}*\"]\n"),
			`c.yaml:6: models[0].match[0]: "gpt-{4o,4}*": want a glob whose only wildcards are * and ?; [ ] { } and \ are not supported`},
		{"one glob in two models", entryWith("    match: [x-*]\n" + second + "    match: [X-*]\n"),
			`c.yaml:11: models[1].match[0]: "X-*": already defined at line 6`},
		{"overlapping globs, example name given", entryWith("    match: [\"x-*-a\"]\n" + second + "    match: [\"x-?-*\"]\n"),
			`c.yaml:11: models[1].match[0]: "x-?-*": can match the same names as "x-*-a" at line 6 (such as "x-x-a") and has the same literal prefix "x-", so neither is more specific; lengthen one literal prefix or make them disjoint`},
	})
}

func TestParseErrorsUnits(t *testing.T) {
	checkParseErrors(t, []parseErrorCase{
		{"units not a mapping", entryWith("    units: 0.006\n"),
			`c.yaml:6: models[0].units: "0.006": want a mapping with keys request, audio_second, characters_1k, image`},
		{"negative unit price", entryWith("    units: {audio_second: -0.0001}\n"),
			`c.yaml:6: models[0].units.audio_second: "-0.0001": negative; a price is zero or more`},
		{"unit price too precise", entryWith("    units: {characters_1k: 0.0000000001}\n"),
			`c.yaml:6: models[0].units.characters_1k: "0.0000000001": more than 9 decimal places; prices are exact to a nano-unit`},
		{"request price not a decimal", entryWith("    units: {request: 1e-3}\n"),
			`c.yaml:6: models[0].units.request: "1e-3": not a plain decimal (no exponent or separators); want a price per request such as 0.01`},
		{"image prices a list", entryWith("    units: {image: [0.04]}\n"),
			`c.yaml:6: models[0].units.image: want a mapping of "SIZE/QUALITY", "SIZE" or default to a price per image`},
		{"image prices empty", entryWith("    units: {image: {}}\n"),
			`c.yaml:6: models[0].units.image: empty; want a mapping of "SIZE/QUALITY", "SIZE" or default to a price per image`},
		{"image key with two slashes", entryWith("    units:\n      image: {\"1024x1024/hd/x\": 0.08, /hd: 0.08}\n"),
			"c.yaml:7: models[0].units.image.1024x1024/hd/x: want \"SIZE/QUALITY\" such as 1024x1024/hd, \"SIZE\" such as 1024x1024, or default\n" +
				`c.yaml:7: models[0].units.image./hd: want "SIZE/QUALITY" such as 1024x1024/hd, "SIZE" such as 1024x1024, or default`},
		{"image key repeated in another case", entryWith("    units:\n      image:\n        1024x1024/hd: 0.08\n        1024x1024/HD: 0.09\n"),
			`c.yaml:9: models[0].units.image.1024x1024/HD: repeated key; first at line 8`},
		{"image price not a number", entryWith("    units:\n      image: {default: four cents}\n"),
			`c.yaml:7: models[0].units.image.default: "four cents": not a plain decimal (no exponent or separators); want a price per image such as 0.04`},
	})
}

func TestParseErrorsTiers(t *testing.T) {
	checkParseErrors(t, []parseErrorCase{
		{"context_tiers a mapping", entryWith("    context_tiers: {above_input_tokens: 1000}\n"),
			`c.yaml:6: models[0].context_tiers: want a list of tiers, each with above_input_tokens and prices`},
		{"tier without threshold or prices", entryWith("    context_tiers:\n      - {}\n"),
			"c.yaml:7: models[0].context_tiers[0].above_input_tokens: missing; want the prompt tokens above which the tier applies\n" +
				"c.yaml:7: models[0].context_tiers[0].prices: missing; want the prices of the classes the tier changes"},
		{"threshold with separators", entryWith("    context_tiers:\n      - {above_input_tokens: 200_000, prices: {input: 2}}\n"),
			`c.yaml:7: models[0].context_tiers[0].above_input_tokens: "200_000": want a whole number of prompt tokens above zero, such as 200000`},
		{"threshold zero", entryWith("    context_tiers:\n      - {above_input_tokens: 0, prices: {input: 2}}\n"),
			`c.yaml:7: models[0].context_tiers[0].above_input_tokens: "0": want a whole number of prompt tokens above zero, such as 200000`},
		{"equal thresholds", entryWith("    context_tiers:\n      - {above_input_tokens: 1000, prices: {input: 2}}\n      - {above_input_tokens: 1000, prices: {input: 3}}\n"),
			`c.yaml:8: models[0].context_tiers[1].above_input_tokens: "1000": not above the previous tier's 1000; list tiers in ascending order`},
		{"tier prices empty", entryWith("    context_tiers:\n      - {above_input_tokens: 1000, prices: {}}\n"),
			`c.yaml:7: models[0].context_tiers[0].prices: empty; want at least one of input, cache_read, cache_write, cache_write_1h, output, reasoning, audio_input, audio_output, image_input, image_output`},
		{"tier price key misspelt", entryWith("    context_tiers:\n      - {above_input_tokens: 1000, prices: {ouptut: 3}}\n"),
			`c.yaml:7: models[0].context_tiers[0].prices.ouptut: unknown key; want one of input, cache_read, cache_write, cache_write_1h, output, reasoning, audio_input, audio_output, image_input, image_output`},
		{"service_tiers a list", entryWith("    service_tiers: [batch]\n"),
			`c.yaml:6: models[0].service_tiers: want a mapping with keys batch, flex, priority`},
		{"service_tiers empty", entryWith("    service_tiers: {}\n"),
			`c.yaml:6: models[0].service_tiers: empty; want one or more of batch, flex, priority`},
		{"default tier is the base prices", entryWith("    service_tiers: {default: {multiplier: 1}}\n"),
			`c.yaml:6: models[0].service_tiers.default: unknown key; want one of batch, flex, priority`},
		{"multiplier and prices", entryWith("    service_tiers:\n      priority: {multiplier: 2, prices: {input: 2}}\n"),
			`c.yaml:7: models[0].service_tiers.priority: want multiplier or prices, not both`},
		{"neither multiplier nor prices", entryWith("    service_tiers:\n      flex: {}\n"),
			`c.yaml:7: models[0].service_tiers.flex: empty; want multiplier or prices`},
		{"multiplier with an exponent", entryWith("    service_tiers:\n      batch: {multiplier: 5e-1}\n"),
			`c.yaml:7: models[0].service_tiers.batch.multiplier: "5e-1": not a plain decimal (no exponent or separators); want a factor above zero such as 0.5`},
		{"multiplier too precise", entryWith("    service_tiers:\n      batch: {multiplier: 0.3333333333}\n"),
			`c.yaml:7: models[0].service_tiers.batch.multiplier: "0.3333333333": more than 9 decimal places; multipliers are exact to 10⁻⁹`},
		{"service tier prices empty", entryWith("    service_tiers:\n      priority: {prices: {}}\n"),
			`c.yaml:7: models[0].service_tiers.priority.prices: empty; want at least one of input, cache_read, cache_write, cache_write_1h, output, reasoning, audio_input, audio_output, image_input, image_output`},
		{"service tier misspelt key", entryWith("    service_tiers:\n      batch: {multiplyer: 0.5}\n"),
			"c.yaml:7: models[0].service_tiers.batch.multiplyer: unknown key; want one of multiplier, prices\n" +
				"c.yaml:7: models[0].service_tiers.batch: empty; want multiplier or prices"},
	})
}

// Valid v2 shapes that look like mistakes but are not.
func TestParseAcceptsV2(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"longer literal prefix overlaps a shorter", entryWith("    match: [gpt-4o-*]\n  - name: n\n    match: [gpt-4o-mini-*]\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n")},
		{"one model's globs may overlap", entryWith("    match: [\"x-*\", \"x-?*\"]\n")},
		{"versions repeat aliases and globs", entryWith("    aliases: [a]\n    match: [m-*]\n  - name: m\n    aliases: [a]\n    match: [m-*]\n    effective_from: 2027-01-01T00:00:00Z\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n")},
		{"the same glob under two providers", entryWith("    provider: a\n    match: [x-*]\n  - name: m\n    provider: b\n    match: [x-*]\n    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n")},
		{"a catch-all glob", entryWith("    provider: ollama\n    match: [\"*\"]\n")},
		{"zero unit prices", entryWith("    units: {request: 0, audio_second: 0, characters_1k: 0, image: {default: 0}}\n")},
		{"empty match list", entryWith("    match: []\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse("c.yaml", []byte(tt.yaml)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func pm(s string) money.PerMillion { return money.PerMillion(money.MustParse(s)) }

func loadV2(t testing.TB) *Catalog {
	t.Helper()
	c, err := Load("testdata/v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustLookup(t testing.TB, c *Catalog, provider, model string, at time.Time) *Entry {
	t.Helper()
	e, ok := c.Lookup(provider, model, at)
	if !ok {
		t.Fatalf("Lookup(%q, %q, %s) missed", provider, model, at)
	}
	return e
}

// The decoded fields, with tiers resolved against the base.
func TestParseV2Fields(t *testing.T) {
	c := loadV2(t)
	if c.Len() != 16 {
		t.Errorf("Len = %d, want 16 (every version counts)", c.Len())
	}
	tests := []struct {
		name  string
		check func(*testing.T, *Catalog)
	}{
		{"effective_from in UTC", checkV2EffectiveFrom},
		{"context tiers", checkV2ContextTiers},
		{"service tiers", checkV2ServiceTiers},
		{"unit prices", checkV2Units},
		{"match as written", checkV2Match},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, c) })
	}
}

func checkV2EffectiveFrom(t *testing.T, c *Catalog) {
	o3 := mustLookup(t, c, "", "o3", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if want := time.Date(2027, 1, 1, 8, 0, 0, 0, time.UTC); !o3.EffectiveFrom.Equal(want) || o3.EffectiveFrom.Location() != time.UTC {
		t.Errorf("EffectiveFrom = %s, want %s in UTC", o3.EffectiveFrom, want)
	}
}

func checkV2ContextTiers(t *testing.T, c *Catalog) {
	tiered := mustLookup(t, c, "", "tiered", now)
	// input, cache_read, cache_write, cache_write_1h, output, reasoning.
	wantTiers := [][6]string{
		{"2", "0.1", "2", "2", "4", "4"}, // cache_read written in the base: kept
		{"3", "0.3", "3", "3", "6", "6"}, // the others follow their source
	}
	if len(tiered.ContextTiers) != 2 {
		t.Fatalf("context tiers = %d", len(tiered.ContextTiers))
	}
	for i, w := range wantTiers {
		got := tiered.ContextTiers[i]
		for cl, s := range w {
			if got.Prices[cl] != pm(s) || !got.Has[cl] {
				t.Errorf("tier %d %s = %s (has %v), want %s", i, usage.Class(cl), money.Amount(got.Prices[cl]), got.Has[cl], s)
			}
		}
		if got.Has[usage.AudioInput] {
			t.Errorf("tier %d prices audio the base does not", i)
		}
	}
}

func checkV2ServiceTiers(t *testing.T, c *Catalog) {
	g := mustLookup(t, c, "google", "gemini-2.5-pro", now)
	if len(g.ServiceTiers) != 2 || g.ServiceTiers[0].Name != "batch" || g.ServiceTiers[0].Multiplier != money.MustParse("0.5") ||
		g.ServiceTiers[1].Name != "priority" || g.ServiceTiers[1].Multiplier != money.Scale ||
		!g.ServiceTiers[1].Set[usage.Input] || g.ServiceTiers[1].Set[usage.Output] || g.ServiceTiers[1].Prices[usage.Input] != pm("3") {
		t.Errorf("service tiers = %+v", g.ServiceTiers)
	}
}

func checkV2Units(t *testing.T, c *Catalog) {
	d3 := mustLookup(t, c, "", "dall-e-3", now)
	wantImages := map[string]string{"1024x1024/standard": "0.04", "1024x1024/hd": "0.08", "1792x1024/hd": "0.12", "1792x1024": "0.10"}
	if len(d3.Units.Image) != len(wantImages) {
		t.Errorf("image prices = %v", d3.Units.Image)
	}
	for k, v := range wantImages {
		if d3.Units.Image[k] != money.MustParse(v) {
			t.Errorf("image %q = %s, want %s (keys are lower-cased)", k, d3.Units.Image[k], v)
		}
	}
	w := mustLookup(t, c, "", "whisper-1", now)
	if !w.Units.HasAudioSecond || w.Units.AudioSecond != money.MustParse("0.0001") || w.Units.HasCharacters1k || w.Units.Image != nil {
		t.Errorf("whisper units = %+v", w.Units)
	}
	if s := mustLookup(t, c, "perplexity", "sonar", now); s.Units.Request != money.MustParse("0.005") {
		t.Errorf("sonar request = %s", s.Units.Request)
	}
}

func checkV2Match(t *testing.T, c *Catalog) {
	if m := mustLookup(t, c, "openai", "gpt-4o-mini", now); len(m.Match) != 1 || m.Match[0] != "GPT-4o-Mini-*" {
		t.Errorf("match = %q, want as written", m.Match)
	}
}
