package mockllm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Meta Llama through Bedrock's InvokeModel: the body is Llama's native
// shape, {"prompt": "...", "max_gen_len": N}, and so is the answer,
// {"generation", "prompt_token_count", "generation_token_count",
// "stop_reason"}. Bedrock adds its X-Amzn-Bedrock-*-Token-Count headers
// for every vendor, so for Llama, as for Nova, Titan and Mistral, they are
// the usage metering reads: unlike Claude's, the native body carries no
// usage object a dialect shares with another API.
//
// The prompt counts ceil(len(prompt)/4) tokens unless X-Mock-Prompt-Tokens
// says otherwise; the reply is ReplyText of N words, cut at max_gen_len
// with stop_reason "length". Llama has no prompt cache: the cache headers
// are 0 whatever X-Mock-Cached-Tokens says.

// isLlama reports whether a Bedrock model id, bare or behind an inference
// profile's prefix ("us.", "global."), is a Meta Llama model.
func isLlama(model string) bool {
	return strings.HasPrefix(model, "meta.llama") || strings.Contains(model, ".meta.llama")
}

// llamaPrompt counts the prompt of a Llama native body and returns its
// output cap, nil when absent.
func llamaPrompt(body []byte) (int64, *int64, error) {
	var req struct {
		Prompt    *string `json:"prompt"`
		MaxGenLen *int64  `json:"max_gen_len"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, nil, fmt.Errorf("malformed input request: %w", err)
	}
	if req.Prompt == nil {
		return 0, nil, errors.New("malformed input request: #: required key [prompt] not found")
	}
	if req.MaxGenLen != nil && *req.MaxGenLen < 1 {
		return 0, nil, fmt.Errorf("malformed input request: max_gen_len: %d is below 1", *req.MaxGenLen)
	}
	return (int64(len(*req.Prompt)) + 3) / 4, req.MaxGenLen, nil
}

// llamaResponse is Llama's native InvokeModel answer.
type llamaResponse struct {
	Generation           string `json:"generation"`
	PromptTokenCount     int64  `json:"prompt_token_count"`
	GenerationTokenCount int64  `json:"generation_token_count"`
	StopReason           string `json:"stop_reason"`
}

// writeLlama answers a Llama invoke; the caller has set the usage headers.
func writeLlama(w http.ResponseWriter, p *bedrockPlan) {
	stop := "stop"
	if p.stopReason == "max_tokens" {
		stop = "length"
	}
	b, err := json.Marshal(llamaResponse{Generation: ReplyText(p.words), PromptTokenCount: p.usage.InputTokens,
		GenerationTokenCount: p.usage.OutputTokens, StopReason: stop})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal llama: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeBody(w, p.status, b)
}
