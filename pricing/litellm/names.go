package litellm

import (
	"strings"
)

// providers maps LiteLLM's litellm_provider to the provider names
// tokenmeter's dialects report (dialect.Dialect.Provider), where the two
// differ. Any other LiteLLM provider keeps its own name, lower-cased, so an
// entry is never attributed to a provider that does not bill for it.
var providers = map[string]string{
	"text-completion-openai":    "openai",
	"azure_text":                "azure",
	"gemini":                    "google", // the Gemini API (generativelanguage.googleapis.com)
	"bedrock_converse":          "bedrock",
	"cohere_chat":               "cohere",
	"codestral":                 "mistral",
	"text-completion-codestral": "mistral",
	"ollama_chat":               "ollama",
}

// mapProvider returns tokenmeter's name for a LiteLLM provider. Every
// vertex_ai* family (vertex_ai-language-models, vertex_ai-anthropic_models,
// ...) is one provider to tokenmeter: Vertex AI, which bills them all.
func mapProvider(p string) string {
	p = strings.ToLower(p)
	if p == "vertex_ai" || strings.HasPrefix(p, "vertex_ai-") || strings.HasPrefix(p, "vertex_ai_") {
		return "vertex"
	}
	if m, ok := providers[p]; ok {
		return m
	}
	return p
}

// validName reports whether s can be a catalog name or provider: the
// catalog refuses spaces and control characters.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// stripProvider removes a leading "provider/" from a LiteLLM key when that
// segment names the entry's own provider ("azure/gpt-4o", "gemini/gemini-2.5-pro",
// "vertex_ai/claude-3-5-sonnet" under vertex_ai-anthropic_models). Anything
// after it stays in the name: "openrouter/anthropic/claude-3.5-sonnet" is
// model "anthropic/claude-3.5-sonnet" on OpenRouter.
func stripProvider(key, provider string) string {
	first, rest, ok := strings.Cut(key, "/")
	if ok && rest != "" && provider != "" && mapProvider(first) == provider {
		return rest
	}
	return key
}

// variant is an image size/quality entry: LiteLLM prices DALL·E and other
// image models per size and quality under keys such as
// "hd/1024-x-1792/dall-e-3", "1024-x-1024/dall-e-2" and
// "low/1024-x-1024/gpt-image-1". tokenmeter writes them as units.image
// prices of the model itself.
type variant struct {
	model   string // the key without the size and quality segments
	size    string // "1024x1792", as OpenAI's size parameter spells it
	quality string // "" when the key names none
	steps   bool   // a step-count variant (Stability on Bedrock): no counterpart
	w, h    int64  // the size in pixels, for per-pixel prices
}

// qualities are the image qualities LiteLLM keys use, so that
// "1024-x-1024/hd/dall-e-3" is told apart from "1024-x-1024/dall-e-2".
var qualities = map[string]bool{"standard": true, "hd": true, "low": true, "medium": true, "high": true, "auto": true}

// parseVariant recognises [QUALITY/]SIZE/[QUALITY/ or STEPS/]model keys.
func parseVariant(key string) (variant, bool) {
	seg := strings.Split(key, "/")
	if len(seg) < 2 {
		return variant{}, false
	}
	var v variant
	i := 0
	if len(seg) >= 3 && qualities[seg[0]] && isSize(seg[1]) {
		v.quality, i = seg[0], 1
	}
	w, h, ok := parseSize(seg[i])
	if !ok {
		return variant{}, false
	}
	v.w, v.h, v.size = w, h, strings.ReplaceAll(seg[i], "-x-", "x")
	i++
	if v.quality == "" && len(seg) > i+1 {
		switch {
		case qualities[seg[i]]:
			v.quality, i = seg[i], i+1
		case strings.HasSuffix(seg[i], "-steps"):
			v.steps, i = true, i+1
		}
	}
	v.model = strings.Join(seg[i:], "/")
	return v, v.model != ""
}

func isSize(s string) bool {
	_, _, ok := parseSize(s)
	return ok
}

// parseSize reads LiteLLM's "1024-x-1792".
func parseSize(s string) (w, h int64, ok bool) {
	a, b, found := strings.Cut(s, "-x-")
	if !found || a == "" || b == "" || len(a) > 6 || len(b) > 6 || !allDigits(a) || !allDigits(b) {
		return 0, 0, false
	}
	w, h = atoi(a), atoi(b)
	return w, h, w > 0 && h > 0
}

func atoi(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// imageKey is the units.image key: "SIZE/QUALITY", or "SIZE" for any quality.
func (v variant) imageKey() string {
	if v.quality == "" {
		return v.size
	}
	return v.size + "/" + v.quality
}
