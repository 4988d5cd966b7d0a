package mockllm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// OpenAI Responses API (POST .../v1/responses).
//
// The prompt is counted by the chat formula, with the instructions, when
// present, as one more term, and each input item as a message: a string
// input is one item; an item's text is its content (a string, or its parts'
// "text"). input_tokens is that prompt, input_tokens_details.cached_tokens
// is X-Mock-Cached-Tokens, output_tokens = words + X-Mock-Reasoning-Tokens
// with the reasoning in output_tokens_details.reasoning_tokens. The reply is
// ReplyText, one output_text delta per word. max_output_tokens caps output
// like max_completion_tokens caps chat (reasoning first), and the response
// is then "incomplete" (reason max_output_tokens), as the real API does.
//
// The shared headers keep their chat meaning (X-Mock-Prompt-Tokens,
// -Completion-Tokens, -Cached-Tokens, -Reasoning-Tokens, -Status, -Model,
// -Gzip, -Chunk-Delay-Ms, -Stop-After); a non-2xx X-Mock-Status answers
// with an OpenAI error body. A stream has no [DONE]: it ends with its
// terminal event.
const (
	// HeaderIncomplete ("true") ends a Responses reply as "incomplete"
	// (reason max_output_tokens): the stream's terminal event is
	// response.incomplete, still with usage, as the real API bills it.
	HeaderIncomplete = "X-Mock-Incomplete"
)

// responsesRequest is the part of a Responses request body the mock reads.
type responsesRequest struct {
	Model           *string         `json:"model"`
	Instructions    *string         `json:"instructions"`
	Input           json.RawMessage `json:"input"`
	Stream          bool            `json:"stream"`
	MaxOutputTokens *int64          `json:"max_output_tokens"`
}

// ResponsesPromptTokens applies the default prompt formula to a Responses
// request body; it is usage.input_tokens.
func ResponsesPromptTokens(body []byte) (int64, error) {
	var req responsesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("decode responses request: %w", err)
	}
	return responsesPromptTokens(req)
}

func responsesPromptTokens(req responsesRequest) (int64, error) {
	var msgs []message
	if req.Instructions != nil {
		b, _ := json.Marshal(*req.Instructions) // a string: cannot fail
		msgs = append(msgs, message{Content: b})
	}
	var s string
	switch {
	case len(req.Input) == 0 || string(req.Input) == "null":
	case json.Unmarshal(req.Input, &s) == nil:
		msgs = append(msgs, message{Content: req.Input})
	default:
		var items []message
		if err := json.Unmarshal(req.Input, &items); err != nil {
			return 0, fmt.Errorf("input must be a string or an array of items: %w", err)
		}
		msgs = append(msgs, items...)
	}
	return promptTokens(msgs)
}

// Wire types, in the field order OpenAI sends.

type responsesUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

type responseJSON struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	CreatedAt         int64           `json:"created_at"`
	Status            string          `json:"status"`
	Error             json.RawMessage `json:"error"`
	IncompleteDetails *reasonJSON     `json:"incomplete_details"`
	Model             string          `json:"model"`
	Output            []outputMessage `json:"output"`
	Usage             *responsesUsage `json:"usage"`
}

type reasonJSON struct {
	Reason string `json:"reason"`
}

type outputMessage struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
	Role    string       `json:"role"`
}

type outputText struct {
	Type        string `json:"type"`
	Annotations []any  `json:"annotations"`
	Text        string `json:"text"`
}

// responsesPlan is a chat plan plus what only the Responses API has.
type responsesPlan struct {
	*plan
	msgID      string
	incomplete bool
}

func (s *Server) responses(w http.ResponseWriter, r *http.Request, body []byte) {
	o, err := parseOverrides(r.Header)
	if err == nil {
		var incomplete bool
		if incomplete, err = boolHeader(r.Header, HeaderIncomplete); err == nil {
			var p *responsesPlan
			if p, err = newResponsesPlan(body, o, incomplete, s.opts.ChunkDelay); err == nil {
				s.answerResponses(w, r, p)
				return
			}
		}
	}
	code := "invalid_mock_header"
	if br, ok := errors.AsType[*badRequest](err); ok {
		code = br.code
	}
	writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: "invalid_request_error", Code: code}, nil, o.gzip)
}

func (s *Server) answerResponses(w http.ResponseWriter, r *http.Request, p *responsesPlan) {
	switch {
	case p.status < 200 || p.status > 299:
		writeError(w, p.status, mockStatusError(p.status), nil, p.gzip)
	case p.stream:
		s.streamResponses(r.Context(), w, p)
	default:
		b, err := json.Marshal(p.response(p.finalStatus(), p.words))
		if err != nil {
			panic(fmt.Errorf("mockllm: marshal response: %w", err)) // static types: cannot happen
		}
		w.Header().Set("Content-Type", "application/json")
		writeMaybeGzip(w, p.status, b, p.gzip)
	}
}

func newResponsesPlan(body []byte, o overrides, incomplete bool, delay time.Duration) (*responsesPlan, error) {
	var req responsesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, &badRequest{fmt.Sprintf("We could not parse the JSON body of your request: %v", err), "invalid_json"}
	}
	if req.Model == nil || *req.Model == "" {
		return nil, &badRequest{"Missing required parameter: 'model'.", "missing_required_parameter"}
	}
	prompt, err := responsesPromptTokens(req)
	if err != nil {
		return nil, &badRequest{err.Error(), "invalid_type"}
	}
	// The real API's minimum is 16; the mock takes any positive cap, as
	// its chat route does, so tests can cut short replies.
	if req.MaxOutputTokens != nil && *req.MaxOutputTokens < 1 {
		return nil, &badRequest{fmt.Sprintf("Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.",
			*req.MaxOutputTokens), "integer_below_min_value"}
	}
	p, err := basePlan("resp_", body, *req.Model, prompt, req.Stream, req.MaxOutputTokens, o, delay)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	return &responsesPlan{plan: p, msgID: "msg_" + hex.EncodeToString(sum[6:18]), incomplete: incomplete || p.finish == "length"}, nil
}

// basePlan applies the shared X-Mock-* overrides to a request whose prompt
// the chat formula counted, as newPlan does for chat: the id, model, status,
// words, usage, streaming and delays. limit caps completion tokens.
func basePlan(idPrefix string, body []byte, model string, prompt int64, stream bool, limit *int64, o overrides, delay time.Duration) (*plan, error) {
	sum := sha256.Sum256(body)
	p := &plan{
		id: idPrefix + hex.EncodeToString(sum[:6]), model: model, status: o.status, words: DefaultCompletionWords,
		finish: "stop", stream: stream, statusUsage: o.statusUsage, gzip: o.gzip, delay: delay, stopAfter: int(o.stopAfter),
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
	reasoning, cached := max(o.reasoning, 0), max(o.cached, 0)
	if cached > prompt {
		return nil, &badRequest{fmt.Sprintf("%s: %d exceeds prompt tokens %d", HeaderCachedTokens, cached, prompt), "invalid_mock_header"}
	}
	if err := p.applyLimit(nil, limit, &reasoning); err != nil {
		return nil, err
	}
	completion := int64(p.words) + reasoning
	p.usage = usageJSON{
		PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion,
		PromptTokensDetails: promptDetails{CachedTokens: cached}, CompletionTokensDetails: completionDetails{ReasoningTokens: reasoning},
	}
	return p, nil
}

// finalStatus is the terminal status: "completed", or "incomplete".
func (p *responsesPlan) finalStatus() string {
	if p.incomplete {
		return "incomplete"
	}
	return "completed"
}

// response is the response object in a given status, with the first words
// of the reply and, unless in progress, the usage.
func (p *responsesPlan) response(status string, words int) responseJSON {
	r := responseJSON{ID: p.id, Object: "response", CreatedAt: Created, Status: status, Error: jsonNull,
		Model: p.model, Output: []outputMessage{}}
	if status == "in_progress" {
		return r
	}
	r.Output = []outputMessage{p.message(status, words)}
	u := responsesUsage{InputTokens: p.usage.PromptTokens, OutputTokens: p.usage.CompletionTokens, TotalTokens: p.usage.TotalTokens}
	u.InputTokensDetails.CachedTokens = p.usage.PromptTokensDetails.CachedTokens
	u.OutputTokensDetails.ReasoningTokens = p.usage.CompletionTokensDetails.ReasoningTokens
	r.Usage = &u
	if status == "incomplete" {
		r.IncompleteDetails = &reasonJSON{Reason: "max_output_tokens"}
	}
	return r
}

func (p *responsesPlan) message(status string, words int) outputMessage {
	return outputMessage{ID: p.msgID, Type: "message", Status: status, Role: "assistant",
		Content: []outputText{{Type: "output_text", Annotations: []any{}, Text: ReplyText(words)}}}
}

func (s *Server) streamResponses(ctx context.Context, w http.ResponseWriter, p *responsesPlan) {
	s.streamWith(ctx, w, p.plan, func(ev *eventWriter, _ *plan) error {
		return (&responsesStream{ev: ev, p: p}).run()
	})
}
