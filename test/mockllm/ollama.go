package mockllm

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Ollama's native API (POST .../api/chat and .../api/generate).
//
// Like Ollama, the mock streams unless the request says "stream": false:
// newline-delimited JSON (application/x-ndjson), one object per word, then
// a done object with the counts; with "stream": false, that done object
// alone, holding the whole text, as application/json.
//
// The prompt is the chat formula, 3 + Σ (4 + ceil(len(text)/4)), over the
// messages for chat and over the system prompt (when present) and the prompt
// for generate. The reply is ReplyText of N words, one token each, in
// message.content (chat) or response (generate). options.num_predict, when
// not negative, caps N, and done_reason becomes "length".
//
// The counts follow Ollama's omitempty: prompt_eval_count is the prompt
// less X-Mock-Cached-Tokens (Ollama counts only the tokens it evaluated,
// and omits the field on a full cache hit), eval_count is N, and either is
// absent when it is 0. A request that only loads a model (chat with no
// messages, generate with an empty prompt) gets one done object with
// done_reason "load" and no counts, as application/json.
//
// The shared headers keep their meaning: X-Mock-Prompt-Tokens replaces the
// prompt, X-Mock-Completion-Tokens the reply words, X-Mock-Model the model
// echoed, X-Mock-Status answers with {"error": ...}, and -Gzip and
// -Chunk-Delay-Ms as for chat (the delay goes between lines).
// X-Mock-Stop-After K sends min(K, words) lines, then drops the connection.
// X-Mock-Error-Event-After K sends min(K, words) lines, then an
// {"error": ...} line, and ends the body cleanly, as Ollama reports a
// failure mid-stream; with Stop-After too, the smaller K wins, the error on
// a tie. The reasoning and usage-placement headers are ignored.
//
// Durations are fixed functions of the counts, and created_at is Created,
// so every byte is deterministic.

// ollamaRequest is the part of an Ollama request body the mock reads.
type ollamaRequest struct {
	Model    *string         `json:"model"`
	Messages []message       `json:"messages"`
	Prompt   json.RawMessage `json:"prompt"`
	System   json.RawMessage `json:"system"`
	Stream   *bool           `json:"stream"`
	Options  struct {
		NumPredict *int64 `json:"num_predict"`
	} `json:"options"`
}

// OllamaPromptTokens applies the default prompt formula to an Ollama request
// body: /api/chat's messages, or, when generate is set, /api/generate's
// system prompt and prompt.
func OllamaPromptTokens(body []byte, generate bool) (int64, error) {
	var req ollamaRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("decode ollama request: %w", err)
	}
	return req.promptTokens(generate)
}

func (r *ollamaRequest) promptTokens(generate bool) (int64, error) {
	if !generate {
		return promptTokens(r.Messages)
	}
	msgs := []message{{Content: r.Prompt}}
	if n, err := contentLen(r.System); err != nil || n > 0 {
		msgs = append([]message{{Content: r.System}}, msgs...)
	}
	return promptTokens(msgs)
}

// Wire types, in the field order Ollama sends.

type ollamaMessageJSON struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ollamaMetrics mirrors Ollama's Metrics, omitempty included.
type ollamaMetrics struct {
	TotalDuration      int64 `json:"total_duration,omitempty"`
	LoadDuration       int64 `json:"load_duration,omitempty"`
	PromptEvalCount    int64 `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration int64 `json:"prompt_eval_duration,omitempty"`
	EvalCount          int64 `json:"eval_count,omitempty"`
	EvalDuration       int64 `json:"eval_duration,omitempty"`
}

type ollamaLineJSON struct {
	Model      string             `json:"model"`
	CreatedAt  string             `json:"created_at"`
	Message    *ollamaMessageJSON `json:"message,omitempty"`
	Response   *string            `json:"response,omitempty"`
	DoneReason string             `json:"done_reason,omitempty"`
	Done       bool               `json:"done"`
	Context    []int              `json:"context,omitempty"`
	ollamaMetrics
}

type ollamaErrorJSON struct {
	Error string `json:"error"`
}

// ollamaCreatedAt is Created as Ollama writes times.
var ollamaCreatedAt = time.Unix(Created, 0).UTC().Format(time.RFC3339Nano)

// ollamaPlan is everything the Ollama writers need, decided up front.
type ollamaPlan struct {
	model, doneReason string
	generate, load    bool
	status, words     int
	prompt, cached    int64
	stream, gzip      bool
	delay             time.Duration
	stopAfter         int // -1: run to completion
	errorAfter        int // -1: no error line
}

func (s *Server) ollama(w http.ResponseWriter, r *http.Request, body []byte, generate bool) {
	o, err := parseOverrides(r.Header)
	if err != nil {
		writeOllamaError(w, http.StatusBadRequest, err.Error(), false)
		return
	}
	p, err := newOllamaPlan(body, r.Header, o, s.opts.ChunkDelay, generate)
	if err != nil {
		writeOllamaError(w, http.StatusBadRequest, err.Error(), o.gzip)
		return
	}
	switch {
	case p.status < 200 || p.status > 299:
		writeOllamaError(w, p.status, fmt.Sprintf("mock status %d requested via %s", p.status, HeaderStatus), p.gzip)
	case p.stream && !p.load:
		s.streamOllama(r.Context(), w, p)
	default:
		b := marshalOllama(p.final(ReplyText(p.words)))
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		writeMaybeGzip(w, p.status, b, p.gzip)
	}
}

func newOllamaPlan(body []byte, h http.Header, o overrides, defaultDelay time.Duration, generate bool) (*ollamaPlan, error) {
	var req ollamaRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	if req.Model == nil || *req.Model == "" {
		return nil, errors.New("model is required")
	}
	prompt, err := req.promptTokens(generate)
	if err != nil {
		return nil, err
	}
	errorAfter, err := intHeader(h, HeaderErrorEventAfter, maxWords)
	if err != nil {
		return nil, err
	}
	p := &ollamaPlan{
		model: *req.Model, doneReason: "stop", generate: generate, status: o.status, words: DefaultCompletionWords,
		prompt: prompt, cached: max(o.cached, 0), stream: req.Stream == nil || *req.Stream, gzip: o.gzip,
		delay: defaultDelay, stopAfter: int(o.stopAfter), errorAfter: int(errorAfter),
	}
	if generate {
		n, _ := contentLen(req.Prompt)
		p.load = n == 0
	} else {
		p.load = len(req.Messages) == 0
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
	if n := req.Options.NumPredict; n != nil && *n >= 0 && int64(p.words) > *n {
		p.words, p.doneReason = int(*n), "length"
	}
	return p, nil
}

func writeOllamaError(w http.ResponseWriter, status int, msg string, gz bool) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	writeMaybeGzip(w, status, marshalOllama(ollamaErrorJSON{Error: msg}), gz)
}

func marshalOllama(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal ollama response: %w", err)) // static types: cannot happen
	}
	return b
}

// line is one streamed object carrying text.
func (p *ollamaPlan) line(text string) ollamaLineJSON {
	l := ollamaLineJSON{Model: p.model, CreatedAt: ollamaCreatedAt}
	if p.generate {
		l.Response = &text
	} else {
		l.Message = &ollamaMessageJSON{Role: "assistant", Content: text}
	}
	return l
}

// final is the done object: the last line of a stream, with text "", or a
// whole response.
func (p *ollamaPlan) final(text string) ollamaLineJSON {
	l := p.line(text)
	l.Done = true
	if p.load {
		l.DoneReason = "load"
		if p.generate {
			l.Response = new(string)
		} else {
			l.Message.Content = ""
		}
		return l
	}
	l.DoneReason = p.doneReason
	if p.generate {
		l.Context = []int{1, 2, 3}
	}
	evaluated := p.prompt - p.cached
	l.ollamaMetrics = ollamaMetrics{
		LoadDuration:       1_000_000,
		PromptEvalCount:    evaluated,
		PromptEvalDuration: 1_000_000 * evaluated,
		EvalCount:          int64(p.words),
		EvalDuration:       2_000_000 * int64(p.words),
	}
	m := &l.ollamaMetrics
	m.TotalDuration = m.LoadDuration + m.PromptEvalDuration + m.EvalDuration
	return l
}

func (s *Server) streamOllama(ctx context.Context, w http.ResponseWriter, p *ollamaPlan) {
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	if p.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(p.status)
	ev := &eventWriter{ctx: ctx, w: w, rc: http.NewResponseController(w), delay: p.delay}
	if p.gzip {
		ev.gz = gzip.NewWriter(w)
		ev.w = ev.gz
	}
	// Send the headers now: a stream cut before its first line must still
	// reach the client as a 200 whose body breaks off.
	if err := ev.flush(); err != nil {
		s.log.Debug("stream ended early", "err", err)
		return
	}
	if err := ollamaLines(ev, p); err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}

func ollamaLines(ev *eventWriter, p *ollamaPlan) error {
	for i := 0; i <= p.words; i++ {
		final := i == p.words
		if p.errorAfter >= 0 && (final || i >= p.errorAfter) {
			if err := ollamaSend(ev, ollamaErrorJSON{Error: "an error was encountered while running the model: mock error"}); err != nil {
				return err
			}
			return ev.end()
		}
		if p.stopAfter >= 0 && (final || i >= p.stopAfter) {
			// Everything written so far is flushed; dropping the connection
			// now is what a provider cut looks like to the proxy.
			panic(http.ErrAbortHandler)
		}
		v := p.final("")
		if !final {
			v = p.line(word(i))
		}
		if err := ollamaSend(ev, v); err != nil {
			return err
		}
	}
	return ev.end()
}

// ollamaSend writes one line of the stream.
func ollamaSend(ev *eventWriter, v any) error {
	return ev.writeFrame(append(marshalOllama(v), '\n'))
}
