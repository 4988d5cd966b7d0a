package pricing

import (
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// now is when the tests' requests start, unless a test says otherwise.
var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func loadValid(t testing.TB) *Catalog {
	t.Helper()
	c, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func prices(in, cacheRead, cacheWrite, cacheWrite1h, out, reasoning string) [usage.NumClasses]money.PerMillion {
	var p [usage.NumClasses]money.PerMillion
	for c, s := range []string{in, cacheRead, cacheWrite, cacheWrite1h, out, reasoning} {
		p[c] = money.PerMillion(money.MustParse(s))
	}
	return p
}

func TestParseValid(t *testing.T) {
	c := loadValid(t)
	if c.Currency() != money.USD || c.Len() != 7 {
		t.Fatalf("currency %q, len %d; want USD, 7", c.Currency(), c.Len())
	}
	e, ok := c.Lookup("openai", "gpt-4o-mini", now)
	if !ok {
		t.Fatal("gpt-4o-mini not found")
	}
	want := Entry{
		Name:     "gpt-4o-mini",
		Provider: "openai",
		Source:   "https://openai.com/api/pricing",
		AsOf:     time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		Prices:   prices("0.15", "0.075", "0.1875", "0.30", "0.60", "0.60"),
		File:     "testdata/valid.yaml",
		Line:     5,
	}
	if e.Name != want.Name || e.Provider != want.Provider || e.Source != want.Source || !e.AsOf.Equal(want.AsOf) ||
		e.Prices != want.Prices || e.File != want.File || e.Line != want.Line {
		t.Errorf("got %+v\nwant %+v", *e, want)
	}
	if len(e.Aliases) != 1 || e.Aliases[0] != "gpt-4o-mini-latest" {
		t.Errorf("aliases = %q", e.Aliases)
	}
}

func TestDefaultPrices(t *testing.T) {
	c := loadValid(t)
	tests := []struct {
		provider, model string
		want            [usage.NumClasses]money.PerMillion
	}{
		// Reasoning defaults to output; cache_write and cache_write_1h to input.
		{"openai", "o3-mini", prices("1.10", "0.55", "1.10", "1.10", "4.40", "4.40")},
		// Every optional class omitted: cache_read defaults to input too.
		{"azure", "gpt-4o-mini", prices("0.165", "0.165", "0.165", "0.165", "0.66", "0.66")},
		{"bedrock", "claude-3-5-sonnet", prices("3.30", "0.33", "3.30", "3.30", "16.50", "16.50")},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			e, ok := c.Lookup(tt.provider, tt.model, now)
			if !ok {
				t.Fatal("not found")
			}
			if e.Prices != tt.want {
				t.Fatalf("prices = %v, want %v", e.Prices, tt.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	c := loadValid(t)
	tests := []struct {
		name, provider, model string
		wantLine              int // entry line in valid.yaml; 0 for not found
	}{
		{"name", "openai", "gpt-4o-mini", 5},
		{"alias", "openai", "gpt-4o-mini-latest", 5},
		{"qualified by another provider", "azure", "gpt-4o-mini", 18},
		{"qualified only, provider without entry", "bedrock", "gpt-4o-mini", 0},
		{"qualified only, no provider", "", "gpt-4o-mini", 0},
		{"unqualified, any provider", "openai", "gpt-4o", 24},
		{"unqualified, no provider", "", "gpt-4o", 24},
		{"qualified wins over unqualified", "bedrock", "claude-3-5-sonnet", 51},
		{"unqualified when provider has none", "anthropic", "claude-3-5-sonnet", 40},
		{"dated snapshot, dashes", "openai", "gpt-4o-mini-2024-07-18", 5},
		{"dated snapshot, compact", "anthropic", "claude-3-5-sonnet-20241022", 40},
		{"dated snapshot, qualified", "bedrock", "claude-3-5-sonnet-20241022", 51},
		{"dated snapshot of an alias", "openai", "gpt-4o-mini-latest-2024-07-18", 5},
		{"dated snapshot of unqualified", "openai", "gpt-4o-2024-08-06", 24},
		{"dated name priced on its own wins", "openai", "gpt-4o-2024-05-13", 33},
		{"case-insensitive name and provider", "OpenAI", "GPT-4o-Mini", 5},
		{"alias written in mixed case", "", "claude-3-5-sonnet-latest", 40},
		{"provider written in mixed case", "bedrock", "CLAUDE-3-5-SONNET", 51},
		{"unknown model", "openai", "gpt-5", 0},
		{"not a date: month 13", "openai", "gpt-4o-2024-13-06", 0},
		{"not a date: too few digits", "openai", "gpt-4o-2024086", 0},
		{"date alone", "", "-2024-08-06", 0},
		{"empty", "", "", 0},
		{"prefix of a name", "openai", "gpt-4o-m", 0},
		{"NUL cannot forge a provider", "", "openai\x00gpt-4o-mini", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := c.Lookup(tt.provider, tt.model, now)
			if tt.wantLine == 0 {
				if ok || e != nil {
					t.Fatalf("Lookup(%q, %q) = %s line %d, want not found", tt.provider, tt.model, e.Name, e.Line)
				}
				return
			}
			if !ok || e.Line != tt.wantLine {
				t.Fatalf("Lookup(%q, %q) = %v, %v; want entry at line %d", tt.provider, tt.model, e, ok, tt.wantLine)
			}
		})
	}
}

// Keys longer than Lookup's stack buffer take the allocating path, and match.
func TestLookupLongName(t *testing.T) {
	name := strings.Repeat("very-long-model-name-", 12) + "v1"
	c, err := Parse("long.yaml", []byte("models:\n  - name: "+name+"\n    provider: a-provider\n"+
		"    source: s\n    as_of: 2026-11-01\n    prices: {input: 1, output: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup("A-Provider", strings.ToUpper(name)+"-20250101", now); !ok {
		t.Fatalf("long dated name (%d bytes) not found", len(name)+9)
	}
}

// Run with -race: a loaded catalog is read by every request at once.
func TestConcurrentLookup(t *testing.T) {
	c := loadValid(t)
	var u usage.Usage
	u.Set(usage.Input, 1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				e, ok := c.Lookup("OpenAI", "gpt-4o-mini-2024-07-18", now)
				if !ok {
					t.Error("not found")
					return
				}
				if got, err := e.Cost(&u, CostOptions{}); err != nil || got != money.MustParse("0.00015") {
					t.Errorf("cost = %s, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCost(t *testing.T) {
	c := loadValid(t)
	tests := []struct {
		name, provider, model string
		tokens                [usage.NumClasses]int64
		want                  string
	}{
		// 1000×0.15 + 500×0.075 + 200×0.60 µ$ = 150 + 37.5 + 120 µ$.
		{"gpt-4o-mini mixed", "openai", "gpt-4o-mini", [usage.NumClasses]int64{usage.Input: 1000, usage.CacheRead: 500, usage.Output: 200}, "0.0003075"},
		{"reasoning at the default output price", "openai", "o3-mini", [usage.NumClasses]int64{usage.Reasoning: 1000}, "0.0044"},
		{"cache_write at the default input price", "openai", "o3-mini", [usage.NumClasses]int64{usage.CacheWrite: 1000}, "0.0011"},
		{"cache_write_1h at the default input price", "openai", "o3-mini", [usage.NumClasses]int64{usage.CacheWrite1h: 1000}, "0.0011"},
		{"explicit cache prices", "", "claude-3-5-sonnet", [usage.NumClasses]int64{usage.CacheWrite: 1_000_000, usage.CacheWrite1h: 1_000_000, usage.CacheRead: 1_000_000}, "10.05"},
		{"one cache_read token", "openai", "gpt-4o-mini", [usage.NumClasses]int64{usage.CacheRead: 1}, "0.000000075"},
		// 0.1875/M makes one token 187.5 nano-units: rounded once, half up.
		{"half a nano-unit rounds up once", "openai", "gpt-4o-mini", [usage.NumClasses]int64{usage.CacheWrite: 1}, "0.000000188"},
		{"nothing used", "openai", "gpt-4o-mini", [usage.NumClasses]int64{}, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := c.Lookup(tt.provider, tt.model, now)
			if !ok {
				t.Fatal("not found")
			}
			var u usage.Usage
			for cl, n := range tt.tokens {
				u.Set(usage.Class(cl), n)
			}
			got, err := e.Cost(&u, CostOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got != money.MustParse(tt.want) {
				t.Fatalf("cost = %s, want %s", got, tt.want)
			}
		})
	}
}

// The acceptance case: a million single-token cache reads of a 0.075/M model
// total exactly 0.075, with no drift from per-request rounding.
func TestMillionCacheReads(t *testing.T) {
	e, ok := loadValid(t).Lookup("openai", "gpt-4o-mini", now)
	if !ok {
		t.Fatal("not found")
	}
	var u usage.Usage
	u.Set(usage.CacheRead, 1)
	var total money.Amount
	for range 1_000_000 {
		c, err := e.Cost(&u, CostOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c != 75 {
			t.Fatalf("one token = %d nano-units, want 75", c)
		}
		total += c
	}
	if total != money.MustParse("0.075") {
		t.Fatalf("total = %s, want 0.075", total)
	}
}

func TestCostErrors(t *testing.T) {
	e, _ := loadValid(t).Lookup("openai", "gpt-4o-mini", now)
	var neg usage.Usage
	neg.Set(usage.Output, -1)
	if _, err := e.Cost(&neg, CostOptions{}); !errors.Is(err, ErrNegativeCount) {
		t.Errorf("negative count: err = %v, want ErrNegativeCount", err)
	}
	if _, err := e.Cost(nil, CostOptions{}); err == nil {
		t.Error("nil usage: want an error")
	}
	var huge usage.Usage
	huge.Set(usage.Output, 1<<62)
	if _, err := e.Cost(&huge, CostOptions{}); !errors.Is(err, money.ErrRange) {
		t.Errorf("overflow: err = %v, want money.ErrRange", err)
	}
}

func TestLoadOverride(t *testing.T) {
	c, err := Load("testdata/valid.yaml", "testdata/override.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 8 {
		t.Errorf("len = %d, want 8 (7, one replaced, one added)", c.Len())
	}
	e, ok := c.Lookup("openai", "gpt-4o-mini", now)
	if !ok || e.File != "testdata/override.yaml" || e.Source != "contract OAI-2026-117" ||
		e.Prices[usage.Input] != money.PerMillion(money.MustParse("0.12")) {
		t.Fatalf("override not applied: %+v", e)
	}
	// The replaced entry takes its alias with it: the override did not list it.
	if e, ok := c.Lookup("openai", "gpt-4o-mini-latest", now); ok {
		t.Errorf("alias of the replaced entry still matches %s:%d", e.File, e.Line)
	}
	// Another provider's entry of the same name is not replaced.
	if e, ok := c.Lookup("azure", "gpt-4o-mini", now); !ok || e.File != "testdata/valid.yaml" {
		t.Errorf("azure entry = %v, %v", e, ok)
	}
	if e, ok := c.Lookup("", "o4-mini", now); !ok || e.Line != 12 {
		t.Errorf("added entry = %v, %v", e, ok)
	}
	if _, ok := c.Lookup("", "o3-mini", now); !ok {
		t.Error("untouched entry lost")
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  string
	}{
		{"currency mismatch", []string{"testdata/valid.yaml", "testdata/eur.yaml"},
			`testdata/eur.yaml:1: currency: "EUR": differs from USD in testdata/valid.yaml; all catalog files must share one currency`},
		{"default currency mismatch", []string{"testdata/eur.yaml", "testdata/missing_currency.yaml"},
			`testdata/missing_currency.yaml: currency: defaults to USD, which differs from EUR in testdata/eur.yaml; all catalog files must share one currency`},
		{"alias claims a name of an earlier file", []string{"testdata/valid.yaml", "testdata/alias_conflict.yaml"},
			`testdata/alias_conflict.yaml:5: models[0].aliases[0]: "gpt-4o": already defined at testdata/valid.yaml:24`},
		{"errors of every file", []string{"testdata/negative_price.yaml", "testdata/empty.yaml"},
			"testdata/negative_price.yaml:7: models[0].prices.input: \"-0.15\": negative; a price is zero or more\n" +
				`testdata/empty.yaml: empty catalog; want a "models" list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.paths...)
			if c != nil || err == nil || err.Error() != tt.want {
				t.Fatalf("Load(%q) = %v, error\n%v\nwant error\n%s", tt.paths, c, err, tt.want)
			}
			if !cfgerr.Is(err) {
				t.Errorf("error is not a cfgerr: %T", err)
			}
		})
	}
	if _, err := Load("testdata/no_such_file.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := Load(); err == nil {
		t.Error("no paths: want an error")
	}
}

// Audio and image tokens and non-token units are never priced at a guessed
// rate: without a written price the usage is unpriceable.
func TestCostRefusesUnlistedAudioImageAndUnits(t *testing.T) {
	c, err := Parse("a.yaml", []byte(`currency: USD
models:
  - name: text-only
    source: s
    as_of: 2025-06-01
    prices: {input: 2.5, output: 10}
  - name: with-audio
    source: s
    as_of: 2025-06-01
    prices: {input: 2.5, output: 10, audio_input: 40, audio_output: 80}
`))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := c.Lookup("", "text-only", now)
	audio, _ := c.Lookup("", "with-audio", now)
	var u usage.Usage
	u.Set(usage.Input, 100)
	u.Set(usage.AudioInput, 1000)
	if _, err := text.Cost(&u, CostOptions{}); !errors.Is(err, ErrNoPrice) {
		t.Fatalf("audio tokens on a text-only entry: %v", err)
	}
	// 100×2.5 + 1000×40 = 40250 µ$.
	if got, err := audio.Cost(&u, CostOptions{}); err != nil || got != money.MustParse("0.04025") {
		t.Fatalf("cost %s, %v", got, err)
	}
	var units usage.Usage
	units.SetUnit(usage.Characters, 1000)
	if _, err := audio.Cost(&units, CostOptions{}); !errors.Is(err, ErrNoPrice) {
		t.Fatalf("characters without a unit price: %v", err)
	}
}
