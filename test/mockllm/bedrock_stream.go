package mockllm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// errExceptionSent ends a stream that HeaderErrorEventAfter cut short on
// purpose.
var errExceptionSent = errors.New("exception sent")

// esWriter writes AWS event-stream messages, each flushed (after the chunk
// delay) as one frame, so tests observe real chunking.
type esWriter struct {
	ev  *eventWriter
	enc *eventstream.Encoder
	buf bytes.Buffer
}

// event encodes v as the JSON payload of an event.
func (e *esWriter) event(typ string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal %s: %w", typ, err)
	}
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("event"))
	return e.write(eventstream.Message{Headers: h, Payload: b})
}

// exception writes an exception message, as a stream that fails ends.
func (e *esWriter) exception(typ, msg string) error {
	b, err := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	if err != nil {
		return fmt.Errorf("marshal %s: %w", typ, err)
	}
	var h eventstream.Headers
	h.Set(":exception-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("exception"))
	return e.write(eventstream.Message{Headers: h, Payload: b})
}

func (e *esWriter) write(m eventstream.Message) error {
	e.buf.Reset()
	if err := e.enc.Encode(&e.buf, m); err != nil {
		return fmt.Errorf("encode event-stream message: %w", err)
	}
	return e.ev.writeFrame(e.buf.Bytes())
}

func (s *Server) streamBedrock(ctx context.Context, w http.ResponseWriter, p *bedrockPlan) {
	h := w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	if p.op == opInvokeStream {
		h.Set("X-Amzn-Bedrock-Content-Type", "application/json")
	}
	w.WriteHeader(p.status)
	es := &esWriter{
		ev:  &eventWriter{ctx: ctx, w: w, rc: http.NewResponseController(w), delay: p.delay},
		enc: eventstream.NewEncoder(),
	}
	var err error
	if p.op == opConverseStream {
		err = p.converseStream(es)
	} else {
		err = p.invokeStream(es)
	}
	if err != nil && !errors.Is(err, errExceptionSent) {
		s.log.Debug("stream ended early", "err", err)
	}
}

// checkpoint ends the stream where HeaderErrorEventAfter or
// HeaderStopAfter ask: before word i once K words were sent, or, when K is
// at least the number of words, after the last (final). On a tie the
// exception wins: it is the cleaner end.
func (p *bedrockPlan) checkpoint(es *esWriter, i int, final bool, exception string) error {
	if p.errorAfter >= 0 && (final || i >= p.errorAfter) {
		if err := es.exception(exception, "The mock stream failed as X-Mock-Error-Event-After asked."); err != nil {
			return err
		}
		return errExceptionSent
	}
	if p.stopAfter >= 0 && (final || i >= p.stopAfter) {
		// Everything written so far is flushed; dropping the connection now
		// is what a provider cut looks like to the proxy.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// ConverseStream event payloads, in the field order Bedrock sends.

type converseRoleJSON struct {
	Role string `json:"role"`
}

type converseDeltaJSON struct {
	ContentBlockIndex int          `json:"contentBlockIndex"`
	Delta             converseText `json:"delta"`
}

type converseIndexJSON struct {
	ContentBlockIndex int `json:"contentBlockIndex"`
}

type converseStopJSON struct {
	StopReason string `json:"stopReason"`
}

type converseMetadataJSON struct {
	Metrics converseMetrics   `json:"metrics"`
	Usage   converseUsageJSON `json:"usage"`
}

func (p *bedrockPlan) converseStream(es *esWriter) error {
	if err := es.event("messageStart", converseRoleJSON{"assistant"}); err != nil {
		return err
	}
	for i := range p.words {
		if err := p.checkpoint(es, i, false, "modelStreamErrorException"); err != nil {
			return err
		}
		if err := es.event("contentBlockDelta", converseDeltaJSON{Delta: converseText{word(i)}}); err != nil {
			return err
		}
	}
	if err := p.checkpoint(es, p.words, true, "modelStreamErrorException"); err != nil {
		return err
	}
	if err := es.event("contentBlockStop", converseIndexJSON{}); err != nil {
		return err
	}
	if err := es.event("messageStop", converseStopJSON{p.stopReason}); err != nil {
		return err
	}
	return es.event("metadata", converseMetadataJSON{converseMetrics{bedrockLatencyMs}, p.converseUsage()})
}

// InvokeModelWithResponseStream payloads.

type chunkPayloadJSON struct {
	Bytes string `json:"bytes"`
}

type invocationMetricsJSON struct {
	InputTokenCount           int64 `json:"inputTokenCount"`
	OutputTokenCount          int64 `json:"outputTokenCount"`
	InvocationLatency         int64 `json:"invocationLatency"`
	FirstByteLatency          int64 `json:"firstByteLatency"`
	CacheReadInputTokenCount  int64 `json:"cacheReadInputTokenCount"`
	CacheWriteInputTokenCount int64 `json:"cacheWriteInputTokenCount"`
}

type messageStopMetricsJSON struct {
	Type    string                `json:"type"`
	Metrics invocationMetricsJSON `json:"amazon-bedrock-invocationMetrics"`
}

// chunk writes one native Anthropic event, base64-encoded in a chunk.
func (es *esWriter) chunk(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal chunk: %w", err)
	}
	return es.event("chunk", chunkPayloadJSON{base64.StdEncoding.EncodeToString(b)})
}

// invokeStream writes Claude's Messages stream as Bedrock wraps it.
func (p *bedrockPlan) invokeStream(es *esWriter) error {
	u := p.usage
	start := u
	start.OutputTokens = 1 // the API's initial count, before any is generated
	err := es.chunk(messageStartJSON{Type: "message_start", Message: messageJSON{
		ID: p.id, Type: "message", Role: "assistant", Model: p.model, Content: []any{}, Usage: start,
	}})
	if err == nil {
		err = es.chunk(blockStartJSON{Type: "content_block_start", ContentBlock: textBlock{Type: "text"}})
	}
	for i := 0; err == nil && i < p.words; i++ {
		if err = p.checkpoint(es, i, false, "throttlingException"); err == nil {
			err = es.chunk(blockDeltaJSON{Type: "content_block_delta", Delta: textDelta{Type: "text_delta", Text: word(i)}})
		}
	}
	if err == nil {
		err = p.checkpoint(es, p.words, true, "throttlingException")
	}
	if err == nil {
		err = es.chunk(indexJSON{Type: "content_block_stop"})
	}
	if err == nil {
		err = es.chunk(messageDeltaJSON{Type: "message_delta", Delta: stopJSON{StopReason: p.stopReason},
			Usage: deltaUsage{OutputTokens: u.OutputTokens}})
	}
	if err == nil {
		err = es.chunk(messageStopMetricsJSON{Type: "message_stop", Metrics: invocationMetricsJSON{
			InputTokenCount: u.InputTokens, OutputTokenCount: u.OutputTokens,
			InvocationLatency: bedrockLatencyMs, FirstByteLatency: bedrockFirstByteMs,
			CacheReadInputTokenCount: u.CacheReadInputTokens, CacheWriteInputTokenCount: u.CacheCreationInputTokens,
		}})
	}
	return err
}
