package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// CohereChat is Cohere's v2 Chat API (POST /v2/chat).
//
// Its usage reports two pairs of counts: usage.billed_units, what Cohere
// bills, and usage.tokens, what the model processed, which adds the tokens
// of Cohere's own prompt template to the input. Billing follows billed_units: input = billed_units.input_tokens,
// output = billed_units.output_tokens. The tokens pair, and cached_tokens
// when present, are kept in Raw only. Counts are typed as numbers that may
// carry a fraction; a whole number written as 12.0 reads as 12.
//
// A JSON response carries the usage at the top level. A stream is
// server-sent events whose data "type" names them (message-start,
// content-delta, tool-plan-delta, tool-call-*, citation-*, message-end,
// debug); message-end's delta carries the usage, finish_reason and, when
// generation failed, an error. finish_reason ERROR or TIMEOUT is a provider
// error: the usage that came with it is still what was billed.
func CohereChat() Dialect { return cohere{} }

// CohereChatV1 is Cohere's legacy v1 Chat API (POST /v1/chat). Its usage
// is the v2 pair under "meta" instead of "usage", normalised the same way.
// A v1 stream is newline-delimited JSON by default (application/stream+json)
// and server-sent events when the client accepts text/event-stream; either
// way each object's event_type names it, text-generation carries text, and
// stream-end carries the whole response with its meta. finish_reason ERROR,
// ERROR_TOXIC and ERROR_LIMIT are provider errors.
func CohereChatV1() Dialect { return cohere{v1: true} }

type cohere struct{ v1 bool }

const (
	cohereChatName   = "cohere_chat"
	cohereChatV1Name = "cohere_chat_v1"
)

func (c cohere) Name() string {
	if c.v1 {
		return cohereChatV1Name
	}
	return cohereChatName
}

func (cohere) Provider() string { return "cohere" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (cohere) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (c cohere) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, c.parseRequest)
}

// ErrorBody implements Dialect.
func (cohere) ErrorBody(r Refusal) ErrorResponse { return cohereRefusal(r) }

// parseRequest reads the request body; it never rewrites it, because every
// Cohere stream ends with its usage. Where a key is repeated the last one
// counts.
func (c cohere) parseRequest(body []byte, _ RequestOptions) (Request, []byte, error) {
	s, err := requestObject(c.Name(), body)
	if err != nil {
		return Request{}, nil, err
	}
	var model, stream, maxTokens, messages, message, preamble, history string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			model = v
		case "stream":
			stream = v
		case "max_tokens":
			maxTokens = v
		case "messages":
			messages = v
		case "message":
			message = v
		case "preamble":
			preamble = v
		case "chat_history":
			history = v
		}
	}
	var req Request
	req.Model, _ = stringValue(model)
	req.Stream = stream == "true"
	req.IncludeUsage = req.Stream
	n, _ := intValue(maxTokens)
	req.MaxTokens = max(n, 0)
	var p promptPieces
	if c.v1 {
		// The order the model reads them in: preamble, history, message.
		p.add(preamble)
		turns := newElements(history)
		for turn, ok := turns.next(); ok; turn, ok = turns.next() {
			p.add(lastMember(turn, "message"))
		}
		p.add(message)
	} else {
		// Content is a string or an array of parts; only text parts are
		// text. Documents and images count zero: this feeds an estimate.
		msgs := newElements(messages)
		for msg, ok := msgs.next(); ok; msg, ok = msgs.next() {
			content := lastMember(msg, "content")
			if !isArray(content) {
				p.add(content)
				continue
			}
			parts := newElements(content)
			for part, ok := parts.next(); ok; part, ok = parts.next() {
				p.add(lastMember(part, "text"))
			}
		}
	}
	req.PromptBytes, req.Prompt = p.n, p.text()
	return req, nil, nil
}

func (c cohere) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	var d *cohereStream
	switch {
	case isEventStream(resp.ContentType):
		d = &cohereStream{sse: framing.NewSSE(maxBuffer)}
	case c.v1 && !mediaTypeIsJSON(resp.ContentType):
		// v1 streams lines by default (application/stream+json).
		d = &cohereStream{nd: framing.NewNDJSON(maxBuffer)}
	default:
		return WithEncoding(resp.ContentEncoding, &cohereJSON{jsonBody{dialect: c.Name(), max: maxBuffer}, c.v1}, maxBuffer)
	}
	d.name, d.v1, d.max = c.Name(), c.v1, maxBuffer
	return WithEncoding(resp.ContentEncoding, d, maxBuffer)
}

// The fields of a Cohere usage object, by index into cohereUsage.n.
const (
	cohBilledIn = iota
	cohBilledOut
	cohTokensIn
	cohTokensOut
	cohCached
	cohFields
)

// cohereRawNames are the fields' paths inside the usage (v2) or meta (v1)
// object, kept in Raw.
var cohereRawNames = [cohFields]string{
	"billed_units.input_tokens", "billed_units.output_tokens",
	"tokens.input_tokens", "tokens.output_tokens", "cached_tokens",
}

// cohereUsage is a usage or meta object as the provider reported it.
type cohereUsage struct {
	n    [cohFields]int64
	has  uint8 // bit i: field i was a whole number
	frac bool  // some count was a number with a fraction
}

func (u *cohereUsage) present(i int) bool { return u.has&(1<<i) != 0 }

// billed reports whether billed_units gave a count to bill.
func (u *cohereUsage) billed() bool { return u.present(cohBilledIn) || u.present(cohBilledOut) }

// set records raw as field i when it is a whole number, and clears it
// otherwise, so a later null overrides an earlier number, as for any
// repeated key.
func (u *cohereUsage) set(i int, raw string) {
	u.n[i], u.has = 0, u.has&^(1<<i)
	r := gjson.Parse(raw)
	if r.Type != gjson.Number {
		return
	}
	if r.Num != math.Trunc(r.Num) {
		u.frac = true
		return
	}
	u.n[i], u.has = r.Int(), u.has|1<<i
}

// parseCohereUsage reads a v2 usage or a v1 meta object. Other billed units
// (search_units, classifications, images, image_tokens) are not chat tokens
// and are skipped.
func parseCohereUsage(obj string) cohereUsage {
	var u cohereUsage
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "billed_units":
			u.set(cohBilledIn, lastMember(v, "input_tokens"))
			u.set(cohBilledOut, lastMember(v, "output_tokens"))
		case "tokens":
			u.set(cohTokensIn, lastMember(v, "input_tokens"))
			u.set(cohTokensOut, lastMember(v, "output_tokens"))
		case "cached_tokens":
			u.set(cohCached, v)
		}
	}
	return u
}

// normalise maps billed_units to classes; see CohereChat.
func (u cohereUsage) normalise(name string) (usage.Usage, error) {
	var out usage.Usage
	for i := range cohFields {
		if u.present(i) {
			out.Raw = append(out.Raw, usage.Field{Name: cohereRawNames[i], Value: u.n[i]})
		}
	}
	in, o := u.n[cohBilledIn], u.n[cohBilledOut]
	if u.present(cohBilledIn) {
		out.Set(usage.Input, max(in, 0))
	}
	if u.present(cohBilledOut) {
		out.Set(usage.Output, max(o, 0))
	}
	switch {
	case in < 0 || o < 0:
		return out, fmt.Errorf("%s: usage billed_units input_tokens=%d output_tokens=%d: %w", name, in, o, reason.InconsistentUsage)
	case u.frac:
		return out, fmt.Errorf("%s: a usage count is not a whole number: %w", name, reason.UnexpectedShape)
	}
	return out, nil
}

// cohereFinishError is the provider error a finish_reason stands for, or nil.
func cohereFinishError(name, raw string) error {
	finish := strings.ToUpper(rawString(raw))
	if strings.HasPrefix(finish, "ERROR") || finish == "TIMEOUT" {
		return fmt.Errorf("%s: finish_reason %s: %w", name, finish, reason.ProviderError)
	}
	return nil
}

// cohereMessageError is the provider error of an error body, whose
// "message" is a string (an assistant message is an object), or nil.
func cohereMessageError(name, raw string) error {
	if len(raw) > 0 && raw[0] == '"' {
		return fmt.Errorf("%s: provider error: %w", name, reason.ProviderError)
	}
	return nil
}

// writeCohereMessage writes the generated text of a v2 assistant message, or
// of a stream delta's message, to text: text and thinking content, the tool
// plan, and tool call arguments, which are all generated tokens.
func writeCohereMessage(msg string, text *TextBuffer) {
	m := newMembers(msg)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "content":
			if !isArray(v) {
				writeCohereContent(v, text) // a stream delta's one content
				continue
			}
			parts := newElements(v)
			for part, ok := parts.next(); ok; part, ok = parts.next() {
				writeCohereContent(part, text)
			}
		case "tool_plan":
			text.WriteJSONString(v)
		case "tool_calls":
			if !isArray(v) {
				text.WriteJSONString(lastMember(lastMember(v, "function"), "arguments"))
				continue
			}
			calls := newElements(v)
			for call, ok := calls.next(); ok; call, ok = calls.next() {
				text.WriteJSONString(lastMember(lastMember(call, "function"), "arguments"))
			}
		}
	}
}

func writeCohereContent(part string, text *TextBuffer) {
	m := newMembers(part)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if k == "text" || k == "thinking" {
			text.WriteJSONString(v)
		}
	}
}

// cohereJSON decodes a whole (non-streamed) response.
type cohereJSON struct {
	jsonBody
	v1 bool
}

// Finish reports, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape; then usage when
// billed_units has a count (with provider_error for an error finish_reason,
// or inconsistent_usage); else provider_error, else unexpected_shape for a
// usage without billed_units, else no_usage.
func (d *cohereJSON) Finish(complete bool) Result {
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	var msg, finish, usageObj, v1Text string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "message":
			msg = v
		case "finish_reason":
			finish = v
		case "usage":
			if !d.v1 {
				usageObj = v
			}
		case "meta":
			if d.v1 {
				usageObj = v
			}
		case "text":
			v1Text = v
		}
	}
	var text TextBuffer
	if d.v1 {
		text.WriteJSONString(v1Text)
	} else {
		writeCohereMessage(msg, &text)
	}
	res := Result{StreamedTextBytes: text.Total(), Text: text.Bytes()}
	perr := cohereMessageError(d.dialect, msg)
	if perr == nil {
		perr = cohereFinishError(d.dialect, finish)
	}
	u := parseCohereUsage(usageObj)
	switch {
	case u.billed():
		res.Usage, res.Err = u.normalise(d.dialect)
		if perr != nil {
			res.Err = perr
		}
	case perr != nil:
		res.Err = perr
	case isObject(lastMember(usageObj, "billed_units")) || u.has != 0:
		res.Err = fmt.Errorf("%s: usage has no billed tokens: %w", d.dialect, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage: %w", d.dialect, reason.NoUsage)
	}
	return res
}

// cohereStream decodes a v2 stream (server-sent events) or a v1 stream
// (newline-delimited JSON or server-sent events). Exactly one of sse and nd
// is set.
type cohereStream struct {
	name string
	v1   bool
	sse  *framing.SSE
	nd   *framing.NDJSON
	max  int

	text      TextBuffer
	usage     cohereUsage
	usageObj  bool // the end event had a usage object
	ended     bool // message-end (v2) or stream-end (v1) was seen
	cut       bool // the body ended inside an unterminated line that is not whole JSON
	tooLarge  bool
	malformed int // events that were not JSON
	badShape  int // events that were JSON but not objects
	provErr   error
}

func (d *cohereStream) Feed(chunk []byte) error {
	var err error
	if d.sse != nil {
		err = d.sse.Feed(chunk, d.onEvent)
	} else {
		err = d.nd.Feed(chunk, d.onLine)
	}
	if errors.Is(err, framing.ErrEventTooLarge) || errors.Is(err, framing.ErrLineTooLarge) {
		d.tooLarge = true
		return fmt.Errorf("%s: stream event over %d bytes dropped: %w", d.name, d.max, reason.TooLarge)
	}
	return err
}

func (d *cohereStream) onEvent(ev framing.Event) error {
	if string(ev.Name) == "error" {
		d.fail(fmt.Errorf("%s: error event: %w", d.name, reason.ProviderError))
	}
	d.read(ev.Data, ev.Name)
	return nil
}

func (d *cohereStream) onLine(line []byte) error {
	d.read(line, nil)
	return nil
}

// lastLine reads a v1 final line that had no line feed. When it is not
// whole JSON the body was cut inside it.
func (d *cohereStream) lastLine(line []byte) error {
	if !gjson.Valid(bstr(line)) {
		d.cut = true
		return nil
	}
	return d.onLine(line)
}

func (d *cohereStream) fail(err error) {
	if d.provErr == nil {
		d.provErr = err
	}
}

var cohereDone = []byte("[DONE]")

// read decodes one event's data. name is the SSE event name, standing in
// for the data's type when a proxy dropped it.
func (d *cohereStream) read(data, name []byte) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, cohereDone) {
		return
	}
	s := bstr(data)
	if !gjson.Valid(s) {
		d.malformed++
		return
	}
	if !isObject(s) {
		d.badShape++
		return
	}
	if d.v1 {
		d.applyV1(s)
		return
	}
	var typ, delta string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "type":
			typ = v
		case "delta":
			delta = v
		}
	}
	t := rawString(typ)
	if typ == "" {
		t = bstr(name)
	}
	d.applyV2(t, delta)
}

// applyV2 acts on one v2 event. Tool events carry generated text (the plan,
// the arguments) but never usage.
func (d *cohereStream) applyV2(typ, delta string) {
	switch typ {
	case "content-delta", "tool-plan-delta", "tool-call-start", "tool-call-delta":
		writeCohereMessage(lastMember(delta, "message"), &d.text)
	case "message-end":
		d.ended = true
		d.end(lastMember(delta, "usage"), lastMember(delta, "finish_reason"))
		if err := lastMember(delta, "error"); err != "" && err != "null" && err != `""` {
			d.fail(fmt.Errorf("%s: message-end error: %w", d.name, reason.ProviderError))
		}
	}
	// message-start, content-start, content-end, tool-call-end, citation
	// events, debug and event types added later carry nothing to meter.
}

// applyV1 acts on one v1 event object.
func (d *cohereStream) applyV1(s string) {
	var typ, text, response, finish string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "event_type":
			typ = v
		case "text":
			text = v
		case "response":
			response = v
		case "finish_reason":
			finish = v
		}
	}
	switch rawString(typ) {
	case "text-generation":
		d.text.WriteJSONString(text)
	case "stream-end":
		d.ended = true
		if finish == "" {
			finish = lastMember(response, "finish_reason")
		}
		d.end(lastMember(response, "meta"), finish)
	}
}

// end reads the usage and finish_reason of a stream's last event.
func (d *cohereStream) end(usageObj, finish string) {
	if isObject(usageObj) {
		d.usage, d.usageObj = parseCohereUsage(usageObj), true
	}
	if err := cohereFinishError(d.name, finish); err != nil {
		d.fail(err)
	}
}

// Finish reports the usage when billed_units came, with Err nil,
// inconsistent_usage, unexpected_shape, or provider_error when the
// generation failed. Without it, the reason is the first of provider_error,
// too_large, truncated, malformed_json, unexpected_shape, no_usage.
//
// The stream counts as cut when no end event came and either the body did
// not complete or it ended mid-event.
func (d *cohereStream) Finish(complete bool) Result {
	pending := false
	if d.sse != nil {
		pending = d.sse.Pending()
	} else {
		_ = d.nd.Flush(d.lastLine)
		pending = d.cut
	}
	res := Result{StreamedTextBytes: d.text.Total(), Text: d.text.Bytes()}
	if d.usage.billed() {
		res.Usage, res.Err = d.usage.normalise(d.name)
		if d.provErr != nil {
			res.Err = d.provErr
		}
		return res
	}
	switch {
	case d.provErr != nil:
		res.Err = d.provErr
	case d.tooLarge:
		res.Err = fmt.Errorf("%s: an event over %d bytes was dropped: %w", d.name, d.max, reason.TooLarge)
	case !d.ended && (!complete || pending):
		res.Err = fmt.Errorf("%s: stream cut before its usage: %w", d.name, reason.Truncated)
	case d.malformed > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not JSON: %w", d.name, d.malformed, reason.MalformedJSON)
	case d.badShape > 0 || d.usageObj:
		res.Err = fmt.Errorf("%s: stream events were not the documented shape: %w", d.name, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: stream carried no usage: %w", d.name, reason.NoUsage)
	}
	return res
}
