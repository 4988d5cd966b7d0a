package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// DefaultMaxMessage caps an event-stream message when NewEventStream is
// given no positive cap.
const DefaultMaxMessage = 1 << 20

// The AWS event-stream layout: a 12-byte prelude (total length, headers
// length, prelude CRC), the headers, the payload, then a 4-byte message CRC.
// Only the first field is read here, to know how many bytes make a message;
// everything else, checksums included, is the SDK decoder's job.
const (
	esPreludeLen = 12
	esMinMessage = esPreludeLen + 4 // no headers, no payload
)

// ErrMessageTooLarge is returned by EventStream.Feed when a message's
// declared length exceeds the cap. The message is skipped without being
// buffered (its prelude checksum is verified first, so the length can be
// trusted) and decoding resumes after it.
var ErrMessageTooLarge = errors.New("framing: event-stream message too large")

// ErrCorrupt is wrapped by the error EventStream.Feed returns when a
// message fails its checksum or is malformed. A corrupt length leaves no way
// to find the next message, so the decoder stops there for good.
var ErrCorrupt = errors.New("framing: corrupt event-stream")

// Message is one decoded event-stream message: the headers a reader
// dispatches on and the payload. Payload is valid only during the callback.
type Message struct {
	MessageType   string // ":message-type": "event", "exception" or "error"
	EventType     string // ":event-type", for events
	ExceptionType string // ":exception-type", for exceptions (e.g. "throttlingException")
	ErrorCode     string // ":error-code", for errors
	Payload       []byte
}

// EventStream is an incremental decoder of the AWS event-stream encoding
// (application/vnd.amazon.eventstream), which Bedrock's ConverseStream and
// InvokeModelWithResponseStream use. Feed accepts a body split anywhere.
//
// Messages that arrive whole inside a chunk are decoded straight from it;
// only a message split across chunks is copied into a buffer, and only once,
// so the work is linear in the body and memory is bounded by the cap.
type EventStream struct {
	max int
	dec *eventstream.Decoder
	rd  bytes.Reader

	buf     []byte // the start of a message split across chunks
	skip    int    // bytes of an oversized message still to discard
	payload []byte // reused for each message's payload
	dropped int
	err     error // set when the stream was found corrupt; input is ignored after
}

// NewEventStream returns a decoder that holds at most maxMessage bytes of
// one message (DefaultMaxMessage when maxMessage <= 0).
func NewEventStream(maxMessage int) *EventStream {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessage
	}
	return &EventStream{max: maxMessage, dec: eventstream.NewDecoder()}
}

// Pending reports whether a message is unfinished (buffered or being
// skipped): a body that ends now was cut mid-message.
func (d *EventStream) Pending() bool { return len(d.buf) > 0 || d.skip > 0 }

// Dropped is the number of messages skipped for exceeding the cap.
func (d *EventStream) Dropped() int { return d.dropped }

// Err is the corruption that stopped the decoder, or nil.
func (d *EventStream) Err() error { return d.err }

// Feed decodes chunk and calls emit for each complete message. It returns
// the first error: emit's, ErrMessageTooLarge, or one wrapping ErrCorrupt.
// After corruption it ignores all further input and returns nil.
func (d *EventStream) Feed(chunk []byte, emit func(Message) error) error {
	var first error
	note := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	p := chunk
	for len(p) > 0 && d.err == nil {
		switch {
		case d.skip > 0:
			n := min(d.skip, len(p))
			d.skip -= n
			p = p[n:]
		case len(d.buf) > 0:
			var err error
			p, err = d.fill(p, emit)
			note(err)
		default:
			var err error
			p, err = d.direct(p, emit)
			note(err)
		}
	}
	return first
}

// direct decodes the message at the start of p without copying it when p
// holds all of it; otherwise it buffers p's start or begins a skip. It
// returns the rest of p.
func (d *EventStream) direct(p []byte, emit func(Message) error) ([]byte, error) {
	if len(p) < 4 {
		d.buf = append(d.buf, p...)
		return nil, nil
	}
	total, err := d.length(p)
	switch {
	case err != nil:
		return nil, err
	case total > d.max && len(p) >= esPreludeLen:
		// Over the cap even when whole in p, so that how the body was
		// chunked never decides whether a message is read.
		skipped := min(total, len(p))
		err := d.drop(p[:skipped], total)
		return p[skipped:], err
	case total <= len(p):
		return p[total:], d.decode(p[:total], emit)
	}
	// A part of the message: buffer it, or, for one over the cap, just
	// enough of its prelude to verify the length before skipping it.
	d.buf = append(d.buf, p...)
	return nil, nil
}

// fill tops up a buffered message from p and decodes it once whole. The
// prelude comes first: its length and checksum decide what to do.
func (d *EventStream) fill(p []byte, emit func(Message) error) ([]byte, error) {
	if len(d.buf) < esPreludeLen {
		n := min(esPreludeLen-len(d.buf), len(p))
		d.buf = append(d.buf, p[:n]...)
		p = p[n:]
	}
	if len(d.buf) < 4 {
		return p, nil
	}
	total, err := d.length(d.buf)
	switch {
	case err != nil:
		return nil, err
	case total > d.max && len(d.buf) < esPreludeLen:
		return p, nil
	case total > d.max:
		err := d.drop(d.buf, total)
		d.buf = d.buf[:0]
		return p, err
	}
	// A corrupt length under the cap is not checked for here: the message
	// checksum catches it once the bytes arrive, and checking each split
	// message's prelude early would cost a second decode for a case that
	// TLS makes all but impossible.
	n := min(total-len(d.buf), len(p))
	d.buf = append(d.buf, p[:n]...)
	p = p[n:]
	if len(d.buf) < total {
		return p, nil
	}
	err = d.decode(d.buf, emit)
	d.buf = d.buf[:0]
	return p, err
}

// length reads a message's declared total length from its first 4 bytes.
func (d *EventStream) length(b []byte) (int, error) {
	total := int(binary.BigEndian.Uint32(b))
	if total < esMinMessage {
		return 0, d.corrupt(fmt.Errorf("message length %d is below the minimum %d", total, esMinMessage))
	}
	return total, nil
}

// drop starts skipping a message over the cap, of which b holds the first
// bytes (its whole prelude), once the prelude checksum shows that the
// length can be trusted to find the next message.
func (d *EventStream) drop(b []byte, total int) error {
	if err := d.checkPrelude(b); err != nil {
		return err
	}
	d.dropped++
	d.skip = total - len(b)
	return fmt.Errorf("%w: %d bytes, cap %d", ErrMessageTooLarge, total, d.max)
}

// checkPrelude verifies the prelude checksum at the start of b, a message
// whose bytes will not all be read. The SDK checks it: decoding the prelude
// alone fails with a ChecksumError when it is wrong, and for want of bytes
// otherwise.
func (d *EventStream) checkPrelude(b []byte) error {
	d.rd.Reset(b[:esPreludeLen])
	if _, err := d.dec.Decode(&d.rd, d.payload[:0]); errors.As(err, new(eventstream.ChecksumError)) {
		return d.corrupt(fmt.Errorf("prelude: %w", err))
	}
	return nil
}

// decode decodes one whole message with the SDK's decoder, which checks
// both checksums, and emits it.
func (d *EventStream) decode(b []byte, emit func(Message) error) error {
	d.rd.Reset(b)
	m, err := d.dec.Decode(&d.rd, d.payload[:0])
	if err == nil && d.rd.Len() != 0 {
		err = fmt.Errorf("%d bytes inside the message's length were not part of it", d.rd.Len())
	}
	if err != nil {
		return d.corrupt(err)
	}
	if cap(m.Payload) > cap(d.payload) {
		d.payload = m.Payload[:0]
	}
	msg := Message{Payload: m.Payload}
	for _, h := range m.Headers {
		v, ok := h.Value.(eventstream.StringValue)
		if !ok {
			continue
		}
		switch h.Name {
		case ":message-type":
			msg.MessageType = string(v)
		case ":event-type":
			msg.EventType = string(v)
		case ":exception-type":
			msg.ExceptionType = string(v)
		case ":error-code":
			msg.ErrorCode = string(v)
		}
	}
	return emit(msg)
}

func (d *EventStream) corrupt(err error) error {
	d.err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	d.buf, d.skip = nil, 0
	return d.err
}
