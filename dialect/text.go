package dialect

import (
	"unicode/utf16"
	"unicode/utf8"
)

// MaxEstimateText caps the prompt and generated text kept per request for
// estimation. Past it, only the byte count grows; the estimate scales the
// tokens of the kept text by the bytes seen.
const MaxEstimateText = 256 << 10

// TextBuffer collects text up to MaxEstimateText bytes and counts all of it.
// Its zero value is ready; it allocates only as the kept text grows.
type TextBuffer struct {
	b     []byte
	total int64
}

// Bytes returns the kept text; valid until the next write.
func (t *TextBuffer) Bytes() []byte { return t.b }

// Total is every byte written, kept or not.
func (t *TextBuffer) Total() int64 { return t.total }

// WriteString appends s.
func (t *TextBuffer) WriteString(s string) {
	t.total += int64(len(s))
	if room := MaxEstimateText - len(t.b); room > 0 {
		t.b = append(t.b, s[:min(room, len(s))]...)
	}
}

// WriteJSONString appends the value of raw, a JSON string literal with its
// quotes (as the span scanner returns it), unescaped. Anything that is not a
// string literal is ignored.
func (t *TextBuffer) WriteJSONString(raw string) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return
	}
	s := raw[1 : len(raw)-1]
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\\' {
			i++
		}
		t.WriteString(s[:i])
		if i >= len(s) {
			return
		}
		s = t.escape(s[i:])
	}
}

// escape writes the escape sequence at the start of s and returns the rest.
func (t *TextBuffer) escape(s string) string {
	if len(s) < 2 {
		return ""
	}
	switch c := s[1]; c {
	case 'n':
		t.WriteString("\n")
	case 't':
		t.WriteString("\t")
	case 'r':
		t.WriteString("\r")
	case 'b':
		t.WriteString("\b")
	case 'f':
		t.WriteString("\f")
	case 'u':
		r, rest := decodeU(s)
		var buf [utf8.UTFMax]byte
		n := utf8.EncodeRune(buf[:], r)
		t.WriteString(string(buf[:n]))
		return rest
	default: // '"', '\\', '/'
		t.WriteString(s[1:2])
	}
	return s[2:]
}

// decodeU reads \uXXXX (and a following low surrogate) at the start of s.
func decodeU(s string) (rune, string) {
	r, ok := hex4(s)
	if !ok {
		return utf8.RuneError, s[min(2, len(s)):]
	}
	s = s[6:]
	if utf16.IsSurrogate(r) {
		if r2, ok := hex4(s); ok && len(s) >= 6 && s[0] == '\\' {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d, s[6:]
			}
		}
		return utf8.RuneError, s
	}
	return r, s
}

func hex4(s string) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[2:6]) {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
