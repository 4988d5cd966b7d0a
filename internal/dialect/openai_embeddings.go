package dialect

import (
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// OpenAIEmbeddings is OpenAI's Embeddings API (POST /v1/embeddings).
//
// Its usage is {prompt_tokens, total_tokens}: every token is input, so
// Input = prompt_tokens and Output is reported as 0. total_tokens must equal
// prompt_tokens.
//
// An embeddings response is mostly its vectors (a batch of 2048 inputs at
// 3072 dimensions is over 100 MB of JSON) and its usage comes after them, so
// its decoder never buffers the body: it reads the top-level members as
// they stream by, keeps the few it needs and skips the rest.
func OpenAIEmbeddings() Dialect { return openAIEmbeddings{} }

type openAIEmbeddings struct{}

const openAIEmbeddingsName = "openai_embeddings"

func (openAIEmbeddings) Name() string     { return openAIEmbeddingsName }
func (openAIEmbeddings) Provider() string { return "openai" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (openAIEmbeddings) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (x openAIEmbeddings) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, x.parseRequest)
}

// ErrorBody implements Dialect.
func (openAIEmbeddings) ErrorBody(r Refusal) ErrorResponse { return OpenAIRefusal(r) }

// parseRequest reads the request body; it never rewrites it. Embeddings do
// not stream and generate nothing, so only the model and the input text
// matter.
func (openAIEmbeddings) parseRequest(body []byte, _ RequestOptions) (Request, []byte, error) {
	s, err := requestObject(openAIEmbeddingsName, body)
	if err != nil {
		return Request{}, nil, err
	}
	var model, input string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			model = v
		case "input":
			input = v
		}
	}
	var req Request
	req.Model, _ = stringValue(model)
	// input is a string, an array of strings, or token arrays, which
	// yield nothing, as for a legacy completions prompt.
	req.Prompt, req.PromptBytes = collectText(promptTexts(input))
	return req, nil, nil
}

func (openAIEmbeddings) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	return WithEncoding(resp.ContentEncoding, &embeddingsJSON{top: newTopMembers(maxBuffer, "model", "usage", "error")}, maxBuffer)
}

// embeddingsJSON decodes an embeddings response.
type embeddingsJSON struct {
	top     *topMembers
	overCap bool // Feed already reported too_large
}

func (d *embeddingsJSON) Feed(chunk []byte) error {
	d.top.feed(chunk)
	if d.top.tooLarge && !d.overCap {
		d.overCap = true
		return fmt.Errorf("%s: a response member over %d bytes was dropped: %w", openAIEmbeddingsName, d.top.max, reason.TooLarge)
	}
	return nil
}

// Finish reports, in order of precedence: truncated when the body was cut,
// malformed_json, unexpected_shape when the body is not an object, too_large
// when a member it keeps overflowed, then usage when present (with
// inconsistent_usage when it does not add up), else provider_error, else
// no_usage.
func (d *embeddingsJSON) Finish(complete bool) Result {
	t := d.top
	switch {
	case t.state != tmDone && t.state != tmBad && t.state != tmNotObject && !complete:
		return Result{Err: fmt.Errorf("%s: response body cut: %w", openAIEmbeddingsName, reason.Truncated)}
	case t.state == tmNotObject:
		return Result{Err: fmt.Errorf("%s: response body is not a JSON object: %w", openAIEmbeddingsName, reason.UnexpectedShape)}
	case t.state != tmDone:
		return Result{Err: fmt.Errorf("%s: response body: %w", openAIEmbeddingsName, reason.MalformedJSON)}
	}
	model, usageObj, errObj := t.value(0), t.value(1), t.value(2)
	for _, v := range [...]string{model, usageObj, errObj} {
		if v != "" && !gjson.Valid(v) {
			return Result{Err: fmt.Errorf("%s: response body: %w", openAIEmbeddingsName, reason.MalformedJSON)}
		}
	}
	var res Result
	res.Model, _ = stringValue(model)
	if t.tooLarge {
		res.Err = fmt.Errorf("%s: a response member over %d bytes was dropped: %w", openAIEmbeddingsName, t.max, reason.TooLarge)
		return res
	}
	perr := providerError(openAIEmbeddingsName, errObj)
	prompt, total, hasPrompt, hasTotal := embeddingsUsage(usageObj)
	switch {
	case hasPrompt:
		res.Usage, res.Err = normaliseEmbeddings(prompt, total, hasTotal)
	case perr != nil:
		res.Err = perr
	case isObject(usageObj):
		res.Err = fmt.Errorf("%s: usage has no prompt_tokens: %w", openAIEmbeddingsName, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage: %w", openAIEmbeddingsName, reason.NoUsage)
	}
	return res
}

// embeddingsUsage reads a usage object; the last of repeated keys counts,
// and a null clears an earlier number.
func embeddingsUsage(obj string) (prompt, total int64, hasPrompt, hasTotal bool) {
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "prompt_tokens":
			prompt, hasPrompt = intValue(v)
		case "total_tokens":
			total, hasTotal = intValue(v)
		}
	}
	return prompt, total, hasPrompt, hasTotal
}

// normaliseEmbeddings maps the usage to classes: every token is input and
// none is output. A negative prompt, or a total that is not the prompt, is
// inconsistent_usage; the prompt, floored at 0, is still what is charged.
func normaliseEmbeddings(prompt, total int64, hasTotal bool) (usage.Usage, error) {
	var out usage.Usage
	out.Raw = append(out.Raw, usage.Field{Name: "prompt_tokens", Value: prompt})
	if hasTotal {
		out.Raw = append(out.Raw, usage.Field{Name: "total_tokens", Value: total})
	}
	out.Set(usage.Input, max(prompt, 0))
	out.Set(usage.Output, 0)
	if prompt < 0 || (hasTotal && total != prompt) {
		return out, fmt.Errorf("%s: usage prompt_tokens=%d total_tokens=%d: %w",
			openAIEmbeddingsName, prompt, total, reason.InconsistentUsage)
	}
	return out, nil
}

// topMembers reads a JSON object fed in chunks split anywhere. It keeps the
// raw values of the top-level members it was asked for (the last of
// repeated keys), at most max bytes of them in all, and skips every other
// value without holding it. It checks structure (strings, escapes, matched
// brackets, separators) as it goes; the values it keeps are validated
// whole by their reader, the values it skips only structurally.
type topMembers struct {
	keys     []string
	vals     [][]byte
	max      int
	kept     int
	tooLarge bool // a kept value overflowed max and was dropped

	state   tmState
	members int    // members begun
	key     []byte // the key being read, raw
	cur     int    // index into keys of the value being read, or -1
	closers []byte // closing brackets the value being read still owes
	inStr   bool   // within a string of the value being read
	esc     bool   // the previous byte was a backslash in a string
}

type tmState uint8

const (
	tmStart     tmState = iota // before the opening brace
	tmKey                      // expecting a key (or, first, the closing brace)
	tmInKey                    // within a key
	tmColon                    // expecting the colon after a key
	tmValue                    // expecting a value
	tmInValue                  // within a string, object or array value
	tmInScalar                 // within a number, true, false or null
	tmAfter                    // expecting a comma or the closing brace
	tmDone                     // after the closing brace: whitespace only
	tmBad                      // structurally not JSON
	tmNotObject                // JSON, perhaps, but not an object
)

// maxKey and maxDepth bound what structure costs to track: no key of
// interest is long, and no provider response nests deep.
const (
	maxKey   = 64
	maxDepth = 256
)

func newTopMembers(max int, keys ...string) *topMembers {
	return &topMembers{keys: keys, vals: make([][]byte, len(keys)), max: max, cur: -1}
}

// value returns the kept raw value of keys[i], or "".
func (t *topMembers) value(i int) string { return string(t.vals[i]) }

func (t *topMembers) feed(p []byte) {
	for len(p) > 0 && t.state < tmDone {
		switch t.state {
		case tmInKey:
			p = t.readKey(p)
		case tmInValue:
			n, done := t.scanNested(p)
			t.keep(p[:n])
			p = p[n:]
			if done {
				t.state = tmAfter
			}
		case tmInScalar:
			n := scalarLen(p)
			t.keep(p[:n])
			p = p[n:]
			if len(p) > 0 {
				t.state = tmAfter
			}
		default:
			p = t.punctuation(p)
		}
	}
	if t.state == tmDone {
		for _, c := range p {
			if !isJSONSpace(c) {
				t.state = tmBad
				return
			}
		}
	}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// startsNonObject reports whether c opens a JSON value other than an object.
func startsNonObject(c byte) bool {
	switch c {
	case '[', '"', '-', 't', 'f', 'n':
		return true
	}
	return c >= '0' && c <= '9'
}

// punctuation reads the byte that moves the object between members: a
// brace, a quote, a colon, a comma, or a value's first byte.
func (t *topMembers) punctuation(p []byte) []byte {
	i := 0
	for i < len(p) && isJSONSpace(p[i]) {
		i++
	}
	if i == len(p) {
		return nil
	}
	c := p[i]
	switch {
	case t.state == tmStart && c == '{':
		t.state = tmKey
	case t.state == tmStart && startsNonObject(c):
		t.state = tmNotObject
	case t.state == tmKey && c == '"':
		t.state, t.key, t.esc = tmInKey, t.key[:0], false
		t.members++
	case t.state == tmKey && c == '}' && t.members == 0, t.state == tmAfter && c == '}':
		t.state = tmDone
	case t.state == tmAfter && c == ',':
		t.state = tmKey
	case t.state == tmColon && c == ':':
		t.state = tmValue
	case t.state == tmValue:
		t.startValue(c)
		if t.state == tmInScalar {
			return p[i:] // the scalar's first byte is its own
		}
		t.keep(p[i : i+1])
	default:
		t.state = tmBad
	}
	return p[i+1:]
}

// readKey reads key bytes up to the closing quote.
func (t *topMembers) readKey(p []byte) []byte {
	for i, c := range p {
		switch {
		case t.esc:
			t.esc = false
		case c == '\\':
			t.esc = true
		case c == '"':
			t.state = tmColon
			t.cur = t.keyIndex()
			return p[i+1:]
		}
		if len(t.key) < maxKey {
			t.key = append(t.key, c)
		}
	}
	return nil
}

// keyIndex returns the index of the key just read among keys, or -1. An
// escaped key is decoded, as the provider's reader would.
func (t *topMembers) keyIndex() int {
	k := bstr(t.key)
	if len(t.key) >= maxKey {
		return -1
	}
	for j := range t.key {
		if t.key[j] == '\\' {
			k = gjson.Parse(`"` + k + `"`).Str
			break
		}
	}
	for i, want := range t.keys {
		if k == want {
			t.kept -= len(t.vals[i])
			t.vals[i] = t.vals[i][:0] // the last of repeated keys counts
			return i
		}
	}
	return -1
}

// startValue reads a value's first byte.
func (t *topMembers) startValue(c byte) {
	switch c {
	case '"':
		t.state, t.inStr, t.esc = tmInValue, true, false
	case '{':
		t.state, t.closers = tmInValue, append(t.closers[:0], '}')
	case '[':
		t.state, t.closers = tmInValue, append(t.closers[:0], ']')
	case '}', ']', ',', ':':
		t.state = tmBad
	default:
		t.state = tmInScalar
	}
}

// scanNested reads a string, object or array value, and returns the bytes
// of p it took and whether the value ended there.
func (t *topMembers) scanNested(p []byte) (int, bool) {
	for i, c := range p {
		if t.inStr {
			switch {
			case t.esc:
				t.esc = false
			case c == '\\':
				t.esc = true
			case c == '"':
				t.inStr = false
				if len(t.closers) == 0 {
					return i + 1, true
				}
			}
			continue
		}
		switch c {
		case '"':
			t.inStr = true
		case '{', '[':
			if len(t.closers) >= maxDepth {
				t.state = tmBad
				return i + 1, false
			}
			t.closers = append(t.closers, c+2) // '{'+2 is '}', '['+2 is ']'
		case '}', ']':
			if t.closers[len(t.closers)-1] != c {
				t.state = tmBad
				return i + 1, false
			}
			t.closers = t.closers[:len(t.closers)-1]
			if len(t.closers) == 0 {
				return i + 1, true
			}
		}
	}
	return len(p), false
}

// scalarLen returns the length of the scalar's bytes at the start of p: up
// to a separator or whitespace.
func scalarLen(p []byte) int {
	for i, c := range p {
		if c == ',' || c == '}' || c == ']' || isJSONSpace(c) {
			return i
		}
	}
	return len(p)
}

// keep appends b to the value being kept, if any, within the cap.
func (t *topMembers) keep(b []byte) {
	if t.cur < 0 || len(b) == 0 {
		return
	}
	if t.kept+len(b) > t.max {
		t.kept -= len(t.vals[t.cur])
		t.vals[t.cur], t.cur, t.tooLarge = nil, -1, true
		return
	}
	t.kept += len(b)
	t.vals[t.cur] = append(t.vals[t.cur], b...)
}
