package pricing

import (
	"os"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestLookupGlobs(t *testing.T) {
	c := loadV2(t)
	tests := []struct {
		name, provider, model string
		want                  string // entry name; "" for not found
	}{
		{"exact name beats a glob matching it", "openai", "gpt-4o-mini", "gpt-4o-mini"},
		{"glob", "openai", "gpt-4o-2024-11-20", "gpt-4o"},
		{"longest literal prefix wins", "openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
		{"exact beats a longer glob", "openai", "gpt-4o-audio-preview", "gpt-4o-audio-preview"},
		{"dated exact beats a glob", "openai", "gpt-4o-audio-preview-2024-12-17", "gpt-4o-audio-preview"},
		{"glob written in mixed case", "OPENAI", "GPT-4O-MINI-SEARCH-PREVIEW", "gpt-4o-mini"},
		{"qualified glob only for its provider", "azure", "gpt-4o-2024-11-20", ""},
		{"unqualified glob", "together", "llama-3.3-70b", "llama-any"},
		{"unqualified glob, no provider", "", "llama-4-scout", "llama-any"},
		{"? matches exactly one byte", "", "llama-44-scout", ""},
		{"qualified glob beats unqualified with a longer prefix", "groq", "llama-3.3-70b", "llama-groq"},
		{"glob of a versioned model", "", "o3-2025-04-16", "o3"},
		{"* matches slashes", "", "llama-3/instruct", "llama-any"},
		{"a glob matches the whole name, not a prefix", "openai", "xgpt-4o-mini", ""},
		{"no glob", "openai", "gpt-5", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := c.Lookup(tt.provider, tt.model, now)
			if tt.want == "" {
				if ok {
					t.Fatalf("Lookup(%q, %q) = %s, want not found", tt.provider, tt.model, e.Name)
				}
				return
			}
			if !ok || e.Name != tt.want {
				t.Fatalf("Lookup(%q, %q) = %v, %v; want %s", tt.provider, tt.model, e, ok, tt.want)
			}
		})
	}
}

// A version takes over at its instant exactly: a request starting 1 ns
// before it is priced at the previous version.
func TestLookupEffectiveFrom(t *testing.T) {
	c := loadV2(t)
	cut := time.Date(2025, 6, 10, 17, 0, 0, 0, time.UTC)
	// 2027-01-01T00:00:00-08:00, written in another zone.
	next := time.Date(2027, 1, 1, 0, 0, 0, 0, time.FixedZone("PST", -8*3600))
	gpt6 := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name, model string
		at          time.Time
		wantInput   string // "" for not found
	}{
		{"before any date", "o3", time.Date(2025, 4, 16, 0, 0, 0, 0, time.UTC), "10"},
		{"the zero time", "o3", time.Time{}, "10"},
		{"1 ns before the cut", "o3", cut.Add(-time.Nanosecond), "10"},
		{"at the cut", "o3", cut, "2"},
		{"after the cut", "o3", cut.Add(time.Nanosecond), "2"},
		{"at the cut, in another zone", "o3", cut.In(time.FixedZone("CEST", 2*3600)), "2"},
		{"1 ns before a zoned instant", "o3", next.Add(-time.Nanosecond), "2"},
		{"at a zoned instant, asked in UTC", "o3", next.UTC(), "1.5"},
		{"alias follows the version in force", "o3-latest", cut, "2"},
		{"alias before the cut", "o3-latest", cut.Add(-time.Nanosecond), "10"},
		{"glob follows the version in force", "o3-2025-04-16-extra", next, "1.5"},
		{"dated snapshot follows the version in force", "o3-20250416", cut, "2"},
		{"future model absent before its start", "gpt-6", gpt6.Add(-time.Nanosecond), ""},
		{"future model at its start", "gpt-6", gpt6, "20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := c.Lookup("openai", tt.model, tt.at)
			if tt.wantInput == "" {
				if ok {
					t.Fatalf("found %s from %s, want not found", e.Name, e.EffectiveFrom)
				}
				return
			}
			if !ok || e.Prices[usage.Input] != pm(tt.wantInput) {
				t.Fatalf("Lookup(%q, %s) = %+v, %v; want input %s", tt.model, tt.at, e, ok, tt.wantInput)
			}
		})
	}
}

// A model whose only version has not started is absent, so the next step of
// the lookup order (here the unqualified entry) prices the request.
func TestLookupFallsThroughFutureVersion(t *testing.T) {
	c, err := Parse("c.yaml", []byte(`models:
  - name: m
    provider: p
    effective_from: 2027-01-01T00:00:00Z
    source: contract
    as_of: 2026-11-01
    prices: {input: 1, output: 1}
  - name: m
    source: list price
    as_of: 2026-11-01
    prices: {input: 2, output: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if e := mustLookup(t, c, "p", "m", start.Add(-time.Nanosecond)); e.Source != "list price" {
		t.Errorf("before: %s", e.Source)
	}
	if e := mustLookup(t, c, "p", "m", start); e.Source != "contract" {
		t.Errorf("at: %s", e.Source)
	}
}

// A later file owns a model's whole price history: its one undated version
// replaces every version of the earlier file, so no dated version of the
// earlier file can take over from the override later.
func TestLoadOverrideReplacesEveryVersion(t *testing.T) {
	dir := t.TempDir()
	override := dir + "/override.yaml"
	if err := os.WriteFile(override, []byte(`models:
  - name: o3
    source: contract 42
    as_of: 2026-12-01
    prices: {input: 1, output: 4}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("testdata/v2.yaml", override)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 14 {
		t.Errorf("Len = %d, want 14 (three versions replaced by one)", c.Len())
	}
	for _, at := range []time.Time{{}, now, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if e := mustLookup(t, c, "", "o3", at); e.Source != "contract 42" {
			t.Errorf("at %s: %s", at, e.Source)
		}
	}
	// The aliases and globs of the replaced versions went with them.
	if e, ok := c.Lookup("", "o3-latest", now); ok {
		t.Errorf("alias of a replaced version still matches %s:%d", e.File, e.Line)
	}
	if e, ok := c.Lookup("", "o3-2025-04-16-x", now); ok {
		t.Errorf("glob of a replaced version still matches %s:%d", e.File, e.Line)
	}
}

// Globs of a later file are checked against the earlier file's, and the
// report names both files.
func TestLoadOverlapAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	extra := dir + "/extra.yaml"
	if err := os.WriteFile(extra, []byte(`models:
  - name: gpt-4o-x
    provider: openai
    match: ["gpt-4o-?x*"]
    source: s
    as_of: 2026-12-01
    prices: {input: 1, output: 4}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load("testdata/v2.yaml", extra)
	want := extra + `:4: models[0].match[0]: "gpt-4o-?x*": can match the same names as "gpt-4o-*" at testdata/v2.yaml:10 ` +
		`(such as "gpt-4o-xx") and has the same literal prefix "gpt-4o-", so neither is more specific; lengthen one literal prefix or make them disjoint`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
}

func TestWildMatch(t *testing.T) {
	tests := []struct {
		glob, name string
		want       bool
	}{
		{"gpt-4o-*", "gpt-4o-", true},
		{"gpt-4o-*", "gpt-4o", false},
		{"gpt-4o-*", "gpt-4o-mini", true},
		{"*", "", true},
		{"?", "", false},
		{"?", "a", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYcZ", false},
		{"*-preview", "gemini-2.5-pro-preview", true},
		{"*-preview", "gemini-2.5-pro-preview-2", false},
		{"**a", "a", true},
		{"a?c*", "abc", true},
		{"a?c*", "ac", false},
		{"claude-*-sonnet-*", "claude-3-5-sonnet-20241022", true},
	}
	for _, tt := range tests {
		if got := wildMatch(tt.glob, []byte(tt.name)); got != tt.want {
			t.Errorf("wildMatch(%q, %q) = %v, want %v", tt.glob, tt.name, got, tt.want)
		}
	}
}

// overlap decides exactly whether two globs share a name; the name it gives
// matches both.
func TestOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"gemini-*-pro*", "gemini-*-preview*", true},
		{"x-*-a", "x-*-b", false},
		{"x-?", "x-??", false},
		{"x-?*", "x-??", true},
		{"x-*a", "x-b*", true},
		{"x-a*", "x-b*", false},
		{"*", "anything-?", true},
		{"a*", "*b", true},
		{"a?c", "a*d", false},
		{"a*c*e", "*b*d*", true},
		{"*-mini", "*-preview", false},
	}
	for _, tt := range tests {
		for _, ab := range [][2]string{{tt.a, tt.b}, {tt.b, tt.a}} {
			name, got := overlap(ab[0], ab[1])
			if got != tt.want {
				t.Errorf("overlap(%q, %q) = %v, want %v", ab[0], ab[1], got, tt.want)
				continue
			}
			if got && (!wildMatch(ab[0], []byte(name)) || !wildMatch(ab[1], []byte(name))) {
				t.Errorf("overlap(%q, %q) example %q does not match both", ab[0], ab[1], name)
			}
		}
	}
}

// Exhaustively over short globs and names: overlap says yes exactly when
// some name of up to 5 bytes matches both (globs of 3 bytes cannot need a
// longer one to meet).
func TestOverlapAgreesWithBruteForce(t *testing.T) {
	alphabet := []byte{'a', 'b', '?', '*'}
	var globs []string
	for n := 1; n <= 3; n++ {
		var gen func(prefix string)
		gen = func(prefix string) {
			if len(prefix) == n {
				globs = append(globs, prefix)
				return
			}
			for _, c := range alphabet {
				gen(prefix + string(c))
			}
		}
		gen("")
	}
	var names []string
	var genName func(prefix string)
	genName = func(prefix string) {
		names = append(names, prefix)
		if len(prefix) < 5 {
			genName(prefix + "a")
			genName(prefix + "b")
		}
	}
	genName("")
	for _, a := range globs {
		for _, b := range globs {
			want := false
			for _, n := range names {
				if wildMatch(a, []byte(n)) && wildMatch(b, []byte(n)) {
					want = true
					break
				}
			}
			if _, got := overlap(a, b); got != want {
				t.Fatalf("overlap(%q, %q) = %v, brute force says %v", a, b, got, want)
			}
		}
	}
}

// Exact hits, glob hits and dated versions never allocate.
func TestLookupAllocs(t *testing.T) {
	c := loadV2(t)
	for _, tt := range []struct{ provider, model string }{
		{"openai", "gpt-4o-mini"},
		{"OpenAI", "gpt-4o-mini-2024-07-18"},
		{"groq", "llama-3.3-70b"},
		{"", "o3-latest"},
		{"openai", "no-such-model"},
	} {
		if n := testing.AllocsPerRun(100, func() { c.Lookup(tt.provider, tt.model, now) }); n != 0 {
			t.Errorf("Lookup(%q, %q) allocates %v times", tt.provider, tt.model, n)
		}
	}
	e := mustLookup(t, c, "google", "gemini-2.5-pro", now)
	var u usage.Usage
	u.Set(usage.Input, 300_000)
	u.Set(usage.Output, 1000)
	if n := testing.AllocsPerRun(100, func() { _, _ = e.Cost(&u, CostOptions{ServiceTier: "batch"}) }); n != 0 {
		t.Errorf("Cost allocates %v times", n)
	}
	d := mustLookup(t, c, "", "dall-e-3", now)
	var img usage.Usage
	img.SetUnit(usage.Images, 1)
	img.ImageSize, img.ImageQuality = "1024x1024", "HD"
	if n := testing.AllocsPerRun(100, func() { _, _ = d.Cost(&img, CostOptions{}) }); n != 0 {
		t.Errorf("Cost of images allocates %v times", n)
	}
	if got, err := d.Cost(&img, CostOptions{}); err != nil || got != money.MustParse("0.08") {
		t.Errorf("image cost = %s, %v", got, err)
	}
}

func TestLookupAnyProvider(t *testing.T) {
	c, err := Parse("a.yaml", []byte(`currency: USD
models:
  - {name: only-azure, provider: azure, source: s, as_of: 2025-06-01, prices: {input: 1, output: 2}}
  - {name: both, provider: openai, source: s, as_of: 2025-06-01, prices: {input: 3, output: 4}}
  - {name: both, source: s, as_of: 2025-06-01, prices: {input: 5, output: 6}}
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if e, ok := c.LookupAnyProvider("only-azure", now); !ok || e.Provider != "azure" {
		t.Fatalf("provider-only entry: %+v %v", e, ok)
	}
	// The unqualified entry wins when there is one.
	if e, ok := c.LookupAnyProvider("both", now); !ok || e.Provider != "" || e.Prices[usage.Input] != money.PerMillion(money.MustParse("5")) {
		t.Fatalf("unqualified first: %+v %v", e, ok)
	}
	if _, ok := c.LookupAnyProvider("nope", now); ok {
		t.Fatal("unknown model found")
	}
}
