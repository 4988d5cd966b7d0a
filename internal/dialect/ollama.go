package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// OllamaChat is Ollama's native chat API (POST /api/chat). Ollama's
// OpenAI-compatible /v1/chat/completions is OpenAIChat's.
//
// Ollama streams unless the request says "stream": false, as newline
// delimited JSON (application/x-ndjson): one object per line, whose
// message.content carries the text, ending with an object that has
// "done": true and the counts. A non-streamed response is that last object
// alone, with the whole text, as application/json.
//
// The counts map one to one: input = prompt_eval_count, output =
// eval_count (thinking included: Ollama does not count it apart). Ollama
// serialises both with omitempty, so a done object without them means 0:
// prompt_eval_count is absent on a full prompt-cache hit, when no prompt
// token was evaluated, and both are absent when a request only loads or
// unloads a model. Such a zero is a reported zero. On a partial cache hit
// prompt_eval_count counts only the tokens evaluated; the cached ones are
// not reported, so CacheRead stays unreported.
func OllamaChat() Dialect { return ollama{chat: true} }

// OllamaGenerate is Ollama's native completion API (POST /api/generate):
// as OllamaChat, with the text in "response" rather than message.content,
// and the prompt in "prompt", "system" and "suffix".
func OllamaGenerate() Dialect { return ollama{} }

type ollama struct{ chat bool }

const (
	ollamaChatName     = "ollama_chat"
	ollamaGenerateName = "ollama_generate"
)

func (o ollama) Name() string {
	if o.chat {
		return ollamaChatName
	}
	return ollamaGenerateName
}

func (ollama) Provider() string { return "ollama" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (ollama) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (o ollama) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, o.parseRequest)
}

// ErrorBody implements Dialect.
func (ollama) ErrorBody(r Refusal) ErrorResponse { return ollamaRefusal(r) }

// parseRequest reads the request body; it never rewrites it, because every
// Ollama stream ends with its counts. Where a key is repeated the last one
// counts, as in Go's decoder, which Ollama uses.
func (o ollama) parseRequest(body []byte, _ RequestOptions) (Request, []byte, error) {
	s, err := requestObject(o.Name(), body)
	if err != nil {
		return Request{}, nil, err
	}
	var model, stream, options, messages, prompt, system, suffix string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			model = v
		case "stream":
			stream = v
		case "options":
			options = v
		case "messages":
			messages = v
		case "prompt":
			prompt = v
		case "system":
			system = v
		case "suffix":
			suffix = v
		}
	}
	var req Request
	req.Model, _ = stringValue(model)
	// Ollama's "stream" is a *bool defaulting to true: only an explicit
	// false turns streaming off; absent and null stream.
	req.Stream = stream != "false"
	req.IncludeUsage = req.Stream
	// num_predict -1 means unlimited and -2 "fill the context": no cap.
	n, _ := intValue(lastMember(options, "num_predict"))
	req.MaxTokens = max(n, 0)
	var p promptPieces
	if o.chat {
		msgs := newElements(messages)
		for msg, ok := msgs.next(); ok; msg, ok = msgs.next() {
			p.add(lastMember(msg, "content"))
		}
	} else {
		// The order the model reads them in: system, prompt, then the
		// suffix a fill-in-the-middle model completes towards.
		p.add(system)
		p.add(prompt)
		p.add(suffix)
	}
	req.PromptBytes, req.Prompt = p.n, p.text()
	return req, nil, nil
}

// promptPieces gathers a request's prompt text from raw JSON strings, for
// Request.Prompt and PromptBytes. Prompt is the pieces concatenated without
// separators, so it is always a prefix of the text PromptBytes counts. A
// lone piece without escapes aliases the body rather than being copied.
type promptPieces struct {
	n     int64
	alias string // the only piece so far, when it needed no unescaping
	buf   TextBuffer
}

func (p *promptPieces) add(raw string) {
	n := stringBytes(raw)
	if n == 0 {
		return
	}
	if p.n == 0 && strings.IndexByte(raw, '\\') < 0 {
		p.alias = raw[1 : len(raw)-1]
	} else {
		if p.alias != "" {
			p.buf.WriteString(p.alias)
			p.alias = ""
		}
		p.buf.WriteJSONString(raw)
	}
	p.n += n
}

func (p *promptPieces) text() string {
	if p.alias != "" {
		return p.alias[:min(len(p.alias), MaxEstimateText)]
	}
	return string(p.buf.Bytes())
}

func (o ollama) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if mediaTypeIsJSON(resp.ContentType) {
		return WithEncoding(resp.ContentEncoding, &ollamaJSON{jsonBody{dialect: o.Name(), max: maxBuffer}, o.chat}, maxBuffer)
	}
	// Anything else is read as lines: application/x-ndjson, or no
	// Content-Type at all. A compact single object is one line, so a
	// mislabelled non-streamed response still reads.
	d := &ollamaStream{nd: framing.NewNDJSON(maxBuffer), name: o.Name(), chat: o.chat, max: maxBuffer}
	return WithEncoding(resp.ContentEncoding, d, maxBuffer)
}

// mediaTypeIsJSON reports whether a Content-Type is application/json, by its
// media type alone (parameters ignored, case-insensitive per RFC 9110,
// section 8.3.1).
func mediaTypeIsJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// ollamaObject holds the raw members of a response object, or of one stream
// line, that metering reads.
type ollamaObject struct {
	model, done, promptEval, eval, err string
}

// scanOllamaObject reads an object and writes its generated text to text:
// message.content, message.thinking and tool call arguments for chat;
// response and thinking for generate. Thinking is generated output, billed
// in eval_count, so it counts for an estimate too.
func scanOllamaObject(s string, chat bool, text *TextBuffer) ollamaObject {
	var o ollamaObject
	var message, response, thinking string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			o.model = v
		case "done":
			o.done = v
		case "prompt_eval_count":
			o.promptEval = v
		case "eval_count":
			o.eval = v
		case "error":
			o.err = v
		case "message":
			message = v
		case "response":
			response = v
		case "thinking":
			thinking = v
		}
	}
	if !chat {
		text.WriteJSONString(thinking)
		text.WriteJSONString(response)
		return o
	}
	var content, msgThinking, calls string
	mm := newMembers(message)
	for k, v, ok := mm.next(); ok; k, v, ok = mm.next() {
		switch k {
		case "content":
			content = v
		case "thinking":
			msgThinking = v
		case "tool_calls":
			calls = v
		}
	}
	text.WriteJSONString(msgThinking)
	text.WriteJSONString(content)
	// Arguments are a JSON object the model spelled out: its raw bytes
	// are the generated text.
	cs := newElements(calls)
	for call, ok := cs.next(); ok; call, ok = cs.next() {
		text.WriteString(lastMember(lastMember(call, "function"), "arguments"))
	}
	return o
}

// ollamaError describes an "error" value, or returns nil when there is none.
// Ollama sends a string, before the stream (with an error status) or as a
// line of it (under 200).
func ollamaError(name, raw string) error {
	if raw == "" || raw == "null" || raw == `""` {
		return nil
	}
	return fmt.Errorf("%s: provider error: %w", name, reason.ProviderError)
}

// ollamaUsage is a done object's counts.
type ollamaUsage struct {
	in, out       int64
	hasIn, hasOut bool // present on the wire; absent means 0 (omitempty)
	odd           bool // a count that was neither a number nor null
}

func parseOllamaUsage(o ollamaObject) ollamaUsage {
	var u ollamaUsage
	u.in, u.hasIn = intValue(o.promptEval)
	u.out, u.hasOut = intValue(o.eval)
	u.odd = (o.promptEval != "" && o.promptEval != "null" && !u.hasIn) ||
		(o.eval != "" && o.eval != "null" && !u.hasOut)
	return u
}

// normalise reports both classes, absent counts as 0 (see OllamaChat).
func (u ollamaUsage) normalise(name string) (usage.Usage, error) {
	var out usage.Usage
	if u.hasIn {
		out.Raw = append(out.Raw, usage.Field{Name: "prompt_eval_count", Value: u.in})
	}
	if u.hasOut {
		out.Raw = append(out.Raw, usage.Field{Name: "eval_count", Value: u.out})
	}
	out.Set(usage.Input, max(u.in, 0))
	out.Set(usage.Output, max(u.out, 0))
	switch {
	case u.in < 0 || u.out < 0:
		return out, fmt.Errorf("%s: usage prompt_eval_count=%d eval_count=%d: %w", name, u.in, u.out, reason.InconsistentUsage)
	case u.odd:
		return out, fmt.Errorf("%s: a count in the done object is not a number: %w", name, reason.UnexpectedShape)
	}
	return out, nil
}

// ollamaJSON decodes a whole (non-streamed) response.
type ollamaJSON struct {
	jsonBody
	chat bool
}

// Finish reports, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape; then, for a done
// object, its usage (with provider_error when it also carries an error);
// else provider_error, else no_usage.
func (d *ollamaJSON) Finish(complete bool) Result {
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	var text TextBuffer
	o := scanOllamaObject(s, d.chat, &text)
	res := Result{StreamedTextBytes: text.Total(), Text: text.Bytes()}
	res.Model, _ = stringValue(o.model)
	perr := ollamaError(d.dialect, o.err)
	switch {
	case o.done == "true":
		res.Usage, res.Err = parseOllamaUsage(o).normalise(d.dialect)
		if perr != nil {
			res.Err = perr
		}
	case perr != nil:
		res.Err = perr
	default:
		res.Err = fmt.Errorf("%s: response is not a done object: %w", d.dialect, reason.NoUsage)
	}
	return res
}

// ollamaStream decodes a streamed response, one JSON object per line.
type ollamaStream struct {
	nd   *framing.NDJSON
	name string
	chat bool
	max  int

	model     string
	text      TextBuffer
	usage     ollamaUsage
	done      bool // a done object was seen: its counts are final
	cut       bool // the body ended inside a line that is not whole JSON
	tooLarge  bool
	malformed int // lines that were not JSON
	badShape  int // lines that were JSON but not objects
	provErr   error
}

func (d *ollamaStream) Feed(chunk []byte) error {
	err := d.nd.Feed(chunk, d.onLine)
	if errors.Is(err, framing.ErrLineTooLarge) {
		d.tooLarge = true
		return fmt.Errorf("%s: stream line over %d bytes dropped: %w", d.name, d.max, reason.TooLarge)
	}
	return err
}

func (d *ollamaStream) onLine(line []byte) error {
	s := bstr(bytes.TrimSpace(line))
	if !gjson.Valid(s) {
		d.malformed++
		return nil
	}
	if !isObject(s) {
		d.badShape++
		return nil
	}
	o := scanOllamaObject(s, d.chat, &d.text)
	if d.model == "" {
		d.model, _ = stringValue(o.model)
	}
	if err := ollamaError(d.name, o.err); err != nil && d.provErr == nil {
		d.provErr = err
	}
	if o.done == "true" {
		d.done, d.usage = true, parseOllamaUsage(o)
	}
	return nil
}

// lastLine reads a final line that had no line feed. When it is not whole
// JSON the body was cut inside it.
func (d *ollamaStream) lastLine(line []byte) error {
	if !gjson.Valid(bstr(line)) {
		d.cut = true
		return nil
	}
	return d.onLine(line)
}

// Finish reports the usage of the done object when one came, with Err nil,
// inconsistent_usage or unexpected_shape, or provider_error when an error
// line came too. Without one, the reason is the first of provider_error,
// too_large, truncated, malformed_json, unexpected_shape, no_usage.
//
// The stream counts as cut when no done object came and either the body did
// not complete or its last line, unterminated, is not whole JSON.
func (d *ollamaStream) Finish(complete bool) Result {
	_ = d.nd.Flush(d.lastLine)
	res := Result{Model: d.model, StreamedTextBytes: d.text.Total(), Text: d.text.Bytes()}
	if d.done {
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
		res.Err = fmt.Errorf("%s: a line over %d bytes was dropped: %w", d.name, d.max, reason.TooLarge)
	case d.cut || !complete:
		res.Err = fmt.Errorf("%s: stream cut before its done object: %w", d.name, reason.Truncated)
	case d.malformed > 0:
		res.Err = fmt.Errorf("%s: %d stream lines were not JSON: %w", d.name, d.malformed, reason.MalformedJSON)
	case d.badShape > 0:
		res.Err = fmt.Errorf("%s: %d stream lines were not objects: %w", d.name, d.badShape, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: stream ended without a done object: %w", d.name, reason.NoUsage)
	}
	return res
}
