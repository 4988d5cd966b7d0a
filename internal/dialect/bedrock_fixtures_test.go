package dialect

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// The Bedrock stream fixtures are binary (AWS event-stream), so they are
// generated here with the SDK's encoder from readable messages, and the
// output is committed. TestBedrockStreamFixturesGenerated fails when a
// committed file differs from what this file generates; run
//
//	go test ./dialect -run TestBedrockStreamFixturesGenerated -update-bedrock
//
// to rewrite them. meta.json and expected.json are written by hand.
var updateBedrock = flag.Bool("update-bedrock", false,
	"rewrite the generated Bedrock event-stream fixtures under testdata/bedrock_*")

// esEvent is an event-stream event as ConverseStream and
// InvokeModelWithResponseStream send it.
func esEvent(typ, payload string) eventstream.Message {
	var h eventstream.Headers
	h.Set(":event-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("event"))
	return eventstream.Message{Headers: h, Payload: []byte(payload)}
}

// esException is an exception message, as a stream that fails ends.
func esException(typ, message string) eventstream.Message {
	var h eventstream.Headers
	h.Set(":exception-type", eventstream.StringValue(typ))
	h.Set(":content-type", eventstream.StringValue("application/json"))
	h.Set(":message-type", eventstream.StringValue("exception"))
	return eventstream.Message{Headers: h, Payload: []byte(fmt.Sprintf(`{"message":%q}`, message))}
}

// esChunk is an InvokeModelWithResponseStream chunk carrying one native
// JSON event, base64-encoded, with Bedrock's padding member.
func esChunk(native string) eventstream.Message {
	return esEvent("chunk", `{"bytes":"`+base64.StdEncoding.EncodeToString([]byte(native))+`","p":"abcdefghijklmnop"}`)
}

func encodeEventStream(t testing.TB, msgs []eventstream.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, m := range msgs {
		if err := enc.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// converseDeltas are text deltas of ConverseStream, one per word.
func converseDeltas(words ...string) []eventstream.Message {
	var out []eventstream.Message
	for _, w := range words {
		out = append(out, esEvent("contentBlockDelta",
			fmt.Sprintf(`{"contentBlockIndex":0,"delta":{"text":%q},"p":"abcdefghijklmnopqrstuvwxyzABCD"}`, w)))
	}
	return out
}

func esConcat(parts ...[]eventstream.Message) []eventstream.Message {
	var out []eventstream.Message
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	converseStart = []eventstream.Message{esEvent("messageStart", `{"p":"abcdefghijklmnopqrstuvwxyzABCDEF","role":"assistant"}`)}
	converseEnd   = []eventstream.Message{
		esEvent("contentBlockStop", `{"contentBlockIndex":0,"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"}`),
		esEvent("messageStop", `{"p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU","stopReason":"end_turn"}`),
	}
	anthropicStart = []eventstream.Message{
		esChunk(`{"type":"message_start","message":{"id":"msg_bdrk_01Xq5mFHnyd3uNSHq7gYmmxT","type":"message","role":"assistant",` +
			`"model":"claude-3-5-sonnet-20241022","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":22,` +
			`"cache_creation_input_tokens":0,"cache_read_input_tokens":1024,"output_tokens":1}}}`),
		esChunk(`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`),
	}
)

func anthropicDeltas(words ...string) []eventstream.Message {
	var out []eventstream.Message
	for _, w := range words {
		out = append(out, esChunk(fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%q}}`, w)))
	}
	return out
}

// bedrockStreamFixture is one generated response: its messages, and how
// many trailing bytes to cut off (0 for none).
type bedrockStreamFixture struct {
	dir  string
	msgs []eventstream.Message
	cut  int
}

func bedrockStreamFixtures() []bedrockStreamFixture {
	words := []string{"Hello", "!", " How", " can", " I", " help", " \"you\"", " today", "?\n", " café"}
	return []bedrockStreamFixture{
		{"bedrock_converse_stream/converse_stream_basic", esConcat(converseStart, converseDeltas(words...), converseEnd,
			[]eventstream.Message{esEvent("metadata", `{"metrics":{"latencyMs":812},"p":"abcdefghijklmnopqrs",`+
				`"usage":{"inputTokens":25,"outputTokens":11,"totalTokens":36}}`)}), 0},
		{"bedrock_converse_stream/converse_stream_cache", esConcat(converseStart, converseDeltas(words[:3]...), converseEnd,
			[]eventstream.Message{esEvent("metadata", `{"metrics":{"latencyMs":640},"p":"abcdef","usage":{"cacheDetails":`+
				`[{"inputTokens":300,"ttl":"1h"},{"inputTokens":2000,"ttl":"5m"}],"cacheReadInputTokens":1024,`+
				`"cacheWriteInputTokens":2300,"inputTokens":18,"outputTokens":3,"totalTokens":3345}}`)}), 0},
		{"bedrock_converse_stream/converse_stream_exception", esConcat(converseStart, converseDeltas(words[:4]...),
			[]eventstream.Message{esException("modelStreamErrorException", "The model stream was interrupted.")}), 0},
		{"bedrock_converse_stream/converse_stream_truncated", esConcat(converseStart, converseDeltas(words[:5]...)), 20},
		{"bedrock_invoke_stream/invoke_stream_basic", esConcat(anthropicStart, anthropicDeltas(words...), []eventstream.Message{
			esChunk(`{"type":"content_block_stop","index":0}`),
			esChunk(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":11}}`),
			esChunk(`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":22,"outputTokenCount":11,` +
				`"invocationLatency":1834,"firstByteLatency":412,"cacheReadInputTokenCount":1024,"cacheWriteInputTokenCount":0}}`),
		}), 0},
		{"bedrock_invoke_stream/invoke_stream_exception", esConcat(anthropicStart, anthropicDeltas(words[:2]...),
			[]eventstream.Message{esException("throttlingException", "Too many tokens, please wait before trying again.")}), 0},
		{"bedrock_invoke_stream/invoke_stream_truncated", esConcat(anthropicStart, anthropicDeltas(words[:4]...)), 30},
	}
}

func TestBedrockStreamFixturesGenerated(t *testing.T) {
	for _, f := range bedrockStreamFixtures() {
		b := encodeEventStream(t, f.msgs)
		b = b[:len(b)-f.cut]
		path := filepath.Join("testdata", filepath.FromSlash(f.dir), "response")
		if *updateBedrock {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s differs from what the generator makes (%v); run with -update-bedrock", path, err)
		}
	}
}
