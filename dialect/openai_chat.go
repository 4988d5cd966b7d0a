package dialect

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tokenmeter/tokenmeter/framing"
	"github.com/tokenmeter/tokenmeter/usage"
)

// OpenAIChat is the OpenAI Chat Completions API (POST /v1/chat/completions),
// also spoken by Azure OpenAI, vLLM and other compatible servers.
//
// Its usage overlaps: prompt_tokens include the cached_tokens and
// completion_tokens include the reasoning_tokens. The decoders split them
// into disjoint classes: input = prompt − cached, cache_read = cached,
// output = completion − reasoning, reasoning = reasoning.
func OpenAIChat() Dialect { return openAIChat{} }

type openAIChat struct{}

const openAIChatName = "openai_chat"

func (openAIChat) Name() string     { return openAIChatName }
func (openAIChat) Provider() string { return "openai" }

// ParseRequest reads the request body. Where a key is repeated the last one
// counts, as in Python's, JavaScript's and Go's JSON decoders: what the
// server acts on is what metering must read.
func (openAIChat) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	s := bstr(body)
	if !gjson.Valid(s) {
		return Request{}, nil, fmt.Errorf("%s: request body: %w", openAIChatName, ReasonMalformedJSON)
	}
	c, ok := scanChatRequest(s)
	if !ok {
		return Request{}, nil, fmt.Errorf("%s: request body is not a JSON object: %w", openAIChatName, ReasonUnexpectedShape)
	}
	req := c.request()
	if !req.Stream || req.IncludeUsage || !opts.InjectStreamUsage {
		return req, nil, nil
	}
	newBody, ok := injectIncludeUsage(body, c.streamOptions)
	if !ok {
		return req, nil, nil
	}
	req.IncludeUsage = true
	return req, newBody, nil
}

// chatRequest holds the raw values of the request keys metering reads.
type chatRequest struct {
	model, stream, streamOptions, maxCompletion, maxTokens, messages string
}

func scanChatRequest(s string) (chatRequest, bool) {
	var c chatRequest
	if i := skipWS(s, 0); i >= len(s) || s[i] != '{' {
		return c, false
	}
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			c.model = v
		case "stream":
			c.stream = v
		case "stream_options":
			c.streamOptions = v
		case "max_completion_tokens":
			c.maxCompletion = v
		case "max_tokens":
			c.maxTokens = v
		case "messages":
			c.messages = v
		}
	}
	return c, true
}

func (c chatRequest) request() Request {
	var req Request
	req.Model, _ = stringValue(c.model)
	req.Stream = c.stream == "true"
	req.IncludeUsage = includeUsage(c.streamOptions)
	// max_tokens is deprecated in favour of max_completion_tokens, which
	// o-series models require; a client may still send both.
	n, ok := intValue(c.maxCompletion)
	if !ok {
		n, _ = intValue(c.maxTokens)
	}
	req.MaxTokens = max(n, 0)
	req.PromptBytes = promptBytes(c.messages)
	return req
}

func includeUsage(streamOptions string) bool {
	var v string
	m := newMembers(streamOptions)
	for k, val, ok := m.next(); ok; k, val, ok = m.next() {
		if k == "include_usage" {
			v = val
		}
	}
	return v == "true"
}

// promptBytes sums the text of every message: a string content, or the
// "text" of each part of an array content.
func promptBytes(messages string) int64 {
	var n int64
	msgs := newElements(messages)
	for msg, ok := msgs.next(); ok; msg, ok = msgs.next() {
		content := lastMember(msg, "content")
		if !isArray(content) {
			n += stringBytes(content)
			continue
		}
		parts := newElements(content)
		for part, ok := parts.next(); ok; part, ok = parts.next() {
			n += stringBytes(lastMember(part, "text"))
		}
	}
	return n
}

// lastMember returns the raw value of obj's last member named key, or "".
func lastMember(obj, key string) string {
	var v string
	m := newMembers(obj)
	for k, val, ok := m.next(); ok; k, val, ok = m.next() {
		if k == key {
			v = val
		}
	}
	return v
}

// injectIncludeUsage sets stream_options.include_usage, leaving every other
// byte of body as it was.
func injectIncludeUsage(body []byte, streamOptions string) ([]byte, bool) {
	var out []byte
	var err error
	switch {
	case streamOptions == "" || streamOptions == "null":
		out, err = sjson.SetRawBytes(body, "stream_options", []byte(`{"include_usage":true}`))
	case isObject(streamOptions):
		out, err = sjson.SetRawBytes(body, "stream_options.include_usage", []byte("true"))
	default:
		// Not an object: the provider rejects the request anyway.
		return nil, false
	}
	if err != nil {
		return nil, false
	}
	// sjson edits the first of repeated keys; the provider reads the last.
	// Send the rewrite only if the provider will see it.
	if c, ok := scanChatRequest(bstr(out)); !ok || !includeUsage(c.streamOptions) {
		return nil, false
	}
	return out, true
}

func (openAIChat) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if isEventStream(resp.ContentType) {
		return WithEncoding(resp.ContentEncoding, &chatSSE{sse: framing.NewSSE(maxBuffer), max: maxBuffer}, maxBuffer)
	}
	return WithEncoding(resp.ContentEncoding, &chatJSON{jsonBody{dialect: openAIChatName, max: maxBuffer}}, maxBuffer)
}

// chatObject holds what a chat completion, or one streamed chunk of it,
// carries: raw values, and counts over its choices.
type chatObject struct {
	model, usage, err string
	text              int64 // bytes of generated text in the choices
	choices           int
	finished          bool // some choice has a finish_reason
}

// scanChatObject reads a completion (textKey "message") or a chunk
// (textKey "delta").
func scanChatObject(s, textKey string) (chatObject, bool) {
	var o chatObject
	if i := skipWS(s, 0); i >= len(s) || s[i] != '{' {
		return o, false
	}
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			o.model = v
		case "usage":
			o.usage = v
		case "error":
			o.err = v
		case "choices":
			o.text, o.choices, o.finished = 0, 0, false
			o.scanChoices(v, textKey)
		}
	}
	return o, true
}

func (o *chatObject) scanChoices(arr, textKey string) {
	choices := newElements(arr)
	for choice, ok := choices.next(); ok; choice, ok = choices.next() {
		o.choices++
		m := newMembers(choice)
		for k, v, ok := m.next(); ok; k, v, ok = m.next() {
			switch k {
			case textKey:
				o.text += generatedBytes(v)
			case "finish_reason":
				o.finished = o.finished || v != "null"
			}
		}
	}
}

// generatedBytes counts the generated text in a message or delta. Tool call
// arguments and reasoning_content (vLLM, DeepSeek) are generated tokens
// too, and count towards an estimate when usage never arrives.
func generatedBytes(msg string) int64 {
	var n int64
	m := newMembers(msg)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "content", "refusal", "reasoning_content":
			n += stringBytes(v)
		case "function_call":
			n += stringBytes(lastMember(v, "arguments"))
		case "tool_calls":
			calls := newElements(v)
			for call, ok := calls.next(); ok; call, ok = calls.next() {
				n += stringBytes(lastMember(lastMember(call, "function"), "arguments"))
			}
		}
	}
	return n
}

// providerError describes an "error" value, or returns nil when there is
// none. Compatible servers send an object or, sometimes, a bare string.
func providerError(raw string) error {
	switch {
	case isObject(raw):
		code, _ := stringValue(lastMember(raw, "code"))
		if code == "" {
			code, _ = stringValue(lastMember(raw, "type"))
		}
		return fmt.Errorf("%s: provider error %q: %w", openAIChatName, code, ReasonProviderError)
	case len(raw) > 0 && raw[0] == '"':
		return fmt.Errorf("%s: provider error: %w", openAIChatName, ReasonProviderError)
	}
	return nil
}

// chatUsage is a usage object as the provider reported it.
type chatUsage struct {
	prompt, completion, total, cached, reasoning int64
	has                                          uint8 // which fields were present
}

const (
	hasPrompt uint8 = 1 << iota
	hasCompletion
	hasTotal
	hasCached
	hasReasoning
)

// parseChatUsage reads a usage object. It fails when the object has neither
// prompt nor completion tokens: that is no usage report at all.
func parseChatUsage(obj string) (chatUsage, bool) {
	var u chatUsage
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "prompt_tokens":
			u.set(hasPrompt, &u.prompt, v)
		case "completion_tokens":
			u.set(hasCompletion, &u.completion, v)
		case "total_tokens":
			u.set(hasTotal, &u.total, v)
		case "prompt_tokens_details":
			u.set(hasCached, &u.cached, lastMember(v, "cached_tokens"))
		case "completion_tokens_details":
			u.set(hasReasoning, &u.reasoning, lastMember(v, "reasoning_tokens"))
		}
	}
	return u, u.has&(hasPrompt|hasCompletion) != 0
}

// set records raw under bit when it is a number and clears it otherwise,
// so a later null overrides an earlier number, as for any repeated key.
func (u *chatUsage) set(bit uint8, dst *int64, raw string) {
	n, ok := intValue(raw)
	*dst = n
	if ok {
		u.has |= bit
	} else {
		u.has &^= bit
	}
}

// normalise splits the overlapping counts into disjoint classes. A class is
// Reported when the field it derives from was present.
func (u chatUsage) normalise() (usage.Usage, error) {
	var out usage.Usage
	for _, f := range [...]struct {
		bit  uint8
		name string
		n    int64
	}{
		{hasPrompt, "prompt_tokens", u.prompt},
		{hasCompletion, "completion_tokens", u.completion},
		{hasTotal, "total_tokens", u.total},
		{hasCached, "cached_tokens", u.cached},
		{hasReasoning, "reasoning_tokens", u.reasoning},
	} {
		if u.has&f.bit != 0 {
			out.Raw = append(out.Raw, usage.Field{Name: f.name, Value: f.n})
		}
	}
	input, cacheRead, okIn := split(u.prompt, u.cached, u.has&hasPrompt != 0)
	output, reasoning, okOut := split(u.completion, u.reasoning, u.has&hasCompletion != 0)
	for _, c := range [...]struct {
		bit   uint8
		class usage.Class
		n     int64
	}{
		{hasPrompt, usage.Input, input},
		{hasCached, usage.CacheRead, cacheRead},
		{hasCompletion, usage.Output, output},
		{hasReasoning, usage.Reasoning, reasoning},
	} {
		if u.has&c.bit != 0 {
			out.Set(c.class, c.n)
		}
	}
	if !okIn || !okOut {
		return out, fmt.Errorf("%s: usage prompt_tokens=%d cached_tokens=%d completion_tokens=%d reasoning_tokens=%d: %w",
			openAIChatName, u.prompt, u.cached, u.completion, u.reasoning, ReasonInconsistentUsage)
	}
	return out, nil
}

// split divides a reported total into the part a detail field names and
// the rest. When they disagree (a part over its total, or a negative
// number) it keeps the total, so the classes still sum to what the
// provider billed, never goes negative, and reports false.
func split(whole, part int64, hasWhole bool) (rest, sub int64, ok bool) {
	if !hasWhole {
		return 0, max(part, 0), part >= 0
	}
	ok = whole >= 0 && part >= 0 && part <= whole
	whole = max(whole, 0)
	sub = min(max(part, 0), whole)
	return whole - sub, sub, ok
}

// chatJSON decodes a whole (non-streamed) chat completion.
type chatJSON struct{ jsonBody }

// Finish reports, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape, then usage when
// present (with inconsistent_usage when it does not add up), else
// provider_error, else no_usage.
func (d *chatJSON) Finish(complete bool) Result {
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	o, ok := scanChatObject(s, "message")
	if !ok {
		return Result{Err: fmt.Errorf("%s: response body is not a JSON object: %w", openAIChatName, ReasonUnexpectedShape)}
	}
	res := Result{StreamedTextBytes: o.text}
	res.Model, _ = stringValue(o.model)
	u, hasUsage := parseChatUsage(o.usage)
	perr := providerError(o.err)
	switch {
	case hasUsage:
		res.Usage, res.Err = u.normalise()
	case perr != nil:
		res.Err = perr
	case isObject(o.usage):
		res.Err = fmt.Errorf("%s: usage has no token counts: %w", openAIChatName, ReasonUnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage: %w", openAIChatName, ReasonNoUsage)
	}
	return res
}

// chatSSE decodes a streamed chat completion.
type chatSSE struct {
	sse *framing.SSE
	max int

	model      string
	usage      chatUsage
	hasUsage   bool
	usageFinal bool // the usage came with the last choice, or after it
	text       int64
	done       bool // data: [DONE] was seen
	tooLarge   bool
	malformed  int // events that were not JSON
	badShape   int // events that were JSON but not a chunk
	provErr    error
}

func (d *chatSSE) Feed(chunk []byte) error {
	err := d.sse.Feed(chunk, d.onEvent)
	if errors.Is(err, framing.ErrEventTooLarge) {
		d.tooLarge = true
		return fmt.Errorf("%s: stream event over %d bytes dropped: %w", openAIChatName, d.max, ReasonTooLarge)
	}
	return err
}

var doneData = []byte("[DONE]")

func (d *chatSSE) onEvent(ev framing.Event) error {
	data := bytes.TrimSpace(ev.Data)
	if string(ev.Name) == "error" && d.provErr == nil {
		d.provErr = fmt.Errorf("%s: error event: %w", openAIChatName, ReasonProviderError)
	}
	switch {
	case len(data) == 0:
		return nil
	case bytes.Equal(data, doneData):
		d.done = true
		return nil
	}
	s := bstr(data)
	if !gjson.Valid(s) {
		d.malformed++
		return nil
	}
	o, ok := scanChatObject(s, "delta")
	if !ok {
		d.badShape++
		return nil
	}
	d.text += o.text
	if d.model == "" {
		d.model, _ = stringValue(o.model)
	}
	if isObject(o.usage) {
		// Last wins: vLLM's continuous_usage_stats repeats a running total
		// on every chunk.
		if u, ok := parseChatUsage(o.usage); ok {
			d.usage, d.hasUsage = u, true
			d.usageFinal = o.choices == 0 || o.finished
		} else {
			d.badShape++
		}
	}
	if err := providerError(o.err); err != nil && d.provErr == nil {
		d.provErr = err
	}
	return nil
}

// Finish reports the usage when it arrived: Err is then nil, or
// inconsistent_usage, or truncated when the stream was cut after a running
// total that was not the last. Without usage, the reason is the first of:
// provider_error, too_large, truncated, malformed_json, unexpected_shape,
// no_usage; each earlier one better explains why the usage is missing.
//
// The stream counts as cut when no [DONE] came and either the body did not
// complete or it ended mid-event; a client that disconnects after [DONE]
// did not cut it.
func (d *chatSSE) Finish(complete bool) Result {
	res := Result{Model: d.model, StreamedTextBytes: d.text}
	cut := !d.done && (!complete || d.sse.Pending())
	if d.hasUsage {
		res.Usage, res.Err = d.usage.normalise()
		if res.Err == nil && cut && !d.usageFinal {
			res.Err = fmt.Errorf("%s: stream cut after a running usage total: %w", openAIChatName, ReasonTruncated)
		}
		return res
	}
	switch {
	case d.provErr != nil:
		res.Err = d.provErr
	case d.tooLarge:
		res.Err = fmt.Errorf("%s: an event over %d bytes was dropped: %w", openAIChatName, d.max, ReasonTooLarge)
	case cut:
		res.Err = fmt.Errorf("%s: stream cut before its usage: %w", openAIChatName, ReasonTruncated)
	case d.malformed > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not JSON: %w", openAIChatName, d.malformed, ReasonMalformedJSON)
	case d.badShape > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not chunks: %w", openAIChatName, d.badShape, ReasonUnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: stream carried no usage (stream_options.include_usage not set?): %w", openAIChatName, ReasonNoUsage)
	}
	return res
}
