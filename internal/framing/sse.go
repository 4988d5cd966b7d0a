// Package framing splits response bodies that arrive in chunks, split
// anywhere, into the messages a dialect reads. It knows nothing of providers.
package framing

import (
	"bytes"
	"errors"
)

// DefaultMaxEvent caps an event's size when NewSSE is given no positive cap.
const DefaultMaxEvent = 1 << 20

// ErrEventTooLarge is returned by SSE.Feed when an event exceeds its cap. The
// decoder drops that event and resumes at the next blank line.
var ErrEventTooLarge = errors.New("framing: sse event too large")

// Event is one dispatched server-sent event. Its slices may point into the
// chunk being fed or into the decoder's buffers: they are valid only during
// the callback.
type Event struct {
	Name []byte // the last "event" field's value; empty when there was none
	Data []byte // the "data" field values joined with "\n"
}

// SSE decodes a text/event-stream body following the WHATWG EventSource
// parsing rules (HTML Living Standard, "Server-sent events", section
// "Interpreting an event stream"). The "id" and "retry" fields are ignored:
// a metering proxy never reconnects.
//
// The zero value is ready to use with DefaultMaxEvent.
type SSE struct {
	max int

	line []byte // the unfinished line carried over from earlier chunks
	data []byte // the current event's data, when it cannot point into a chunk
	name []byte

	// ref is the current event's only data value, pointing into the chunk
	// being fed, so the common one-line event is emitted without a copy.
	ref    []byte
	hasRef bool
	nData  int // data lines seen in the current event

	// size counts the current event's line bytes, terminators excluded. It
	// does not depend on how the body was chunked, so neither does the
	// decision that an event is too large.
	size int

	skipLF     bool // the previous chunk ended in CR: a leading LF ends no line
	started    bool // the first line was seen (a BOM is stripped only there)
	discarding bool // dropping an oversized event until the next blank line
	midLine    bool // while discarding: the current line is not empty
	dropped    int
}

// NewSSE returns a decoder that buffers at most maxEvent bytes of one event
// (DefaultMaxEvent when maxEvent <= 0).
func NewSSE(maxEvent int) *SSE { return &SSE{max: maxEvent} }

func (d *SSE) limit() int {
	if d.max <= 0 {
		return DefaultMaxEvent
	}
	return d.max
}

// Pending reports whether an event is unfinished, buffered or being skipped
// for its size: a body that ends now was cut mid-event. A trailing comment
// or a line end still awaiting its LF does not count.
func (d *SSE) Pending() bool { return d.discarding || len(d.line) > 0 || d.nData > 0 }

// Dropped is the number of events discarded for exceeding the cap.
func (d *SSE) Dropped() int { return d.dropped }

// Feed decodes chunk and calls emit for each complete event. It always
// consumes the whole chunk, and returns the first error: emit's, or
// ErrEventTooLarge.
func (d *SSE) Feed(chunk []byte, emit func(Event) error) error {
	var first error
	p := chunk
	if d.skipLF && len(p) > 0 {
		d.skipLF = false
		if p[0] == '\n' {
			p = p[1:]
		}
	}
	for len(p) > 0 {
		if d.discarding {
			p = d.discard(p)
			continue
		}
		i := indexEOL(p)
		if i < 0 {
			if err := d.keepPartial(p); err != nil && first == nil {
				first = err
			}
			break
		}
		line, owned := p[:i], false
		p = d.afterEOL(p, i)
		var err error
		switch {
		case len(d.line) == 0:
		case d.size+len(d.line)+len(line) > d.limit():
			// Checked before appending, so the buffer never outgrows the cap.
			d.startDiscard(false)
			err = ErrEventTooLarge
		default:
			d.line = d.appendRoomy(d.line, line)
			line, owned = d.line, true
		}
		if !d.discarding {
			err = d.processLine(line, owned, emit)
		}
		d.line = d.line[:0]
		if err != nil && first == nil {
			first = err
		}
	}
	if d.hasRef {
		// The chunk is the caller's again once Feed returns.
		d.data = d.appendRoomy(d.data[:0], d.ref)
		d.ref, d.hasRef = nil, false
	}
	return first
}

// indexEOL returns the index of the first CR or LF in p, or -1. Two
// vectorised searches beat one byte loop: CR is rare, and the second search
// only covers the line the first one found.
func indexEOL(p []byte) int {
	i := bytes.IndexByte(p, '\n')
	line := p
	if i >= 0 {
		line = p[:i]
	}
	if j := bytes.IndexByte(line, '\r'); j >= 0 {
		return j
	}
	return i
}

// afterEOL returns p past the line end at p[i]. A CR that ends the chunk
// may be the first half of a CRLF split across chunks.
func (d *SSE) afterEOL(p []byte, i int) []byte {
	if p[i] == '\r' {
		if i+1 == len(p) {
			d.skipLF = true
			return nil
		}
		if p[i+1] == '\n' {
			return p[i+2:]
		}
	}
	return p[i+1:]
}

// keepPartial buffers an unfinished line, or starts discarding when the
// event it belongs to is already over the cap.
func (d *SSE) keepPartial(p []byte) error {
	if d.size+len(d.line)+len(p) > d.limit() {
		d.startDiscard(true)
		return ErrEventTooLarge
	}
	d.line = d.appendRoomy(d.line, p)
	return nil
}

// processLine interprets one complete line. owned says whether line lives in
// the decoder's own buffer rather than in the caller's chunk.
func (d *SSE) processLine(line []byte, owned bool, emit func(Event) error) error {
	// The cap counts raw bytes, BOM included, as keepPartial does.
	if d.size+len(line) > d.limit() {
		d.startDiscard(false)
		return ErrEventTooLarge
	}
	d.size += len(line)
	if !d.started {
		d.started = true
		line = bytes.TrimPrefix(line, bom)
	}
	if len(line) == 0 {
		return d.dispatch(emit)
	}
	if line[0] == ':' {
		return nil
	}
	field, value := line, []byte(nil)
	if c := bytes.IndexByte(line, ':'); c >= 0 {
		field, value = line[:c], line[c+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "data":
		d.addData(value, owned)
	case "event":
		d.name = d.appendRoomy(d.name[:0], value)
	}
	return nil
}

var bom = []byte("\xEF\xBB\xBF")

func (d *SSE) addData(value []byte, owned bool) {
	switch {
	case d.nData == 0 && !owned:
		d.ref, d.hasRef = value, true
	case d.nData == 0:
		d.data = d.appendRoomy(d.data[:0], value)
	default:
		if d.hasRef {
			d.data = d.appendRoomy(d.data[:0], d.ref)
			d.ref, d.hasRef = nil, false
		}
		d.data = d.appendRoomy(d.data, newline)
		d.data = d.appendRoomy(d.data, value)
	}
	d.nData++
}

var newline = []byte("\n")

// appendRoomy appends p to b. When b must grow, it gets room for twice what
// it then holds, within the event cap: the events of a stream are of
// similar sizes, so one a little larger than any before (a count that
// gained a digit, the last event with its usage) still fits, where the
// exact fit of append's first allocation would make it allocate again in
// the middle of a stream (issue 7).
func (d *SSE) appendRoomy(b, p []byte) []byte {
	if n := len(b) + len(p); n > cap(b) {
		grown := make([]byte, len(b), max(n, min(2*n, d.limit())))
		copy(grown, b)
		b = grown
	}
	return append(b, p...)
}

func (d *SSE) dispatch(emit func(Event) error) error {
	var err error
	if d.nData > 0 {
		data := d.data
		if d.hasRef {
			data = d.ref
		}
		err = emit(Event{Name: d.name, Data: data})
	}
	d.resetEvent()
	return err
}

func (d *SSE) resetEvent() {
	d.data, d.name = d.data[:0], d.name[:0]
	d.ref, d.hasRef = nil, false
	d.nData, d.size = 0, 0
}

// startDiscard drops the current event. midLine says whether the line that
// overflowed is still unfinished, so that its end is not taken for a blank
// line.
func (d *SSE) startDiscard(midLine bool) {
	d.resetEvent()
	d.line = d.line[:0]
	d.started = true
	d.discarding, d.midLine = true, midLine
	d.dropped++
}

// discard skips bytes up to and including the next blank line and returns
// the rest of p.
func (d *SSE) discard(p []byte) []byte {
	for len(p) > 0 {
		i := indexEOL(p)
		if i < 0 {
			d.midLine = true
			return nil
		}
		blank := i == 0 && !d.midLine
		d.midLine = false
		p = d.afterEOL(p, i)
		if blank {
			d.discarding = false
			return p
		}
	}
	return p
}
