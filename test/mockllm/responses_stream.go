package mockllm

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// responsesEventJSON is one Responses stream event; each type fills its own
// members, in the order OpenAI sends them.
type responsesEventJSON struct {
	Type           string         `json:"type"`
	SequenceNumber int            `json:"sequence_number"`
	Response       *responseJSON  `json:"response,omitempty"`
	ItemID         string         `json:"item_id,omitempty"`
	OutputIndex    *int           `json:"output_index,omitempty"`
	ContentIndex   *int           `json:"content_index,omitempty"`
	Item           *outputMessage `json:"item,omitempty"`
	Part           *outputText    `json:"part,omitempty"`
	Delta          *string        `json:"delta,omitempty"`
	Text           *string        `json:"text,omitempty"`
}

// responsesStream writes one Responses stream: response.created,
// response.in_progress, the message item and its text part opening, one
// response.output_text.delta per word, their closing, then
// response.completed or response.incomplete with the usage.
type responsesStream struct {
	ev  *eventWriter
	p   *responsesPlan
	seq int
}

// index0 is the output and content index of the one message and text part.
var index0 = 0

func (s *responsesStream) run() error {
	p := s.p
	inProgress := p.response("in_progress", 0)
	item := p.message("in_progress", 0)
	item.Content = []outputText{}
	part := outputText{Type: "output_text", Annotations: []any{}}
	err := s.send(responsesEventJSON{Type: "response.created", Response: &inProgress})
	if err == nil {
		err = s.send(responsesEventJSON{Type: "response.in_progress", Response: &inProgress})
	}
	if err == nil {
		err = s.send(responsesEventJSON{Type: "response.output_item.added", OutputIndex: &index0, Item: &item})
	}
	if err == nil {
		err = s.send(s.inText(responsesEventJSON{Type: "response.content_part.added", Part: &part}))
	}
	for i := 0; i < p.words && err == nil; i++ {
		if p.stopAfter >= 0 && i >= p.stopAfter {
			break
		}
		w := word(i)
		err = s.send(s.inText(responsesEventJSON{Type: "response.output_text.delta", Delta: &w}))
	}
	if err != nil {
		return err
	}
	if p.stopAfter >= 0 {
		// Everything written so far is flushed; dropping the connection now
		// is what a provider cut looks like to the proxy.
		panic(http.ErrAbortHandler)
	}
	return s.finish()
}

// finish closes the text part and the item, and sends the terminal event.
func (s *responsesStream) finish() error {
	p := s.p
	status := p.finalStatus()
	text := ReplyText(p.words)
	done := p.message(status, p.words)
	err := s.send(s.inText(responsesEventJSON{Type: "response.output_text.done", Text: &text}))
	if err == nil {
		err = s.send(s.inText(responsesEventJSON{Type: "response.content_part.done", Part: &done.Content[0]}))
	}
	if err == nil {
		err = s.send(responsesEventJSON{Type: "response.output_item.done", OutputIndex: &index0, Item: &done})
	}
	if err == nil {
		final := p.response(status, p.words)
		err = s.send(responsesEventJSON{Type: "response." + status, Response: &final})
	}
	if err != nil {
		return err
	}
	return s.ev.end()
}

// inText addresses e to the message's text part.
func (s *responsesStream) inText(e responsesEventJSON) responsesEventJSON {
	e.ItemID, e.OutputIndex, e.ContentIndex = s.p.msgID, &index0, &index0
	return e
}

// send writes one event, named by its type as OpenAI names them:
// "event: <type>\ndata: <json>\n\n".
func (s *responsesStream) send(e responsesEventJSON) error {
	e.SequenceNumber = s.seq
	s.seq++
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", e.Type, err)
	}
	frame := make([]byte, 0, len(e.Type)+len(b)+16)
	frame = append(frame, "event: "...)
	frame = append(frame, e.Type...)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, b...)
	frame = append(frame, "\n\n"...)
	return s.ev.writeFrame(frame)
}
