package pricing

import (
	"errors"
	"math"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// costCase is one request: tokens by class, units, image spec, tier.
type costCase struct {
	name            string
	provider, model string
	tokens          map[usage.Class]int64
	units           map[usage.Unit]int64
	size, quality   string
	tier            string
	want            string // exact amount
	wantErr         error  // with want still checked when it is ErrUnknownServiceTier
}

func (tt costCase) run(t *testing.T, c *Catalog) {
	t.Helper()
	e := mustLookup(t, c, tt.provider, tt.model, now)
	var u usage.Usage
	for cl, n := range tt.tokens {
		u.Set(cl, n)
	}
	for k, n := range tt.units {
		u.SetUnit(k, n)
	}
	u.ImageSize, u.ImageQuality = tt.size, tt.quality
	got, err := e.Cost(&u, CostOptions{ServiceTier: tt.tier})
	if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil && err == nil) {
		t.Fatalf("err = %v, want %v", err, tt.wantErr)
	}
	if (err == nil || errors.Is(err, ErrUnknownServiceTier)) && got != money.MustParse(tt.want) {
		t.Fatalf("cost = %s, want %s", got, tt.want)
	}
}

func runCostCases(t *testing.T, tests []costCase) {
	c := loadV2(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, c) })
	}
}

type tok = map[usage.Class]int64

// The tier applies strictly above its threshold, to the whole request.
func TestCostContextTiers(t *testing.T) {
	runCostCases(t, []costCase{
		// 200000 × 1.25 + 1000 × 10 µ$.
		{name: "at the threshold: base", provider: "google", model: "gemini-2.5-pro",
			tokens: tok{usage.Input: 200_000, usage.Output: 1000}, want: "0.26"},
		// 200001 × 2.50 + 1000 × 15 µ$: every token at the tier price.
		{name: "one token above: tier", provider: "google", model: "gemini-2.5-pro",
			tokens: tok{usage.Input: 200_001, usage.Output: 1000}, want: "0.5150025"},
		// Prompt = 100000 + 50000 + 30000 + 20000 + 1 = 200001: cache,
		// audio and image prompt tokens count toward the threshold.
		{name: "every prompt class counts", provider: "google", model: "gemini-2.5-pro",
			tokens: tok{usage.Input: 100_000, usage.CacheRead: 50_000, usage.AudioInput: 30_000, usage.ImageInput: 20_000, usage.CacheWrite: 1},
			// 100000×2.5 + 50000×0.625 + 30000×1.25 + 20000×1.25 + 1×2.5 (cache_write follows the tier input)
			want: "0.3437525"},
		{name: "output does not count", provider: "google", model: "gemini-2.5-pro",
			tokens: tok{usage.Input: 1000, usage.Output: 300_000}, want: "3.00125"},
		{name: "reasoning does not count", provider: "google", model: "gemini-2.5-pro",
			tokens: tok{usage.Input: 200_000, usage.Reasoning: 1}, want: "0.25001"},
		// tiered: 1000 → base; 1001 → tier 1; 2001 → tier 2.
		{name: "two tiers, base", model: "tiered", tokens: tok{usage.Input: 1000, usage.Reasoning: 1000}, want: "0.003"},
		{name: "two tiers, first", model: "tiered", tokens: tok{usage.Input: 1001, usage.Reasoning: 1000}, want: "0.006002"},
		{name: "two tiers, second at its threshold is first", model: "tiered", tokens: tok{usage.Input: 2000, usage.Reasoning: 1000}, want: "0.008"},
		{name: "two tiers, second", model: "tiered", tokens: tok{usage.Input: 2001, usage.Reasoning: 1000}, want: "0.012003"},
		// cache_read is written in the base (0.1) and tier 1 does not list it:
		// 1001 × 0.1 + 1 × 2 (cache_write follows tier 1 input).
		{name: "written base class kept in a tier", model: "tiered", tokens: tok{usage.CacheRead: 1000, usage.CacheWrite: 1}, want: "0.000102"},
		{name: "tier lists it", model: "tiered", tokens: tok{usage.CacheRead: 2001}, want: "0.0006003"},
		{name: "huge prompt saturates, not wraps", model: "tiered",
			tokens: tok{usage.Input: math.MaxInt64, usage.CacheRead: math.MaxInt64}, wantErr: money.ErrRange},
	})
}

func TestCostServiceTiers(t *testing.T) {
	runCostCases(t, []costCase{
		// 1000 × 2.5 + 500 × 1.25 + 200 × 10 = 5125 µ$.
		{name: "base", provider: "openai", model: "gpt-4o", tokens: tok{usage.Input: 1000, usage.CacheRead: 500, usage.Output: 200}, want: "0.005125"},
		{name: "default is base", provider: "openai", model: "gpt-4o", tier: "default", tokens: tok{usage.Input: 1000, usage.CacheRead: 500, usage.Output: 200}, want: "0.005125"},
		{name: "standard is base", provider: "openai", model: "gpt-4o", tier: "Standard", tokens: tok{usage.Input: 1000, usage.CacheRead: 500, usage.Output: 200}, want: "0.005125"},
		{name: "batch halves", provider: "openai", model: "gpt-4o", tier: "batch", tokens: tok{usage.Input: 1000, usage.CacheRead: 500, usage.Output: 200}, want: "0.0025625"},
		{name: "tier names ignore case", provider: "openai", model: "gpt-4o", tier: "FLEX", tokens: tok{usage.Input: 1000, usage.CacheRead: 500, usage.Output: 200}, want: "0.0025625"},
		// 1000 × 4.25 + 500 × 2.125 + 200 × 17.
		{name: "explicit prices", provider: "openai", model: "gpt-4o", tier: "priority", tokens: tok{usage.Input: 1000, usage.CacheRead: 500, usage.Output: 200}, want: "0.0087125"},
		// Unlisted reasoning follows the priority output (17), cache_write
		// the priority input (4.25).
		{name: "unwritten classes follow the tier", provider: "openai", model: "gpt-4o", tier: "priority", tokens: tok{usage.Reasoning: 1000, usage.CacheWrite: 1000}, want: "0.02125"},
		{name: "unknown tier: base, flagged", provider: "openai", model: "gpt-4o", tier: "scale", tokens: tok{usage.Input: 1000, usage.CacheRead: 500, usage.Output: 200}, want: "0.005125", wantErr: ErrUnknownServiceTier},
		{name: "tier the entry lacks: base, flagged", provider: "openai", model: "gpt-4o-mini", tier: "batch", tokens: tok{usage.Input: 1000}, want: "0.00015", wantErr: ErrUnknownServiceTier},
		{name: "no price beats the flag", provider: "openai", model: "gpt-4o", tier: "scale", tokens: tok{usage.AudioInput: 1}, wantErr: ErrNoPrice},
		// gemini: tier first, then batch: (200001 × 2.5 + 1000 × 15) × 0.5.
		{name: "context tier then multiplier", provider: "google", model: "gemini-2.5-pro", tier: "batch", tokens: tok{usage.Input: 200_001, usage.Output: 1000}, want: "0.25750125"},
		// gemini priority lists input 3 only: above the tier, input is 3,
		// output the tier's 15, cache_read the tier's 0.625.
		{name: "context tier then explicit prices", provider: "google", model: "gemini-2.5-pro", tier: "priority",
			tokens: tok{usage.Input: 200_001, usage.Output: 1000, usage.CacheRead: 1000}, want: "0.615628"},
		{name: "explicit prices below the tier", provider: "google", model: "gemini-2.5-pro", tier: "priority",
			tokens: tok{usage.Input: 1000, usage.Output: 1000, usage.CacheRead: 1000}, want: "0.01331"},
		// tiered: tier 2 (2001 input at 3) and flex 0.25, reasoning following
		// tier 2 output (6): (2001 × 3 + 1000 × 6) × 0.25.
		{name: "multiplier on the second tier", model: "tiered", tier: "flex", tokens: tok{usage.Input: 2001, usage.Reasoning: 1000}, want: "0.00300075"},
		// tiered priority lists output 10; reasoning follows it at every level.
		{name: "explicit output, unwritten reasoning follows", model: "tiered", tier: "priority", tokens: tok{usage.Input: 2001, usage.Reasoning: 1000}, want: "0.016003"},
		{name: "multiplier on units", model: "tts-1", tier: "batch", units: map[usage.Unit]int64{usage.Characters: 1500}, want: "0.01125"},
		{name: "multiplier on audio seconds", model: "whisper-1", tier: "batch", units: map[usage.Unit]int64{usage.AudioMillis: 61_001}, want: "0.0031"},
	})
}

func TestCostUnits(t *testing.T) {
	type units = map[usage.Unit]int64
	runCostCases(t, []costCase{
		{name: "whisper 61.001 s bills 62 s", model: "whisper-1", units: units{usage.AudioMillis: 61_001}, want: "0.0062"},
		{name: "whisper 61.000 s bills 61 s", model: "whisper-1", units: units{usage.AudioMillis: 61_000}, want: "0.0061"},
		{name: "whisper 1 ms bills 1 s", model: "whisper-1", units: units{usage.AudioMillis: 1}, want: "0.0001"},
		{name: "whisper nothing", model: "whisper-1", units: units{usage.AudioMillis: 0}, want: "0"},
		{name: "1,500 characters at 0.015/1k", model: "tts-1", units: units{usage.Characters: 1500}, want: "0.0225"},
		{name: "1 character", model: "tts-1", units: units{usage.Characters: 1}, want: "0.000015"},
		{name: "dall-e size and quality", model: "dall-e-3", units: units{usage.Images: 1}, size: "1024x1024", quality: "standard", want: "0.04"},
		{name: "dall-e quality written in upper case", model: "dall-e-3", units: units{usage.Images: 2}, size: "1024x1024", quality: "hd", want: "0.16"},
		{name: "dall-e request in upper case", model: "dall-e-3", units: units{usage.Images: 1}, size: "1792X1024", quality: "HD", want: "0.12"},
		{name: "dall-e size alone matches any quality", model: "dall-e-3", units: units{usage.Images: 3}, size: "1792x1024", quality: "standard", want: "0.3"},
		{name: "dall-e size alone, no quality", model: "dall-e-3", units: units{usage.Images: 1}, size: "1792x1024", want: "0.1"},
		{name: "dall-e no size/quality or size price, no default", model: "dall-e-3", units: units{usage.Images: 1}, size: "1024x1792", quality: "hd", wantErr: ErrNoPrice},
		{name: "dall-e no quality, no size price", model: "dall-e-3", units: units{usage.Images: 1}, size: "1024x1024", wantErr: ErrNoPrice},
		{name: "dall-e-2 size", model: "dall-e-2", units: units{usage.Images: 1}, size: "256x256", want: "0.016"},
		{name: "dall-e-2 default", model: "dall-e-2", units: units{usage.Images: 1}, size: "512x512", want: "0.02"},
		{name: "dall-e-2 default without a size", model: "dall-e-2", units: units{usage.Images: 1}, want: "0.02"},
		{name: "zero images cost nothing", model: "dall-e-3", units: units{usage.Images: 0}, want: "0"},
		// 0.005 per request, once per call, plus 1000 × 1 + 1000 × 1 µ$.
		{name: "request fee", provider: "perplexity", model: "sonar", tokens: tok{usage.Input: 1000, usage.Output: 1000}, want: "0.007"},
		{name: "request fee with no tokens", provider: "perplexity", model: "sonar", want: "0.005"},
		{name: "characters without a price", model: "whisper-1", units: units{usage.Characters: 1}, wantErr: ErrNoPrice},
		{name: "audio without a price", model: "tts-1", units: units{usage.AudioMillis: 1}, wantErr: ErrNoPrice},
		{name: "images without a price", model: "tts-1", units: units{usage.Images: 1}, size: "1024x1024", wantErr: ErrNoPrice},
		{name: "negative unit count", model: "tts-1", units: units{usage.Characters: -1}, wantErr: ErrNegativeCount},
		{name: "audio tokens at their price", provider: "openai", model: "gpt-4o-audio-preview",
			tokens: tok{usage.AudioInput: 1000, usage.AudioOutput: 1000}, want: "0.12"},
		{name: "huge unit count overflows", model: "tts-1", units: units{usage.Characters: math.MaxInt64}, wantErr: money.ErrRange},
	})
}

// The multiplier is applied to the exact sum before the one rounding.
// Rounding first (or folding 0.5 into a nine-decimal price) would differ
// from each of these.
func TestCostMultiplierRoundsOnce(t *testing.T) {
	c, err := Parse("c.yaml", []byte(`models:
  - name: tiny
    source: s
    as_of: 2026-11-01
    prices: {input: 0.0001, output: 0.000000003}
    units: {characters_1k: 0.000000001}
    service_tiers:
      batch: {multiplier: 0.5}
      priority: {multiplier: 1.5}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := mustLookup(t, c, "", "tiny", now)
	tests := []struct {
		name   string
		tokens tok
		chars  int64
		tier   string
		want   money.Amount // nano-units
	}{
		// 6 × 0.1 = 0.6 nano → round(0.6 × 0.5 = 0.3) = 0; rounding
		// first: round(0.6) × 0.5 = 0.5 → 1.
		{"below half after the multiplier", tok{usage.Input: 6}, 0, "batch", 0},
		{"the same without the multiplier rounds up", tok{usage.Input: 6}, 0, "", 1},
		// 10⁶ × 0.000000003/M = 3 nano → 1.5 → 2; 0.0000000015/M is not
		// representable, so folding the multiplier into the price cannot
		// give it.
		{"half up after the multiplier", tok{usage.Output: 1_000_000}, 0, "batch", 2},
		// 4 × 0.1 = 0.4 nano (→ 0 alone) × 1.5 = 0.6 → 1.
		{"above half only after the multiplier", tok{usage.Input: 4}, 0, "priority", 1},
		// 0.4 nano of tokens + 300 × 0.001 nano = 0.3 of characters: 0.7 → 1,
		// though each part alone rounds to 0.
		{"tokens and units summed before rounding", tok{usage.Input: 4}, 300, "", 1},
		{"and then halved", tok{usage.Input: 4}, 300, "batch", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u usage.Usage
			for cl, n := range tt.tokens {
				u.Set(cl, n)
			}
			u.SetUnit(usage.Characters, tt.chars)
			got, err := e.Cost(&u, CostOptions{ServiceTier: tt.tier})
			if err != nil || got != tt.want {
				t.Fatalf("cost = %d nano, %v; want %d", got, err, tt.want)
			}
		})
	}
}
