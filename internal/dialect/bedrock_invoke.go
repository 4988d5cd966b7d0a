package dialect

import (
	"encoding/base64"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// BedrockInvoke is Bedrock's InvokeModel (POST /model/{modelId}/invoke):
// the body is the model vendor's native JSON (Anthropic's Messages shape
// for Claude, Amazon's for Nova and Titan, Meta's for Llama, ...), and
// Bedrock reports usage in response headers, the same for every model:
// X-Amzn-Bedrock-Input-Token-Count, -Output-Token-Count,
// -Cache-Read-Input-Token-Count and -Cache-Write-Input-Token-Count, split
// as Converse's usage is (see bedrock.go). With the headers the body is
// never read, so it costs no buffer. Without them (a gateway that strips
// them), an Anthropic-shaped body's "usage" stands in: the same model
// reports the same additive counts there.
func BedrockInvoke() Dialect { return bedrockInvoke{name: "bedrock_invoke"} }

// BedrockInvokeStream is InvokeModelWithResponseStream (POST
// /model/{modelId}/invoke-with-response-stream): an AWS event-stream whose
// "chunk" events carry {"bytes": "<base64 of a native stream event>"}. The
// last chunk's native JSON carries amazon-bedrock-invocationMetrics
// (inputTokenCount, outputTokenCount, cacheReadInputTokenCount,
// cacheWriteInputTokenCount, and latencies), Bedrock's own count and the
// one used. Anthropic-shaped usage (message_start, message_delta) stands in
// when the metrics never came.
func BedrockInvokeStream() Dialect {
	return bedrockInvoke{name: "bedrock_invoke_stream", stream: true}
}

type bedrockInvoke struct {
	name   string
	stream bool
}

func (d bedrockInvoke) Name() string   { return d.name }
func (bedrockInvoke) Provider() string { return bedrockProvider }

// ResponseHeaders are the usage headers, which are InvokeModel's only usage
// for every vendor but Anthropic (issue 12: an observer not forwarded them
// billed Llama, Nova and Titan from bytes/4), and the error type.
func (bedrockInvoke) ResponseHeaders() []string {
	return []string{bedrockErrorTypeHeader, headerRawNames[buInput], headerRawNames[buCacheRead],
		headerRawNames[buCacheWrite], headerRawNames[buOutput]}
}

// ErrorBody implements Dialect.
func (bedrockInvoke) ErrorBody(r Refusal) ErrorResponse { return bedrockRefusal(r) }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (d bedrockInvoke) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, d.parseRequest)
}

// parseRequest reads the model from the path and, for the estimate, the
// prompt and output cap from the native body, whatever vendor's shape it
// has: messages and system (Anthropic, Nova, Mistral and AI21 chat),
// prompt (Llama, Mistral), inputText (Titan), message (Cohere); max_tokens,
// max_gen_len, inferenceConfig.max_new_tokens (Nova) or
// textGenerationConfig.maxTokenCount (Titan). The body is never rewritten.
func (d bedrockInvoke) parseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	req, s, err := bedrockRequest(d.name, body, opts, d.stream)
	if err != nil {
		return req, nil, err
	}
	var p promptText
	var maxTokens string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "system", "prompt", "inputText", "message":
			p.add(v)
		case "messages":
			p.messages(v)
		case "max_tokens", "max_gen_len":
			maxTokens = v
		case "inferenceConfig":
			maxTokens = lastMember(v, "max_new_tokens")
		case "textGenerationConfig":
			maxTokens = lastMember(v, "maxTokenCount")
		}
	}
	p.set(&req)
	n, _ := intValue(maxTokens)
	req.MaxTokens = max(n, 0)
	return req, nil, nil
}

// NewDecoder prefers the usage headers; without them it reads the body, as
// a stream or as JSON by its Content-Type (an error before a stream starts
// is JSON).
func (d bedrockInvoke) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if u, ok, bad := headerUsage(resp.Header); ok {
		return &invokeHeaders{dialect: d.name, usage: u, bad: bad}
	}
	if isAWSEventStream(resp.ContentType) {
		inner := &invokeStream{dialect: d.name, es: framing.NewEventStream(maxBuffer), max: maxBuffer}
		return WithEncoding(resp.ContentEncoding, inner, maxBuffer)
	}
	inner := &invokeJSON{jsonBody{dialect: d.name, max: maxBuffer}, bedrockStatusError(d.name, resp)}
	return WithEncoding(resp.ContentEncoding, inner, maxBuffer)
}

// invokeHeaders reports the usage headers and ignores the body.
type invokeHeaders struct {
	dialect string
	usage   bedrockUsage
	bad     string // a header that was not a count
}

func (*invokeHeaders) Feed([]byte) error { return nil }

// Finish reports the headers' usage whether or not the body was whole:
// Bedrock counted it before sending the first byte. Err is
// unexpected_shape when a header is not a count or the input or output
// header is missing, else inconsistent_usage for a negative count, else nil.
func (d *invokeHeaders) Finish(bool) Result {
	var res Result
	res.Usage, res.Err = d.usage.normalise(d.dialect)
	switch {
	case d.bad != "":
		res.Err = fmt.Errorf("%s: header %s is not a token count: %w", d.dialect, d.bad, reason.UnexpectedShape)
	case !d.usage.present(buInput) || !d.usage.present(buOutput):
		res.Err = fmt.Errorf("%s: usage headers %s lack the input or output count: %w", d.dialect, d.usage, reason.UnexpectedShape)
	}
	return res
}

// invokeJSON decodes a whole InvokeModel body when the headers are absent.
type invokeJSON struct {
	jsonBody
	statusErr error
}

// Finish reports, in order of precedence: provider_error for an error
// status; too_large, malformed_json (or truncated), unexpected_shape; then
// amazon-bedrock-invocationMetrics when the body has them, else an
// Anthropic-shaped usage object; else unexpected_shape for a usage object
// without counts, or no_usage.
func (d *invokeJSON) Finish(complete bool) Result {
	if d.statusErr != nil {
		return Result{Err: d.statusErr}
	}
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	var n invokeNative
	n.read(s)
	res := Result{StreamedTextBytes: n.text.Total(), Text: n.text.Bytes()}
	anth := parseAnthropicUsage(n.usage)
	switch {
	case n.metrics.hasTokens():
		res.Usage, res.Err = n.metrics.normalise(d.dialect)
	case anth.present(auInput) || anth.present(auOutput):
		res.Usage, res.Err = anthropicNormalise(d.dialect, anth)
	case isObject(n.usage) || n.metricsSeen:
		res.Err = fmt.Errorf("%s: usage has no token counts: %w", d.dialect, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage and no usage headers: %w", d.dialect, reason.NoUsage)
	}
	return res
}

// anthropicNormalise normalises Anthropic-shaped usage found in a Bedrock
// body, naming this dialect in its error.
func anthropicNormalise(dialect string, u anthropicUsage) (usage.Usage, error) {
	out, err := u.normalise()
	if err != nil {
		err = fmt.Errorf("%s: %w", dialect, err)
	}
	return out, err
}

// invokeNative is what metering reads from one native JSON document: a
// whole InvokeModel body or one stream chunk.
type invokeNative struct {
	typ, message, usage string // Anthropic's event type, message_start's message, usage
	metrics             bedrockUsage
	metricsSeen         bool
	text                TextBuffer
}

// read collects the members metering needs. The text comes from whichever
// vendor's field holds it: Anthropic's content blocks and deltas, Titan's
// outputText, Llama's generation, Anthropic Text Completions' completion,
// and Nova's contentBlockDelta.
func (n *invokeNative) read(s string) {
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "type":
			n.typ = v
		case "message":
			n.message = v
		case "usage":
			n.usage = v
		case "amazon-bedrock-invocationMetrics":
			if isObject(v) {
				n.metrics, n.metricsSeen = parseMetricsUsage(v), true
			}
		case "content":
			anthropicContent(&n.text, v)
		case "delta":
			anthropicDelta(&n.text, v)
		case "outputText", "generation", "completion":
			n.text.WriteJSONString(v)
		case "contentBlockDelta":
			n.text.WriteJSONString(lastMember(lastMember(v, "delta"), "text"))
		}
	}
}

// anthropicContent writes what a message's content blocks generated: text,
// thinking, and a tool call's input JSON.
func anthropicContent(t *TextBuffer, content string) {
	blocks := newElements(content)
	for b, ok := blocks.next(); ok; b, ok = blocks.next() {
		m := newMembers(b)
		for k, v, ok := m.next(); ok; k, v, ok = m.next() {
			switch k {
			case "text", "thinking":
				t.WriteJSONString(v)
			case "input":
				t.WriteString(v)
			}
		}
	}
}

// anthropicDelta writes a content_block_delta's text, thinking or tool
// input JSON; the member names never collide across delta types.
func anthropicDelta(t *TextBuffer, delta string) {
	m := newMembers(delta)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "text", "thinking", "partial_json":
			t.WriteJSONString(v)
		}
	}
}

// invokeStream decodes an InvokeModelWithResponseStream body.
type invokeStream struct {
	dialect string
	es      *framing.EventStream
	max     int
	native  []byte // the decoded chunk, reused

	cur        invokeNative // the chunk being read; its text accumulates
	metrics    bedrockUsage
	anth       anthropicUsage
	deltaUsage bool // a message_delta carried usage: output_tokens is final
	stopped    bool // message_stop was seen
	usageSeen  bool // a usage object came, without counts
	provErr    error
	tooLarge   bool
	malformed  int
	badShape   int
}

func (d *invokeStream) Feed(chunk []byte) error {
	return eventStreamFeedErr(d.dialect, d.max, d.es.Feed(chunk, d.onMessage), &d.tooLarge)
}

func (d *invokeStream) onMessage(m framing.Message) error {
	if err := messageError(d.dialect, m); err != nil {
		if d.provErr == nil {
			d.provErr = err
		}
		return nil
	}
	if m.EventType != "chunk" {
		return nil
	}
	s, ok := jsonPayload(m.Payload, &d.malformed, &d.badShape)
	if !ok {
		return nil
	}
	native, ok := d.decodeBytes(lastMember(s, "bytes"))
	if !ok {
		d.malformed++
		return nil
	}
	if ns, ok := jsonPayload(native, &d.malformed, &d.badShape); ok {
		d.read(ns)
	}
	return nil
}

// decodeBytes decodes the base64 JSON string raw into the reused buffer.
// The alphabet needs no JSON escapes, but "\/" is a legal spelling of '/':
// such a string is unescaped first (rare, so it may allocate).
func (d *invokeStream) decodeBytes(raw string) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	s := raw[1 : len(raw)-1]
	if strings.IndexByte(s, '\\') >= 0 {
		s = gjson.Parse(raw).Str
	}
	n := base64.StdEncoding.DecodedLen(len(s))
	if cap(d.native) < n {
		d.native = make([]byte, n)
	}
	// The string views the payload, which base64 only reads.
	n, err := base64.StdEncoding.Decode(d.native[:n], unsafe.Slice(unsafe.StringData(s), len(s)))
	if err != nil {
		return nil, false
	}
	return d.native[:n], true
}

// read applies one native chunk. The chunk's text accumulates in d.cur.
func (d *invokeStream) read(s string) {
	d.cur.typ, d.cur.message, d.cur.usage, d.cur.metricsSeen = "", "", "", false
	d.cur.read(s)
	if d.cur.metricsSeen {
		d.metrics = d.cur.metrics
		d.usageSeen = true
	}
	switch rawString(d.cur.typ) {
	case "message_start":
		u := lastMember(d.cur.message, "usage")
		d.anth.merge(parseAnthropicUsage(u))
		d.usageSeen = d.usageSeen || isObject(u)
	case "message_delta":
		u := parseAnthropicUsage(d.cur.usage)
		d.anth.merge(u)
		d.deltaUsage = d.deltaUsage || u.has != 0
		d.usageSeen = d.usageSeen || isObject(d.cur.usage)
	case "message_stop":
		d.stopped = true
	}
}

// Finish reports the invocation metrics when they came, with Err set to
// provider_error when an exception came too, else inconsistent_usage or
// nil. Else it reports Anthropic-shaped usage when any came, with Err as
// the Anthropic Messages stream sets it: provider_error; nil once a
// message_delta gave the final output_tokens; else too_large, truncated or
// unexpected_shape, the output being message_start's initial count.
// Without usage, the reason is as for ConverseStream (streamEndErr).
func (d *invokeStream) Finish(complete bool) Result {
	res := Result{StreamedTextBytes: d.cur.text.Total(), Text: d.cur.text.Bytes()}
	cut := !complete || d.es.Pending()
	switch {
	case d.metrics.hasTokens():
		res.Usage, res.Err = d.metrics.normalise(d.dialect)
		if d.provErr != nil {
			res.Err = d.provErr
		}
	case d.anth.present(auInput) || d.anth.present(auOutput):
		res.Usage, res.Err = anthropicNormalise(d.dialect, d.anth)
		switch {
		case d.provErr != nil:
			res.Err = d.provErr
		case d.deltaUsage:
		case d.tooLarge:
			res.Err = fmt.Errorf("%s: a message over %d bytes was dropped before message_delta: %w", d.dialect, d.max, reason.TooLarge)
		case cut || !d.stopped:
			res.Err = fmt.Errorf("%s: stream cut before its usage; output_tokens is the initial count: %w", d.dialect, reason.Truncated)
		default:
			res.Err = fmt.Errorf("%s: message_stop without usage: %w", d.dialect, reason.UnexpectedShape)
		}
	default:
		res.Err = streamEndErr(d.dialect, streamEnd{
			provErr: d.provErr, tooLarge: d.tooLarge, max: d.max, corrupt: d.es.Err(),
			cut: cut, malformed: d.malformed, badShape: d.badShape, usageSeen: d.usageSeen,
		})
	}
	return res
}
