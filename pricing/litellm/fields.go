package litellm

import (
	"strconv"
	"strings"
)

// Token classes in the order of the catalog schema (docs/catalog-schema.md,
// prices). The names are the schema's keys.
const (
	cInput = iota
	cCacheRead
	cCacheWrite
	cCacheWrite1h
	cOutput
	cReasoning
	cAudioInput
	cAudioOutput
	cImageInput
	cImageOutput
	numClasses
)

var classNames = [numClasses]string{"input", "cache_read", "cache_write", "cache_write_1h", "output", "reasoning",
	"audio_input", "audio_output", "image_input", "image_output"}

// classFields are LiteLLM's per-token costs and the class each prices.
// LiteLLM's "above_1hr" is Anthropic's one-hour cache TTL, not a context tier.
var classFields = map[string]int{
	"input_cost_per_token":                      cInput,
	"cache_read_input_token_cost":               cCacheRead,
	"cache_creation_input_token_cost":           cCacheWrite,
	"cache_creation_input_token_cost_above_1hr": cCacheWrite1h,
	"output_cost_per_token":                     cOutput,
	"output_cost_per_reasoning_token":           cReasoning,
	"input_cost_per_audio_token":                cAudioInput,
	"output_cost_per_audio_token":               cAudioOutput,
	"input_cost_per_image_token":                cImageInput,
	"output_cost_per_image_token":               cImageOutput,
}

// Service tiers in schema order, and LiteLLM's suffix for each.
const (
	tBatch = iota
	tFlex
	tPriority
	numTiers
)

var (
	tierNames    = [numTiers]string{"batch", "flex", "priority"}
	tierSuffixes = [numTiers]string{"_batches", "_flex", "_priority"}
)

// Units in schema order (units:).
const (
	uRequest = iota
	uAudioSecond
	uCharacters
	uImage
	numUnits
)

var unitNames = [numUnits]string{"request", "audio_second", "characters_1k", "image"}

// Fields the converter reads for the entry as a whole.
var consumedFields = map[string]bool{"litellm_provider": true, "mode": true, "source": true}

// tokenField is a per-token cost, possibly for a context tier or a service tier.
type tokenField struct {
	class int
	above int64 // > 0: the price applies above this many prompt tokens
	tier  int   // tBatch..tPriority, or -1 for the standard tier
}

// parseTokenField splits "input_cost_per_token_above_200k_tokens",
// "output_cost_per_token_priority" and the like into class and tiers. ok is
// false for a field that is not a per-token cost. nested is true for a price
// that is both context- and service-tiered
// ("input_cost_per_token_above_200k_tokens_priority", or the other order):
// the schema's service tiers hold no context tiers, so it has no counterpart.
func parseTokenField(name string) (f tokenField, ok, nested bool) {
	f.tier = -1
	s := name
	for range 2 {
		if base, above, found := cutContext(s); found && f.above == 0 {
			s, f.above = base, above
			continue
		}
		if base, tier, found := cutTier(s); found && f.tier < 0 {
			s, f.tier = base, tier
			continue
		}
		break
	}
	c, known := classFields[s]
	if !known {
		return tokenField{}, false, false
	}
	f.class = c
	return f, true, f.above > 0 && f.tier >= 0
}

// cutContext removes "_above_<N>[k]_tokens", as LiteLLM's cost calculator
// reads it: k is thousands, and the price applies when the prompt has more
// than N tokens.
func cutContext(s string) (base string, above int64, ok bool) {
	i := strings.LastIndex(s, "_above_")
	if i < 0 {
		return "", 0, false
	}
	n, found := strings.CutSuffix(s[i+len("_above_"):], "_tokens")
	if !found {
		return "", 0, false
	}
	mul := int64(1)
	if t, k := strings.CutSuffix(n, "k"); k {
		n, mul = t, 1000
	}
	if n == "" || len(n) > 9 || !allDigits(n) {
		return "", 0, false
	}
	v, _ := strconv.ParseInt(n, 10, 64)
	if v == 0 {
		return "", 0, false
	}
	return s[:i], v * mul, true
}

func cutTier(s string) (base string, tier int, ok bool) {
	for t, suffix := range tierSuffixes {
		if b, found := strings.CutSuffix(s, suffix); found {
			return b, t, true
		}
	}
	return "", 0, false
}

// modeInfo says what a LiteLLM mode is billed by.
type modeInfo struct {
	tokens  bool // input and output token prices are required
	seconds bool // per-second prices are seconds of audio
	// outputAudio: the audio metered is the output (speech), not the input.
	outputAudio bool
	chars       bool // per-character prices are input characters
	images      bool // per-image prices are images generated
}

// modes lists the modes the converter supports. A mode missing from this
// table (search, video_generation, ocr, vector_store, ...) bills something
// tokenmeter does not meter, so its entries are skipped whole.
var modes = map[string]modeInfo{
	"chat":                {tokens: true},
	"completion":          {tokens: true},
	"responses":           {tokens: true},
	"embedding":           {},
	"moderation":          {},
	"rerank":              {},
	"image_generation":    {images: true},
	"image_edit":          {images: true},
	"audio_transcription": {seconds: true},
	"audio_speech":        {seconds: true, chars: true, outputAudio: true},
}
