package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
)

// BedrockConverse is Bedrock's Converse API (POST
// /model/{modelId}/converse): one request and response shape for every
// model. Usage is the response's "usage" (TokenUsage), normalised as the
// top of bedrock.go explains.
func BedrockConverse() Dialect { return bedrockConverse{name: "bedrock_converse"} }

// BedrockConverseStream is ConverseStream (POST
// /model/{modelId}/converse-stream): the same request, answered with an
// AWS event-stream of messageStart, contentBlockStart, contentBlockDelta,
// contentBlockStop, messageStop and, last, metadata, which alone carries
// the usage. An exception message (":message-type" exception, e.g.
// throttlingException or modelStreamErrorException) ends a failed stream.
func BedrockConverseStream() Dialect {
	return bedrockConverse{name: "bedrock_converse_stream", stream: true}
}

type bedrockConverse struct {
	name   string
	stream bool
}

func (d bedrockConverse) Name() string   { return d.name }
func (bedrockConverse) Provider() string { return bedrockProvider }

// ResponseHeaders: an error response names its exception only in a header.
func (bedrockConverse) ResponseHeaders() []string { return []string{bedrockErrorTypeHeader} }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (d bedrockConverse) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, d.parseRequest)
}

// ErrorBody implements Dialect.
func (bedrockConverse) ErrorBody(r Refusal) ErrorResponse { return bedrockRefusal(r) }

// parseRequest reads the model from the path and the prompt and
// inferenceConfig.maxTokens from the body, which it never rewrites: both
// operations always report usage. The body names no model and has no
// stream flag: the operation decides.
func (d bedrockConverse) parseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	req, s, err := bedrockRequest(d.name, body, opts, d.stream)
	if err != nil {
		return req, nil, err
	}
	var system, messages, inference string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "system":
			system = v
		case "messages":
			messages = v
		case "inferenceConfig":
			inference = v
		}
	}
	var p promptText
	p.add(system)
	p.messages(messages)
	p.set(&req)
	n, _ := intValue(lastMember(inference, "maxTokens"))
	req.MaxTokens = max(n, 0)
	return req, nil, nil
}

// NewDecoder picks the decoder by Content-Type rather than by operation:
// ConverseStream answers an error before the stream starts with a JSON
// body, and a stream is read as one wherever it turns up.
func (d bedrockConverse) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if isAWSEventStream(resp.ContentType) {
		inner := &converseStream{dialect: d.name, es: framing.NewEventStream(maxBuffer), max: maxBuffer}
		return WithEncoding(resp.ContentEncoding, inner, maxBuffer)
	}
	inner := &converseJSON{jsonBody{dialect: d.name, max: maxBuffer}, bedrockStatusError(d.name, resp)}
	return WithEncoding(resp.ContentEncoding, inner, maxBuffer)
}

// converseJSON decodes a whole Converse response.
type converseJSON struct {
	jsonBody
	statusErr error
}

// Finish reports, in order of precedence: provider_error for an error
// status; too_large, malformed_json (or truncated when the body was cut),
// unexpected_shape; then the usage when it counts input or output (with
// inconsistent_usage when a count is negative or the totals disagree); else
// unexpected_shape for a usage object without counts, or no_usage.
func (d *converseJSON) Finish(complete bool) Result {
	if d.statusErr != nil {
		return Result{Err: d.statusErr}
	}
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	var usageObj, output string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "usage":
			usageObj = v
		case "output":
			output = v
		}
	}
	var text TextBuffer
	converseContent(&text, lastMember(lastMember(output, "message"), "content"))
	res := Result{StreamedTextBytes: text.Total(), Text: text.Bytes()}
	u := parseConverseUsage(usageObj)
	switch {
	case u.hasTokens():
		res.Usage, res.Err = u.normalise(d.dialect)
	case isObject(usageObj):
		res.Err = fmt.Errorf("%s: usage has no token counts: %w", d.dialect, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage: %w", d.dialect, reason.NoUsage)
	}
	return res
}

// converseContent writes what a message's content blocks generated, as a
// stream's deltas would spell it: text, reasoning text, and a tool call's
// input JSON.
func converseContent(t *TextBuffer, content string) {
	blocks := newElements(content)
	for b, ok := blocks.next(); ok; b, ok = blocks.next() {
		m := newMembers(b)
		for k, v, ok := m.next(); ok; k, v, ok = m.next() {
			switch k {
			case "text":
				t.WriteJSONString(v)
			case "reasoningContent":
				t.WriteJSONString(lastMember(lastMember(v, "reasoningText"), "text"))
			case "toolUse":
				if in := lastMember(v, "input"); in != "" {
					t.WriteString(in)
				}
			}
		}
	}
}

// converseStream decodes a ConverseStream body.
type converseStream struct {
	dialect string
	es      *framing.EventStream
	max     int

	usage     bedrockUsage
	usageSeen bool // a metadata event carried a usage object
	text      TextBuffer
	provErr   error
	tooLarge  bool
	malformed int // event payloads that were not JSON
	badShape  int // payloads that were JSON but not an object
}

func (d *converseStream) Feed(chunk []byte) error {
	return eventStreamFeedErr(d.dialect, d.max, d.es.Feed(chunk, d.onMessage), &d.tooLarge)
}

// eventStreamFeedErr turns a framing error into one with a reason.Reason. A
// message over the cap is dropped; a corrupt stream is read no further.
func eventStreamFeedErr(dialect string, max int, err error, tooLarge *bool) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, framing.ErrMessageTooLarge):
		*tooLarge = true
		return fmt.Errorf("%s: stream message over %d bytes dropped: %w", dialect, max, reason.TooLarge)
	default:
		return fmt.Errorf("%s: %w: %w", dialect, err, reason.UnexpectedShape)
	}
}

// messageError describes an exception or error message, or returns nil for
// an event.
func messageError(dialect string, m framing.Message) error {
	switch m.MessageType {
	case "exception":
		return fmt.Errorf("%s: stream exception %q: %w", dialect, m.ExceptionType, reason.ProviderError)
	case "error":
		return fmt.Errorf("%s: stream error %q: %w", dialect, m.ErrorCode, reason.ProviderError)
	}
	return nil
}

// jsonPayload returns an event's payload when it is a JSON object, and
// counts it as malformed or badly shaped otherwise.
func jsonPayload(p []byte, malformed, badShape *int) (string, bool) {
	s := bstr(bytes.TrimSpace(p))
	if !gjson.Valid(s) {
		*malformed++
		return "", false
	}
	if !isObject(s) {
		*badShape++
		return "", false
	}
	return s, true
}

func (d *converseStream) onMessage(m framing.Message) error {
	if err := messageError(d.dialect, m); err != nil {
		if d.provErr == nil {
			d.provErr = err
		}
		return nil
	}
	s, ok := jsonPayload(m.Payload, &d.malformed, &d.badShape)
	if !ok {
		return nil
	}
	switch m.EventType {
	case "contentBlockDelta":
		d.delta(lastMember(s, "delta"))
	case "metadata":
		if u := lastMember(s, "usage"); isObject(u) {
			d.usage, d.usageSeen = parseConverseUsage(u), true
		}
	}
	// messageStart, contentBlockStart, contentBlockStop, messageStop and
	// event types added later carry nothing to meter.
	return nil
}

// delta writes a ContentBlockDelta's generated text: text, reasoning
// text, or a tool call's input JSON (a string spelling it out).
func (d *converseStream) delta(delta string) {
	m := newMembers(delta)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "text":
			d.text.WriteJSONString(v)
		case "reasoningContent":
			d.text.WriteJSONString(lastMember(v, "text"))
		case "toolUse":
			d.text.WriteJSONString(lastMember(v, "input"))
		}
	}
}

// Finish reports the usage when the metadata event brought it, with Err
// set to provider_error when an exception came too, else to
// inconsistent_usage or nil. Without usage, the reason is the first of
// provider_error, too_large, unexpected_shape (a corrupt stream), truncated
// (the body was cut, or ended mid-message), malformed_json,
// unexpected_shape, no_usage.
func (d *converseStream) Finish(complete bool) Result {
	res := Result{StreamedTextBytes: d.text.Total(), Text: d.text.Bytes()}
	if d.usage.hasTokens() {
		res.Usage, res.Err = d.usage.normalise(d.dialect)
		if d.provErr != nil {
			res.Err = d.provErr
		}
		return res
	}
	res.Err = streamEndErr(d.dialect, streamEnd{
		provErr: d.provErr, tooLarge: d.tooLarge, max: d.max, corrupt: d.es.Err(),
		cut: !complete || d.es.Pending(), malformed: d.malformed, badShape: d.badShape, usageSeen: d.usageSeen,
	})
	return res
}

// streamEnd is what an event-stream decoder knows when a stream ends
// without usage.
type streamEnd struct {
	provErr             error
	tooLarge            bool
	max                 int
	corrupt             error
	cut                 bool
	malformed, badShape int
	usageSeen           bool // a usage object came, without counts
}

// streamEndErr explains a stream without usage, most telling reason first.
func streamEndErr(dialect string, e streamEnd) error {
	switch {
	case e.provErr != nil:
		return e.provErr
	case e.tooLarge:
		return fmt.Errorf("%s: a message over %d bytes was dropped: %w", dialect, e.max, reason.TooLarge)
	case e.corrupt != nil:
		return fmt.Errorf("%s: %w: %w", dialect, e.corrupt, reason.UnexpectedShape)
	case e.cut:
		return fmt.Errorf("%s: stream cut before its usage: %w", dialect, reason.Truncated)
	case e.malformed > 0:
		return fmt.Errorf("%s: %d stream events were not JSON: %w", dialect, e.malformed, reason.MalformedJSON)
	case e.badShape > 0:
		return fmt.Errorf("%s: %d stream events were not objects: %w", dialect, e.badShape, reason.UnexpectedShape)
	case e.usageSeen:
		return fmt.Errorf("%s: usage has no token counts: %w", dialect, reason.UnexpectedShape)
	}
	return fmt.Errorf("%s: stream carried no usage: %w", dialect, reason.NoUsage)
}
