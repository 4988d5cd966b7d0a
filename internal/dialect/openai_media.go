package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// This file holds what the audio, speech and images dialects share. Their
// responses carry media as base64 inside JSON strings (b64_json, audio
// deltas), megabytes long, which metering never reads and must not buffer:
// a stringElider drops all but the head of each long string before the
// bytes are buffered or framed, so the usage beside the media survives any
// maxBuffer.

// mediaKeepBytes is how much of each JSON string the media decoders keep
// where strings are payload (images, speech): more than any value they read
// (a size, a quality, an event type, an error code).
const mediaKeepBytes = 256

// stringElider passes JSON text through, split anywhere, but drops the
// content of each string past its first keep bytes. What it keeps is valid
// JSON exactly when the input was, except that dropped bytes are not
// checked: an invalid escape or a control character deep inside a long
// string goes unseen. It never cuts an escape sequence in half, so the kept
// head of a string is always well formed.
//
// A line end inside a string ends the string: JSON strings cannot hold one,
// and in an event stream it ends the event's data line, which must reach
// the SSE framer.
type stringElider struct {
	keep     int  // content bytes kept of each string
	inStr    bool // inside a string
	kept     int  // content bytes of the current string kept so far
	escChar  bool // the previous byte was a backslash
	hexLeft  int  // hex digits of a \u escape still to come
	dropping bool // past the kept head of the current string
	dropEsc  bool // dropping, and the previous byte was a backslash
}

// next returns the longest prefix of p to keep and what follows the bytes
// it drops after that prefix. Call it until rest is empty.
func (e *stringElider) next(p []byte) (keep, rest []byte) {
	for i := 0; i < len(p); {
		switch {
		case e.dropping:
			if n := e.drop(p[i:]); n > 0 {
				return p[:i], p[i+n:]
			}
		case !e.inStr:
			q := bytes.IndexByte(p[i:], '"')
			if q < 0 {
				return p, nil
			}
			i += q + 1
			e.inStr, e.kept = true, 0
		default:
			i += e.keepString(p[i:])
		}
	}
	return p, nil
}

// keepString walks the kept head of a string and returns how many bytes of
// p it consumed: up to the string's end, a line end, or where dropping
// starts.
func (e *stringElider) keepString(p []byte) int {
	for i, c := range p {
		switch {
		case c == '\n' || c == '\r':
			e.endString()
			return i + 1
		case e.escChar:
			e.escChar = false
			if c == 'u' {
				e.hexLeft = 4
			}
		case e.hexLeft > 0:
			e.hexLeft--
		case c == '"':
			e.endString()
			return i + 1
		case e.kept >= e.keep:
			e.dropping = true
			return i
		case c == '\\':
			e.escChar = true
		}
		e.kept++
	}
	return len(p)
}

func (e *stringElider) endString() {
	e.inStr, e.escChar, e.hexLeft, e.dropping, e.dropEsc = false, false, 0, false, false
}

// drop returns how many bytes of p to drop: up to the closing quote or a
// line end, which are kept, skipping escaped bytes. Long strings rarely
// hold escapes, so vectorised searches do the work.
func (e *stringElider) drop(p []byte) int {
	i := 0
	if e.dropEsc {
		e.dropEsc = false
		if p[0] == '\n' || p[0] == '\r' {
			e.dropping = false
			return 0
		}
		i = 1
	}
	for i < len(p) {
		j := indexStringSpecial(p[i:])
		if j < 0 {
			return len(p)
		}
		i += j
		if p[i] != '\\' {
			e.dropping = false
			return i
		}
		if i+1 == len(p) {
			e.dropEsc = true
			return len(p)
		}
		if p[i+1] == '\n' || p[i+1] == '\r' {
			e.dropping = false
			return i + 1
		}
		i += 2
	}
	return len(p)
}

// indexStringSpecial returns the index of the first quote, backslash, CR or
// LF in p, or -1. Each search after the first only covers what precedes the
// best match so far.
func indexStringSpecial(p []byte) int {
	n := bytes.IndexByte(p, '"')
	head := p
	if n >= 0 {
		head = p[:n]
	}
	for _, c := range [...]byte{'\\', '\n', '\r'} {
		if j := bytes.IndexByte(head, c); j >= 0 {
			head, n = head[:j], j
		}
	}
	return n
}

// compactBody buffers a whole JSON response as jsonBody does, but with long
// strings elided, so maxBuffer bounds the document's structure rather than
// its payload.
type compactBody struct {
	jsonBody
	el stringElider
}

func newCompactBody(dialect string, maxBuffer, keep int) compactBody {
	return compactBody{jsonBody: jsonBody{dialect: dialect, max: maxBuffer}, el: stringElider{keep: keep}}
}

func (d *compactBody) Feed(chunk []byte) error {
	var first error
	for len(chunk) > 0 && !d.tooLarge {
		var keep []byte
		keep, chunk = d.el.next(chunk)
		if err := d.jsonBody.Feed(keep); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// mediaStream is the event-stream half of the media decoders: it elides
// long strings, frames events, parses each one's JSON, and keeps the
// problems that explain missing usage. Each decoder embeds it and sets
// emit to its own event handler.
type mediaStream struct {
	dialect string
	sse     *framing.SSE
	el      stringElider
	max     int
	// emit is the decoder's event handler, bound once: a method value made
	// per Feed would allocate.
	emit func(framing.Event) error

	sawDone   bool // data: [DONE]
	tooLarge  bool
	malformed int // events that were not JSON
	badShape  int // events that were JSON but not an object
	provErr   error
}

func newMediaStream(dialect string, maxBuffer, keep int) mediaStream {
	return mediaStream{dialect: dialect, sse: framing.NewSSE(maxBuffer), el: stringElider{keep: keep}, max: maxBuffer}
}

func (s *mediaStream) Feed(chunk []byte) error {
	var first error
	for len(chunk) > 0 {
		var keep []byte
		keep, chunk = s.el.next(chunk)
		if len(keep) == 0 {
			continue
		}
		err := s.sse.Feed(keep, s.emit)
		if errors.Is(err, framing.ErrEventTooLarge) {
			s.tooLarge = true
			err = fmt.Errorf("%s: stream event over %d bytes dropped: %w", s.dialect, s.max, reason.TooLarge)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

var mediaDoneData = []byte("[DONE]")

// object returns an event's JSON object and its type: the "type" member,
// or the SSE event name when there is none. The views are valid during the
// event only. ok is false for events that carry no object; those count as
// problems where they are.
func (s *mediaStream) object(ev framing.Event) (obj, typ string, ok bool) {
	data := bytes.TrimSpace(ev.Data)
	if string(ev.Name) == "error" {
		s.providerError("error event")
	}
	switch {
	case len(data) == 0:
		return "", "", false
	case bytes.Equal(data, mediaDoneData):
		s.sawDone = true
		return "", "", false
	}
	obj = bstr(data)
	if !gjson.Valid(obj) {
		s.malformed++
		return "", "", false
	}
	if !isObject(obj) {
		s.badShape++
		return "", "", false
	}
	typ = jsonStringView(mediaMember(obj, "type"))
	if typ == "" {
		typ = bstr(ev.Name)
	}
	if typ == "error" || mediaErrorCode(mediaMember(obj, "error")) != "" {
		s.providerError("error " + mediaErrorCode(mediaMember(obj, "error")))
	}
	return obj, typ, true
}

func (s *mediaStream) providerError(what string) {
	if s.provErr == nil {
		s.provErr = fmt.Errorf("%s: %s: %w", s.dialect, strings.TrimSpace(what), reason.ProviderError)
	}
}

// missing explains a stream that ended without usage, by the first of:
// provider_error, too_large, truncated (when cut), malformed_json,
// unexpected_shape, no_usage; each earlier one better explains the loss.
func (s *mediaStream) missing(cut bool) error {
	switch {
	case s.provErr != nil:
		return s.provErr
	case s.tooLarge:
		return fmt.Errorf("%s: an event over %d bytes was dropped: %w", s.dialect, s.max, reason.TooLarge)
	case cut:
		return fmt.Errorf("%s: stream cut before its usage: %w", s.dialect, reason.Truncated)
	case s.malformed > 0:
		return fmt.Errorf("%s: %d stream events were not JSON: %w", s.dialect, s.malformed, reason.MalformedJSON)
	case s.badShape > 0:
		return fmt.Errorf("%s: %d stream events were not objects: %w", s.dialect, s.badShape, reason.UnexpectedShape)
	}
	return fmt.Errorf("%s: stream carried no usage: %w", s.dialect, reason.NoUsage)
}

// mediaMember returns the raw value of obj's last member named key, or "":
// where a key repeats, the last one is what the client's decoder keeps.
func mediaMember(obj, key string) string {
	var v string
	m := newMembers(obj)
	for k, val, ok := m.next(); ok; k, val, ok = m.next() {
		if k == key {
			v = val
		}
	}
	return v
}

// jsonStringView returns a raw JSON string's value without copying it when
// it holds no escape; "" when raw is not a string. Valid as long as raw.
func jsonStringView(raw string) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if s := raw[1 : len(raw)-1]; strings.IndexByte(s, '\\') < 0 {
		return s
	}
	return gjson.Parse(raw).Str
}

// mediaErrorCode names an "error" value for a message: its code or type,
// "?" when it has neither, or "" when raw is no error at all (absent or
// null). A bare string counts: compatible servers send one.
func mediaErrorCode(raw string) string {
	switch {
	case isObject(raw):
		for _, k := range [...]string{"code", "type"} {
			if c := jsonStringView(mediaMember(raw, k)); c != "" {
				return c
			}
		}
		return "?"
	case len(raw) > 0 && raw[0] == '"':
		return "?"
	}
	return ""
}

// jsonTextPrompt returns a raw JSON string as a Request.Prompt (as far as
// MaxEstimateText bytes, sharing raw's memory when it needs no unescaping)
// and the byte length of its whole value.
func jsonTextPrompt(raw string) (string, int64) {
	n := stringBytes(raw)
	if n == 0 {
		return "", 0
	}
	if s := raw[1 : len(raw)-1]; strings.IndexByte(s, '\\') < 0 {
		return cutUTF8(s, MaxEstimateText), n
	}
	var t TextBuffer
	t.WriteJSONString(raw)
	return cutUTF8(string(t.Bytes()), MaxEstimateText), n
}

// cutUTF8 cuts s to at most n bytes, backing off to a rune boundary so the
// kept prompt does not end in half a character.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}

// tokenFields reads the integer fields of a usage object named by paths:
// "input_tokens" is a member, "input_tokens_details.text_tokens" a member
// of a member. Where a key repeats the last one counts, and a later details
// object without a field clears it, as for any repeated key.
type tokenFields struct {
	paths []string
	n     [8]int64
	has   uint8
}

func readTokenFields(obj string, paths []string) tokenFields {
	t := tokenFields{paths: paths}
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		for i, p := range paths {
			parent, leaf, nested := strings.Cut(p, ".")
			switch {
			case !nested && p == k:
				t.set(i, v)
			case nested && parent == k:
				t.set(i, mediaMember(v, leaf))
			}
		}
	}
	return t
}

func (t *tokenFields) set(i int, raw string) {
	n, ok := intValue(raw)
	t.n[i] = n
	if ok {
		t.has |= 1 << i
	} else {
		t.has &^= 1 << i
	}
}

func (t *tokenFields) get(i int) (int64, bool) { return t.n[i], t.has&(1<<i) != 0 }

// raw appends the present fields to u.Raw under their paths.
func (t *tokenFields) raw(u *usage.Usage) {
	for i, p := range t.paths {
		if n, ok := t.get(i); ok {
			u.Raw = append(u.Raw, usage.Field{Name: p, Value: n})
		}
	}
}

// splitMedia divides a reported total between a text class and a media
// class (audio, image) by whichever detail is present, so the two always
// sum to what the provider billed: with the media detail, text is the rest
// (checked against the text detail when there is one); with only the text
// detail, media is the rest; with neither, the whole total goes to the
// class mediaByDefault names, and only that class is reported. A part over
// its total, or a negative number, keeps the total, clamps the part and
// reports ok false. Without a total the details stand as they are.
type mediaSplit struct {
	text, media       int64
	hasText, hasMedia bool
	ok                bool
}

func splitMedia(total, media, text int64, hasTotal, hasMedia, hasText, mediaByDefault bool) mediaSplit {
	switch {
	case !hasTotal:
		return mediaSplit{max(text, 0), max(media, 0), hasText, hasMedia, text >= 0 && media >= 0}
	case hasMedia:
		rest, part, ok := splitWhole(total, media)
		return mediaSplit{rest, part, true, true, ok && (!hasText || text == rest)}
	case hasText:
		rest, part, ok := splitWhole(total, text)
		return mediaSplit{part, rest, true, true, ok}
	case mediaByDefault:
		return mediaSplit{0, max(total, 0), false, true, total >= 0}
	}
	return mediaSplit{max(total, 0), 0, true, false, total >= 0}
}

// splitWhole returns whole − part and part, clamped so that neither is
// negative nor the part over the whole, and whether no clamping was needed.
func splitWhole(whole, part int64) (rest, sub int64, ok bool) {
	ok = whole >= 0 && part >= 0 && part <= whole
	whole = max(whole, 0)
	sub = min(max(part, 0), whole)
	return whole - sub, sub, ok
}

// set records the split into u's text and media classes.
func (m mediaSplit) set(u *usage.Usage, text, media usage.Class) {
	if m.hasText {
		u.Set(text, m.text)
	}
	if m.hasMedia {
		u.Set(media, m.media)
	}
}
