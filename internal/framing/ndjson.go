package framing

import (
	"bytes"
	"errors"
)

// DefaultMaxLine caps a line's size when NewNDJSON is given no positive cap.
const DefaultMaxLine = 1 << 20

// ErrLineTooLarge is returned by NDJSON.Feed when a line exceeds its cap. The
// decoder drops that line and resumes after its line feed.
var ErrLineTooLarge = errors.New("framing: ndjson line too large")

// NDJSON splits a newline-delimited JSON body (application/x-ndjson, JSON
// Lines, Cohere's application/stream+json) into its lines. It does not parse
// the JSON: a dialect does.
//
// A line ends at LF; a CR just before the LF is dropped, so CRLF bodies read
// the same. A lone CR is not a line end: in JSON it can only be whitespace.
// Lines holding nothing but spaces, tabs and CRs are skipped, as the NDJSON
// and JSON Lines specifications allow. The last line of a body may lack its
// LF; Flush emits it.
//
// The zero value is ready to use with DefaultMaxLine.
type NDJSON struct {
	max int

	line       []byte // the unfinished line carried over from earlier chunks
	discarding bool   // dropping an oversized line until its LF
	dropped    int
}

// NewNDJSON returns a decoder that buffers at most maxLine bytes of one line
// (DefaultMaxLine when maxLine <= 0). The cap counts a line's bytes before
// its LF, a CR included, so whether a line is too large never depends on how
// the body was chunked.
func NewNDJSON(maxLine int) *NDJSON { return &NDJSON{max: maxLine} }

func (d *NDJSON) limit() int {
	if d.max <= 0 {
		return DefaultMaxLine
	}
	return d.max
}

// Pending reports whether a line is unfinished, buffered or being skipped for
// its size: a body that ends now was cut mid-line, unless Flush finds the
// buffered line whole. A partial line of whitespace does not count.
func (d *NDJSON) Pending() bool { return d.discarding || !blankLine(d.line) }

// Dropped is the number of lines discarded for exceeding the cap.
func (d *NDJSON) Dropped() int { return d.dropped }

// Feed splits chunk and calls emit for each complete, non-blank line. The
// line passed to emit may point into chunk or into the decoder's buffer: it
// is valid only during the call. Feed always consumes the whole chunk and
// returns the first error: emit's, or ErrLineTooLarge.
func (d *NDJSON) Feed(chunk []byte, emit func(line []byte) error) error {
	var first error
	p := chunk
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if d.discarding {
			if i < 0 {
				break
			}
			d.discarding = false
			p = p[i+1:]
			continue
		}
		if i < 0 {
			if err := d.keepPartial(p); err != nil && first == nil {
				first = err
			}
			break
		}
		line := p[:i]
		p = p[i+1:]
		var err error
		switch {
		case len(d.line)+len(line) > d.limit():
			// Checked before appending, so the buffer never outgrows the cap.
			d.dropped++
			err = ErrLineTooLarge
		case len(d.line) > 0:
			d.line = append(d.line, line...)
			err = emitNDJSONLine(d.line, emit)
		default:
			// The common case: a whole line inside one chunk, emitted in
			// place without a copy.
			err = emitNDJSONLine(line, emit)
		}
		d.line = d.line[:0]
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// keepPartial buffers an unfinished line, or starts discarding it when it is
// already over the cap.
func (d *NDJSON) keepPartial(p []byte) error {
	if len(d.line)+len(p) > d.limit() {
		d.line = d.line[:0]
		d.discarding = true
		d.dropped++
		return ErrLineTooLarge
	}
	d.line = append(d.line, p...)
	return nil
}

// Flush emits the buffered last line of a body that did not end with LF, if
// it is not blank, and resets the decoder for a new body. A line being
// discarded for its size stays dropped: Feed already reported it.
func (d *NDJSON) Flush(emit func(line []byte) error) error {
	var err error
	if !d.discarding && len(d.line) > 0 {
		err = emitNDJSONLine(d.line, emit)
	}
	d.line, d.discarding = d.line[:0], false
	return err
}

// emitNDJSONLine drops a CRLF's CR and skips blank lines.
func emitNDJSONLine(line []byte, emit func([]byte) error) error {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if blankLine(line) {
		return nil
	}
	return emit(line)
}

// blankLine reports whether b holds only spaces, tabs and CRs.
func blankLine(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
