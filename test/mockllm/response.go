package mockllm

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Wire types. Structs rather than maps so that field order, and therefore
// every byte, is fixed.

type usageJSON struct {
	PromptTokens            int64             `json:"prompt_tokens"`
	CompletionTokens        int64             `json:"completion_tokens"`
	TotalTokens             int64             `json:"total_tokens"`
	PromptTokensDetails     promptDetails     `json:"prompt_tokens_details"`
	CompletionTokensDetails completionDetails `json:"completion_tokens_details"`
}

type promptDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

type completionDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

type completionJSON struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   usageJSON          `json:"usage"`
}

type completionChoice struct {
	Index        int             `json:"index"`
	Message      assistantMsg    `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"` // always null, as OpenAI sends it
	FinishReason string          `json:"finish_reason"`
}

type assistantMsg struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chunkJSON struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   streamUsage   `json:"usage,omitzero"`
}

type chunkChoice struct {
	Index        int             `json:"index"`
	Delta        delta           `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type delta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// streamUsage has three states because OpenAI's stream does: absent when
// include_usage is off, null on ordinary chunks when it is on, and the
// object on the usage chunk.
type streamUsage struct {
	present bool
	u       *usageJSON
}

func (s streamUsage) IsZero() bool { return !s.present }

func (s streamUsage) MarshalJSON() ([]byte, error) {
	if s.u == nil {
		return []byte("null"), nil
	}
	return json.Marshal(s.u)
}

type errorJSON struct {
	Error apiError   `json:"error"`
	Usage *usageJSON `json:"usage,omitempty"`
}

type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
}

var jsonNull = json.RawMessage("null")

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request, body []byte) {
	o, err := parseOverrides(r.Header)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: "invalid_request_error", Code: "invalid_mock_header"}, nil, false)
		return
	}
	p, err := newPlan(body, o, s.opts.ChunkDelay)
	if err != nil {
		code := "invalid_request"
		if br, ok := errors.AsType[*badRequest](err); ok {
			code = br.code
		}
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: "invalid_request_error", Code: code}, nil, o.gzip)
		return
	}
	switch {
	case p.status < 200 || p.status > 299:
		var u *usageJSON
		if p.statusUsage {
			u = &p.usage
		}
		writeError(w, p.status, mockStatusError(p.status), u, p.gzip)
	case p.stream:
		s.stream(r.Context(), w, p)
	default:
		writeCompletion(w, p)
	}
}

// mockStatusError mimics the type/code OpenAI uses for the common classes, so
// error-classifying code under test sees realistic bodies.
func mockStatusError(status int) apiError {
	e := apiError{
		Message: fmt.Sprintf("mock status %d requested via %s", status, HeaderStatus),
		Type:    "invalid_request_error",
		Code:    "mock_status",
	}
	switch {
	case status == http.StatusTooManyRequests:
		e.Type, e.Code = "rate_limit_error", "rate_limit_exceeded"
	case status >= 500:
		e.Type = "server_error"
	}
	return e
}

func writeCompletion(w http.ResponseWriter, p *plan) {
	b, err := json.Marshal(completionJSON{
		ID:      p.id,
		Object:  "chat.completion",
		Created: Created,
		Model:   p.model,
		Choices: []completionChoice{{
			Message:      assistantMsg{Role: "assistant", Content: ReplyText(p.words)},
			Logprobs:     jsonNull,
			FinishReason: p.finish,
		}},
		Usage: p.usage,
	})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal completion: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeMaybeGzip(w, p.status, b, p.gzip)
}

func writeError(w http.ResponseWriter, status int, e apiError, u *usageJSON, gz bool) {
	b, err := json.Marshal(errorJSON{Error: e, Usage: u})
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal error: %w", err))
	}
	w.Header().Set("Content-Type", "application/json")
	writeMaybeGzip(w, status, b, gz)
}

func writeMaybeGzip(w http.ResponseWriter, status int, b []byte, gz bool) {
	if gz {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf) // zero ModTime in the header keeps it deterministic
		_, _ = zw.Write(b)         // a bytes.Buffer cannot fail
		_ = zw.Close()
		b = buf.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	}
	writeBody(w, status, b)
}

// writeBody sets Content-Length so that the framing, too, is deterministic
// (no chunked encoding for whole bodies).
func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b) // the client went away; nothing useful to do
}

func (s *Server) stream(ctx context.Context, w http.ResponseWriter, p *plan) {
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
	if err := s.streamEvents(ev, p); err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}

func (s *Server) streamEvents(ev *eventWriter, p *plan) error {
	chunk := func(choices []chunkChoice, u *usageJSON) chunkJSON {
		return chunkJSON{
			ID: p.id, Object: "chat.completion.chunk", Created: Created, Model: p.model,
			Choices: choices,
			Usage:   streamUsage{present: p.includeUsage, u: u},
		}
	}
	one := func(d delta, finish *string) []chunkChoice {
		return []chunkChoice{{Delta: d, Logprobs: jsonNull, FinishReason: finish}}
	}

	empty := ""
	if err := ev.send(chunk(one(delta{Role: "assistant", Content: &empty}, nil), nil)); err != nil {
		return err
	}
	for i := range p.words {
		if p.stopAfter >= 0 && i >= p.stopAfter {
			break
		}
		c := word(i)
		if err := ev.send(chunk(one(delta{Content: &c}, nil), nil)); err != nil {
			return err
		}
	}
	if p.stopAfter >= 0 {
		// Everything written so far is flushed; dropping the connection now
		// is what a provider cut looks like to the proxy.
		panic(http.ErrAbortHandler)
	}

	finish := p.finish
	var finalUsage *usageJSON
	if p.includeUsage && p.usageWithChoices {
		finalUsage = &p.usage
	}
	if err := ev.send(chunk(one(delta{}, &finish), finalUsage)); err != nil {
		return err
	}
	if p.includeUsage && !p.usageWithChoices {
		if err := ev.send(chunk([]chunkChoice{}, &p.usage)); err != nil {
			return err
		}
	}
	return ev.done()
}

// eventWriter writes SSE events, flushing each one all the way to the
// client (through gzip when enabled) so tests observe real chunking.
type eventWriter struct {
	ctx   context.Context
	w     io.Writer
	gz    *gzip.Writer
	rc    *http.ResponseController
	delay time.Duration
	sent  int
}

func (e *eventWriter) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal chunk: %w", err)
	}
	return e.write(b)
}

func (e *eventWriter) done() error {
	if err := e.write([]byte("[DONE]")); err != nil {
		return err
	}
	return e.end()
}

// end finishes the gzip stream, if any, so that the client sees a whole
// body.
func (e *eventWriter) end() error {
	if e.gz != nil {
		if err := e.gz.Close(); err != nil {
			return fmt.Errorf("close gzip: %w", err)
		}
		return e.flush()
	}
	return nil
}

func (e *eventWriter) write(data []byte) error {
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	return e.writeFrame(buf)
}

// writeFrame writes one whole SSE event, after the delay between events.
func (e *eventWriter) writeFrame(frame []byte) error {
	if e.sent > 0 && e.delay > 0 {
		t := time.NewTimer(e.delay)
		select {
		case <-e.ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting between chunks: %w", e.ctx.Err())
		case <-t.C:
		}
	}
	e.sent++
	if _, err := e.w.Write(frame); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return e.flush()
}

func (e *eventWriter) flush() error {
	if e.gz != nil {
		if err := e.gz.Flush(); err != nil {
			return fmt.Errorf("flush gzip: %w", err)
		}
	}
	if err := e.rc.Flush(); err != nil {
		return fmt.Errorf("flush response: %w", err)
	}
	return nil
}
