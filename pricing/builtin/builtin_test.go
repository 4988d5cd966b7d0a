package builtin

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
)

// at is a request start inside the catalog's validity; no entry here has an
// effective_from, so any instant would do, but a fixed one keeps the tests
// independent of the clock.
var at = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func load(tb testing.TB) *pricing.Catalog {
	tb.Helper()
	c, err := pricing.LoadSources(Source())
	if err != nil {
		tb.Fatalf("the embedded catalog does not load: %v", err)
	}
	return c
}

func TestLoads(t *testing.T) {
	c := load(t)
	if c.Currency() != "USD" {
		t.Errorf("currency %q, want USD", c.Currency())
	}
	if c.Len() < 150 {
		t.Errorf("%d entries; the catalog has lost most of its models", c.Len())
	}
	if got := Source().Name; !strings.HasPrefix(got, "builtin (tokenmeter prices as of 20") {
		t.Errorf("Source().Name = %q", got)
	}
}

func TestAsOfSummary(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"range", "  - as_of: 2026-11-22\n  - as_of: 2025-06-22\n    as_of: 2026-01-05\n",
			"prices as of 2025-06-22 to 2026-11-22"},
		{"one date", "as_of: 2026-11-22\nas_of: 2026-11-22\n", "prices as of 2026-11-22"},
		{"none", "currency: USD\n", "prices without dates"},
		// A comment that mentions as_of is not a date.
		{"comment", "# the as_of: date is when read\n  as_of: 2026-01-01\n", "prices as of 2026-01-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := asOfSummary([]byte(tt.yaml)); got != tt.want {
				t.Errorf("asOfSummary = %q, want %q", got, tt.want)
			}
		})
	}
}

// written is one entry as the YAML writes it.
type written struct {
	name, provider, source, asOf string
	line                         int
}

// entries walks the embedded YAML's node tree, so that what the file says
// is checked independently of what the loader makes of it.
func entries(t *testing.T) []written {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(prices, &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	var models *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "models" {
			models = root.Content[i+1]
		}
	}
	if models == nil {
		t.Fatal("no models")
	}
	var out []written
	for _, m := range models.Content {
		w := written{line: m.Line}
		for i := 0; i+1 < len(m.Content); i += 2 {
			v := m.Content[i+1].Value
			switch m.Content[i].Value {
			case "name":
				w.name = v
			case "provider":
				w.provider = v
			case "source":
				w.source = v
			case "as_of":
				w.asOf = v
			}
		}
		out = append(out, w)
	}
	return out
}

// Every entry says where its prices come from and when they were read, and
// is what Lookup finds under its own provider and name.
func TestEveryEntryHasSourceAndAsOf(t *testing.T) {
	c := load(t)
	ws := entries(t)
	if len(ws) != c.Len() {
		t.Fatalf("the YAML lists %d entries, the catalog has %d", len(ws), c.Len())
	}
	for _, w := range ws {
		if !strings.HasPrefix(w.source, "https://") {
			t.Errorf("line %d %s: source %q is not a URL", w.line, w.name, w.source)
		}
		if _, err := time.Parse(time.DateOnly, w.asOf); err != nil {
			t.Errorf("line %d %s: as_of %q: %v", w.line, w.name, w.asOf, err)
		}
		e, ok := c.Lookup(w.provider, w.name, at)
		if !ok {
			t.Errorf("line %d: %s/%s does not resolve", w.line, w.provider, w.name)
			continue
		}
		if e.Name != w.name || e.Line != w.line || e.Source != w.source || e.AsOf.Format(time.DateOnly) != w.asOf {
			t.Errorf("line %d %s/%s resolves to %s at line %d (source %q, as_of %s)",
				w.line, w.provider, w.name, e.Name, e.Line, e.Source, e.AsOf.Format(time.DateOnly))
		}
	}
}

// costCase is one request priced by hand from the source's prices.
type costCase struct {
	name            string
	provider, model string // as the dialect reports them
	entry           string // the entry that must price it
	tokens          map[usage.Class]int64
	units           map[usage.Unit]int64
	size, quality   string
	tier            string
	want            string // exact, worked out by hand in the comment
}

const m = 1_000_000 // tokens: one million, so that a price per million is the cost

// The expected amounts are computed by hand from the per-million prices the
// sources list (see prices.yaml), not from the catalog: a changed price must
// fail here.
var costCases = []costCase{
	// OpenAI
	{name: "gpt-4o snapshot", provider: "openai", model: "gpt-4o-2024-08-06", entry: "gpt-4o",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "12.5"}, // 2.50 + 10
	{name: "gpt-4o launch snapshot keeps its price", provider: "openai", model: "gpt-4o-2024-05-13", entry: "gpt-4o-2024-05-13",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "20"}, // 5 + 15
	{name: "gpt-4o-mini cache read", provider: "openai", model: "gpt-4o-mini-2024-07-18", entry: "gpt-4o-mini",
		tokens: map[usage.Class]int64{usage.Input: m, usage.CacheRead: m, usage.Output: m}, want: "0.825"}, // 0.15 + 0.075 + 0.60
	{name: "gpt-5.5 above 272k", provider: "openai", model: "gpt-5.5-2026-04-23", entry: "gpt-5.5",
		tokens: map[usage.Class]int64{usage.Input: 300_000, usage.Output: 10_000}, want: "3.45"}, // 0.3M×10 + 0.01M×45
	{name: "gpt-5.5 at 272k", provider: "openai", model: "gpt-5.5", entry: "gpt-5.5",
		tokens: map[usage.Class]int64{usage.Input: 272_000, usage.Output: 10_000}, want: "1.66"}, // 0.272M×5 + 0.01M×30
	{name: "gpt-5 reasoning", provider: "openai", model: "gpt-5-2025-08-07", entry: "gpt-5",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Reasoning: m}, want: "11.25"}, // 1.25 + 10 (reasoning at output)
	{name: "gpt-4.1 batch", provider: "openai", model: "gpt-4.1-2025-04-14", entry: "gpt-4.1", tier: "batch",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "5"}, // (2 + 8) × 0.5
	{name: "o4-mini priority", provider: "openai", model: "o4-mini-2025-04-16", entry: "o4-mini", tier: "priority",
		tokens: map[usage.Class]int64{usage.Input: m, usage.CacheRead: m, usage.Output: m}, want: "10.5"}, // 2 + 0.5 + 8
	{name: "gpt-5.4 flex", provider: "openai", model: "gpt-5.4-2026-03-05", entry: "gpt-5.4", tier: "flex",
		tokens: map[usage.Class]int64{usage.Input: m, usage.CacheRead: m, usage.Output: m}, want: "8.88"}, // 1.25 + 0.13 + 7.5
	{name: "gpt-4o audio", provider: "openai", model: "gpt-4o-audio-preview-2024-12-17", entry: "gpt-4o-audio-preview",
		tokens: map[usage.Class]int64{usage.AudioInput: m, usage.AudioOutput: m}, want: "120"}, // 40 + 80
	{name: "whisper-1 seconds round up", provider: "openai", model: "whisper-1", entry: "whisper-1",
		units: map[usage.Unit]int64{usage.AudioMillis: 61_001}, want: "0.0062"}, // 62 s × 0.0001
	{name: "tts-1 characters", provider: "openai", model: "tts-1", entry: "tts-1",
		units: map[usage.Unit]int64{usage.Characters: 1500}, want: "0.0225"}, // 1.5 × 0.015
	{name: "dall-e-3 hd wide", provider: "openai", model: "dall-e-3", entry: "dall-e-3",
		units: map[usage.Unit]int64{usage.Images: 2}, size: "1792x1024", quality: "hd", want: "0.24"}, // 2 × 0.12
	{name: "dall-e-3 default", provider: "openai", model: "dall-e-3", entry: "dall-e-3",
		units: map[usage.Unit]int64{usage.Images: 1}, want: "0.04"},
	{name: "embedding", provider: "openai", model: "text-embedding-3-small", entry: "text-embedding-3-small",
		tokens: map[usage.Class]int64{usage.Input: 3 * m}, want: "0.06"}, // 3 × 0.02
	{name: "gpt-image-1 tokens", provider: "openai", model: "gpt-image-1", entry: "gpt-image-1",
		tokens: map[usage.Class]int64{usage.Input: 1000, usage.ImageOutput: 4160}, want: "0.1714"}, // 0.001M×5 + 0.00416M×40

	// Anthropic
	{name: "sonnet 4.5", provider: "anthropic", model: "claude-sonnet-4-5-20250929", entry: "claude-sonnet-4-5",
		tokens: map[usage.Class]int64{usage.Input: 100_000, usage.Output: 100_000}, want: "1.8"}, // 0.1M×3 + 0.1M×15
	{name: "sonnet 4.5 above 200k", provider: "anthropic", model: "claude-sonnet-4-5-20250929", entry: "claude-sonnet-4-5",
		tokens: map[usage.Class]int64{usage.Input: 150_000, usage.CacheRead: 100_000, usage.Output: 20_000},
		want:   "1.41"}, // 0.15M×6 + 0.1M×0.6 + 0.02M×22.5
	{name: "haiku 4.5 every cache class", provider: "anthropic", model: "claude-haiku-4-5-20251001", entry: "claude-haiku-4-5",
		tokens: map[usage.Class]int64{usage.Input: 100_000, usage.CacheRead: m, usage.CacheWrite: 200_000,
			usage.CacheWrite1h: 100_000, usage.Output: 50_000},
		want: "0.9"}, // 0.1 + 0.1 + 0.2M×1.25 + 0.1M×2 + 0.05M×5
	{name: "opus 4.1 batch", provider: "anthropic", model: "claude-opus-4-1-20250805", entry: "claude-opus-4-1", tier: "batch",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "45"}, // (15 + 75) × 0.5
	{name: "claude 3.5 haiku", provider: "anthropic", model: "claude-3-5-haiku-20241022", entry: "claude-3-5-haiku",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "4.8"}, // 0.8 + 4
	{name: "opus 4 alias", provider: "anthropic", model: "claude-opus-4-0", entry: "claude-opus-4",
		tokens: map[usage.Class]int64{usage.CacheWrite1h: m}, want: "30"},

	// Google: the Gemini API and Vertex AI
	{name: "gemini 2.5 pro", provider: "google", model: "gemini-2.5-pro", entry: "gemini-2.5-pro",
		tokens: map[usage.Class]int64{usage.Input: 100_000, usage.Output: 10_000}, want: "0.225"}, // 0.1M×1.25 + 0.01M×10
	{name: "gemini 2.5 pro above 200k", provider: "google", model: "gemini-2.5-pro", entry: "gemini-2.5-pro",
		tokens: map[usage.Class]int64{usage.Input: 250_000, usage.CacheRead: 50_000, usage.Output: 10_000},
		want:   "0.7875"}, // 0.25M×2.5 + 0.05M×0.25 + 0.01M×15
	{name: "gemini 2.5 pro on vertex, 200k exactly", provider: "vertex", model: "gemini-2.5-pro", entry: "gemini-2.5-pro",
		tokens: map[usage.Class]int64{usage.Input: 200_000, usage.Output: 10_000}, want: "0.35"}, // 0.2M×1.25 + 0.01M×10
	{name: "gemini 2.5 flash audio", provider: "vertex", model: "gemini-2.5-flash", entry: "gemini-2.5-flash",
		tokens: map[usage.Class]int64{usage.Input: m, usage.CacheRead: m, usage.AudioInput: m, usage.Output: m},
		want:   "3.83"}, // 0.3 + 0.03 + 1 + 2.5
	{name: "gemini 2.0 flash", provider: "google", model: "gemini-2.0-flash-001", entry: "gemini-2.0-flash",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "0.5"}, // 0.1 + 0.4
	{name: "gemini 3.1 pro priority", provider: "vertex", model: "gemini-3.1-pro-preview", entry: "gemini-3.1-pro-preview",
		tier: "priority", tokens: map[usage.Class]int64{usage.Input: 100_000, usage.Output: 100_000},
		want: "2.52"}, // (0.1M×2 + 0.1M×12) × 1.8

	// AWS Bedrock
	{name: "bedrock sonnet 4", provider: "bedrock", model: "anthropic.claude-sonnet-4-20250514-v1:0",
		entry:  "anthropic.claude-sonnet-4-20250514-v1:0",
		tokens: map[usage.Class]int64{usage.Input: 200_000, usage.Output: 100_000}, want: "2.1"}, // 0.2M×3 + 0.1M×15, not above 200k
	{name: "bedrock sonnet 4 a million in", provider: "bedrock", model: "anthropic.claude-sonnet-4-20250514-v1:0",
		entry:  "anthropic.claude-sonnet-4-20250514-v1:0",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "28.5"}, // 1M×6 + 1M×22.5: the whole request above 200k
	{name: "bedrock us profile sonnet 4.5 above 200k", provider: "bedrock", model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
		entry:  "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
		tokens: map[usage.Class]int64{usage.Input: 210_000, usage.Output: 1000},
		want:   "1.41075"}, // 0.21M×6.6 + 0.001M×24.75
	{name: "bedrock global haiku 4.5 cache", provider: "bedrock", model: "global.anthropic.claude-haiku-4-5-20251001-v1:0",
		entry:  "anthropic.claude-haiku-4-5-20251001-v1:0",
		tokens: map[usage.Class]int64{usage.CacheRead: m, usage.CacheWrite: m}, want: "1.35"}, // 0.1 + 1.25
	{name: "bedrock nova pro", provider: "bedrock", model: "amazon.nova-pro-v1:0", entry: "amazon.nova-pro-v1:0",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "4"}, // 0.8 + 3.2
	{name: "bedrock llama 3.3 us profile", provider: "bedrock", model: "us.meta.llama3-3-70b-instruct-v1:0",
		entry:  "meta.llama3-3-70b-instruct-v1:0",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "1.44"},
	{name: "bedrock llama 4 batch", provider: "bedrock", model: "meta.llama4-maverick-17b-instruct-v1:0",
		entry: "meta.llama4-maverick-17b-instruct-v1:0", tier: "batch",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "0.605"}, // (0.24 + 0.97) × 0.5

	// Azure OpenAI
	{name: "azure gpt-4o-mini", provider: "azure", model: "gpt-4o-mini-2024-07-18", entry: "gpt-4o-mini",
		tokens: map[usage.Class]int64{usage.Input: m, usage.CacheRead: m, usage.Output: m}, want: "0.9"}, // 0.165 + 0.075 + 0.66
	{name: "azure gpt-4o 2024-11-20 snapshot", provider: "azure", model: "gpt-4o-2024-11-20", entry: "gpt-4o-2024-11-20",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "13.75"}, // 2.75 + 11
	{name: "azure gpt-5-mini cache", provider: "azure", model: "gpt-5-mini-2025-08-07", entry: "gpt-5-mini",
		tokens: map[usage.Class]int64{usage.CacheRead: m, usage.Output: 500_000}, want: "1.025"}, // 0.025 + 0.5M×2

	// Mistral, which the openai_chat dialect reports as provider openai
	{name: "mistral large via openai_chat", provider: "openai", model: "mistral-large-latest", entry: "mistral-large-latest",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "2"}, // 0.5 + 1.5
	{name: "magistral medium snapshot by glob", provider: "mistral", model: "magistral-medium-2509", entry: "magistral-medium-latest",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "7"}, // 2 + 5
	{name: "mistral small", provider: "openai", model: "mistral-small-3-2-2506", entry: "mistral-small-latest",
		tokens: map[usage.Class]int64{usage.Input: 2 * m, usage.Output: m}, want: "0.3"}, // 2×0.06 + 0.18

	// DeepSeek
	{name: "deepseek cache hit", provider: "openai", model: "deepseek-chat", entry: "deepseek-chat",
		tokens: map[usage.Class]int64{usage.Input: m, usage.CacheRead: m, usage.Output: m}, want: "0.728"}, // 0.28 + 0.028 + 0.42
	{name: "deepseek reasoner", provider: "deepseek", model: "deepseek-reasoner", entry: "deepseek-reasoner",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Reasoning: m}, want: "0.7"}, // 0.28 + 0.42

	// Cohere
	{name: "command a", provider: "cohere", model: "command-a-03-2025", entry: "command-a-03-2025",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "12.5"}, // 2.5 + 10
	{name: "command r snapshot", provider: "cohere", model: "command-r-08-2024", entry: "command-r",
		tokens: map[usage.Class]int64{usage.Input: m, usage.Output: m}, want: "0.75"}, // 0.15 + 0.6
	{name: "command r7b", provider: "cohere", model: "command-r7b-12-2024", entry: "command-r7b-12-2024",
		tokens: map[usage.Class]int64{usage.Input: 2 * m, usage.Output: m}, want: "0.225"}, // 2×0.0375 + 0.15
}

func TestSpotChecks(t *testing.T) {
	c := load(t)
	for _, tt := range costCases {
		t.Run(tt.provider+"/"+tt.name, func(t *testing.T) {
			e, ok := c.Lookup(tt.provider, tt.model, at)
			if !ok {
				t.Fatalf("Lookup(%q, %q) missed", tt.provider, tt.model)
			}
			if e.Name != tt.entry {
				t.Fatalf("Lookup(%q, %q) = %s, want %s", tt.provider, tt.model, e.Name, tt.entry)
			}
			var u usage.Usage
			for cl, n := range tt.tokens {
				u.Set(cl, n)
			}
			for k, n := range tt.units {
				u.SetUnit(k, n)
			}
			u.ImageSize, u.ImageQuality = tt.size, tt.quality
			got, err := e.Cost(&u, pricing.CostOptions{ServiceTier: tt.tier})
			if err != nil {
				t.Fatal(err)
			}
			if want := money.MustParse(tt.want); got != want {
				t.Errorf("cost = %s, want %s", got, want)
			}
		})
	}
}

// Where the sources disagree the catalog leaves a model unpriced rather than
// guess; these must stay misses until a source settles them.
func TestDeliberatelyUnpriced(t *testing.T) {
	c := load(t)
	for _, tt := range []struct{ provider, model string }{
		{"vertex", "gemini-2.0-flash"}, // 0.10 or 0.15 per million, by the source's two entries
		{"mistral", "codestral-latest"},
		{"bedrock", "apac.anthropic.claude-sonnet-4-5-20250929-v1:0"},
	} {
		if e, ok := c.Lookup(tt.provider, tt.model, at); ok {
			t.Errorf("Lookup(%q, %q) = %s, want a miss", tt.provider, tt.model, e.Name)
		}
	}
}

// Audio on a model without an audio price is unpriced, never charged at the
// text rate.
func TestAudioWithoutPriceIsUnpriced(t *testing.T) {
	e, ok := load(t).Lookup("google", "gemini-2.5-pro", at)
	if !ok {
		t.Fatal("gemini-2.5-pro missed")
	}
	var u usage.Usage
	u.Set(usage.AudioInput, 1000)
	if _, err := e.Cost(&u, pricing.CostOptions{}); err == nil {
		t.Fatal("audio input priced without an audio price")
	}
}

// The (provider, model) pairs the issue names, as requests carry them.
var coverage = []struct{ provider, model string }{
	{"openai", "gpt-5.6"}, {"openai", "gpt-5.5-2026-04-23"}, {"openai", "gpt-5.4-mini-2026-03-17"},
	{"openai", "gpt-5.4-nano"}, {"openai", "gpt-5"}, {"openai", "gpt-5-mini-2025-08-07"}, {"openai", "gpt-5-nano"},
	{"openai", "gpt-4.1"}, {"openai", "gpt-4.1-mini-2025-04-14"}, {"openai", "gpt-4.1-nano"},
	{"openai", "gpt-4o"}, {"openai", "gpt-4o-2024-11-20"}, {"openai", "gpt-4o-mini"},
	{"openai", "o1"}, {"openai", "o1-2024-12-17"}, {"openai", "o3"}, {"openai", "o3-2025-04-16"},
	{"openai", "o3-mini-2025-01-31"}, {"openai", "o4-mini"},
	{"openai", "text-embedding-3-small"}, {"openai", "text-embedding-3-large"},
	{"openai", "gpt-4o-audio-preview-2025-06-03"}, {"openai", "gpt-4o-realtime-preview-2024-12-17"},
	{"openai", "gpt-4o-transcribe"}, {"openai", "gpt-4o-mini-transcribe"},
	{"openai", "whisper-1"}, {"openai", "tts-1"}, {"openai", "tts-1-hd"},
	{"openai", "dall-e-3"}, {"openai", "gpt-image-1"}, {"openai", "gpt-image-1.5-2025-12-16"},

	{"anthropic", "claude-opus-4-8"}, {"anthropic", "claude-opus-4-7-20260416"}, {"anthropic", "claude-opus-4-6"},
	{"anthropic", "claude-opus-4-5-20251101"}, {"anthropic", "claude-opus-4-1-20250805"},
	{"anthropic", "claude-opus-4-20250514"}, {"anthropic", "claude-sonnet-4-6"},
	{"anthropic", "claude-sonnet-4-5-20250929"}, {"anthropic", "claude-sonnet-4-20250514"},
	{"anthropic", "claude-haiku-4-5-20251001"}, {"anthropic", "claude-3-7-sonnet-20250219"},
	{"anthropic", "claude-3-7-sonnet-latest"}, {"anthropic", "claude-3-5-haiku-20241022"},
	{"anthropic", "claude-3-haiku-20240307"},

	{"google", "gemini-2.5-pro"}, {"google", "gemini-2.5-flash"}, {"google", "gemini-2.5-flash-lite"},
	{"google", "gemini-2.0-flash"}, {"google", "gemini-2.0-flash-lite"}, {"google", "gemini-3.1-pro-preview"},
	{"google", "gemini-3-flash-preview"}, {"google", "gemini-3.5-flash"}, {"google", "gemini-3.1-flash-lite"},
	{"vertex", "gemini-2.5-pro"}, {"vertex", "gemini-2.5-flash"}, {"vertex", "gemini-2.5-flash-lite"},
	{"vertex", "gemini-2.0-flash-lite-001"}, {"vertex", "gemini-3.1-pro-preview"},

	{"bedrock", "anthropic.claude-sonnet-4-20250514-v1:0"}, {"bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"},
	{"bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0"}, {"bedrock", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"},
	{"bedrock", "global.anthropic.claude-opus-4-8"}, {"bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0"},
	{"bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0"}, {"bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0"},
	{"bedrock", "amazon.nova-pro-v1:0"}, {"bedrock", "us.amazon.nova-lite-v1:0"}, {"bedrock", "amazon.nova-micro-v1:0"},
	{"bedrock", "us.amazon.nova-premier-v1:0"}, {"bedrock", "meta.llama3-3-70b-instruct-v1:0"},
	{"bedrock", "us.meta.llama4-scout-17b-instruct-v1:0"}, {"bedrock", "meta.llama3-1-8b-instruct-v1:0"},
	{"bedrock", "mistral.mistral-large-2407-v1:0"}, {"bedrock", "mistral.mistral-large-3-675b-instruct"},
	{"bedrock", "cohere.command-r-plus-v1:0"}, {"bedrock", "cohere.embed-v4:0"},

	{"azure", "gpt-5"}, {"azure", "gpt-5-mini-2025-08-07"}, {"azure", "gpt-5.1"}, {"azure", "gpt-4.1"},
	{"azure", "gpt-4.1-nano-2025-04-14"}, {"azure", "gpt-4o-2024-08-06"}, {"azure", "gpt-4o-mini"},
	{"azure", "o3"}, {"azure", "o4-mini-2025-04-16"}, {"azure", "o1"}, {"azure", "text-embedding-3-large"},

	{"mistral", "mistral-large-latest"}, {"openai", "mistral-large-latest"}, {"mistral", "mistral-medium-latest"},
	{"mistral", "mistral-small-latest"}, {"mistral", "codestral-2508"}, {"mistral", "ministral-8b-latest"},
	{"mistral", "pixtral-large-latest"}, {"mistral", "pixtral-12b-2409"},

	{"deepseek", "deepseek-chat"}, {"openai", "deepseek-chat"}, {"deepseek", "deepseek-reasoner"},

	{"cohere", "command-a-03-2025"}, {"cohere", "command-r"}, {"cohere", "command-r-plus-08-2024"},
	{"cohere", "command-r7b-12-2024"}, {"cohere", "embed-v4.0"},
}

func TestCoverage(t *testing.T) {
	c := load(t)
	for _, tt := range coverage {
		if _, ok := c.Lookup(tt.provider, tt.model, at); !ok {
			t.Errorf("Lookup(%q, %q) missed", tt.provider, tt.model)
		}
	}
}

// A user catalog loaded after this one replaces its entries of the same
// provider and name and adds the rest; the demo catalog is such a file.
func TestUserCatalogOverrides(t *testing.T) {
	demo, err := os.ReadFile("../../demo/prices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	user := []byte(`currency: USD
models:
  - name: gpt-4o
    provider: openai
    source: negotiated
    as_of: 2026-11-01
    prices: {input: 2, output: 8}
  - name: in-house-model
    source: ours
    as_of: 2026-11-01
    prices: {input: 1, output: 1}
`)
	c, err := pricing.LoadSources(Source(), pricing.Source{Name: "demo", Data: demo}, pricing.Source{Name: "user", Data: user})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ provider, model, file string }{
		{"openai", "gpt-4o-2024-08-06", "user"},           // the later file wins
		{"openai", "gpt-4o-mini", "demo"},                 // replaced by the demo catalog
		{"anthropic", "claude-sonnet-4-20250514", "demo"}, // the demo's claude-sonnet-4 and its glob
		{"openai", "in-house-model", "user"},              // added
		{"openai", "gpt-5", Source().Name},                // untouched
	} {
		e, ok := c.Lookup(tt.provider, tt.model, at)
		if !ok || e.File != tt.file {
			t.Errorf("Lookup(%q, %q) = %v from %q, want an entry from %q", tt.provider, tt.model, ok, fileOf(e), tt.file)
		}
	}
}

// A user entry named after an alias here takes that name over: the later
// file decides what it costs, and the built-in model keeps its own name and
// its other aliases. An unqualified user entry does not take over a
// qualified alias: a qualified entry wins for its provider.
func TestUserEntryNamedAfterAnAlias(t *testing.T) {
	entry := func(provider string) pricing.Source {
		return pricing.Source{Name: "user", Data: []byte("currency: USD\nmodels:\n  - name: gpt-5.1-codex\n" + provider +
			"    source: ours\n    as_of: 2026-11-01\n    prices: {input: 1, output: 1}\n")}
	}
	c, err := pricing.LoadSources(Source(), entry("    provider: openai\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Lookup("openai", "gpt-5.1-codex", at); fileOf(e) != "user" {
		t.Errorf("qualified: openai gpt-5.1-codex priced from %q, want the user's entry", fileOf(e))
	}
	if e, _ := c.Lookup("openai", "gpt-5.1", at); fileOf(e) != Source().Name {
		t.Errorf("qualified: openai gpt-5.1 priced from %q, want the built-in entry", fileOf(e))
	}
	c, err = pricing.LoadSources(Source(), entry(""))
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Lookup("openai", "gpt-5.1-codex", at); fileOf(e) != Source().Name {
		t.Errorf("unqualified: openai gpt-5.1-codex priced from %q, want the built-in alias", fileOf(e))
	}
}

func fileOf(e *pricing.Entry) string {
	if e == nil {
		return ""
	}
	return e.File
}

var sink *pricing.Entry

// BenchmarkLookupBuiltin measures Lookup in the full embedded catalog: an
// exact name, a dated snapshot (stripped to its family's name) and a
// snapshot that only a glob matches.
func BenchmarkLookupBuiltin(b *testing.B) {
	c := load(b)
	for _, bb := range []struct{ name, provider, model string }{
		{"exact", "openai", "gpt-4o"},
		{"dated", "anthropic", "claude-sonnet-4-5-20250929"},
		{"glob", "openai", "magistral-medium-2509"},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e, ok := c.Lookup(bb.provider, bb.model, at)
				if !ok {
					b.Fatalf("Lookup(%q, %q) missed", bb.provider, bb.model)
				}
				sink = e
			}
		})
	}
}
