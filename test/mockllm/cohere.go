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

// Cohere v2 Chat (POST .../v2/chat).
//
// billed_units.input_tokens is the chat formula over the messages, 3 + Σ
// (4 + ceil(len(text)/4)), text being a string content or the "text" of
// each part. usage.tokens.input_tokens adds CohereTemplateTokens to it, as
// Cohere's own prompt template does, so a meter that bills usage.tokens
// overcharges by exactly that. The reply is ReplyText of N words, one
// token each: billed and processed output tokens are both N. max_tokens
// caps N, and finish_reason becomes MAX_TOKENS.
//
// A stream is server-sent events, each named by its type: message-start,
// content-start, one content-delta per word, content-end, then message-end
// with finish_reason and usage.
//
// The shared headers keep their meaning: X-Mock-Prompt-Tokens replaces the
// billed input, X-Mock-Completion-Tokens the reply words, X-Mock-Status
// answers with a Cohere error body ({"id","message"}), and -Gzip and
// -Chunk-Delay-Ms as for chat. X-Mock-Stop-After K sends message-start,
// content-start and min(K, words) deltas, then drops the connection.
// X-Mock-Error-Event-After K sends min(K, words) deltas, then a
// message-end whose finish_reason is ERROR, with an error message and the
// usage of what was generated, and ends the body cleanly; with Stop-After
// too, the smaller K wins, the error on a tie. Cohere responses name no
// model, so X-Mock-Model is ignored, as are the cache, reasoning and
// usage-placement headers, which have no Cohere meaning.
const CohereTemplateTokens = 64

// cohereRequest is the part of a v2 chat request body the mock reads.
type cohereRequest struct {
	Model     *string   `json:"model"`
	Messages  []message `json:"messages"`
	Stream    bool      `json:"stream"`
	MaxTokens *int64    `json:"max_tokens"`
}

// CoherePromptTokens applies the default prompt formula to a v2 chat request
// body: billed_units.input_tokens.
func CoherePromptTokens(body []byte) (int64, error) {
	var req cohereRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("decode cohere chat request: %w", err)
	}
	return promptTokens(req.Messages)
}

// Wire types, in the field order Cohere sends.

type cohereTokensJSON struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

type cohereUsageJSON struct {
	BilledUnits cohereTokensJSON `json:"billed_units"`
	Tokens      cohereTokensJSON `json:"tokens"`
}

type cohereTextJSON struct {
	Type string `json:"type,omitempty"`
	Text string `json:"text"`
}

type cohereMessageJSON struct {
	Role    string           `json:"role"`
	Content []cohereTextJSON `json:"content"`
}

type cohereResponseJSON struct {
	ID           string            `json:"id"`
	Message      cohereMessageJSON `json:"message"`
	FinishReason string            `json:"finish_reason"`
	Usage        cohereUsageJSON   `json:"usage"`
}

type cohereErrorJSON struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// cohereStartMessage is message-start's empty message.
type cohereStartMessage struct {
	Role      string `json:"role"`
	Content   []any  `json:"content"`
	ToolPlan  string `json:"tool_plan"`
	ToolCalls []any  `json:"tool_calls"`
	Citations []any  `json:"citations"`
}

type cohereEventJSON struct {
	ID    string `json:"id,omitempty"`
	Type  string `json:"type"`
	Index *int   `json:"index,omitempty"`
	Delta any    `json:"delta,omitempty"`
}

type cohereDeltaMessage[T any] struct {
	Message T `json:"message"`
}

type cohereContentDelta struct {
	Content cohereTextJSON `json:"content"`
}

type cohereEndDelta struct {
	Error        string          `json:"error,omitempty"`
	FinishReason string          `json:"finish_reason"`
	Usage        cohereUsageJSON `json:"usage"`
}

// coherePlan is everything the Cohere writers need, decided up front.
type coherePlan struct {
	id, finish    string
	status, words int
	prompt        int64
	stream, gzip  bool
	delay         time.Duration
	stopAfter     int // -1: run to completion
	errorAfter    int // -1: no error
}

func (s *Server) cohereChat(w http.ResponseWriter, r *http.Request, body []byte) {
	o, err := parseOverrides(r.Header)
	if err != nil {
		writeCohereError(w, http.StatusBadRequest, body, err.Error(), false)
		return
	}
	p, err := newCoherePlan(body, r.Header, o, s.opts.ChunkDelay)
	if err != nil {
		writeCohereError(w, http.StatusBadRequest, body, "invalid request: "+err.Error(), o.gzip)
		return
	}
	switch {
	case p.status < 200 || p.status > 299:
		writeCohereError(w, p.status, body, fmt.Sprintf("mock status %d requested via %s", p.status, HeaderStatus), p.gzip)
	case p.stream:
		s.streamCohere(r.Context(), w, p)
	default:
		writeCohereResponse(w, p)
	}
}

func newCoherePlan(body []byte, h http.Header, o overrides, defaultDelay time.Duration) (*coherePlan, error) {
	var req cohereRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	if req.Model == nil || *req.Model == "" {
		return nil, errors.New("model must be specified")
	}
	if req.Messages == nil {
		return nil, errors.New("messages must be specified")
	}
	prompt, err := promptTokens(req.Messages)
	if err != nil {
		return nil, err
	}
	errorAfter, err := intHeader(h, HeaderErrorEventAfter, maxWords)
	if err != nil {
		return nil, err
	}
	p := &coherePlan{
		id: cohereID(body), finish: "COMPLETE", status: o.status, words: DefaultCompletionWords, prompt: prompt,
		stream: req.Stream, gzip: o.gzip, delay: defaultDelay, stopAfter: int(o.stopAfter), errorAfter: int(errorAfter),
	}
	if o.hasDelay {
		p.delay = o.delay
	}
	if o.prompt >= 0 {
		p.prompt = o.prompt
	}
	if o.completion >= 0 {
		p.words = int(o.completion)
	}
	if req.MaxTokens != nil {
		if *req.MaxTokens < 1 {
			return nil, fmt.Errorf("max_tokens must be at least 1, got %d", *req.MaxTokens)
		}
		if int64(p.words) > *req.MaxTokens {
			p.words, p.finish = int(*req.MaxTokens), "MAX_TOKENS"
		}
	}
	return p, nil
}

// cohereID is a UUID-shaped id derived from the body, as Cohere's ids are
// UUIDs.
func cohereID(body []byte) string {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// usage is what Cohere reports for n output tokens.
func (p *coherePlan) usage(n int) cohereUsageJSON {
	return cohereUsageJSON{
		BilledUnits: cohereTokensJSON{InputTokens: p.prompt, OutputTokens: int64(n)},
		Tokens:      cohereTokensJSON{InputTokens: p.prompt + CohereTemplateTokens, OutputTokens: int64(n)},
	}
}

func writeCohereError(w http.ResponseWriter, status int, body []byte, msg string, gz bool) {
	b, err := json.Marshal(cohereErrorJSON{ID: cohereID(body), Message: msg})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal error: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeMaybeGzip(w, status, b, gz)
}

func writeCohereResponse(w http.ResponseWriter, p *coherePlan) {
	b, err := json.Marshal(cohereResponseJSON{
		ID:           p.id,
		Message:      cohereMessageJSON{Role: "assistant", Content: []cohereTextJSON{{Type: "text", Text: ReplyText(p.words)}}},
		FinishReason: p.finish,
		Usage:        p.usage(p.words),
	})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal cohere response: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeMaybeGzip(w, p.status, b, p.gzip)
}

func (s *Server) streamCohere(ctx context.Context, w http.ResponseWriter, p *coherePlan) {
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
	if err := cohereEvents(ev, p); err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}

func cohereEvents(ev *eventWriter, p *coherePlan) error {
	zero := 0
	err := cohereSend(ev, cohereEventJSON{ID: p.id, Type: "message-start", Delta: cohereDeltaMessage[cohereStartMessage]{
		Message: cohereStartMessage{Role: "assistant", Content: []any{}, ToolCalls: []any{}, Citations: []any{}}}})
	if err == nil {
		err = cohereSend(ev, cohereEventJSON{Type: "content-start", Index: &zero,
			Delta: cohereDeltaMessage[cohereContentDelta]{Message: cohereContentDelta{Content: cohereTextJSON{Type: "text"}}}})
	}
	for i := 0; err == nil && i < p.words; i++ {
		if stop, e := p.checkpoint(ev, i); stop || e != nil {
			return e
		}
		err = cohereSend(ev, cohereEventJSON{Type: "content-delta", Index: &zero,
			Delta: cohereDeltaMessage[cohereContentDelta]{Message: cohereContentDelta{Content: cohereTextJSON{Text: word(i)}}}})
	}
	if err != nil {
		return err
	}
	if stop, e := p.checkpoint(ev, p.words); stop || e != nil {
		return e
	}
	err = cohereSend(ev, cohereEventJSON{Type: "content-end", Index: &zero})
	if err == nil {
		err = cohereSend(ev, cohereEventJSON{Type: "message-end", Delta: cohereEndDelta{FinishReason: p.finish, Usage: p.usage(p.words)}})
	}
	if err != nil {
		return err
	}
	return ev.end()
}

// checkpoint ends the stream where X-Mock-Error-Event-After or
// X-Mock-Stop-After ask, before word i (i == words: before the end). It
// reports whether the stream ended.
func (p *coherePlan) checkpoint(ev *eventWriter, i int) (bool, error) {
	final := i >= p.words
	if p.errorAfter >= 0 && (final || i >= p.errorAfter) {
		err := cohereSend(ev, cohereEventJSON{Type: "message-end", Delta: cohereEndDelta{
			Error: "internal server error, this has been reported to our developers", FinishReason: "ERROR", Usage: p.usage(i)}})
		if err == nil {
			err = ev.end()
		}
		return true, err
	}
	if p.stopAfter >= 0 && (final || i >= p.stopAfter) {
		// Everything written so far is flushed; dropping the connection now
		// is what a provider cut looks like to the proxy.
		panic(http.ErrAbortHandler)
	}
	return false, nil
}

// cohereSend writes one event named by its type: "event: <type>\ndata:
// <json>\n\n".
func cohereSend(ev *eventWriter, e cohereEventJSON) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", e.Type, err)
	}
	frame := make([]byte, 0, len(e.Type)+len(b)+16)
	frame = append(frame, "event: "...)
	frame = append(frame, e.Type...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, b...)
	frame = append(frame, "\n\n"...)
	return ev.writeFrame(frame)
}
