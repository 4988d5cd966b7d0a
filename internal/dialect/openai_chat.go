package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"iter"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// OpenAIChat is the OpenAI Chat Completions API (POST /v1/chat/completions),
// also spoken by vLLM, DeepSeek, Groq, OpenRouter and other compatible
// servers. Azure OpenAI speaks it too, under its own provider: see
// AzureOpenAIChat.
//
// Its usage overlaps: prompt_tokens include the cached and audio tokens, and
// completion_tokens include the reasoning and audio tokens. The decoders
// split them into disjoint classes; see chatUsage.normalise.
func OpenAIChat() Dialect { return openAIChat{} }

type openAIChat struct{}

const openAIChatName = "openai_chat"

func (openAIChat) Name() string     { return openAIChatName }
func (openAIChat) Provider() string { return "openai" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (openAIChat) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (x openAIChat) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, x.parseRequest)
}

// ErrorBody implements Dialect.
func (openAIChat) ErrorBody(r Refusal) ErrorResponse { return OpenAIRefusal(r) }

// parseRequest reads the request body. Where a key is repeated the last one
// counts, as in Python's, JavaScript's and Go's JSON decoders: what the
// server acts on is what metering must read.
func (openAIChat) parseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseOpenAIRequest(openAIChatName, "messages", messageTexts, body, opts)
}

// parseOpenAIRequest reads a chat or legacy completions request, whose
// prompt is under promptKey and whose text texts yields, and injects
// stream_options.include_usage when asked.
func parseOpenAIRequest(name, promptKey string, texts func(string) iter.Seq[string], body []byte, opts RequestOptions) (Request, []byte, error) {
	s := bstr(body)
	if !gjson.Valid(s) {
		return Request{}, nil, fmt.Errorf("%s: request body: %w", name, reason.MalformedJSON)
	}
	c, ok := scanChatRequest(s, promptKey)
	if !ok {
		return Request{}, nil, fmt.Errorf("%s: request body is not a JSON object: %w", name, reason.UnexpectedShape)
	}
	req := c.request(texts)
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
	model, stream, streamOptions, maxCompletion, maxTokens, prompt, serviceTier string
}

func scanChatRequest(s, promptKey string) (chatRequest, bool) {
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
		case "service_tier":
			c.serviceTier = v
		case promptKey:
			c.prompt = v
		}
	}
	return c, true
}

func (c chatRequest) request(texts func(string) iter.Seq[string]) Request {
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
	req.Prompt, req.PromptBytes = collectText(texts(c.prompt))
	req.ServiceTier = openAIServiceTier(c.serviceTier)
	return req
}

// openAIServiceTier maps a request's service_tier to the catalog's tier
// names. "auto" and "default" leave the choice to OpenAI, whose default tier
// is priced at the base prices.
// openAIServedTier maps a response's service_tier ("default", "flex",
// "priority", "scale") to Result.ServiceTier; "" when absent or unknown.
func openAIServedTier(raw string) string {
	switch v, _ := stringValue(raw); v {
	case "flex", "priority":
		return v
	case "default", "scale":
		return ServedStandard
	}
	return ""
}

func openAIServiceTier(raw string) string {
	switch v, _ := stringValue(raw); v {
	case "flex", "priority":
		return v
	}
	return ""
}

// collectText unescapes the JSON strings texts yields into one text, as far
// as MaxEstimateText, and counts all of their bytes. A first pass sizes the
// buffer, so that a prompt costs one allocation however many parts it has.
func collectText(texts iter.Seq[string]) (string, int64) {
	var n int64
	for raw := range texts {
		n += stringBytes(raw)
	}
	if n == 0 {
		return "", 0
	}
	t := TextBuffer{flat: make([]byte, 0, min(n, MaxEstimateText))}
	for raw := range texts {
		t.WriteJSONString(raw)
	}
	// The buffer is never written again: the string may share it.
	return bstr(t.Bytes()), t.Total()
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

// messageTexts yields the raw text strings of chat messages: a string
// content, or the "text" of each part of an array content. Images, audio
// and tool calls yield nothing: this feeds an estimate, not a bill.
func messageTexts(messages string) iter.Seq[string] {
	return func(yield func(string) bool) {
		msgs := newElements(messages)
		for msg, ok := msgs.next(); ok; msg, ok = msgs.next() {
			content := lastMember(msg, "content")
			if !isArray(content) {
				if !yield(content) {
					return
				}
				continue
			}
			parts := newElements(content)
			for part, ok := parts.next(); ok; part, ok = parts.next() {
				if !yield(lastMember(part, "text")) {
					return
				}
			}
		}
	}
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
	if c, ok := scanChatRequest(bstr(out), ""); !ok || !includeUsage(c.streamOptions) {
		return nil, false
	}
	return out, true
}

func (openAIChat) NewDecoder(resp Response, maxBuffer int) Decoder {
	return newChatDecoder(chatShape{openAIChatName, "message"}, chatShape{openAIChatName, "delta"}, resp, maxBuffer)
}

// chatShape is what differs between the wire shapes the chat decoders read:
// the dialect's name, for errors, and the member of a choice that holds its
// text. "message" and "delta" hold a message object; "text" (legacy
// completions) holds the string itself.
type chatShape struct {
	name, textKey string
}

// newChatDecoder returns the decoder for a chat-shaped response: whole
// (jsonShape) or streamed (sseShape).
func newChatDecoder(jsonShape, sseShape chatShape, resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if isEventStream(resp.ContentType) {
		d := &chatSSE{sse: framing.NewSSE(maxBuffer), max: maxBuffer, shape: sseShape}
		return WithEncoding(resp.ContentEncoding, d, maxBuffer)
	}
	return WithEncoding(resp.ContentEncoding, &chatJSON{jsonBody{dialect: jsonShape.name, max: maxBuffer}, jsonShape}, maxBuffer)
}

// chatObject holds what a chat completion, or one streamed chunk of it,
// carries: raw values, and counts over its choices.
type chatObject struct {
	model, usage, groqUsage, err string
	serviceTier                  string
	choices                      int
	finished                     bool // some choice has a finish_reason
}

// scanChatObject reads a completion or a chunk, and writes the text its
// choices generated to text.
func scanChatObject(s string, shape chatShape, text *TextBuffer) (chatObject, bool) {
	var o chatObject
	if i := skipWS(s, 0); i >= len(s) || s[i] != '{' {
		return o, false
	}
	var choices string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			o.model = v
		case "service_tier":
			o.serviceTier = v
		case "usage":
			o.usage = v
		case "x_groq":
			// Groq streams its usage here, on the last chunk.
			o.groqUsage = lastMember(v, "usage")
		case "error":
			o.err = v
		case "choices":
			choices = v // read once the last of repeated keys is known
		}
	}
	o.scanChoices(choices, shape.textKey, text)
	return o, true
}

func (o *chatObject) scanChoices(arr, textKey string, text *TextBuffer) {
	choices := newElements(arr)
	for choice, ok := choices.next(); ok; choice, ok = choices.next() {
		o.choices++
		var msg string
		m := newMembers(choice)
		for k, v, ok := m.next(); ok; k, v, ok = m.next() {
			switch k {
			case textKey:
				msg = v
			case "finish_reason":
				o.finished = o.finished || v != "null"
			}
		}
		if textKey == "text" {
			text.WriteJSONString(msg)
		} else {
			writeGenerated(text, msg)
		}
	}
}

// writeGenerated writes the generated text of a message or delta. Tool call
// arguments and reasoning_content (vLLM, DeepSeek) are generated tokens
// too, and count towards an estimate when usage never arrives.
func writeGenerated(text *TextBuffer, msg string) {
	m := newMembers(msg)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "content", "refusal", "reasoning_content":
			text.WriteJSONString(v)
		case "function_call":
			text.WriteJSONString(lastMember(v, "arguments"))
		case "tool_calls":
			calls := newElements(v)
			for call, ok := calls.next(); ok; call, ok = calls.next() {
				text.WriteJSONString(lastMember(lastMember(call, "function"), "arguments"))
			}
		}
	}
}

// providerError describes an "error" value, or returns nil when there is
// none. Compatible servers send an object or, sometimes, a bare string.
func providerError(dialect, raw string) error {
	switch {
	case isObject(raw):
		code, _ := stringValue(lastMember(raw, "code"))
		if code == "" {
			code, _ = stringValue(lastMember(raw, "type"))
		}
		return fmt.Errorf("%s: provider error %q: %w", dialect, code, reason.ProviderError)
	case len(raw) > 0 && raw[0] == '"':
		return fmt.Errorf("%s: provider error: %w", dialect, reason.ProviderError)
	}
	return nil
}

// chatJSON decodes a whole (non-streamed) chat completion.
type chatJSON struct {
	jsonBody
	shape chatShape
}

// Finish reports, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape, then usage when
// present (with inconsistent_usage when it does not add up), else
// provider_error, else no_usage.
func (d *chatJSON) Finish(complete bool) Result {
	name := d.shape.name
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	var text TextBuffer
	o, ok := scanChatObject(s, d.shape, &text)
	if !ok {
		return Result{Err: fmt.Errorf("%s: response body is not a JSON object: %w", name, reason.UnexpectedShape)}
	}
	res := Result{Text: text.Bytes(), StreamedTextBytes: text.Total(), ServiceTier: openAIServedTier(o.serviceTier)}
	res.Model, _ = stringValue(o.model)
	raw := o.usage
	if !isObject(raw) {
		raw = o.groqUsage
	}
	u, hasUsage := parseChatUsage(raw)
	perr := providerError(name, o.err)
	switch {
	case hasUsage:
		res.Usage, res.Err = u.normalise(name)
	case perr != nil:
		res.Err = perr
	case isObject(raw):
		res.Err = fmt.Errorf("%s: usage has no token counts: %w", name, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage: %w", name, reason.NoUsage)
	}
	return res
}

// chatSSE decodes a streamed chat completion.
type chatSSE struct {
	sse   *framing.SSE
	max   int
	shape chatShape

	model       string
	serviceTier string // the last chunk's that names one
	usage       chatUsage
	hasUsage    bool
	usageFinal  bool // the usage came with the last choice, or after it
	text        TextBuffer
	done        bool // data: [DONE] was seen
	tooLarge    bool
	malformed   int // events that were not JSON
	badShape    int // events that were JSON but not a chunk
	provErr     error
}

func (d *chatSSE) Feed(chunk []byte) error {
	err := d.sse.Feed(chunk, d.onEvent)
	if errors.Is(err, framing.ErrEventTooLarge) {
		d.tooLarge = true
		return fmt.Errorf("%s: stream event over %d bytes dropped: %w", d.shape.name, d.max, reason.TooLarge)
	}
	return err
}

var doneData = []byte("[DONE]")

func (d *chatSSE) onEvent(ev framing.Event) error {
	data := bytes.TrimSpace(ev.Data)
	if string(ev.Name) == "error" && d.provErr == nil {
		d.provErr = fmt.Errorf("%s: error event: %w", d.shape.name, reason.ProviderError)
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
	o, ok := scanChatObject(s, d.shape, &d.text)
	if !ok {
		d.badShape++
		return nil
	}
	if d.model == "" {
		d.model, _ = stringValue(o.model)
	}
	if o.serviceTier != "" {
		d.serviceTier = openAIServedTier(o.serviceTier)
	}
	raw := o.usage
	if !isObject(raw) {
		raw = o.groqUsage
	}
	if isObject(raw) {
		// Last wins: vLLM's continuous_usage_stats repeats a running total
		// on every chunk.
		if u, ok := parseChatUsage(raw); ok {
			d.usage, d.hasUsage = u, true
			d.usageFinal = o.choices == 0 || o.finished
		} else {
			d.badShape++
		}
	}
	if err := providerError(d.shape.name, o.err); err != nil && d.provErr == nil {
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
	name := d.shape.name
	res := Result{Model: d.model, Text: d.text.Bytes(), StreamedTextBytes: d.text.Total(), ServiceTier: d.serviceTier}
	cut := !d.done && (!complete || d.sse.Pending())
	if d.hasUsage {
		res.Usage, res.Err = d.usage.normalise(name)
		if res.Err == nil && cut && !d.usageFinal {
			res.Err = fmt.Errorf("%s: stream cut after a running usage total: %w", name, reason.Truncated)
		}
		return res
	}
	switch {
	case d.provErr != nil:
		res.Err = d.provErr
	case d.tooLarge:
		res.Err = fmt.Errorf("%s: an event over %d bytes was dropped: %w", name, d.max, reason.TooLarge)
	case cut:
		res.Err = fmt.Errorf("%s: stream cut before its usage: %w", name, reason.Truncated)
	case d.malformed > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not JSON: %w", name, d.malformed, reason.MalformedJSON)
	case d.badShape > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not chunks: %w", name, d.badShape, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: stream carried no usage (stream_options.include_usage not set?): %w", name, reason.NoUsage)
	}
	return res
}

// The fields of an OpenAI usage object, by index into chatUsage.n. The
// Responses API names them differently (chatUsage.names) but means the same.
const (
	cuPrompt     = iota // prompt_tokens: every input token, cached and audio ones included
	cuCompletion        // completion_tokens: every output token, reasoning and audio ones included
	cuTotal
	cuCached    // prompt_tokens_details.cached_tokens
	cuReasoning // completion_tokens_details.reasoning_tokens
	cuAudioIn   // prompt_tokens_details.audio_tokens
	cuAudioOut  // completion_tokens_details.audio_tokens
	cuCacheHit  // DeepSeek's prompt_cache_hit_tokens
	cuCacheMiss // DeepSeek's prompt_cache_miss_tokens
	cuFields
)

// chatRawNames name the fields in Raw. The two audio counts share a name in
// the provider's objects, so they keep their parent's.
var chatRawNames = [cuFields]string{
	"prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens",
	"prompt_tokens_details.audio_tokens", "completion_tokens_details.audio_tokens",
	"prompt_cache_hit_tokens", "prompt_cache_miss_tokens",
}

// chatUsage is a usage object as the provider reported it.
type chatUsage struct {
	n     [cuFields]int64
	has   uint16 // bit i: field i was a number
	names *[cuFields]string
}

func (u *chatUsage) present(i int) bool { return u.has&(1<<i) != 0 }

// set records raw as field i when it is a number and clears it otherwise,
// so a later null overrides an earlier number, as for any repeated key.
func (u *chatUsage) set(i int, raw string) {
	n, ok := intValue(raw)
	u.n[i] = n
	if ok {
		u.has |= 1 << i
	} else {
		u.has &^= 1 << i
	}
}

// parseChatUsage reads a usage object. It fails when the object has neither
// prompt nor completion tokens: that is no usage report at all. Members it
// does not know (OpenRouter's cost, Groq's timings, prediction tokens,
// which completion_tokens already include) are skipped.
func parseChatUsage(obj string) (chatUsage, bool) {
	u := chatUsage{names: &chatRawNames}
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "prompt_tokens":
			u.set(cuPrompt, v)
		case "completion_tokens":
			u.set(cuCompletion, v)
		case "total_tokens":
			u.set(cuTotal, v)
		case "prompt_tokens_details":
			// A repeated details object replaces the earlier one whole.
			u.set(cuCached, lastMember(v, "cached_tokens"))
			u.set(cuAudioIn, lastMember(v, "audio_tokens"))
		case "completion_tokens_details":
			u.set(cuReasoning, lastMember(v, "reasoning_tokens"))
			u.set(cuAudioOut, lastMember(v, "audio_tokens"))
		case "prompt_cache_hit_tokens":
			u.set(cuCacheHit, v)
		case "prompt_cache_miss_tokens":
			u.set(cuCacheMiss, v)
		}
	}
	return u, u.present(cuPrompt) || u.present(cuCompletion)
}

// normalise splits the overlapping counts into disjoint classes:
//
//	input        = prompt − cached − audio input
//	cache_read   = cached (DeepSeek: prompt_cache_hit_tokens when cached_tokens is absent)
//	audio_input  = prompt_tokens_details.audio_tokens
//	output       = completion − reasoning − audio output
//	reasoning    = reasoning_tokens
//	audio_output = completion_tokens_details.audio_tokens
//
// Chat usage does not say how many cached tokens were audio: they are taken
// for text, and audio_tokens for uncached audio, which is what AudioInput
// means. Were some cached tokens audio, the classes would still sum to the
// prompt, with that many priced as audio rather than as cached text.
//
// A class is Reported when a field it derives from was present. When the
// parts exceed their whole, or a count is negative, the classes still sum
// to what the provider billed and none goes negative, and Err is
// inconsistent_usage; so it is when DeepSeek's hit and miss do not add up
// to the prompt, or disagree with cached_tokens.
func (u chatUsage) normalise(dialect string) (usage.Usage, error) {
	var out usage.Usage
	for i := range cuFields {
		if u.present(i) {
			out.Raw = append(out.Raw, usage.Field{Name: u.names[i], Value: u.n[i]})
		}
	}
	cached, hasCached := u.n[cuCached], u.present(cuCached)
	ok := true
	if u.present(cuCacheHit) {
		if !hasCached {
			cached, hasCached = u.n[cuCacheHit], true
		}
		ok = cached == u.n[cuCacheHit]
		if u.present(cuCacheMiss) && u.present(cuPrompt) {
			ok = ok && u.n[cuCacheHit]+u.n[cuCacheMiss] == u.n[cuPrompt]
		}
	}
	in := splitParts(u.n[cuPrompt], u.present(cuPrompt), cached, u.n[cuAudioIn])
	outp := splitParts(u.n[cuCompletion], u.present(cuCompletion), u.n[cuReasoning], u.n[cuAudioOut])
	for _, c := range [...]struct {
		has   bool
		class usage.Class
		n     int64
	}{
		{u.present(cuPrompt), usage.Input, in.rest},
		{hasCached, usage.CacheRead, in.parts[0]},
		{u.present(cuAudioIn), usage.AudioInput, in.parts[1]},
		{u.present(cuCompletion), usage.Output, outp.rest},
		{u.present(cuReasoning), usage.Reasoning, outp.parts[0]},
		{u.present(cuAudioOut), usage.AudioOutput, outp.parts[1]},
	} {
		if c.has {
			out.Set(c.class, c.n)
		}
	}
	if !ok || !in.ok || !outp.ok {
		return out, fmt.Errorf("%s: usage %s: %w", dialect, u.describe(), reason.InconsistentUsage)
	}
	return out, nil
}

// describe lists the reported fields, for error messages.
func (u chatUsage) describe() string {
	var b []byte
	for i := range cuFields {
		if u.present(i) {
			b = fmt.Appendf(b, " %s=%d", u.names[i], u.n[i])
		}
	}
	return string(bytes.TrimSpace(b))
}

// partition is a reported total divided into the parts detail fields name
// and the rest.
type partition struct {
	rest  int64
	parts [2]int64
	ok    bool
}

// splitParts divides whole into two named parts and the rest. When they
// disagree (parts over their total, or a negative number) it keeps the
// total, taking the parts from it in order until it runs out, so the
// classes still sum to what the provider billed and never go negative, and
// reports ok false. Without a whole, the parts stand alone.
func splitParts(whole int64, hasWhole bool, a, b int64) partition {
	p := partition{ok: a >= 0 && b >= 0}
	if !hasWhole {
		p.parts = [2]int64{max(a, 0), max(b, 0)}
		return p
	}
	p.ok = p.ok && whole >= 0 && a <= whole && b <= whole-a
	left := max(whole, 0)
	for i, n := range [2]int64{a, b} {
		p.parts[i] = min(max(n, 0), left)
		left -= p.parts[i]
	}
	p.rest = left
	return p
}
