package mockllm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Stream event payloads, in the field order Anthropic sends.

type messageStartJSON struct {
	Type    string      `json:"type"`
	Message messageJSON `json:"message"`
}

type blockStartJSON struct {
	Type         string `json:"type"`
	Index        int    `json:"index"`
	ContentBlock any    `json:"content_block"`
}

type blockDeltaJSON struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
	Delta any    `json:"delta"`
}

type textDelta struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type thinkingDelta struct {
	Type     string `json:"type"`
	Thinking string `json:"thinking"`
}

type signatureDelta struct {
	Type      string `json:"type"`
	Signature string `json:"signature"`
}

type indexJSON struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
}

type messageDeltaJSON struct {
	Type  string     `json:"type"`
	Delta stopJSON   `json:"delta"`
	Usage deltaUsage `json:"usage"`
}

type stopJSON struct {
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
}

type typeJSON struct {
	Type string `json:"type"`
}

// errErrorEventSent ends a stream that HeaderErrorEventAfter cut short on
// purpose.
var errErrorEventSent = errors.New("error event sent")

// messageStream writes one Messages stream: message_start, a thinking
// block when asked for, the text block, message_delta, message_stop.
type messageStream struct {
	ev    *eventWriter
	p     *messagesPlan
	words int // word deltas sent, over every block
}

func (m *messageStream) run() error {
	p := m.p
	start := p.usage
	start.OutputTokens = 1 // the API's initial count, before any is generated
	err := m.send("message_start", messageStartJSON{Type: "message_start", Message: messageJSON{
		ID: p.id, Type: "message", Role: "assistant", Model: p.model, Content: []any{}, Usage: start,
	}})
	index := 0
	if err == nil && p.thinking > 0 {
		err = m.block(index, thinkingBlock{Type: "thinking"}, p.thinking)
		index++
	}
	if err == nil {
		err = m.block(index, textBlock{Type: "text"}, p.words)
	}
	if err == nil {
		err = m.checkpoint(true)
	}
	if err == nil {
		err = m.send("message_delta", messageDeltaJSON{Type: "message_delta",
			Delta: stopJSON{StopReason: p.stopReason}, Usage: m.deltaUsage()})
	}
	if err == nil {
		err = m.send("message_stop", typeJSON{Type: "message_stop"})
	}
	if err == nil || errors.Is(err, errErrorEventSent) {
		return m.ev.end()
	}
	return err
}

// block writes one content block of n words: thinking (with its
// signature) or text.
func (m *messageStream) block(index int, start any, n int) error {
	if err := m.send("content_block_start", blockStartJSON{Type: "content_block_start", Index: index, ContentBlock: start}); err != nil {
		return err
	}
	_, thinking := start.(thinkingBlock)
	for i := range n {
		if err := m.checkpoint(false); err != nil {
			return err
		}
		var d any = textDelta{Type: "text_delta", Text: word(i)}
		if thinking {
			d = thinkingDelta{Type: "thinking_delta", Thinking: word(i)}
		}
		if err := m.send("content_block_delta", blockDeltaJSON{Type: "content_block_delta", Index: index, Delta: d}); err != nil {
			return err
		}
		m.words++
	}
	if thinking {
		d := signatureDelta{Type: "signature_delta", Signature: m.p.signature}
		if err := m.send("content_block_delta", blockDeltaJSON{Type: "content_block_delta", Index: index, Delta: d}); err != nil {
			return err
		}
	}
	return m.send("content_block_stop", indexJSON{Type: "content_block_stop", Index: index})
}

// checkpoint ends the stream where HeaderErrorEventAfter or
// HeaderStopAfter ask: before the next word once K words were sent, or,
// when K is at least the number of words, before message_delta (final). On
// a tie the error event wins: it is the cleaner end.
func (m *messageStream) checkpoint(final bool) error {
	p := m.p
	if p.errorAfter >= 0 && (final || m.words >= p.errorAfter) {
		e := anthropicErrorJSON{Type: "error", Error: anthropicError{Type: "overloaded_error", Message: "Overloaded"}}
		if err := m.send("error", e); err != nil {
			return err
		}
		return errErrorEventSent
	}
	if p.stopAfter >= 0 && (final || m.words >= p.stopAfter) {
		// Everything written so far is flushed; dropping the connection now
		// is what a provider cut looks like to the proxy.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// deltaUsage is message_delta's usage: the cumulative output_tokens, and
// with HeaderDeltaFullUsage the input and cache totals repeated.
func (m *messageStream) deltaUsage() deltaUsage {
	u := m.p.usage
	d := deltaUsage{OutputTokens: u.OutputTokens}
	if m.p.fullDeltaUsage {
		d.InputTokens, d.CacheCreationInputTokens, d.CacheReadInputTokens = &u.InputTokens, &u.CacheCreationInputTokens, &u.CacheReadInputTokens
		d.CacheCreation = u.CacheCreation
	}
	return d
}

// send writes one named event: "event: <name>\ndata: <json>\n\n".
func (m *messageStream) send(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", name, err)
	}
	frame := make([]byte, 0, len(name)+len(b)+16)
	frame = append(frame, "event: "...)
	frame = append(frame, name...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, b...)
	frame = append(frame, "\n\n"...)
	return m.ev.writeFrame(frame)
}
