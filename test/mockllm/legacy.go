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

// OpenAI legacy Completions (POST .../v1/completions).
//
// The prompt is a string, an array of strings, a token array or an array
// of token arrays. It is counted by the chat formula with each string as a
// message, 3 + Σ (4 + ceil(len/4)), and each token array as a message of
// its own length in tokens, 4 + len. The reply, usage (with its details),
// streaming, stream_options.include_usage, [DONE] and every X-Mock-*
// header are chat's; max_tokens caps completion_tokens. Choices carry
// "text" instead of a message or delta.

// legacyRequest is the part of a legacy completions body the mock reads.
type legacyRequest struct {
	Model         *string         `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens *int64 `json:"max_tokens"`
}

// LegacyPromptTokens applies the prompt formula to a legacy completions
// body; it is usage.prompt_tokens.
func LegacyPromptTokens(body []byte) (int64, error) {
	var req legacyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("decode completions request: %w", err)
	}
	return inputTokens(req.Prompt, "prompt")
}

// inputTokens counts a legacy prompt or an embeddings input: a string, an
// array of strings, a token array, or an array of token arrays.
func inputTokens(raw json.RawMessage, name string) (int64, error) {
	total := int64(3)
	if len(raw) == 0 || string(raw) == "null" {
		return total, nil
	}
	// Each shape decodes into its own variable: a failed json.Unmarshal
	// may still have filled part of its target.
	var s string
	var strs []string
	var tokens []int64
	var tokenLists [][]int64
	switch {
	case json.Unmarshal(raw, &s) == nil:
		strs = []string{s}
	case json.Unmarshal(raw, &strs) == nil:
	case json.Unmarshal(raw, &tokens) == nil:
		strs, tokenLists = nil, [][]int64{tokens}
	case json.Unmarshal(raw, &tokenLists) == nil:
		strs = nil
	default:
		return 0, fmt.Errorf("'%s' must be a string, an array of strings, or token arrays", name)
	}
	for _, s := range strs {
		total += 4 + (int64(len(s))+3)/4
	}
	for _, t := range tokenLists {
		total += 4 + int64(len(t))
	}
	return total, nil
}

type textCompletionJSON struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []textChoice `json:"choices"`
	Usage   usageJSON    `json:"usage"`
}

type textChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

type textChunkJSON struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Choices []textChunkChoice `json:"choices"`
	Model   string            `json:"model"`
	Usage   streamUsage       `json:"usage,omitzero"`
}

type textChunkChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

func (s *Server) legacyCompletions(w http.ResponseWriter, r *http.Request, body []byte) {
	p, o, err := newLegacyPlan(body, r.Header, s.opts.ChunkDelay)
	if err != nil {
		code := "invalid_mock_header"
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
		s.streamWith(r.Context(), w, p, s.legacyEvents)
	default:
		b, err := json.Marshal(textCompletionJSON{
			ID: p.id, Object: "text_completion", Created: Created, Model: p.model,
			Choices: []textChoice{{Text: ReplyText(p.words), Logprobs: jsonNull, FinishReason: p.finish}},
			Usage:   p.usage,
		})
		if err != nil {
			panic(fmt.Errorf("mockllm: marshal completion: %w", err)) // static types: cannot happen
		}
		w.Header().Set("Content-Type", "application/json")
		writeMaybeGzip(w, p.status, b, p.gzip)
	}
}

func newLegacyPlan(body []byte, h http.Header, delay time.Duration) (*plan, overrides, error) {
	o, err := parseOverrides(h)
	if err != nil {
		return nil, o, err
	}
	var req legacyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, o, &badRequest{fmt.Sprintf("We could not parse the JSON body of your request: %v", err), "invalid_json"}
	}
	if req.Model == nil || *req.Model == "" {
		return nil, o, &badRequest{"you must provide a model parameter", "missing_required_parameter"}
	}
	prompt, err := inputTokens(req.Prompt, "prompt")
	if err != nil {
		return nil, o, &badRequest{err.Error(), "invalid_type"}
	}
	if req.MaxTokens != nil && *req.MaxTokens < 1 {
		return nil, o, &badRequest{fmt.Sprintf("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.",
			*req.MaxTokens), "integer_below_min_value"}
	}
	p, err := basePlan("cmpl-", body, *req.Model, prompt, req.Stream, req.MaxTokens, o, delay)
	if err != nil {
		return nil, o, err
	}
	p.includeUsage = req.Stream && req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	p.usageWithChoices = o.usageWithChoices
	return p, o, nil
}

// legacyEvents writes a legacy completions stream: one chunk per word, a
// chunk with the finish_reason, the usage chunk when asked for, [DONE].
func (s *Server) legacyEvents(ev *eventWriter, p *plan) error {
	chunk := func(choices []textChunkChoice, u *usageJSON) textChunkJSON {
		return textChunkJSON{ID: p.id, Object: "text_completion", Created: Created, Choices: choices, Model: p.model,
			Usage: streamUsage{present: p.includeUsage, u: u}}
	}
	one := func(text string, finish *string) []textChunkChoice {
		return []textChunkChoice{{Text: text, Logprobs: jsonNull, FinishReason: finish}}
	}
	for i := range p.words {
		if p.stopAfter >= 0 && i >= p.stopAfter {
			break
		}
		if err := ev.send(chunk(one(word(i), nil), nil)); err != nil {
			return err
		}
	}
	if p.stopAfter >= 0 {
		panic(http.ErrAbortHandler) // a provider cut, as for chat
	}
	finish := p.finish
	var finalUsage *usageJSON
	if p.includeUsage && p.usageWithChoices {
		finalUsage = &p.usage
	}
	if err := ev.send(chunk(one("", &finish), finalUsage)); err != nil {
		return err
	}
	if p.includeUsage && !p.usageWithChoices {
		if err := ev.send(chunk([]textChunkChoice{}, &p.usage)); err != nil {
			return err
		}
	}
	return ev.done()
}

// streamWith answers with an event stream, as the chat route does (status,
// headers, gzip, delays), and has events write it.
func (s *Server) streamWith(ctx context.Context, w http.ResponseWriter, p *plan, events func(*eventWriter, *plan) error) {
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
	if err := events(ev, p); err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}
