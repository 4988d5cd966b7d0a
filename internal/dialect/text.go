package dialect

import (
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxEstimateText caps the prompt and generated text kept per request for
// estimation. Past it, only the byte count grows; the estimate scales the
// tokens of the kept text by the bytes seen.
const MaxEstimateText = 256 << 10

// textPageSize is the unit in which kept text grows. Pages come from a pool
// and go back to it when Bytes gathers the text at the end of a response, so
// a server in its steady state keeps the text of each chunk without
// allocating (issue 7), where a growing slice reallocates, and copies
// itself, some twenty times on the way to 20 KB. 4 KiB holds a typical
// reply whole; a reply holds at most one page it has not filled.
const textPageSize = 4 << 10

type textPage [textPageSize]byte

// textPages recycles pages. Their old contents are never read: only the
// first n bytes a buffer wrote are.
var textPages = sync.Pool{New: func() any { return new(textPage) }}

// TextBuffer collects text up to MaxEstimateText bytes and counts all of it.
// Its zero value is ready; it allocates only as the kept text grows, and
// then only when the pool has no page to give. It must not be copied: two
// copies would return the same pages to the pool.
type TextBuffer struct {
	_ noCopy

	// pages hold the first n kept bytes, while flat is nil.
	pages [MaxEstimateText / textPageSize]*textPage
	n     int
	// flat is the kept text once Bytes has gathered it, or from the start
	// when the caller sized it (see collectText); writes then append to it.
	flat  []byte
	total int64
}

// noCopy makes go vet's copylocks check report copies of what embeds it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Bytes returns the kept text; valid until the next write. It gathers the
// text into one slice of its own and gives the pages back to the pool, so
// it is meant to be called once the text is complete, as Finish does; it
// may be called again, and written after, at the cost of a copy.
func (t *TextBuffer) Bytes() []byte {
	if t.n > 0 {
		flat := make([]byte, t.n)
		for i, off := 0, 0; off < len(flat); i++ {
			off += copy(flat[off:], t.pages[i][:])
			textPages.Put(t.pages[i])
			t.pages[i] = nil
		}
		t.flat, t.n = flat, 0
	}
	return t.flat
}

// Total is every byte written, kept or not.
func (t *TextBuffer) Total() int64 { return t.total }

// WriteString appends s.
func (t *TextBuffer) WriteString(s string) {
	t.total += int64(len(s))
	if t.flat != nil {
		if room := MaxEstimateText - len(t.flat); room > 0 {
			t.flat = append(t.flat, s[:min(room, len(s))]...)
		}
		return
	}
	s = s[:min(len(s), MaxEstimateText-t.n)]
	for len(s) > 0 {
		p := &t.pages[t.n/textPageSize]
		if *p == nil {
			*p = textPages.Get().(*textPage)
		}
		c := copy((*p)[t.n%textPageSize:], s)
		t.n += c
		s = s[c:]
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
