package mockllm

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Gemini (POST .../models/{model}:generateContent and
// :streamGenerateContent, under /v1beta, /v1 or Vertex AI's
// /v1/projects/{p}/locations/{l}/publishers/google/models).
//
// The model is the path's last segment before the colon. A stream is a JSON
// array written one element at a time ("[{...}\n", ",\r\n{...}\n", ..., "]"),
// or server-sent events ("data: {...}\r\n\r\n") with ?alt=sse, as Google
// sends them.
//
// The prompt is counted by the chat formula over the contents, each
// Content's text parts joined, with systemInstruction as one more term when
// present: 3 + Σ (4 + ceil(len(text)/4)). promptTokenCount includes the
// cached tokens, as Google's does: X-Mock-Cached-Tokens sets
// cachedContentTokenCount and must not exceed the prompt.
//
// The reply is ReplyText of N words (one token each, candidatesTokenCount
// = N). X-Mock-Reasoning-Tokens R sets thoughtsTokenCount, which Google
// reports apart from the candidates and adds to totalTokenCount; no thought
// text is sent. generationConfig.maxOutputTokens caps thoughts first, then
// words, as on thinking models, and finishReason becomes MAX_TOKENS.
//
// Every stream chunk carries one word and the cumulative usageMetadata:
// the prompt and thought counts from the first chunk, candidatesTokenCount
// growing by one a chunk. The last chunk adds finishReason and the
// per-modality details. X-Mock-Stop-After K sends min(K, N) word chunks,
// none with finishReason, then drops the connection.
//
// X-Mock-Prompt-Tokens, -Completion-Tokens, -Model, -Status, -Gzip and
// -Chunk-Delay-Ms keep their meaning. A non-2xx X-Mock-Status answers with
// a Google error body, inside an array for a stream without alt=sse, as
// Google does. Headers with no Gemini meaning are ignored.

// geminiRequest is the part of a GenerateContentRequest the mock reads.
// Google accepts each field under its camelCase and its snake_case name.
type geminiRequest struct {
	Contents          []geminiContent `json:"contents"`
	SystemInstruction *geminiContent  `json:"systemInstruction"`
	SystemSnake       *geminiContent  `json:"system_instruction"`
	GenerationConfig  *geminiConfig   `json:"generationConfig"`
	GenerationSnake   *geminiConfig   `json:"generation_config"`
}

type geminiContent struct {
	Role  string       `json:"role,omitempty"`
	Parts []geminiPart `json:"parts"`
}

type geminiPart struct {
	Text string `json:"text"`
}

type geminiConfig struct {
	MaxOutputTokens      *int64 `json:"maxOutputTokens"`
	MaxOutputTokensSnake *int64 `json:"max_output_tokens"`
}

func (c *geminiConfig) maxTokens() *int64 {
	if c == nil {
		return nil
	}
	if c.MaxOutputTokens != nil {
		return c.MaxOutputTokens
	}
	return c.MaxOutputTokensSnake
}

// Wire types, in the field order Google sends. Counts are omitted when
// zero, as protocol buffer JSON omits them.

type geminiResponse struct {
	Candidates    []geminiCandidate `json:"candidates"`
	UsageMetadata geminiUsage       `json:"usageMetadata"`
	ModelVersion  string            `json:"modelVersion"`
	ResponseID    string            `json:"responseId"`
}

type geminiCandidate struct {
	Content      geminiContent `json:"content"`
	FinishReason string        `json:"finishReason,omitempty"`
	Index        int           `json:"index"`
}

type geminiUsage struct {
	PromptTokenCount        int64           `json:"promptTokenCount,omitempty"`
	CandidatesTokenCount    int64           `json:"candidatesTokenCount,omitempty"`
	TotalTokenCount         int64           `json:"totalTokenCount,omitempty"`
	CachedContentTokenCount int64           `json:"cachedContentTokenCount,omitempty"`
	PromptTokensDetails     []modalityCount `json:"promptTokensDetails,omitempty"`
	CacheTokensDetails      []modalityCount `json:"cacheTokensDetails,omitempty"`
	CandidatesTokensDetails []modalityCount `json:"candidatesTokensDetails,omitempty"`
	ThoughtsTokenCount      int64           `json:"thoughtsTokenCount,omitempty"`
}

type modalityCount struct {
	Modality   string `json:"modality"`
	TokenCount int64  `json:"tokenCount"`
}

type googleErrorJSON struct {
	Error googleError `json:"error"`
}

type googleError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
}

// geminiPlan is everything the Gemini writers need, decided up front.
type geminiPlan struct {
	model, responseID string
	status            int
	words             int
	thoughts          int64
	prompt, cached    int64
	finish            string
	stream, sse, gzip bool
	delay             time.Duration
	stopAfter         int // -1: run to completion
}

// isGeminiPath reports whether path names a Gemini generate method.
func isGeminiPath(path string) bool {
	return strings.HasSuffix(path, ":generateContent") || strings.HasSuffix(path, ":streamGenerateContent")
}

// GeminiPromptTokens applies the default prompt formula to a
// GenerateContentRequest body: 3 + Σ (4 + ceil(len(text)/4)) over the
// system instruction, when present, and the contents.
func GeminiPromptTokens(body []byte) (int64, error) {
	var req geminiRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("decode generateContent request: %w", err)
	}
	return geminiPromptTokens(req), nil
}

func geminiPromptTokens(req geminiRequest) int64 {
	term := func(c geminiContent) int64 {
		var n int64
		for _, p := range c.Parts {
			n += int64(len(p.Text))
		}
		return 4 + (n+3)/4
	}
	total := int64(3)
	for _, c := range req.Contents {
		total += term(c)
	}
	sys := req.SystemInstruction
	if sys == nil {
		sys = req.SystemSnake
	}
	if sys != nil {
		total += term(*sys)
	}
	return total
}

func (s *Server) gemini(w http.ResponseWriter, r *http.Request, body []byte) {
	stream := strings.HasSuffix(r.URL.Path, ":streamGenerateContent")
	sse := stream && r.URL.Query().Get("alt") == "sse"
	o, err := parseOverrides(r.Header)
	if err != nil {
		writeGoogleError(w, http.StatusBadRequest, err.Error(), stream && !sse, false)
		return
	}
	p, err := newGeminiPlan(r.URL.Path, body, o, s.opts.ChunkDelay)
	if err != nil {
		writeGoogleError(w, http.StatusBadRequest, err.Error(), stream && !sse, o.gzip)
		return
	}
	p.stream, p.sse = stream, sse
	switch {
	case p.status < 200 || p.status > 299:
		writeGoogleError(w, p.status, fmt.Sprintf("mock status %d requested via %s", p.status, HeaderStatus), stream && !sse, p.gzip)
	case p.stream:
		s.streamGemini(r.Context(), w, p)
	default:
		writeGeminiResponse(w, p)
	}
}

func newGeminiPlan(path string, body []byte, o overrides, defaultDelay time.Duration) (*geminiPlan, error) {
	var req geminiRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON payload received: %w", err)
	}
	if len(req.Contents) == 0 {
		return nil, errors.New("* GenerateContentRequest.contents: contents is not specified")
	}
	seg := path[strings.LastIndexByte(path, '/')+1:]
	sum := sha256.Sum256(body)
	p := &geminiPlan{
		model: seg[:strings.LastIndexByte(seg, ':')], responseID: base64.RawURLEncoding.EncodeToString(sum[:12]),
		status: o.status, words: DefaultCompletionWords, thoughts: max(o.reasoning, 0), finish: "STOP",
		prompt: geminiPromptTokens(req), cached: max(o.cached, 0), gzip: o.gzip, delay: defaultDelay,
		stopAfter: int(o.stopAfter),
	}
	if o.model != "" {
		p.model = o.model
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
	if p.cached > p.prompt {
		return nil, fmt.Errorf("%s: %d exceeds prompt tokens %d", HeaderCachedTokens, p.cached, p.prompt)
	}
	limit := req.GenerationConfig.maxTokens()
	if limit == nil {
		limit = req.GenerationSnake.maxTokens()
	}
	if limit != nil {
		if *limit < 1 {
			return nil, fmt.Errorf("* GenerateContentRequest.generation_config.max_output_tokens: must be positive, got %d", *limit)
		}
		p.applyMaxTokens(*limit)
	}
	return p, nil
}

// applyMaxTokens truncates like a thinking model: thoughts spend the
// budget first, the visible reply gets the rest.
func (p *geminiPlan) applyMaxTokens(limit int64) {
	if p.thoughts > limit {
		p.thoughts = limit
		p.finish = "MAX_TOKENS"
	}
	if left := limit - p.thoughts; int64(p.words) > left {
		p.words = int(left)
		p.finish = "MAX_TOKENS"
	}
}

// usage is the usageMetadata after n reply words; final adds the
// per-modality details.
func (p *geminiPlan) usage(n int, final bool) geminiUsage {
	u := geminiUsage{
		PromptTokenCount:        p.prompt,
		CandidatesTokenCount:    int64(n),
		TotalTokenCount:         p.prompt + int64(n) + p.thoughts,
		CachedContentTokenCount: p.cached,
		ThoughtsTokenCount:      p.thoughts,
	}
	if final {
		u.PromptTokensDetails = []modalityCount{{"TEXT", p.prompt}}
		if p.cached > 0 {
			u.CacheTokensDetails = []modalityCount{{"TEXT", p.cached}}
		}
		if n > 0 {
			u.CandidatesTokensDetails = []modalityCount{{"TEXT", int64(n)}}
		}
	}
	return u
}

// response is one response object: the whole reply, or one chunk of it.
func (p *geminiPlan) response(text, finish string, u geminiUsage) geminiResponse {
	return geminiResponse{
		Candidates: []geminiCandidate{{
			Content:      geminiContent{Role: "model", Parts: []geminiPart{{Text: text}}},
			FinishReason: finish,
		}},
		UsageMetadata: u,
		ModelVersion:  p.model,
		ResponseID:    p.responseID,
	}
}

func writeGeminiResponse(w http.ResponseWriter, p *geminiPlan) {
	b, err := json.MarshalIndent(p.response(ReplyText(p.words), p.finish, p.usage(p.words, true)), "", "  ")
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal gemini response: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	writeMaybeGzip(w, p.status, append(b, '\n'), p.gzip)
}

// googleStatus is the canonical status Google names for an HTTP status.
func googleStatus(code int) string {
	switch code {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	return "INTERNAL"
}

// writeGoogleError writes a Google error body; inArray wraps it as the
// only element of a stream's array.
func writeGoogleError(w http.ResponseWriter, status int, msg string, inArray, gz bool) {
	var v any = googleErrorJSON{Error: googleError{Code: status, Message: msg, Status: googleStatus(status)}}
	if inArray {
		v = []any{v}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal error: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	writeMaybeGzip(w, status, append(b, '\n'), gz)
}

func (s *Server) streamGemini(ctx context.Context, w http.ResponseWriter, p *geminiPlan) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=UTF-8")
	if p.sse {
		h.Set("Content-Type", "text/event-stream")
	}
	if p.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(p.status)
	ev := &eventWriter{ctx: ctx, w: w, rc: http.NewResponseController(w), delay: p.delay}
	if p.gzip {
		ev.gz = gzip.NewWriter(w)
		ev.w = ev.gz
	}
	if err := p.writeStream(ev); err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}

// writeStream writes one chunk per word (one empty chunk for no words),
// each flushed apart.
func (p *geminiPlan) writeStream(ev *eventWriter) error {
	n := max(p.words, 1)
	if p.stopAfter >= 0 {
		n = min(p.stopAfter, p.words)
	}
	for i := range n {
		final := p.stopAfter < 0 && i == n-1
		text, finish := "", ""
		if i < p.words {
			text = word(i)
		}
		if final {
			finish = p.finish
		}
		if err := p.writeChunk(ev, i, p.response(text, finish, p.usage(min(i+1, p.words), final))); err != nil {
			return err
		}
	}
	if p.stopAfter >= 0 {
		// Everything written so far is flushed; dropping the connection now
		// is what a provider cut looks like to the proxy.
		panic(http.ErrAbortHandler)
	}
	if !p.sse {
		if _, err := ev.w.Write([]byte("]")); err != nil {
			return fmt.Errorf("write event: %w", err)
		}
	}
	return ev.end()
}

// writeChunk frames chunk i as an SSE event or an array element.
func (p *geminiPlan) writeChunk(ev *eventWriter, i int, chunk geminiResponse) error {
	if p.sse {
		b, err := json.Marshal(chunk)
		if err != nil {
			return fmt.Errorf("marshal chunk: %w", err)
		}
		return ev.writeFrame(append(append([]byte("data: "), b...), "\r\n\r\n"...))
	}
	b, err := json.MarshalIndent(chunk, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal chunk: %w", err)
	}
	sep := ",\r\n"
	if i == 0 {
		sep = "["
	}
	return ev.writeFrame(append(append([]byte(sep), b...), '\n'))
}
