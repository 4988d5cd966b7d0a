package mockllm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Amazon Bedrock runtime (POST .../model/{modelId}/{operation}), four
// operations:
//
//   - converse: {"output":{"message":...},"stopReason","usage","metrics"}.
//   - converse-stream: an AWS event-stream (application/vnd.amazon.eventstream)
//     of messageStart, one contentBlockDelta per word, contentBlockStop,
//     messageStop, and metadata with the usage.
//   - invoke: the Anthropic Messages body Claude answers with on Bedrock, the
//     usage also in the X-Amzn-Bedrock-*-Token-Count response headers; for a
//     Meta Llama model id, Llama's native shapes, the usage headers being
//     the only usage metering reads (bedrock_llama.go).
//   - invoke-with-response-stream: an event-stream of "chunk" events whose
//     {"bytes"} are base64 Anthropic stream events; the last, message_stop,
//     carries amazon-bedrock-invocationMetrics.
//
// The model is the path's modelId, URL-decoded. The request body is
// Converse's (messages[].content[].text, system[].text,
// inferenceConfig.maxTokens) or, for invoke, Anthropic's (max_tokens
// required, as Bedrock requires it for Claude).
//
// The prompt is counted by the Anthropic formula, the system prompt being
// one more term: 3 + Σ (4 + ceil(len(text)/4)). Bedrock's counts are
// additive: the prompt splits into input + cache read + cache write, each
// reported apart. X-Mock-Cached-Tokens is the cache read,
// X-Mock-Cache-Write-Tokens and X-Mock-Cache-Write-1h-Tokens the cache
// writes by TTL (Converse lists them in cacheDetails); all three come out of
// the input, never add to the prompt. Converse reports the cache fields only
// when one of these headers is present, as Bedrock does only when caching is
// used; the invoke headers and metrics always carry them.
//
// The reply is ReplyText of N words, one token each; a max tokens below N
// cuts it, with stopReason / stop_reason "max_tokens".
//
// X-Mock-Prompt-Tokens, -Completion-Tokens, -Status (a Bedrock error body,
// {"message"}, with X-Amzn-ErrorType), -Chunk-Delay-Ms and -Model (invoke's
// body) keep their meaning. X-Mock-Stop-After K sends the opening events and
// min(K, N) word deltas, then drops the connection. X-Mock-Error-Event-After
// K sends min(K, N) word deltas, then an exception message
// (modelStreamErrorException for converse-stream, throttlingException for
// invoke-with-response-stream), and ends the body cleanly; with Stop-After
// too, the smaller K wins, the exception on a tie. Reasoning, gzip and the
// chat-only headers have no Bedrock meaning here and are ignored.

// The operations, by the path's last segment.
const (
	opConverse       = "converse"
	opConverseStream = "converse-stream"
	opInvoke         = "invoke"
	opInvokeStream   = "invoke-with-response-stream"
)

// Fixed latencies keep every byte deterministic.
const (
	bedrockLatencyMs   = 100
	bedrockFirstByteMs = 40
)

// bedrockRoute splits a Bedrock runtime path into its model and operation.
// A '/' inside the model (an ARN, decoded) stays in it: the operation is
// the last segment.
func bedrockRoute(path string) (model, op string, ok bool) {
	i := strings.Index(path, "/model/")
	if i < 0 {
		return "", "", false
	}
	rest := path[i+len("/model/"):]
	j := strings.LastIndexByte(rest, '/')
	if j <= 0 {
		return "", "", false
	}
	model, op = rest[:j], rest[j+1:]
	switch op {
	case opConverse, opConverseStream, opInvoke, opInvokeStream:
		return model, op, true
	}
	return "", "", false
}

// isBedrockPath reports whether path names a Bedrock runtime operation.
func isBedrockPath(path string) bool {
	_, _, ok := bedrockRoute(path)
	return ok
}

// converseRequest is the part of a Converse request body the mock reads.
type converseRequest struct {
	Messages        []message       `json:"messages"`
	System          json.RawMessage `json:"system"`
	InferenceConfig *struct {
		MaxTokens *int64 `json:"maxTokens"`
	} `json:"inferenceConfig"`
}

// BedrockConversePromptTokens applies the default prompt formula to a
// Converse request body: the sum of inputTokens and the cache fields. For
// an invoke body, use AnthropicPromptTokens.
func BedrockConversePromptTokens(body []byte) (int64, error) {
	var req converseRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("decode converse request: %w", err)
	}
	return messagesPromptTokens(messagesRequest{System: req.System, Messages: req.Messages})
}

// bedrockPlan is everything the Bedrock writers need, decided up front.
type bedrockPlan struct {
	op, model, id string
	llama         bool // an invoke in Meta Llama's native shape (bedrock_llama.go)
	status        int
	words         int
	stopReason    string // "end_turn" or "max_tokens", as Converse and Claude spell it
	usage         messagesUsage
	cacheFields   bool // a cache header was present: Converse reports the cache fields
	delay         time.Duration
	stopAfter     int // -1: run to completion
	errorAfter    int // -1: no exception
}

func (s *Server) bedrock(w http.ResponseWriter, r *http.Request, body []byte) {
	model, op, _ := bedrockRoute(r.URL.Path)
	o, err := parseOverrides(r.Header)
	if err != nil {
		writeBedrockError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := newBedrockPlan(model, op, body, r.Header, o, s.opts.ChunkDelay)
	if err != nil {
		writeBedrockError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case p.status < 200 || p.status > 299:
		writeBedrockError(w, p.status, fmt.Sprintf("mock status %d requested via %s", p.status, HeaderStatus))
	case op == opConverse:
		writeConverse(w, p)
	case op == opInvoke:
		writeInvoke(w, p)
	default:
		s.streamBedrock(r.Context(), w, p)
	}
}

// newBedrockPlan parses the body of either shape and applies the headers.
func newBedrockPlan(model, op string, body []byte, h http.Header, o overrides, defaultDelay time.Duration) (*bedrockPlan, error) {
	llama := op == opInvoke && isLlama(model)
	prompt, limit, err := bedrockPrompt(op, body)
	if llama {
		prompt, limit, err = llamaPrompt(body)
	}
	if err != nil {
		return nil, err
	}
	a, err := parseAnthropicHeaders(h)
	if err != nil {
		return nil, err
	}
	if llama {
		o.cached, a.write5m, a.write1h = -1, -1, -1 // no prompt cache
	}
	sum := sha256.Sum256(body)
	p := &bedrockPlan{
		op: op, model: model, llama: llama, id: "msg_bdrk_" + hex.EncodeToString(sum[:6]), status: o.status,
		words: DefaultCompletionWords, stopReason: "end_turn", delay: defaultDelay,
		stopAfter: int(o.stopAfter), errorAfter: int(a.errorAfter),
		cacheFields: o.cached >= 0 || a.write5m >= 0 || a.write1h >= 0,
	}
	if o.model != "" {
		p.model = o.model
	}
	if o.hasDelay {
		p.delay = o.delay
	}
	if o.prompt >= 0 {
		prompt = o.prompt
	}
	if o.completion >= 0 {
		p.words = int(o.completion)
	}
	if limit != nil && int64(p.words) > *limit {
		p.words, p.stopReason = int(*limit), "max_tokens"
	}
	// The Anthropic split is Bedrock's too: reuse it, without thinking.
	mp := &messagesPlan{words: p.words}
	if err := mp.setUsage(prompt, max(o.cached, 0), a); err != nil {
		return nil, err
	}
	p.usage = mp.usage
	return p, nil
}

// bedrockPrompt counts the prompt of a Converse or (for invoke) Anthropic
// body and returns its output cap, nil when absent.
func bedrockPrompt(op string, body []byte) (int64, *int64, error) {
	if op == opInvoke || op == opInvokeStream {
		var req messagesRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return 0, nil, fmt.Errorf("malformed input request: %w", err)
		}
		if req.MaxTokens == nil || *req.MaxTokens < 1 {
			return 0, nil, errors.New("malformed input request: #: required key [max_tokens] not found or below 1")
		}
		prompt, err := messagesPromptTokens(req)
		return prompt, req.MaxTokens, err
	}
	var req converseRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	prompt, err := messagesPromptTokens(messagesRequest{System: req.System, Messages: req.Messages})
	var limit *int64
	if c := req.InferenceConfig; c != nil && c.MaxTokens != nil {
		if *c.MaxTokens < 1 {
			return 0, nil, fmt.Errorf("inferenceConfig.maxTokens: %d is below 1", *c.MaxTokens)
		}
		limit = c.MaxTokens
	}
	return prompt, limit, err
}

// bedrockErrorType is the exception Bedrock names, in X-Amzn-ErrorType,
// for a status.
func bedrockErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "ValidationException"
	case http.StatusForbidden:
		return "AccessDeniedException"
	case http.StatusNotFound:
		return "ResourceNotFoundException"
	case http.StatusRequestTimeout:
		return "ModelTimeoutException"
	case http.StatusFailedDependency:
		return "ModelErrorException"
	case http.StatusTooManyRequests:
		return "ThrottlingException"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailableException"
	}
	return "InternalServerException"
}

func writeBedrockError(w http.ResponseWriter, status int, msg string) {
	b, err := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal error: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", bedrockErrorType(status)+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	writeBody(w, status, b)
}

// Converse wire types, in the field order Bedrock sends.

type converseResponseJSON struct {
	Metrics    converseMetrics   `json:"metrics"`
	Output     converseOutput    `json:"output"`
	StopReason string            `json:"stopReason"`
	Usage      converseUsageJSON `json:"usage"`
}

type converseMetrics struct {
	LatencyMs int64 `json:"latencyMs"`
}

type converseOutput struct {
	Message converseMessage `json:"message"`
}

type converseMessage struct {
	Content []converseText `json:"content"`
	Role    string         `json:"role"`
}

type converseText struct {
	Text string `json:"text"`
}

type converseUsageJSON struct {
	CacheDetails          []cacheDetailJSON `json:"cacheDetails,omitempty"`
	CacheReadInputTokens  *int64            `json:"cacheReadInputTokens,omitempty"`
	CacheWriteInputTokens *int64            `json:"cacheWriteInputTokens,omitempty"`
	InputTokens           int64             `json:"inputTokens"`
	OutputTokens          int64             `json:"outputTokens"`
	TotalTokens           int64             `json:"totalTokens"`
}

type cacheDetailJSON struct {
	InputTokens int64  `json:"inputTokens"`
	TTL         string `json:"ttl"`
}

// converseUsage is the plan's usage as Converse reports it: totalTokens
// sums all four counts; cacheDetails lists the writes, 1h before 5m.
func (p *bedrockPlan) converseUsage() converseUsageJSON {
	u := p.usage
	out := converseUsageJSON{
		InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		TotalTokens: u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens + u.OutputTokens,
	}
	if p.cacheFields {
		out.CacheReadInputTokens, out.CacheWriteInputTokens = &u.CacheReadInputTokens, &u.CacheCreationInputTokens
	}
	if c := u.CacheCreation; c != nil {
		out.CacheDetails = append(out.CacheDetails, cacheDetailJSON{c.Ephemeral1h, "1h"}, cacheDetailJSON{c.Ephemeral5m, "5m"})
	}
	return out
}

func writeConverse(w http.ResponseWriter, p *bedrockPlan) {
	b, err := json.Marshal(converseResponseJSON{
		Metrics:    converseMetrics{bedrockLatencyMs},
		Output:     converseOutput{converseMessage{Content: []converseText{{ReplyText(p.words)}}, Role: "assistant"}},
		StopReason: p.stopReason,
		Usage:      p.converseUsage(),
	})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal converse: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeBody(w, p.status, b)
}

// writeInvoke answers with Claude's native body and Bedrock's usage
// headers.
func writeInvoke(w http.ResponseWriter, p *bedrockPlan) {
	u := p.usage
	h := w.Header()
	for name, n := range map[string]int64{
		"X-Amzn-Bedrock-Input-Token-Count":             u.InputTokens,
		"X-Amzn-Bedrock-Output-Token-Count":            u.OutputTokens,
		"X-Amzn-Bedrock-Cache-Read-Input-Token-Count":  u.CacheReadInputTokens,
		"X-Amzn-Bedrock-Cache-Write-Input-Token-Count": u.CacheCreationInputTokens,
		"X-Amzn-Bedrock-Invocation-Latency":            bedrockLatencyMs,
	} {
		h.Set(name, strconv.FormatInt(n, 10))
	}
	if p.llama {
		writeLlama(w, p)
		return
	}
	// Converse and Claude spell the stop reasons alike.
	writeMessage(w, &messagesPlan{id: p.id, model: p.model, status: p.status, words: p.words, stopReason: p.stopReason, usage: u})
}
