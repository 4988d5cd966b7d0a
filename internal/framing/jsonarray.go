package framing

import (
	"bytes"
	"errors"
	"fmt"
)

// DefaultMaxElement caps an element's size when NewJSONArray is given no
// positive cap.
const DefaultMaxElement = 1 << 20

// ErrElementTooLarge is returned by JSONArray.Feed when an element exceeds
// its cap. The decoder drops that element and resumes at the next one.
var ErrElementTooLarge = errors.New("framing: json array element too large")

// ErrArraySyntax is returned by JSONArray.Feed when the body is not a JSON
// array: it does not open with '[', or elements are not separated by
// commas, or bytes follow the closing ']'. The decoder stops there, because
// past a broken separator nothing says where the next element starts.
var ErrArraySyntax = errors.New("framing: not a json array")

// arrayState is where the decoder stands in the top-level array.
type arrayState uint8

const (
	arrStart   arrayState = iota // before the opening '['
	arrFirst                     // after '[': an element or ']'
	arrValue                     // after ',': an element
	arrElement                   // inside an element
	arrAfter                     // after an element: ',' or ']'
	arrDone                      // after the closing ']': whitespace only
	arrFailed                    // a syntax error stopped the decoder
)

// JSONArray decodes a body that is one top-level JSON array, as Google's
// streamGenerateContent sends it without alt=sse ("[{...}\n,\r\n{...}\n]"),
// and hands over each element as soon as its last byte arrives.
//
// It does not validate the elements: it tracks only strings, escapes and
// bracket depth, which is all it takes to find where an element ends, and
// leaves validation to the reader of the element. On input that encoding/json
// accepts as an array it yields exactly the elements that encoding/json
// would, as raw bytes without surrounding whitespace.
//
// Memory is bounded by the cap on one element. An element over the cap is
// dropped, and because the bracket depth is tracked without buffering, the
// decoder still finds the element's end and resumes exactly at the next one.
//
// The zero value is ready to use with DefaultMaxElement.
type JSONArray struct {
	max int

	state    arrayState
	depth    int  // open '{' and '[' inside the current element
	inString bool // inside a string of the current element
	escaped  bool // the previous byte was a backslash inside a string
	scalar   bool // the current element is a number, true, false or null

	buf        []byte // the current element's bytes from earlier chunks
	size       int    // the current element's bytes so far, buffered or not
	discarding bool   // dropping an element over the cap
	dropped    int
	closed     bool  // the closing ']' was seen
	offset     int64 // bytes consumed before the current chunk, for errors
	err        error
}

// NewJSONArray returns a decoder that buffers at most maxElement bytes of
// one element (DefaultMaxElement when maxElement <= 0).
func NewJSONArray(maxElement int) *JSONArray { return &JSONArray{max: maxElement} }

func (d *JSONArray) limit() int {
	if d.max <= 0 {
		return DefaultMaxElement
	}
	return d.max
}

// Done reports whether the closing ']' was seen: the array is complete.
func (d *JSONArray) Done() bool { return d.closed }

// Pending reports whether an element is unfinished, buffered or being
// dropped for its size: a body that ends now was cut mid-element.
func (d *JSONArray) Pending() bool { return d.state == arrElement }

// Err is the syntax error that stopped the decoder, or nil.
func (d *JSONArray) Err() error { return d.err }

// Dropped is the number of elements discarded for exceeding the cap.
func (d *JSONArray) Dropped() int { return d.dropped }

// Feed decodes chunk and calls emit with each complete element. The slice
// points into chunk when the element lies within it, else into the
// decoder's buffer: it is valid only during the call. Feed consumes the
// whole chunk, and returns the first error: emit's, ErrElementTooLarge, or
// ErrArraySyntax. After a syntax error it ignores what follows.
func (d *JSONArray) Feed(chunk []byte, emit func([]byte) error) error {
	var first error
	i := 0
	for i < len(chunk) && d.state != arrFailed {
		var err error
		if d.state == arrElement {
			start := i
			var done bool
			i, done = d.scan(chunk, i)
			err = d.element(chunk[start:i], done, emit)
		} else {
			i, err = d.between(chunk, i)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	d.offset += int64(len(chunk))
	return first
}

// between reads the whitespace and punctuation between elements, up to the
// first byte of the next element, and returns where it stopped.
func (d *JSONArray) between(p []byte, i int) (int, error) {
	for ; i < len(p); i++ {
		c := p[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			continue
		}
		switch {
		case d.state == arrStart && c == '[':
			d.state = arrFirst
		case d.state == arrFirst && c == ']', d.state == arrAfter && c == ']':
			d.state, d.closed = arrDone, true
		case d.state == arrAfter && c == ',':
			d.state = arrValue
		case (d.state == arrFirst || d.state == arrValue) && c != ']' && c != ',' && c != '}' && c != ':':
			d.startElement(c)
			return i, nil
		default:
			return len(p), d.fail(p, i)
		}
	}
	return i, nil
}

// startElement prepares to scan an element whose first byte is c. Strings
// and containers are delimited by their own bytes; anything else is a
// scalar, which ends at the next whitespace, ',' or ']'.
func (d *JSONArray) startElement(c byte) {
	d.state = arrElement
	d.depth, d.inString, d.escaped = 0, false, false
	d.scalar = c != '"' && c != '{' && c != '['
	d.size = 0
}

// fail stops the decoder at p[i].
func (d *JSONArray) fail(p []byte, i int) error {
	what := "unexpected"
	if d.state == arrStart {
		what = "expected '[', got"
	}
	d.err = fmt.Errorf("%w: %s %q at offset %d", ErrArraySyntax, what, p[i], d.offset+int64(i))
	d.state = arrFailed
	d.buf = nil
	return d.err
}

// scan advances through the current element from p[i] and returns the index
// just past its last byte and true, or len(p) and false when it goes on in
// a later chunk.
func (d *JSONArray) scan(p []byte, i int) (int, bool) {
	if d.scalar {
		for ; i < len(p); i++ {
			switch p[i] {
			case ' ', '\t', '\n', '\r', ',', ']':
				return i, true
			}
		}
		return i, false
	}
	for i < len(p) {
		if d.inString {
			i = d.scanString(p, i)
			if d.inString {
				return i, false
			}
			if d.depth == 0 {
				return i, true // the element was a string
			}
			continue
		}
		for i < len(p) && !structural[p[i]] {
			i++
		}
		if i == len(p) {
			break
		}
		switch p[i] {
		case '"':
			d.inString = true
		case '{', '[':
			d.depth++
		case '}', ']':
			// Which bracket closes which is the element reader's concern:
			// depth alone finds the end of anything valid.
			d.depth--
			if d.depth <= 0 {
				return i + 1, true
			}
		}
		i++
	}
	return i, false
}

// structural marks the bytes that matter outside strings.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// scanString advances through a string from p[i], which follows its opening
// quote or an earlier chunk's part of it, and returns the index just past
// the closing quote, or len(p) with inString still set.
func (d *JSONArray) scanString(p []byte, i int) int {
	if d.escaped { // the byte escaped at the end of the last chunk
		d.escaped = false
		i++
	}
	// Keys and short values end within a few bytes: a byte loop beats a
	// search's setup.
	for end := min(i+16, len(p)); i < end; i++ {
		switch p[i] {
		case '\\':
			if i+1 == len(p) {
				d.escaped = true
				return len(p)
			}
			i++
		case '"':
			d.inString = false
			return i + 1
		}
	}
	for i < len(p) {
		// Long text rarely holds escapes: find the quote with a vectorised
		// search, and look for a backslash only before it.
		rest := p[i:]
		q := bytes.IndexByte(rest, '"')
		if q >= 0 {
			rest = rest[:q]
		}
		if b := bytes.IndexByte(rest, '\\'); b >= 0 {
			if i+b+1 == len(p) {
				d.escaped = true
				return len(p)
			}
			i += b + 2
			continue
		}
		if q < 0 {
			return len(p)
		}
		d.inString = false
		return i + q + 1
	}
	return len(p)
}

// element takes the part of the current element found in one chunk. It
// emits the element when done, from the chunk itself when the element lies
// wholly within it.
func (d *JSONArray) element(part []byte, done bool, emit func([]byte) error) error {
	if done {
		d.state = arrAfter
	}
	if d.discarding {
		d.discarding = !done
		return nil
	}
	d.size += len(part)
	if d.size > d.limit() {
		// Checked before buffering, so the buffer never outgrows the cap.
		d.discarding = !done
		d.buf = d.buf[:0]
		d.dropped++
		return ErrElementTooLarge
	}
	if !done {
		d.buf = append(d.buf, part...)
		return nil
	}
	el := part
	if len(d.buf) > 0 {
		d.buf = append(d.buf, part...)
		el = d.buf
	}
	err := emit(el)
	d.buf = d.buf[:0]
	return err
}
