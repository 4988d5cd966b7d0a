package mockllm

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Anthropic Messages (POST .../v1/messages).
//
// The prompt is counted by the chat formula, with the system prompt as one
// more term when present: 3 + Σ (4 + ceil(len(text)/4)) over the system
// prompt and the messages. Anthropic's usage is additive, so the prompt
// splits into input_tokens + cache_read_input_tokens +
// cache_creation_input_tokens, each reported apart: the cache headers take
// their tokens out of input_tokens, never add to the prompt.
//
// The reply is ReplyText of N words (one token each), as for chat. With
// X-Mock-Reasoning-Tokens R, a thinking block of R words comes first, and
// output_tokens = N + R: Anthropic bills thinking as output and does not
// report it apart. max_tokens is required, as by the real API, and caps
// output like max_completion_tokens caps chat (thinking first); stop_reason
// is then "max_tokens".
//
// The shared headers keep their meaning: X-Mock-Prompt-Tokens replaces the
// prompt total (before the cache split), X-Mock-Cached-Tokens is
// cache_read_input_tokens, X-Mock-Completion-Tokens the reply words, and
// X-Mock-Status, -Model, -Gzip and -Chunk-Delay-Ms as for chat. A non-2xx
// X-Mock-Status answers with an Anthropic error body. X-Mock-Stop-After K
// sends message_start, content_block_start and min(K, words) word deltas
// (thinking words count), then drops the connection before message_delta.
// X-Mock-Status-Usage and X-Mock-Usage-With-Choices have no Anthropic
// meaning and are ignored here.
//
// The request headers below are read by the Anthropic route only.
const (
	// HeaderCacheWriteTokens sets the 5-minute cache write:
	// cache_creation.ephemeral_5m_input_tokens, and its part of
	// cache_creation_input_tokens.
	HeaderCacheWriteTokens = "X-Mock-Cache-Write-Tokens"
	// HeaderCacheWrite1hTokens sets the 1-hour cache write:
	// cache_creation.ephemeral_1h_input_tokens, and its part of
	// cache_creation_input_tokens. With either cache-write header the usage
	// carries the cache_creation breakdown; without, it does not, as
	// before the API had TTLs.
	HeaderCacheWrite1hTokens = "X-Mock-Cache-Write-1h-Tokens"
	// HeaderDeltaFullUsage ("true") repeats input_tokens and the cache
	// fields in the stream's message_delta usage, as the API does for some
	// requests; a meter that adds the two usages double counts.
	HeaderDeltaFullUsage = "X-Mock-Delta-Full-Usage"
	// HeaderErrorEventAfter K makes a stream send min(K, words) word
	// deltas (thinking words count), then an "error" event
	// (overloaded_error) under the HTTP 200 already sent, and end the body
	// cleanly: no message_delta or message_stop follows, and no
	// content_block_stop either when K < words. With HeaderStopAfter too,
	// the smaller K wins; on a tie, the error event. Ignored for
	// non-streaming requests.
	HeaderErrorEventAfter = "X-Mock-Error-Event-After"
)

// messagesRequest is the part of a Messages request body the mock reads.
type messagesRequest struct {
	Model     *string         `json:"model"`
	System    json.RawMessage `json:"system"`
	Messages  []message       `json:"messages"`
	Stream    bool            `json:"stream"`
	MaxTokens *int64          `json:"max_tokens"`
}

// AnthropicPromptTokens applies the default prompt formula to a Messages
// request body: 3 + Σ (4 + ceil(len(text)/4)) over the system prompt, when
// present, and the messages. It is the sum of input_tokens and both cache
// fields.
func AnthropicPromptTokens(body []byte) (int64, error) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("decode messages request: %w", err)
	}
	return messagesPromptTokens(req)
}

func messagesPromptTokens(req messagesRequest) (int64, error) {
	total, err := promptTokens(req.Messages)
	if err != nil {
		return 0, err
	}
	if len(req.System) > 0 && string(req.System) != "null" {
		n, err := contentLen(req.System)
		if err != nil {
			return 0, fmt.Errorf("system: %w", err)
		}
		total += 4 + (n+3)/4
	}
	return total, nil
}

// Wire types, in the field order Anthropic sends.

type messagesUsage struct {
	InputTokens              int64          `json:"input_tokens"`
	CacheCreationInputTokens int64          `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64          `json:"cache_read_input_tokens"`
	CacheCreation            *cacheCreation `json:"cache_creation,omitempty"`
	OutputTokens             int64          `json:"output_tokens"`
}

type cacheCreation struct {
	Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
}

// deltaUsage is message_delta's usage: output_tokens alone, or everything
// when HeaderDeltaFullUsage asks for it.
type deltaUsage struct {
	InputTokens              *int64         `json:"input_tokens,omitempty"`
	CacheCreationInputTokens *int64         `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     *int64         `json:"cache_read_input_tokens,omitempty"`
	CacheCreation            *cacheCreation `json:"cache_creation,omitempty"`
	OutputTokens             int64          `json:"output_tokens"`
}

type messageJSON struct {
	ID           string        `json:"id"`
	Type         string        `json:"type"`
	Role         string        `json:"role"`
	Model        string        `json:"model"`
	Content      []any         `json:"content"`
	StopReason   *string       `json:"stop_reason"`
	StopSequence *string       `json:"stop_sequence"`
	Usage        messagesUsage `json:"usage"`
}

type textBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type thinkingBlock struct {
	Type      string `json:"type"`
	Thinking  string `json:"thinking"`
	Signature string `json:"signature,omitempty"`
}

type anthropicErrorJSON struct {
	Type  string         `json:"type"`
	Error anthropicError `json:"error"`
}

type anthropicError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// messagesPlan is everything the Messages writers need, decided up front.
type messagesPlan struct {
	id, model, signature string
	status               int
	thinking, words      int
	stopReason           string
	usage                messagesUsage
	fullDeltaUsage       bool
	stream, gzip         bool
	delay                time.Duration
	stopAfter            int // -1: run to completion
	errorAfter           int // -1: no error event
}

func (s *Server) anthropicMessages(w http.ResponseWriter, r *http.Request, body []byte) {
	o, err := parseOverrides(r.Header)
	if err != nil {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", err.Error(), false)
		return
	}
	p, err := newMessagesPlan(body, r.Header, o, s.opts.ChunkDelay)
	if err != nil {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", err.Error(), o.gzip)
		return
	}
	switch {
	case p.status < 200 || p.status > 299:
		writeAnthropicError(w, p.status, anthropicErrorType(p.status),
			fmt.Sprintf("mock status %d requested via %s", p.status, HeaderStatus), p.gzip)
	case p.stream:
		s.streamMessages(r.Context(), w, p)
	default:
		writeMessage(w, p)
	}
}

// anthropicErrorType is the error type Anthropic documents for a status.
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	return "api_error"
}

func writeAnthropicError(w http.ResponseWriter, status int, typ, msg string, gz bool) {
	b, err := json.Marshal(anthropicErrorJSON{Type: "error", Error: anthropicError{Type: typ, Message: msg}})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal error: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeMaybeGzip(w, status, b, gz)
}

func newMessagesPlan(body []byte, h http.Header, o overrides, defaultDelay time.Duration) (*messagesPlan, error) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	if req.Model == nil || *req.Model == "" {
		return nil, errors.New("model: Field required")
	}
	if req.MaxTokens == nil {
		return nil, errors.New("max_tokens: Field required")
	}
	if *req.MaxTokens < 1 {
		return nil, fmt.Errorf("max_tokens: Input should be greater than or equal to 1, got %d", *req.MaxTokens)
	}
	prompt, err := messagesPromptTokens(req)
	if err != nil {
		return nil, err
	}
	a, err := parseAnthropicHeaders(h)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	p := &messagesPlan{
		id: "msg_" + hex.EncodeToString(sum[:6]), model: *req.Model, signature: hex.EncodeToString(sum[:]),
		status: o.status, words: DefaultCompletionWords, thinking: int(max(o.reasoning, 0)), stopReason: "end_turn",
		fullDeltaUsage: a.fullDeltaUsage, stream: req.Stream, gzip: o.gzip, delay: defaultDelay,
		stopAfter: int(o.stopAfter), errorAfter: int(a.errorAfter),
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
	p.applyMaxTokens(*req.MaxTokens)
	if err := p.setUsage(prompt, max(o.cached, 0), a); err != nil {
		return nil, err
	}
	return p, nil
}

// anthropicHeaders are the parsed Anthropic-only X-Mock-* headers.
type anthropicHeaders struct {
	write5m, write1h, errorAfter int64 // -1 when absent
	fullDeltaUsage               bool
}

func parseAnthropicHeaders(h http.Header) (anthropicHeaders, error) {
	var a anthropicHeaders
	for _, f := range []struct {
		name  string
		limit int64
		dst   *int64
	}{
		{HeaderCacheWriteTokens, maxTokenCount, &a.write5m},
		{HeaderCacheWrite1hTokens, maxTokenCount, &a.write1h},
		{HeaderErrorEventAfter, maxWords, &a.errorAfter},
	} {
		v, err := intHeader(h, f.name, f.limit)
		if err != nil {
			return a, err
		}
		*f.dst = v
	}
	var err error
	a.fullDeltaUsage, err = boolHeader(h, HeaderDeltaFullUsage)
	return a, err
}

// applyMaxTokens truncates like an extended-thinking model: thinking spends
// the budget first, the visible reply gets the rest.
func (p *messagesPlan) applyMaxTokens(limit int64) {
	if int64(p.thinking) > limit {
		p.thinking = int(limit)
		p.stopReason = "max_tokens"
	}
	if left := limit - int64(p.thinking); int64(p.words) > left {
		p.words = int(left)
		p.stopReason = "max_tokens"
	}
}

// setUsage splits the prompt into Anthropic's additive fields.
func (p *messagesPlan) setUsage(prompt, cached int64, a anthropicHeaders) error {
	w5m, w1h := max(a.write5m, 0), max(a.write1h, 0)
	if cached+w5m+w1h > prompt {
		return fmt.Errorf("%s + %s + %s: %d exceeds prompt tokens %d",
			HeaderCachedTokens, HeaderCacheWriteTokens, HeaderCacheWrite1hTokens, cached+w5m+w1h, prompt)
	}
	p.usage = messagesUsage{
		InputTokens:              prompt - cached - w5m - w1h,
		CacheCreationInputTokens: w5m + w1h,
		CacheReadInputTokens:     cached,
		OutputTokens:             int64(p.thinking + p.words),
	}
	if a.write5m >= 0 || a.write1h >= 0 {
		p.usage.CacheCreation = &cacheCreation{Ephemeral5m: w5m, Ephemeral1h: w1h}
	}
	return nil
}

func writeMessage(w http.ResponseWriter, p *messagesPlan) {
	var content []any
	if p.thinking > 0 {
		content = append(content, thinkingBlock{Type: "thinking", Thinking: ReplyText(p.thinking), Signature: p.signature})
	}
	content = append(content, textBlock{Type: "text", Text: ReplyText(p.words)})
	b, err := json.Marshal(messageJSON{
		ID: p.id, Type: "message", Role: "assistant", Model: p.model, Content: content,
		StopReason: &p.stopReason, Usage: p.usage,
	})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal message: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeMaybeGzip(w, p.status, b, p.gzip)
}

func (s *Server) streamMessages(ctx context.Context, w http.ResponseWriter, p *messagesPlan) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	if p.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(p.status)

	ev := &eventWriter{ctx: ctx, w: w, rc: http.NewResponseController(w), delay: p.delay}
	if p.gzip {
		ev.gz = gzip.NewWriter(w)
		ev.w = ev.gz
	}
	ms := &messageStream{ev: ev, p: p}
	if err := ms.run(); err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}
