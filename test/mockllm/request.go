package mockllm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request headers that steer the mock. Values are trimmed of spaces; an
// unparsable or out-of-range value is answered with 400 rather than ignored,
// so a typo in a test fails loudly.
const (
	// HeaderPromptTokens replaces the computed usage.prompt_tokens.
	HeaderPromptTokens = "X-Mock-Prompt-Tokens"
	// HeaderCompletionTokens sets the number of reply words (one token
	// each). completion_tokens = this + reasoning tokens.
	HeaderCompletionTokens = "X-Mock-Completion-Tokens"
	// HeaderCachedTokens sets usage.prompt_tokens_details.cached_tokens;
	// it must not exceed prompt_tokens.
	HeaderCachedTokens = "X-Mock-Cached-Tokens"
	// HeaderReasoningTokens sets
	// usage.completion_tokens_details.reasoning_tokens, added on top of
	// the reply words in completion_tokens.
	HeaderReasoningTokens = "X-Mock-Reasoning-Tokens"
	// HeaderStatus sets the response status (200-599; not 204 or 304). A
	// non-2xx status answers with an OpenAI error body instead.
	HeaderStatus = "X-Mock-Status"
	// HeaderStatusUsage ("true") adds a usage object to the error body of
	// a non-2xx HeaderStatus, as providers that bill failures do.
	HeaderStatusUsage = "X-Mock-Status-Usage"
	// HeaderModel replaces the model echoed in the response, as providers
	// answer with a dated snapshot of the alias asked for.
	HeaderModel = "X-Mock-Model"
	// HeaderUsageWithChoices ("true") moves stream usage onto the chunk
	// that carries finish_reason, instead of a separate "choices":[]
	// chunk. It only matters when stream_options.include_usage is set.
	HeaderUsageWithChoices = "X-Mock-Usage-With-Choices"
	// HeaderChunkDelayMs overrides Options.ChunkDelay, in milliseconds.
	HeaderChunkDelayMs = "X-Mock-Chunk-Delay-Ms"
	// HeaderStopAfter K makes a stream send the role chunk and min(K,
	// words) content chunks, then drop the connection: no finish chunk,
	// no usage, no [DONE]. Ignored for non-streaming requests.
	HeaderStopAfter = "X-Mock-Stop-After"
	// HeaderGzip ("true") gzips the chat completion response (including
	// error bodies) and sets Content-Encoding: gzip, whatever the request's
	// Accept-Encoding. Streams are flushed through gzip after every event.
	HeaderGzip = "X-Mock-Gzip"
)

// DefaultCompletionWords is the reply length, in words and tokens, when
// HeaderCompletionTokens is absent.
const DefaultCompletionWords = 8

// Created is the fixed "created" timestamp of every response.
const Created = 1700000000

// Limits that keep a mistaken header from producing gigabytes of output
// while staying far above anything a test needs.
const (
	maxWords      = 1_000_000
	maxTokenCount = 1_000_000_000_000
	maxDelayMs    = 60_000
)

// overrides are the parsed X-Mock-* headers; -1 means absent.
type overrides struct {
	prompt, completion, cached, reasoning int64
	stopAfter                             int64
	delay                                 time.Duration
	hasDelay                              bool
	status                                int
	statusUsage, usageWithChoices, gzip   bool
	model                                 string
}

func parseOverrides(h http.Header) (overrides, error) {
	o := overrides{status: http.StatusOK, model: strings.TrimSpace(h.Get(HeaderModel))}
	ints := []struct {
		name string
		max  int64
		dst  *int64
	}{
		{HeaderPromptTokens, maxTokenCount, &o.prompt},
		{HeaderCompletionTokens, maxWords, &o.completion},
		{HeaderCachedTokens, maxTokenCount, &o.cached},
		{HeaderReasoningTokens, maxTokenCount, &o.reasoning},
		{HeaderStopAfter, maxWords, &o.stopAfter},
	}
	for _, f := range ints {
		v, err := intHeader(h, f.name, f.max)
		if err != nil {
			return o, err
		}
		*f.dst = v
	}
	ms, err := intHeader(h, HeaderChunkDelayMs, maxDelayMs)
	if err != nil {
		return o, err
	}
	o.hasDelay, o.delay = ms >= 0, time.Duration(ms)*time.Millisecond

	bools := []struct {
		name string
		dst  *bool
	}{
		{HeaderStatusUsage, &o.statusUsage},
		{HeaderUsageWithChoices, &o.usageWithChoices},
		{HeaderGzip, &o.gzip},
	}
	for _, f := range bools {
		if *f.dst, err = boolHeader(h, f.name); err != nil {
			return o, err
		}
	}

	st, err := intHeader(h, HeaderStatus, 599)
	if err != nil {
		return o, err
	}
	if st >= 0 {
		// 1xx, 204 and 304 cannot carry the body every answer here has.
		if st < 200 || st == http.StatusNoContent || st == http.StatusNotModified {
			return o, fmt.Errorf("%s: status %d is not supported (want 200-599, not 204 or 304)", HeaderStatus, st)
		}
		o.status = int(st)
	}
	return o, nil
}

// intHeader returns -1 when the header is absent.
func intHeader(h http.Header, name string, limit int64) (int64, error) {
	s := strings.TrimSpace(h.Get(name))
	if s == "" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if v < 0 || v > limit {
		return 0, fmt.Errorf("%s: %d is out of range 0..%d", name, v, limit)
	}
	return v, nil
}

func boolHeader(h http.Header, name string) (bool, error) {
	s := strings.TrimSpace(h.Get(name))
	if s == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// chatRequest is the part of the request body the mock reads. Fields with the
// wrong JSON type make decoding fail, which is answered with 400 like the
// real API does.
type chatRequest struct {
	Model         *string   `json:"model"`
	Messages      []message `json:"messages"`
	Stream        bool      `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// contentLen is the byte length of a message's text: a string, or the text of
// an array of parts. Non-text parts (images, audio) count zero, which keeps
// the formula simple and is documented.
func contentLen(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return int64(len(s)), nil
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return 0, fmt.Errorf("message content must be a string or an array of parts: %w", err)
	}
	var n int64
	for _, p := range parts {
		n += int64(len(p.Text))
	}
	return n, nil
}

// PromptTokens applies the default prompt formula to the messages of a chat
// request body: 3 + Σ (4 + ceil(len(text)/4)). Tests of other packages use it
// to predict usage without duplicating the formula.
func PromptTokens(body []byte) (int64, error) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, fmt.Errorf("decode chat request: %w", err)
	}
	return promptTokens(req.Messages)
}

func promptTokens(msgs []message) (int64, error) {
	total := int64(3)
	for i, m := range msgs {
		n, err := contentLen(m.Content)
		if err != nil {
			return 0, fmt.Errorf("messages[%d]: %w", i, err)
		}
		total += 4 + (n+3)/4
	}
	return total, nil
}

// plan is everything the response writers need, decided up front so the
// writers contain no policy.
type plan struct {
	id, model        string
	status           int
	words            int
	finish           string
	usage            usageJSON
	stream           bool
	includeUsage     bool
	usageWithChoices bool
	statusUsage      bool
	gzip             bool
	delay            time.Duration
	stopAfter        int // -1: run to completion
}

// badRequest is a client mistake in the body or the X-Mock-* headers.
type badRequest struct {
	msg, code string
}

func (e *badRequest) Error() string { return e.msg }

func newPlan(body []byte, o overrides, defaultDelay time.Duration) (*plan, error) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, &badRequest{fmt.Sprintf("We could not parse the JSON body of your request: %v", err), "invalid_json"}
	}
	if req.Model == nil || *req.Model == "" {
		return nil, &badRequest{"you must provide a model parameter", "missing_required_parameter"}
	}
	prompt, err := promptTokens(req.Messages)
	if err != nil {
		return nil, &badRequest{err.Error(), "invalid_type"}
	}

	sum := sha256.Sum256(body)
	p := &plan{
		id:               "chatcmpl-" + hex.EncodeToString(sum[:6]),
		model:            *req.Model,
		status:           o.status,
		words:            DefaultCompletionWords,
		finish:           "stop",
		stream:           req.Stream,
		includeUsage:     req.Stream && req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
		usageWithChoices: o.usageWithChoices,
		statusUsage:      o.statusUsage,
		gzip:             o.gzip,
		delay:            defaultDelay,
		stopAfter:        int(o.stopAfter),
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
	reasoning := max(o.reasoning, 0)
	cached := max(o.cached, 0)
	if cached > prompt {
		return nil, &badRequest{fmt.Sprintf("%s: %d exceeds prompt tokens %d", HeaderCachedTokens, cached, prompt), "invalid_mock_header"}
	}
	if err := p.applyLimit(req.MaxCompletionTokens, req.MaxTokens, &reasoning); err != nil {
		return nil, err
	}
	completion := int64(p.words) + reasoning
	p.usage = usageJSON{
		PromptTokens:            prompt,
		CompletionTokens:        completion,
		TotalTokens:             prompt + completion,
		PromptTokensDetails:     promptDetails{CachedTokens: cached},
		CompletionTokensDetails: completionDetails{ReasoningTokens: reasoning},
	}
	return p, nil
}

// applyLimit truncates like a reasoning model: the hidden reasoning spends
// the budget first, the visible reply gets the rest.
func (p *plan) applyLimit(maxCompletion, maxTokens *int64, reasoning *int64) error {
	limit, name := maxCompletion, "max_completion_tokens"
	if limit == nil {
		limit, name = maxTokens, "max_tokens"
	}
	if limit == nil {
		return nil
	}
	if *limit < 1 {
		return &badRequest{fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", name, *limit), "integer_below_min_value"}
	}
	if *reasoning > *limit {
		*reasoning = *limit
		p.finish = "length"
	}
	if left := *limit - *reasoning; int64(p.words) > left {
		p.words = int(left)
		p.finish = "length"
	}
	return nil
}

// loremWords are cycled to build the reply. Plain ASCII words so that "one
// word, one token" is plausible and JSON escaping never changes lengths.
var loremWords = [...]string{
	"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
	"sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et",
	"dolore", "magna", "aliqua",
}

// word is the i-th streamed piece of the reply; pieces after the first carry
// their separating space so that concatenated deltas equal ReplyText.
func word(i int) string {
	w := loremWords[i%len(loremWords)]
	if i == 0 {
		return w
	}
	return " " + w
}

// ReplyText is the assistant content of a reply of n words, for tests that
// assert exact content.
func ReplyText(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(word(i))
	}
	return b.String()
}
