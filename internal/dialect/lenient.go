package dialect

import (
	"bytes"
	"strings"

	"github.com/tidwall/gjson"
)

// Request bodies are read as the providers' servers read them, not as RFC
// 8259 does: a request metering cannot read still reaches a provider that
// can, and would go unadmitted (issue 12). The departures accepted:
//
//   - NaN, Infinity and -Infinity as numbers: Python's json module accepts
//     them, and so do the OpenAI-compatible servers built on it (vLLM,
//     LiteLLM, FastAPI apps).
//   - A UTF-8 byte order mark before the value: json.loads of bytes
//     decodes "utf-8-sig".
//   - Bytes after the first value: Go's json.Decoder (Ollama, gin and
//     echo servers) reads one value and stops.
//
// The strict parse runs first, so a well-formed body pays nothing; only a
// body it refuses is normalised, into a copy, and parsed again.

// Leniency is the set of departures from strict JSON a request body made
// that metering accepted. It does not change what was read; it is for a log
// line or a metric.
type Leniency uint8

// The departures.
const (
	LenientBOM       Leniency = 1 << iota // a UTF-8 byte order mark before the value
	LenientNonFinite                      // NaN, Infinity or -Infinity as a number
	LenientTrailing                       // bytes after the first JSON value, ignored
)

// String lists the departures, comma-separated, e.g. "bom,non_finite";
// "" for none.
func (l Leniency) String() string {
	var names []string
	for _, d := range [...]struct {
		bit  Leniency
		name string
	}{{LenientBOM, "bom"}, {LenientNonFinite, "non_finite"}, {LenientTrailing, "trailing_bytes"}} {
		if l&d.bit != 0 {
			names = append(names, d.name)
		}
	}
	return strings.Join(names, ",")
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parseFunc is a dialect's strict request parser.
type parseFunc func(body []byte, opts RequestOptions) (Request, []byte, error)

// parseLeniently runs parse on body; when it fails and body is JSON but for
// the departures above, it parses the normalised copy instead. A body read
// that way is never rewritten (no include_usage injected): the rewrite would
// send the provider the copy, a NaN turned into a 0. When even the copy
// cannot be read, the error is returned with what could be salvaged (see
// salvage) for the caller's worst-case admission.
func parseLeniently(body []byte, opts RequestOptions, parse parseFunc) (Request, []byte, error) {
	req, newBody, err := parse(body, opts)
	if err == nil {
		return req, newBody, nil
	}
	if fixed, how, ok := normaliseJSON(body); ok {
		r, _, err2 := parse(fixed, RequestOptions{Path: opts.Path})
		if err2 == nil {
			r.Lenient = how
			return r, nil, nil
		}
		if r.Model != "" {
			req = r
		}
		err = err2
	}
	return salvage(req, body), nil, err
}

// normaliseJSON returns a copy of body's first JSON value, without a BOM
// and with each non-finite number replaced by a 0 padded to its length, and
// what it departed from. ok is false when body needed none of this or is
// not JSON even so (cut short, say).
func normaliseJSON(body []byte) (fixed []byte, how Leniency, ok bool) {
	if rest, found := bytes.CutPrefix(body, utf8BOM); found {
		body, how = rest, LenientBOM
	}
	fixed = bytes.Clone(body)
	if replaceNonFinite(fixed) {
		how |= LenientNonFinite
	}
	s := bstr(fixed)
	start := skipWS(s, 0)
	end := skipValue(s, start)
	if end < 0 {
		return nil, how, false
	}
	if skipWS(s, end) < len(s) {
		how |= LenientTrailing
	}
	fixed = fixed[:end]
	if how == 0 || !gjson.Valid(bstr(fixed)) {
		return nil, how, false
	}
	return fixed, how, true
}

// replaceNonFinite overwrites, in place, each NaN, Infinity and -Infinity
// that stands where a JSON value may (outside strings, after a ':', '[' or
// ',' and whitespace, and not running into a letter or digit) with "0" and
// spaces, so the offsets of everything else are kept. It reports whether it
// replaced any.
func replaceNonFinite(b []byte) bool {
	replaced := false
	prev := byte(',') // the last byte outside whitespace; the start admits a value
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			e := skipString(bstr(b), i)
			if e < 0 {
				return replaced
			}
			i, prev = e-1, '"'
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			continue
		}
		if prev == ':' || prev == '[' || prev == ',' {
			if n := nonFiniteLen(b[i:]); n > 0 {
				b[i] = '0'
				for j := i + 1; j < i+n; j++ {
					b[j] = ' '
				}
				i, prev, replaced = i+n-1, '0', true
				continue
			}
		}
		prev = c
	}
	return replaced
}

// nonFiniteLen is the length of the non-finite literal b starts with, or 0.
func nonFiniteLen(b []byte) int {
	for _, lit := range [...]string{"NaN", "Infinity", "-Infinity"} {
		if len(b) >= len(lit) && string(b[:len(lit)]) == lit && (len(b) == len(lit) || !isWordByte(b[len(lit)])) {
			return len(lit)
		}
	}
	return 0
}

func isWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '_' || c == '-' || c == '+'
}

// salvage is what an unreadable body still tells admission: the model and
// stream flag the failed parse found (Bedrock, Gemini and Azure name the
// model in the path) or, failing that, the body's top-level "model" and
// "stream" members before the point where it broke; and PromptBytes, the
// whole body's length, an upper bound of any prompt in it. Prompt is
// empty and MaxTokens is whatever the parse found (usually 0, unknown).
func salvage(req Request, body []byte) Request {
	req.Prompt, req.PromptBytes = "", int64(len(body))
	var model, stream string
	m := newMembers(bstr(bytes.TrimPrefix(body, utf8BOM)))
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			model = v
		case "stream":
			stream = v
		}
	}
	if req.Model == "" {
		req.Model, _ = stringValue(model)
	}
	req.Stream = req.Stream || stream == "true"
	return req
}
