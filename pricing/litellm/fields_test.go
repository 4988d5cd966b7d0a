package litellm

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
)

// TestNumbers is the conversion table: LiteLLM's per-token text to the
// catalog's per-million text, exactly or not at all.
func TestNumbers(t *testing.T) {
	tests := []struct {
		in         any
		mul        int64
		shift      int
		want       string
		exact      string // set when want is a rounding of float noise
		err        error
		errContent string
	}{
		{in: json.Number("3e-06"), mul: 1, shift: 6, want: "3"},
		{in: json.Number("1.25e-07"), mul: 1, shift: 6, want: "0.125"},
		{in: json.Number("0.0000025"), mul: 1, shift: 6, want: "2.5"},
		{in: json.Number("2.5e-6"), mul: 1, shift: 6, want: "2.5"},
		{in: json.Number("1E-6"), mul: 1, shift: 6, want: "1"},
		{in: json.Number("2.5E+1"), mul: 1, shift: 0, want: "25"},
		{in: json.Number("1e-09"), mul: 1, shift: 6, want: "0.001"},
		{in: json.Number("3.125e-07"), mul: 1, shift: 6, want: "0.3125"},
		{in: json.Number("1e-15"), mul: 1, shift: 6, want: "0.000000001"},
		{in: json.Number("0"), mul: 1, shift: 6, want: "0"},
		{in: json.Number("0.0"), mul: 1, shift: 6, want: "0"},
		{in: json.Number("-0"), mul: 1, shift: 6, want: "0"},
		{in: json.Number("0e999999999"), mul: 1, shift: 6, want: "0"},
		{in: json.Number("0.0001"), mul: 1, shift: 0, want: "0.0001"},
		{in: json.Number("1.5e-05"), mul: 1, shift: 3, want: "0.015"},
		{in: json.Number("1.9e-08"), mul: 1024 * 1024, shift: 0, want: "0.019922944"},
		{in: "3e-7", mul: 1, shift: 6, want: "0.3"},
		// LiteLLM's file holds Python reprs of computed floats: digits past
		// double precision are noise, and only they are rounded away.
		{in: json.Number("1.6000000000000001e-06"), mul: 1, shift: 6, want: "1.6", exact: "1.6000000000000001"},
		{in: json.Number("9.499999999999999e-07"), mul: 1, shift: 6, want: "0.95", exact: "0.9499999999999999"},
		{in: json.Number("2.9999900000000002e-06"), mul: 1, shift: 6, want: "2.99999", exact: "2.9999900000000002"},
		{in: json.Number("0.0002833333333333333"), mul: 1, shift: 0, err: errNotExact},
		{in: json.Number("5.83333e-05"), mul: 1, shift: 0, err: errNotExact},
		{in: json.Number("1.0000000005e-06"), mul: 1, shift: 6, err: errNotExact},
		{in: json.Number("5e-16"), mul: 1, shift: 6, err: errNotExact, errContent: "5e-16 is 0.0000000005 per million tokens"},
		{in: json.Number("5.0000000000000001e-16"), mul: 1, shift: 6, err: errNotExact},
		{in: json.Number("1.23456789e-10"), mul: 1, shift: 6, err: errNotExact},
		{in: json.Number("7.629e-08"), mul: 1024 * 1024, shift: 0, err: errNotExact, errContent: "0.07999586304"},
		{in: json.Number("1e-999999999"), mul: 1, shift: 6, err: errNotExact},
		{in: json.Number("1e4"), mul: 1, shift: 6, err: errRange},
		{in: json.Number("1e999999999"), mul: 1, shift: 6, err: errRange},
		{in: json.Number("-1e-06"), mul: 1, shift: 6, err: errNotPrice, errContent: "negative"},
		{in: "cheap", mul: 1, shift: 6, err: errNotPrice},
		{in: true, mul: 1, shift: 6, err: errNotPrice},
		{in: map[string]any{}, mul: 1, shift: 6, err: errNotPrice, errContent: "an object"},
		{in: json.Number("1/3"), mul: 1, shift: 6, err: errNotPrice},
		{in: json.Number(".5"), mul: 1, shift: 6, err: errNotPrice},
		{in: json.Number("1e"), mul: 1, shift: 6, err: errNotPrice},
		{in: json.Number(strings.Repeat("1", 101)), mul: 1, shift: 6, err: errNotPrice},
	}
	for _, tt := range tests {
		got, exact, err := convert(tt.in, tt.mul, tt.shift, "per million tokens")
		if got != tt.want || exact != tt.exact || !errors.Is(err, tt.err) ||
			(tt.errContent != "" && !strings.Contains(err.Error(), tt.errContent)) {
			t.Errorf("convert(%v × %d × 10^%d) = %q, %q, %v; want %q, %q, %v containing %q",
				tt.in, tt.mul, tt.shift, got, exact, err, tt.want, tt.exact, tt.err, tt.errContent)
		}
	}
}

func TestParseTokenField(t *testing.T) {
	tests := []struct {
		name       string
		want       tokenField
		ok, nested bool
	}{
		{"input_cost_per_token", tokenField{class: cInput, tier: -1}, true, false},
		{"cache_creation_input_token_cost_above_1hr", tokenField{class: cCacheWrite1h, tier: -1}, true, false},
		{"cache_creation_input_token_cost_above_1hr_above_200k_tokens", tokenField{class: cCacheWrite1h, above: 200000, tier: -1}, true, false},
		{"output_cost_per_token_above_128k_tokens", tokenField{class: cOutput, above: 128000, tier: -1}, true, false},
		{"input_cost_per_token_above_1000_tokens", tokenField{class: cInput, above: 1000, tier: -1}, true, false},
		{"output_cost_per_token_batches", tokenField{class: cOutput, tier: tBatch}, true, false},
		{"cache_read_input_token_cost_flex", tokenField{class: cCacheRead, tier: tFlex}, true, false},
		{"input_cost_per_audio_token_priority", tokenField{class: cAudioInput, tier: tPriority}, true, false},
		{"input_cost_per_token_above_272k_tokens_priority", tokenField{class: cInput, above: 272000, tier: tPriority}, true, true},
		{"input_cost_per_token_priority_above_200k_tokens", tokenField{class: cInput, above: 200000, tier: tPriority}, true, true},
		{"input_cost_per_token_above_1m_tokens", tokenField{}, false, false},
		{"input_cost_per_token_above_0k_tokens", tokenField{}, false, false},
		{"input_cost_per_second", tokenField{}, false, false},
		{"max_tokens", tokenField{}, false, false},
		{"input_cost_per_token_cache_hit", tokenField{}, false, false},
	}
	for _, tt := range tests {
		got, ok, nested := parseTokenField(tt.name)
		if got != tt.want || ok != tt.ok || nested != tt.nested {
			t.Errorf("parseTokenField(%q) = %+v, %v, %v; want %+v, %v, %v", tt.name, got, ok, nested, tt.want, tt.ok, tt.nested)
		}
	}
}

func TestParseVariant(t *testing.T) {
	tests := []struct {
		key  string
		want variant
		ok   bool
	}{
		{"hd/1024-x-1792/dall-e-3", variant{model: "dall-e-3", size: "1024x1792", quality: "hd", w: 1024, h: 1792}, true},
		{"1024-x-1792/hd/dall-e-3", variant{model: "dall-e-3", size: "1024x1792", quality: "hd", w: 1024, h: 1792}, true},
		{"1024-x-1024/dall-e-2", variant{model: "dall-e-2", size: "1024x1024", w: 1024, h: 1024}, true},
		{"low/1024-x-1024/gpt-image-1", variant{model: "gpt-image-1", size: "1024x1024", quality: "low", w: 1024, h: 1024}, true},
		{"1024-x-1024/50-steps/bedrock/amazon.nova-canvas-v1:0",
			variant{model: "bedrock/amazon.nova-canvas-v1:0", size: "1024x1024", steps: true, w: 1024, h: 1024}, true},
		{"dall-e-3", variant{}, false},
		{"openai/dall-e-3", variant{}, false},
		{"1024-x-1024", variant{}, false},
		{"hd/dall-e-3", variant{}, false},
	}
	for _, tt := range tests {
		got, ok := parseVariant(tt.key)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseVariant(%q) = %+v, %v; want %+v, %v", tt.key, got, ok, tt.want, tt.ok)
		}
	}
}

func TestProviders(t *testing.T) {
	for in, want := range map[string]string{
		"openai": "openai", "text-completion-openai": "openai", "azure": "azure", "azure_text": "azure",
		"anthropic": "anthropic", "vertex_ai": "vertex", "vertex_ai-anthropic_models": "vertex",
		"vertex_ai-language-models": "vertex", "gemini": "google", "bedrock": "bedrock",
		"bedrock_converse": "bedrock", "cohere": "cohere", "cohere_chat": "cohere", "mistral": "mistral",
		"codestral": "mistral", "deepseek": "deepseek", "groq": "groq", "xai": "xai", "Together_AI": "together_ai",
	} {
		if got := mapProvider(in); got != want {
			t.Errorf("mapProvider(%q) = %q, want %q", in, got, want)
		}
	}
	if got := stripProvider("vertex_ai/claude-3-5-sonnet", "vertex"); got != "claude-3-5-sonnet" {
		t.Errorf("vertex_ai/ prefix: %q", got)
	}
	if got := stripProvider("openrouter/anthropic/claude-3.5-sonnet", "openrouter"); got != "anthropic/claude-3.5-sonnet" {
		t.Errorf("openrouter prefix: %q", got)
	}
	if got := stripProvider("meta/llama-3", "groq"); got != "meta/llama-3" {
		t.Errorf("a prefix naming another provider stays: %q", got)
	}
}

// TestClassNamesAreUsageClasses keeps the converter's class keys equal to
// the names the catalog loader accepts.
func TestClassNamesAreUsageClasses(t *testing.T) {
	if int(usage.NumClasses) != numClasses {
		t.Fatalf("usage has %d classes, the converter %d", usage.NumClasses, numClasses)
	}
	for c := range usage.NumClasses {
		if c.String() != classNames[c] {
			t.Errorf("class %d: usage %q, converter %q", c, c.String(), classNames[c])
		}
	}
}

// TestTokenOnlyParsesAsCatalog feeds entries with only classic token prices
// (the subset both schema versions share) to pricing.Parse, and checks the
// prices that come back.
func TestTokenOnlyParsesAsCatalog(t *testing.T) {
	out, _ := convertString(t, `{
		"gpt-4o-mini": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1.5e-07,
			"output_cost_per_token": 6e-07, "cache_read_input_token_cost": 7.5e-08, "max_tokens": 16384},
		"claude-3-5-haiku-20241022": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 8e-07,
			"output_cost_per_token": 4e-06, "cache_creation_input_token_cost": 1e-06,
			"cache_creation_input_token_cost_above_1hr": 1.6e-06, "cache_read_input_token_cost": 8e-08},
		"gpt-4o-audio-preview": {"litellm_provider": "openai", "input_cost_per_token": 2.5e-06,
			"output_cost_per_token": 1e-05, "input_cost_per_audio_token": 4e-05, "output_cost_per_audio_token": 8e-05},
		"unqualified": {"input_cost_per_token": 0.0000025, "output_cost_per_token": 1e-05,
			"output_cost_per_reasoning_token": 1.2e-05}
	}`)
	cat, err := pricing.Parse("converted.yaml", out)
	if err != nil {
		t.Fatalf("pricing.Parse: %v\n%s", err, out)
	}
	if cat.Len() != 4 {
		t.Errorf("%d entries, want 4", cat.Len())
	}
	// The prices themselves are checked as text, the way the loader reads
	// them; pricing's Go API for entries is changing with schema v2.
	c := decodeV2(t, out)
	want := map[string]map[string]string{
		"claude-3-5-haiku-20241022": {"input": "0.8", "cache_read": "0.08", "cache_write": "1", "cache_write_1h": "1.6", "output": "4"},
		"gpt-4o-audio-preview":      {"input": "2.5", "output": "10", "audio_input": "40", "audio_output": "80"},
		"gpt-4o-mini":               {"input": "0.15", "cache_read": "0.075", "output": "0.6"},
		"unqualified":               {"input": "2.5", "output": "10", "reasoning": "12"},
	}
	for _, m := range c.Models {
		if !maps.Equal(m.Prices, want[m.Name]) {
			t.Errorf("%s prices = %v, want %v", m.Name, m.Prices, want[m.Name])
		}
	}
}
