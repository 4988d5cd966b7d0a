package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"iter"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// AnthropicMessages is Anthropic's Messages API (POST /v1/messages).
//
// Its usage is additive, unlike OpenAI's: input_tokens counts only the
// uncached input, and cache reads and writes are reported beside it, so each
// number maps to one class as it is. Thinking is billed inside output_tokens
// and never reported apart, so Reasoning stays unreported.
//
// A stream reports usage twice: message_start carries the input and cache
// counts with an initial output_tokens, and message_delta carries cumulative
// totals. A later total replaces an earlier one; adding them would count the
// same tokens twice.
func AnthropicMessages() Dialect { return anthropicMessages{} }

type anthropicMessages struct{}

const anthropicName = "anthropic_messages"

func (anthropicMessages) Name() string     { return anthropicName }
func (anthropicMessages) Provider() string { return "anthropic" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (anthropicMessages) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (x anthropicMessages) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, x.parseRequest)
}

// ErrorBody implements Dialect.
func (anthropicMessages) ErrorBody(r Refusal) ErrorResponse { return anthropicRefusal(r) }

// parseRequest reads the request body; it never rewrites it, because every
// Messages stream carries usage without being asked. Where a key is
// repeated the last one counts, as the provider's decoder does.
func (anthropicMessages) parseRequest(body []byte, _ RequestOptions) (Request, []byte, error) {
	s, err := requestObject(anthropicName, body)
	if err != nil {
		return Request{}, nil, err
	}
	var model, stream, maxTokens, system, messages string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			model = v
		case "stream":
			stream = v
		case "max_tokens":
			maxTokens = v
		case "system":
			system = v
		case "messages":
			messages = v
		}
	}
	var req Request
	req.Model, _ = stringValue(model)
	req.Stream = stream == "true"
	req.IncludeUsage = req.Stream
	n, _ := intValue(maxTokens)
	req.MaxTokens = max(n, 0)
	req.Prompt, req.PromptBytes = collectText(anthropicPromptTexts(system, messages))
	return req, nil, nil
}

// anthropicPromptTexts yields the raw text strings of the system prompt and
// the messages: a string, or the "text" of each block of an array. Images,
// documents and tool results yield nothing: this feeds an estimate, not a bill.
func anthropicPromptTexts(system, messages string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for raw := range contentTexts(system) {
			if !yield(raw) {
				return
			}
		}
		for raw := range messageTexts(messages) {
			if !yield(raw) {
				return
			}
		}
	}
}

// contentTexts yields a content value's text: the string itself, or the
// "text" of each block of an array.
func contentTexts(raw string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if !isArray(raw) {
			yield(raw)
			return
		}
		blocks := newElements(raw)
		for b, ok := blocks.next(); ok; b, ok = blocks.next() {
			if !yield(lastMember(b, "text")) {
				return
			}
		}
	}
}

func (anthropicMessages) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if isEventStream(resp.ContentType) {
		return WithEncoding(resp.ContentEncoding, &anthropicSSE{sse: framing.NewSSE(maxBuffer), max: maxBuffer}, maxBuffer)
	}
	return WithEncoding(resp.ContentEncoding, &anthropicJSON{jsonBody{dialect: anthropicName, max: maxBuffer}}, maxBuffer)
}

// The fields of an Anthropic usage object, by index into anthropicUsage.n.
const (
	auInput = iota
	auCacheWrite
	auCacheRead
	auOutput
	auWrite5m
	auWrite1h
	auFields
)

// anthropicRawNames are the provider's names for the fields, kept in Raw.
var anthropicRawNames = [auFields]string{
	"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens",
	"ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens",
}

// anthropicUsage is a usage object, or the merge of a stream's usage
// objects, as the provider reported it.
type anthropicUsage struct {
	n   [auFields]int64
	has uint8 // bit i: field i was a number
}

func (u *anthropicUsage) present(i int) bool { return u.has&(1<<i) != 0 }

// set records raw as field i when it is a number and clears it otherwise,
// so that within one object a later null overrides an earlier number, as
// for any repeated key.
func (u *anthropicUsage) set(i int, raw string) {
	n, ok := intValue(raw)
	u.n[i] = n
	if ok {
		u.has |= 1 << i
	} else {
		u.has &^= 1 << i
	}
}

// anthropicServiceTier reads usage.service_tier ("standard", "priority",
// "batch") as Result.ServiceTier.
func anthropicServiceTier(usage string) string {
	switch v, _ := stringValue(lastMember(usage, "service_tier")); v {
	case "priority", "batch":
		return v
	case "standard":
		return ServedStandard
	}
	return ""
}

// parseAnthropicUsage reads a usage object. Unknown members (service_tier,
// server_tool_use) are not tokens and are skipped.
func parseAnthropicUsage(obj string) anthropicUsage {
	var u anthropicUsage
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "input_tokens":
			u.set(auInput, v)
		case "cache_creation_input_tokens":
			u.set(auCacheWrite, v)
		case "cache_read_input_tokens":
			u.set(auCacheRead, v)
		case "output_tokens":
			u.set(auOutput, v)
		case "cache_creation":
			// Within one object, a repeated breakdown replaces the
			// earlier one whole, even where it lacks a field.
			u.set(auWrite5m, lastMember(v, "ephemeral_5m_input_tokens"))
			u.set(auWrite1h, lastMember(v, "ephemeral_1h_input_tokens"))
		}
	}
	return u
}

// merge overlays the fields later reports. Stream usage totals are
// cumulative: a present field replaces the earlier value and a missing or
// null one keeps it. Never add: message_delta may repeat message_start's
// input and cache counts.
func (u *anthropicUsage) merge(later anthropicUsage) {
	for i := range auFields {
		if later.present(i) {
			u.n[i] = later.n[i]
			u.has |= 1 << i
		}
	}
}

// normalise maps the fields to classes. The counts are additive, so each
// class is one field; only the cache write splits by TTL. The cache_creation
// breakdown, when present, is what the TTL prices follow, so it wins over
// the total; the total alone is the default 5-minute TTL.
func (u anthropicUsage) normalise() (usage.Usage, error) {
	var out usage.Usage
	for i := range auFields {
		if u.present(i) {
			out.Raw = append(out.Raw, usage.Field{Name: anthropicRawNames[i], Value: u.n[i]})
		}
	}
	c := func(i int) count { return count{u.n[i], u.present(i)} }
	ok := additive{input: c(auInput), cacheRead: c(auCacheRead), cacheWrite: c(auCacheWrite),
		write5m: c(auWrite5m), write1h: c(auWrite1h), output: c(auOutput)}.classes(&out)
	total, w5m, w1h := u.n[auCacheWrite], u.n[auWrite5m], u.n[auWrite1h]
	if !ok {
		return out, fmt.Errorf("%s: usage input_tokens=%d cache_creation_input_tokens=%d cache_read_input_tokens=%d "+
			"output_tokens=%d ephemeral_5m_input_tokens=%d ephemeral_1h_input_tokens=%d: %w", anthropicName,
			u.n[auInput], total, u.n[auCacheRead], u.n[auOutput], w5m, w1h, reason.InconsistentUsage)
	}
	return out, nil
}

// anthropicError describes an "error" value, or returns nil when there is
// none.
func anthropicError(raw string) error {
	if !isObject(raw) {
		return nil
	}
	typ, _ := stringValue(lastMember(raw, "type"))
	return fmt.Errorf("%s: provider error %q: %w", anthropicName, typ, reason.ProviderError)
}

// rawString returns the JSON string raw decoded, as a view into raw when it
// holds no escapes (so comparing event types allocates nothing), or "".
func rawString(raw string) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	return gjson.Parse(raw).Str
}

// anthropicJSON decodes a whole (non-streamed) message.
type anthropicJSON struct{ jsonBody }

// Finish reports, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape, then usage when it
// has input or output tokens (with inconsistent_usage when a count is
// negative or the cache breakdown disagrees with its total), else
// provider_error, else no_usage.
func (d *anthropicJSON) Finish(complete bool) Result {
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	var model, usageObj, errObj, content string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			model = v
		case "usage":
			usageObj = v
		case "error":
			errObj = v
		case "content":
			content = v
		}
	}
	var text TextBuffer
	writeGeneratedContent(&text, content)
	res := Result{StreamedTextBytes: text.Total(), Text: text.Bytes(), ServiceTier: anthropicServiceTier(usageObj)}
	res.Model, _ = stringValue(model)
	u := parseAnthropicUsage(usageObj)
	perr := anthropicError(errObj)
	switch {
	case u.present(auInput) || u.present(auOutput):
		res.Usage, res.Err = u.normalise()
	case perr != nil:
		res.Err = perr
	case isObject(usageObj):
		res.Err = fmt.Errorf("%s: usage has no token counts: %w", anthropicName, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage: %w", anthropicName, reason.NoUsage)
	}
	return res
}

// writeGeneratedContent writes what a message's content blocks generated:
// text, thinking, and tool-call input (as its JSON).
func writeGeneratedContent(text *TextBuffer, content string) {
	blocks := newElements(content)
	for b, ok := blocks.next(); ok; b, ok = blocks.next() {
		mb := newMembers(b)
		for k, v, ok := mb.next(); ok; k, v, ok = mb.next() {
			switch k {
			case "text", "thinking":
				text.WriteJSONString(v)
			case "input":
				text.WriteString(v)
			}
		}
	}
}

// anthropicSSE decodes a streamed message.
type anthropicSSE struct {
	sse *framing.SSE
	max int

	model       string
	serviceTier string
	usage       anthropicUsage
	deltaUsage  bool // a message_delta carried usage: output_tokens is final
	stopped     bool // message_stop was seen
	text        TextBuffer
	tooLarge    bool
	malformed   int // events that were not JSON
	badShape    int // events that were JSON but not an object
	provErr     error
}

func (d *anthropicSSE) Feed(chunk []byte) error {
	err := d.sse.Feed(chunk, d.onEvent)
	if errors.Is(err, framing.ErrEventTooLarge) {
		d.tooLarge = true
		return fmt.Errorf("%s: stream event over %d bytes dropped: %w", anthropicName, d.max, reason.TooLarge)
	}
	return err
}

// anthropicEvent holds the raw members of one stream event that metering
// reads.
type anthropicEvent struct {
	typ, message, usage, delta, err string
}

func (d *anthropicSSE) onEvent(ev framing.Event) error {
	d.read(ev)
	if string(ev.Name) == "error" && d.provErr == nil {
		// An error event may come under HTTP 200, after usage, and with
		// data that is not the documented shape: it still says the
		// message did not complete.
		d.provErr = fmt.Errorf("%s: error event: %w", anthropicName, reason.ProviderError)
	}
	return nil
}

func (d *anthropicSSE) read(ev framing.Event) {
	data := bytes.TrimSpace(ev.Data)
	if len(data) == 0 {
		return
	}
	s := bstr(data)
	if !gjson.Valid(s) {
		d.malformed++
		return
	}
	if i := skipWS(s, 0); i >= len(s) || s[i] != '{' {
		d.badShape++
		return
	}
	var e anthropicEvent
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "type":
			e.typ = v
		case "message":
			e.message = v
		case "usage":
			e.usage = v
		case "delta":
			e.delta = v
		case "error":
			e.err = v
		}
	}
	d.apply(ev.Name, e)
}

// apply acts on one event. The data's "type" names it, as the SDKs read
// it; the SSE event name stands in when a proxy dropped the type.
func (d *anthropicSSE) apply(name []byte, e anthropicEvent) {
	typ := rawString(e.typ)
	if e.typ == "" {
		typ = bstr(name)
	}
	switch typ {
	case "message_start":
		if d.model == "" {
			d.model, _ = stringValue(lastMember(e.message, "model"))
		}
		d.usage.merge(parseAnthropicUsage(lastMember(e.message, "usage")))
		if t := anthropicServiceTier(lastMember(e.message, "usage")); t != "" {
			d.serviceTier = t
		}
	case "message_delta":
		if t := anthropicServiceTier(e.usage); t != "" {
			d.serviceTier = t
		}
		u := parseAnthropicUsage(e.usage)
		d.usage.merge(u)
		d.deltaUsage = d.deltaUsage || u.has != 0
	case "content_block_delta":
		writeDelta(&d.text, e.delta)
	case "message_stop":
		d.stopped = true
	case "error":
		if d.provErr == nil {
			d.provErr = anthropicError(e.err)
			if d.provErr == nil {
				d.provErr = fmt.Errorf("%s: error event: %w", anthropicName, reason.ProviderError)
			}
		}
	}
	// ping, content_block_start, content_block_stop and event types added
	// later carry nothing to meter.
}

// writeDelta writes the generated text of a content_block_delta: text,
// thinking, or a tool call's partial JSON.
func writeDelta(text *TextBuffer, delta string) {
	m := newMembers(delta)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "text", "thinking", "partial_json":
			text.WriteJSONString(v)
		}
	}
}

// Finish reports the usage when any arrived, with Err set to, in order:
// provider_error when an error event came; too_large, truncated or
// unexpected_shape when no message_delta gave the final output_tokens (the
// count is then message_start's initial one); else inconsistent_usage or
// nil. Without usage, the reason is the first of provider_error, too_large,
// truncated, malformed_json, unexpected_shape, no_usage.
//
// The stream counts as cut when no message_stop came and either the body did
// not complete or it ended mid-event.
func (d *anthropicSSE) Finish(complete bool) Result {
	res := Result{Model: d.model, StreamedTextBytes: d.text.Total(), Text: d.text.Bytes(), ServiceTier: d.serviceTier}
	if d.usage.has != 0 {
		res.Usage, res.Err = d.usage.normalise()
		switch {
		case d.provErr != nil:
			res.Err = d.provErr
		case d.deltaUsage:
		case d.tooLarge:
			res.Err = fmt.Errorf("%s: an event over %d bytes was dropped before message_delta: %w", anthropicName, d.max, reason.TooLarge)
		case !d.stopped:
			res.Err = fmt.Errorf("%s: stream cut before message_delta; output_tokens is the initial count: %w", anthropicName, reason.Truncated)
		default:
			res.Err = fmt.Errorf("%s: message_stop without message_delta usage: %w", anthropicName, reason.UnexpectedShape)
		}
		return res
	}
	cut := !d.stopped && (!complete || d.sse.Pending())
	switch {
	case d.provErr != nil:
		res.Err = d.provErr
	case d.tooLarge:
		res.Err = fmt.Errorf("%s: an event over %d bytes was dropped: %w", anthropicName, d.max, reason.TooLarge)
	case cut:
		res.Err = fmt.Errorf("%s: stream cut before its usage: %w", anthropicName, reason.Truncated)
	case d.malformed > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not JSON: %w", anthropicName, d.malformed, reason.MalformedJSON)
	case d.badShape > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not objects: %w", anthropicName, d.badShape, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: stream carried no usage: %w", anthropicName, reason.NoUsage)
	}
	return res
}
