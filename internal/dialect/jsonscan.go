package dialect

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// This file walks JSON that gjson.Valid has accepted. gjson's own iterators
// unescape every string value they pass over, which allocates for each
// streamed chunk whose text holds a newline or a quote; these yield raw
// spans instead, so decoding a stream allocates nothing per chunk. On input
// that is not valid JSON they stop early and never panic.

// bstr views b as a string without copying it, because gjson reads strings
// and copying each event would allocate. The view must not outlive b, nor
// be read while b changes: callers clone what they keep.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// members iterates an object's members.
type members struct {
	s string
	i int
}

func newMembers(obj string) members {
	i := skipWS(obj, 0)
	if i < len(obj) && obj[i] == '{' {
		return members{obj, i + 1}
	}
	return members{obj, len(obj)}
}

// next returns the next member's key, unescaped, and its raw value.
func (m *members) next() (key, val string, ok bool) {
	i := skipWS(m.s, m.i)
	if i < len(m.s) && m.s[i] == ',' {
		i = skipWS(m.s, i+1)
	}
	e := skipString(m.s, i)
	if e < 0 {
		m.i = len(m.s)
		return "", "", false
	}
	key = m.s[i+1 : e-1]
	if strings.IndexByte(key, '\\') >= 0 {
		// A key may be escaped ("mod\u0065l" is "model"); the provider
		// decodes it, so must we. Rare enough to allocate.
		key = gjson.Parse(m.s[i:e]).Str
	}
	i = skipWS(m.s, e)
	if i >= len(m.s) || m.s[i] != ':' {
		m.i = len(m.s)
		return "", "", false
	}
	i = skipWS(m.s, i+1)
	e = skipValue(m.s, i)
	if e < 0 {
		m.i = len(m.s)
		return "", "", false
	}
	m.i = e
	return key, m.s[i:e], true
}

// elements iterates an array's elements.
type elements struct {
	s string
	i int
}

func newElements(arr string) elements {
	i := skipWS(arr, 0)
	if i < len(arr) && arr[i] == '[' {
		return elements{arr, i + 1}
	}
	return elements{arr, len(arr)}
}

// next returns the next element's raw value.
func (a *elements) next() (val string, ok bool) {
	i := skipWS(a.s, a.i)
	if i < len(a.s) && a.s[i] == ',' {
		i = skipWS(a.s, i+1)
	}
	e := skipValue(a.s, i)
	if e < 0 {
		a.i = len(a.s)
		return "", false
	}
	a.i = e
	return a.s[i:e], true
}

func skipWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at s[i], or -1.
func skipString(s string, i int) int {
	if i >= len(s) || s[i] != '"' {
		return -1
	}
	i++
	// Keys and most values are short: a byte loop beats a search's setup.
	for end := min(i+24, len(s)); i < end; i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	for i < len(s) {
		// Long strings rarely hold escapes: find the quote with a vectorised
		// search, and walk bytes only where a backslash precedes it.
		q := strings.IndexByte(s[i:], '"')
		if q < 0 {
			return -1
		}
		b := strings.IndexByte(s[i:i+q], '\\')
		if b < 0 {
			return i + q + 1
		}
		i += b + 2 // past the backslash and the byte it escapes
	}
	return -1
}

// skipValue returns the index just past the value starting at s[i], or -1
// when there is none (an empty object or array ends there).
func skipValue(s string, i int) int {
	if i >= len(s) {
		return -1
	}
	switch s[i] {
	case '"':
		return skipString(s, i)
	case '{', '[':
		return skipNested(s, i)
	case '}', ']', ',', ':':
		return -1
	}
	for j := i; j < len(s); j++ {
		switch s[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
	}
	return len(s)
}

func skipNested(s string, i int) int {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '"':
			e := skipString(s, i)
			if e < 0 {
				return -1
			}
			i = e - 1
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// isObject reports whether raw is a JSON object.
func isObject(raw string) bool { return len(raw) > 0 && raw[0] == '{' }

// isArray reports whether raw is a JSON array.
func isArray(raw string) bool { return len(raw) > 0 && raw[0] == '[' }

// stringBytes returns the length of the raw JSON string's decoded bytes, as
// gjson would decode it, without decoding it; 0 when raw is not a string.
func stringBytes(raw string) int64 {
	if len(raw) < 2 || raw[0] != '"' {
		return 0
	}
	s := raw[1 : len(raw)-1]
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			n++
			continue
		}
		i++
		if s[i] != 'u' || i+5 > len(s) {
			n++
			continue
		}
		r := hexRune(s[i+1 : i+5])
		i += 4
		if r >= 0xD800 && r < 0xDC00 && i+7 <= len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
			if r2 := hexRune(s[i+3 : i+7]); r2 >= 0xDC00 && r2 < 0xE000 {
				n += 4 // a surrogate pair is one supplementary code point
				i += 6
				continue
			}
		}
		if l := utf8.RuneLen(r); l > 0 {
			n += int64(l)
		} else {
			n += 3 // a lone surrogate decodes to U+FFFD
		}
	}
	return n
}

func hexRune(h string) rune {
	var r rune
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return utf8.RuneError
		}
		r = r<<4 | rune(c)
	}
	return r
}

// intValue returns raw as an integer when it is a JSON number.
func intValue(raw string) (int64, bool) {
	r := gjson.Parse(raw)
	if r.Type != gjson.Number {
		return 0, false
	}
	return r.Int(), true
}

// stringValue returns raw decoded and copied when it is a JSON string.
func stringValue(raw string) (string, bool) {
	r := gjson.Parse(raw)
	if r.Type != gjson.String {
		return "", false
	}
	return strings.Clone(r.Str), true
}
