package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"iter"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
)

// OpenAIResponses is OpenAI's Responses API (POST /v1/responses). Fetching a
// stored response (GET /v1/responses/{id}) bills nothing and is not routed
// here.
//
// Its usage overlaps as chat's does, under other names: input_tokens
// include input_tokens_details.cached_tokens, and output_tokens include
// output_tokens_details.reasoning_tokens. So input = input − cached,
// cache_read = cached, output = output − reasoning, reasoning = reasoning.
//
// A stream always reports usage, without being asked: the terminal event
// (response.completed, response.incomplete or response.failed) carries the
// whole response object, usage included. An incomplete response (cut by
// max_output_tokens or a content filter) is billed like a complete one; a
// failed one is billed for what its usage says and reported as a provider
// error.
func OpenAIResponses() Dialect { return openAIResponses{} }

type openAIResponses struct{}

const openAIResponsesName = "openai_responses"

func (openAIResponses) Name() string     { return openAIResponsesName }
func (openAIResponses) Provider() string { return "openai" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (openAIResponses) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (x openAIResponses) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, x.parseRequest)
}

// ErrorBody implements Dialect.
func (openAIResponses) ErrorBody(r Refusal) ErrorResponse { return OpenAIRefusal(r) }

// parseRequest reads the request body; it never rewrites it. Where a key is
// repeated the last one counts, as the provider's decoder does.
func (openAIResponses) parseRequest(body []byte, _ RequestOptions) (Request, []byte, error) {
	s, err := requestObject(openAIResponsesName, body)
	if err != nil {
		return Request{}, nil, err
	}
	var model, stream, maxOutput, instructions, input, tier string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			model = v
		case "stream":
			stream = v
		case "max_output_tokens":
			maxOutput = v
		case "service_tier":
			tier = v
		case "instructions":
			instructions = v
		case "input":
			input = v
		}
	}
	var req Request
	req.Model, _ = stringValue(model)
	req.Stream = stream == "true"
	req.IncludeUsage = req.Stream
	n, _ := intValue(maxOutput)
	req.MaxTokens = max(n, 0)
	req.Prompt, req.PromptBytes = collectText(responsesInputTexts(instructions, input))
	req.ServiceTier = openAIServiceTier(tier)
	return req, nil, nil
}

// responsesInputTexts yields the raw text strings of a request: the
// instructions, then the input, a string or a list of items. An item's
// content is a string or a list of parts whose "text" counts (input_text,
// and output_text of earlier turns); a function_call_output's output is
// text the model reads too. Images and files yield nothing: this feeds an
// estimate, not a bill.
func responsesInputTexts(instructions, input string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if !yield(instructions) {
			return
		}
		if !isArray(input) {
			yield(input)
			return
		}
		items := newElements(input)
		for item, ok := items.next(); ok; item, ok = items.next() {
			var content, output string
			m := newMembers(item)
			for k, v, ok := m.next(); ok; k, v, ok = m.next() {
				switch k {
				case "content":
					content = v
				case "output":
					output = v
				}
			}
			if !yield(output) || !yieldParts(content, "text", yield) {
				return
			}
		}
	}
}

// yieldParts yields raw when it is not an array, else each element's
// member key; it reports whether to go on.
func yieldParts(raw, key string, yield func(string) bool) bool {
	if !isArray(raw) {
		return yield(raw)
	}
	parts := newElements(raw)
	for part, ok := parts.next(); ok; part, ok = parts.next() {
		if !yield(lastMember(part, key)) {
			return false
		}
	}
	return true
}

func (openAIResponses) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if isEventStream(resp.ContentType) {
		d := &responsesSSE{sse: framing.NewSSE(maxBuffer), max: maxBuffer}
		return WithEncoding(resp.ContentEncoding, d, maxBuffer)
	}
	return WithEncoding(resp.ContentEncoding, &responsesJSON{jsonBody{dialect: openAIResponsesName, max: maxBuffer}}, maxBuffer)
}

// responsesRawNames name the usage fields in Raw, by chatUsage index.
var responsesRawNames = [cuFields]string{
	cuPrompt: "input_tokens", cuCompletion: "output_tokens", cuTotal: "total_tokens",
	cuCached: "cached_tokens", cuReasoning: "reasoning_tokens",
}

// parseResponsesUsage reads a Responses usage object into chat's shape,
// whose normalisation it shares. It fails when the object has neither input
// nor output tokens.
func parseResponsesUsage(obj string) (chatUsage, bool) {
	u := chatUsage{names: &responsesRawNames}
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "input_tokens":
			u.set(cuPrompt, v)
		case "output_tokens":
			u.set(cuCompletion, v)
		case "total_tokens":
			u.set(cuTotal, v)
		case "input_tokens_details":
			u.set(cuCached, lastMember(v, "cached_tokens"))
		case "output_tokens_details":
			u.set(cuReasoning, lastMember(v, "reasoning_tokens"))
		}
	}
	return u, u.present(cuPrompt) || u.present(cuCompletion)
}

// responseObject holds the raw members of a response object that metering
// reads.
type responseObject struct {
	model, usage, status, err, output string
}

func scanResponseObject(s string) responseObject {
	var o responseObject
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			o.model = v
		case "usage":
			o.usage = v
		case "status":
			o.status = v
		case "error":
			o.err = v
		case "output":
			o.output = v
		}
	}
	return o
}

// failure is the provider error a response object reports: its error
// object, or its status "failed" alone; nil when it reports none.
func (o responseObject) failure() error {
	if err := providerError(openAIResponsesName, o.err); err != nil {
		return err
	}
	if jsonStringIs(o.status, "failed") {
		return fmt.Errorf("%s: response failed: %w", openAIResponsesName, reason.ProviderError)
	}
	return nil
}

// jsonStringIs reports whether raw is the JSON string literal of want,
// without decoding it (nor allocating) when it holds no escapes.
func jsonStringIs(raw, want string) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	if s := raw[1 : len(raw)-1]; strings.IndexByte(s, '\\') < 0 {
		return s == want
	}
	return gjson.Parse(raw).Str == want
}

// writeOutputText writes what a response's output items generated, as the
// stream's deltas spell it out: message text and refusals, reasoning
// summaries and text, and tool call arguments, inputs and code.
func writeOutputText(text *TextBuffer, output string) {
	items := newElements(output)
	for item, ok := items.next(); ok; item, ok = items.next() {
		m := newMembers(item)
		for k, v, ok := m.next(); ok; k, v, ok = m.next() {
			switch k {
			case "content", "summary":
				parts := newElements(v)
				for part, ok := parts.next(); ok; part, ok = parts.next() {
					text.WriteJSONString(lastMember(part, "text"))
					text.WriteJSONString(lastMember(part, "refusal"))
				}
			case "arguments", "input", "code":
				text.WriteJSONString(v)
			}
		}
	}
}

// responsesJSON decodes a whole (non-streamed) response.
type responsesJSON struct{ jsonBody }

// Finish reports, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape, then usage when
// present, with provider_error when the response failed (else
// inconsistent_usage when it does not add up); without usage,
// provider_error, else unexpected_shape for a usage without counts, else
// no_usage.
func (d *responsesJSON) Finish(complete bool) Result {
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	o := scanResponseObject(s)
	var text TextBuffer
	writeOutputText(&text, o.output)
	res := Result{Text: text.Bytes(), StreamedTextBytes: text.Total()}
	res.Model, _ = stringValue(o.model)
	u, hasUsage := parseResponsesUsage(o.usage)
	failure := o.failure()
	switch {
	case hasUsage:
		res.Usage, res.Err = u.normalise(openAIResponsesName)
		if failure != nil {
			res.Err = failure
		}
	case failure != nil:
		res.Err = failure
	case isObject(o.usage):
		res.Err = fmt.Errorf("%s: usage has no token counts: %w", openAIResponsesName, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage: %w", openAIResponsesName, reason.NoUsage)
	}
	return res
}

// responsesSSE decodes a streamed response.
type responsesSSE struct {
	sse *framing.SSE
	max int

	model     string
	usage     chatUsage
	hasUsage  bool
	terminal  bool // response.completed, .incomplete or .failed was seen
	text      TextBuffer
	tooLarge  bool
	malformed int // events that were not JSON
	badShape  int // events that were JSON but not an event object
	provErr   error
}

func (d *responsesSSE) Feed(chunk []byte) error {
	err := d.sse.Feed(chunk, d.onEvent)
	if errors.Is(err, framing.ErrEventTooLarge) {
		d.tooLarge = true
		return fmt.Errorf("%s: stream event over %d bytes dropped: %w", openAIResponsesName, d.max, reason.TooLarge)
	}
	return err
}

// responsesEvent holds the raw members of one stream event that metering
// reads.
type responsesEvent struct {
	typ, delta, response, code string
}

func (d *responsesSSE) onEvent(ev framing.Event) error {
	if string(ev.Name) == "error" && d.provErr == nil {
		// The error event may not have the documented shape; its name
		// alone says the response did not complete.
		d.provErr = fmt.Errorf("%s: error event: %w", openAIResponsesName, reason.ProviderError)
	}
	data := bytes.TrimSpace(ev.Data)
	if len(data) == 0 {
		return nil
	}
	s := bstr(data)
	if !gjson.Valid(s) {
		d.malformed++
		return nil
	}
	if i := skipWS(s, 0); i >= len(s) || s[i] != '{' {
		d.badShape++
		return nil
	}
	var e responsesEvent
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "type":
			e.typ = v
		case "delta":
			e.delta = v
		case "response":
			e.response = v
		case "code":
			e.code = v
		}
	}
	d.apply(bstr(ev.Name), e)
	return nil
}

// textDeltas are the events whose string delta is generated text. Audio
// and image deltas carry base64 media, not text, and are not among them.
var textDeltas = [...]string{
	"response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta",
	"response.reasoning_summary_text.delta", "response.reasoning_text.delta", "response.custom_tool_call_input.delta",
	"response.mcp_call_arguments.delta", "response.code_interpreter_call_code.delta",
}

// apply acts on one event. The data's "type" names it, as the SDKs read
// it; the SSE event name stands in when a proxy dropped the type.
func (d *responsesSSE) apply(name string, e responsesEvent) {
	typ := name
	if e.typ != "" {
		typ = e.typ
		if len(typ) >= 2 && typ[0] == '"' && strings.IndexByte(typ, '\\') < 0 {
			typ = typ[1 : len(typ)-1] // a view: comparing it allocates nothing
		} else {
			typ = gjson.Parse(typ).Str
		}
	}
	switch typ {
	case "response.created", "response.in_progress", "response.queued":
		if d.model == "" {
			d.model, _ = stringValue(lastMember(e.response, "model"))
		}
	case "response.completed", "response.incomplete", "response.failed":
		d.finish(typ, e.response)
	case "error":
		if d.provErr == nil {
			code, _ := stringValue(e.code)
			d.provErr = fmt.Errorf("%s: error event %q: %w", openAIResponsesName, code, reason.ProviderError)
		}
	default:
		for _, t := range textDeltas {
			if typ == t {
				d.text.WriteJSONString(e.delta)
				break
			}
		}
	}
}

// finish reads a terminal event's response object: its usage, its model
// (the one that served, which the first events already named) and, for
// response.failed, its error.
func (d *responsesSSE) finish(typ, response string) {
	d.terminal = true
	o := scanResponseObject(response)
	if model, _ := stringValue(o.model); model != "" {
		d.model = model
	}
	if u, ok := parseResponsesUsage(o.usage); ok {
		d.usage, d.hasUsage = u, true
	} else if isObject(o.usage) {
		d.badShape++
	}
	if typ == "response.failed" && d.provErr == nil {
		d.provErr = o.failure()
		if d.provErr == nil {
			d.provErr = fmt.Errorf("%s: response failed: %w", openAIResponsesName, reason.ProviderError)
		}
	}
}

// Finish reports the usage when it arrived, with Err provider_error when
// the response failed or an error event came, else inconsistent_usage or
// nil. Without usage, the reason is the first of provider_error, too_large,
// truncated, malformed_json, unexpected_shape, no_usage; each earlier one
// better explains why the usage is missing.
//
// The stream counts as cut when no terminal event came and either the body
// did not complete or it ended mid-event.
func (d *responsesSSE) Finish(complete bool) Result {
	res := Result{Model: d.model, Text: d.text.Bytes(), StreamedTextBytes: d.text.Total()}
	if d.hasUsage {
		res.Usage, res.Err = d.usage.normalise(openAIResponsesName)
		if d.provErr != nil {
			res.Err = d.provErr
		}
		return res
	}
	cut := !d.terminal && (!complete || d.sse.Pending())
	switch {
	case d.provErr != nil:
		res.Err = d.provErr
	case d.tooLarge:
		res.Err = fmt.Errorf("%s: an event over %d bytes was dropped: %w", openAIResponsesName, d.max, reason.TooLarge)
	case cut:
		res.Err = fmt.Errorf("%s: stream cut before its terminal event: %w", openAIResponsesName, reason.Truncated)
	case d.malformed > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not JSON: %w", openAIResponsesName, d.malformed, reason.MalformedJSON)
	case d.badShape > 0:
		res.Err = fmt.Errorf("%s: %d stream events were not event objects: %w", openAIResponsesName, d.badShape, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: stream carried no usage: %w", openAIResponsesName, reason.NoUsage)
	}
	return res
}
