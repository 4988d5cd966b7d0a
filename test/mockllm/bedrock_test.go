package mockllm_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

const (
	bedrockModelPath = "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0"
	bedrockModel     = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
	// converseBody's prompt: the system prompt is one more term,
	// 3 + (4 + ceil(16/4)) + (4 + ceil(5/4)).
	converseBody   = `{"system":[{"text":"You are helpful."}],"messages":[{"role":"user","content":[{"text":"hello"}]}]}`
	conversePrompt = 3 + (4 + 4) + (4 + 2)
	invokeBody     = `{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"system":"You are helpful.",` +
		`"messages":[{"role":"user","content":"hello"}]}`
)

func postBedrock(t *testing.T, base, op, body string, headers map[string]string) result {
	t.Helper()
	return do(t, http.MethodPost, base+bedrockModelPath+"/"+op, body, headers)
}

type converseUsage struct {
	InputTokens           int64  `json:"inputTokens"`
	OutputTokens          int64  `json:"outputTokens"`
	TotalTokens           int64  `json:"totalTokens"`
	CacheReadInputTokens  *int64 `json:"cacheReadInputTokens"`
	CacheWriteInputTokens *int64 `json:"cacheWriteInputTokens"`
	CacheDetails          []struct {
		InputTokens int64  `json:"inputTokens"`
		TTL         string `json:"ttl"`
	} `json:"cacheDetails"`
}

type converseResponse struct {
	Output struct {
		Message struct {
			Role    string `json:"role"`
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"message"`
	} `json:"output"`
	StopReason string        `json:"stopReason"`
	Usage      converseUsage `json:"usage"`
}

func TestBedrockConverse(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	if n, err := mockllm.BedrockConversePromptTokens([]byte(converseBody)); err != nil || n != conversePrompt {
		t.Fatalf("BedrockConversePromptTokens = %d, %v; want %d", n, err, conversePrompt)
	}
	r := postBedrock(t, base, "converse", converseBody, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, headers %v, body %s", r.status, r.header, r.body)
	}
	got := decode[converseResponse](t, r.body)
	if got.Output.Message.Role != "assistant" || got.Output.Message.Content[0].Text != mockllm.ReplyText(8) || got.StopReason != "end_turn" {
		t.Fatalf("response %+v", got)
	}
	want := converseUsage{InputTokens: conversePrompt, OutputTokens: 8, TotalTokens: conversePrompt + 8}
	if !reflect.DeepEqual(got.Usage, want) {
		t.Fatalf("usage %+v, want %+v (no cache fields without cache headers)", got.Usage, want)
	}
	if again := postBedrock(t, base, "converse", converseBody, nil); !bytes.Equal(again.body, r.body) {
		t.Fatal("not deterministic")
	}
	// maxTokens cuts the reply.
	capped := postBedrock(t, base, "converse", strings.TrimSuffix(converseBody, "}")+`,"inferenceConfig":{"maxTokens":3}}`, nil)
	if c := decode[converseResponse](t, capped.body); c.StopReason != "max_tokens" || c.Usage.OutputTokens != 3 {
		t.Fatalf("capped: %+v", c)
	}
}

func TestBedrockConverseCache(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	r := postBedrock(t, base, "converse", converseBody, map[string]string{
		mockllm.HeaderPromptTokens: "5000", mockllm.HeaderCachedTokens: "1000",
		mockllm.HeaderCacheWriteTokens: "2000", mockllm.HeaderCacheWrite1hTokens: "300",
	})
	u := decode[converseResponse](t, r.body).Usage
	if u.InputTokens != 1700 || *u.CacheReadInputTokens != 1000 || *u.CacheWriteInputTokens != 2300 || u.TotalTokens != 5008 ||
		len(u.CacheDetails) != 2 || u.CacheDetails[0].TTL != "1h" || u.CacheDetails[0].InputTokens != 300 || u.CacheDetails[1].InputTokens != 2000 {
		t.Fatalf("usage %+v", u)
	}
	if r := postBedrock(t, base, "converse", converseBody, map[string]string{mockllm.HeaderCachedTokens: "100"}); r.status != 400 ||
		!strings.HasPrefix(r.header.Get("X-Amzn-ErrorType"), "ValidationException:") {
		t.Fatalf("cache over the prompt: status %d %v", r.status, r.header)
	}
}

// esMessage is a decoded event-stream message.
type esMessage struct {
	messageType, eventType, exceptionType string
	payload                               string
}

// readEventStream decodes a body with the SDK, stopping at a cut.
func readEventStream(t *testing.T, body []byte) []esMessage {
	t.Helper()
	dec := eventstream.NewDecoder()
	r := bytes.NewReader(body)
	var out []esMessage
	for r.Len() > 0 {
		m, err := dec.Decode(r, nil)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		} else if err != nil {
			t.Fatalf("decode: %v", err)
		}
		s := func(name string) string {
			v, _ := m.Headers.Get(name).(eventstream.StringValue)
			return string(v)
		}
		out = append(out, esMessage{s(":message-type"), s(":event-type"), s(":exception-type"), string(m.Payload)})
	}
	return out
}

func TestBedrockConverseStream(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	r := postBedrock(t, base, "converse-stream", converseBody, map[string]string{mockllm.HeaderCompletionTokens: "3"})
	if r.status != 200 || r.readErr != nil || r.header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
		t.Fatalf("status %d, read error %v, headers %v", r.status, r.readErr, r.header)
	}
	got := readEventStream(t, r.body)
	want := []esMessage{
		{"event", "messageStart", "", `{"role":"assistant"}`},
		{"event", "contentBlockDelta", "", `{"contentBlockIndex":0,"delta":{"text":"lorem"}}`},
		{"event", "contentBlockDelta", "", `{"contentBlockIndex":0,"delta":{"text":" ipsum"}}`},
		{"event", "contentBlockDelta", "", `{"contentBlockIndex":0,"delta":{"text":" dolor"}}`},
		{"event", "contentBlockStop", "", `{"contentBlockIndex":0}`},
		{"event", "messageStop", "", `{"stopReason":"end_turn"}`},
		{"event", "metadata", "", `{"metrics":{"latencyMs":100},"usage":{"inputTokens":17,"outputTokens":3,"totalTokens":20}}`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestBedrockStreamEnds(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, tc := range []struct {
		op, header, exception string
		cut                   bool
		deltas                int
	}{
		{"converse-stream", mockllm.HeaderStopAfter, "", true, 2},
		{"converse-stream", mockllm.HeaderErrorEventAfter, "modelStreamErrorException", false, 2},
		{"invoke-with-response-stream", mockllm.HeaderStopAfter, "", true, 2},
		{"invoke-with-response-stream", mockllm.HeaderErrorEventAfter, "throttlingException", false, 2},
	} {
		t.Run(tc.op+" "+tc.header, func(t *testing.T) {
			body := converseBody
			if tc.op != "converse-stream" {
				body = invokeBody
			}
			r := postBedrock(t, base, tc.op, body, map[string]string{tc.header: "2"})
			if r.status != 200 || (r.readErr != nil) != tc.cut {
				t.Fatalf("status %d, read error %v, want cut=%v", r.status, r.readErr, tc.cut)
			}
			msgs := readEventStream(t, r.body)
			last := msgs[len(msgs)-1]
			deltas := 0
			for _, m := range msgs {
				if m.eventType == "contentBlockDelta" {
					deltas++
				}
			}
			for _, typ := range invokeChunkTypes(t, msgs) {
				if typ == "content_block_delta" {
					deltas++
				}
			}
			if tc.exception != "" && (last.messageType != "exception" || last.exceptionType != tc.exception) {
				t.Fatalf("last message %+v, want a %s", last, tc.exception)
			}
			if deltas != tc.deltas {
				t.Fatalf("%d deltas, want %d", deltas, tc.deltas)
			}
			// And the meter explains the end as it should.
			d, _ := dialect.DefaultRegistry().ForPath(bedrockModelPath + "/" + tc.op)
			dec := d.NewDecoder(dialect.Response{Status: r.status, ContentType: r.header.Get("Content-Type"),
				Header: func(name string) string { return r.header.Get(name) }}, 0)
			_ = dec.Feed(r.body)
			want := reason.ProviderError
			if tc.cut {
				want = reason.Truncated
			}
			if res := dec.Finish(!tc.cut); reason.Of(res.Err) != want {
				t.Fatalf("meter: %v, want %s", res.Err, want)
			}
		})
	}
}

// invokeChunkTypes decodes the chunk events of an invoke stream and returns
// the native events' types, and the last native event.
func invokeChunkTypes(t *testing.T, msgs []esMessage) []string {
	t.Helper()
	types, _ := invokeChunks(t, msgs)
	return types
}

func invokeChunks(t *testing.T, msgs []esMessage) (types []string, last map[string]any) {
	t.Helper()
	for _, m := range msgs {
		if m.eventType != "chunk" {
			continue
		}
		var chunk struct {
			Bytes string `json:"bytes"`
		}
		if err := json.Unmarshal([]byte(m.payload), &chunk); err != nil {
			t.Fatalf("message %+v: %v", m, err)
		}
		native, err := base64.StdEncoding.DecodeString(chunk.Bytes)
		if err != nil || json.Unmarshal(native, &last) != nil {
			t.Fatalf("chunk %q: %v", chunk.Bytes, err)
		}
		types = append(types, last["type"].(string))
	}
	return types, last
}

func TestBedrockInvoke(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	r := postBedrock(t, base, "invoke", invokeBody, map[string]string{mockllm.HeaderCachedTokens: "4"})
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	for name, want := range map[string]string{
		"X-Amzn-Bedrock-Input-Token-Count": "13", "X-Amzn-Bedrock-Output-Token-Count": "8",
		"X-Amzn-Bedrock-Cache-Read-Input-Token-Count": "4", "X-Amzn-Bedrock-Cache-Write-Input-Token-Count": "0",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	var msg struct {
		Model string `json:"model"`
		Usage struct {
			InputTokens int64 `json:"input_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(r.body, &msg); err != nil || msg.Model != bedrockModel || msg.Usage.InputTokens != 13 {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if r := postBedrock(t, base, "invoke", `{"messages":[]}`, nil); r.status != 400 {
		t.Fatalf("no max_tokens: status %d", r.status)
	}
}

func TestBedrockInvokeStream(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	r := postBedrock(t, base, "invoke-with-response-stream", invokeBody, map[string]string{mockllm.HeaderCompletionTokens: "2"})
	msgs := readEventStream(t, r.body)
	if r.header.Get("Content-Type") != "application/vnd.amazon.eventstream" || len(msgs) != 7 {
		t.Fatalf("headers %v, %d messages", r.header, len(msgs))
	}
	types, last := invokeChunks(t, msgs)
	want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_delta",
		"content_block_stop", "message_delta", "message_stop"}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("types %v, want %v", types, want)
	}
	m := last["amazon-bedrock-invocationMetrics"].(map[string]any)
	if m["inputTokenCount"] != float64(17) || m["outputTokenCount"] != float64(2) {
		t.Fatalf("metrics %v", m)
	}
}

func TestBedrockStatus(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	r := postBedrock(t, base, "converse-stream", converseBody, map[string]string{mockllm.HeaderStatus: "429"})
	if r.status != 429 || !strings.HasPrefix(r.header.Get("X-Amzn-ErrorType"), "ThrottlingException:") ||
		!strings.Contains(string(r.body), `"message":"mock status 429`) {
		t.Fatalf("status %d, headers %v, body %s", r.status, r.header, r.body)
	}
	if r := do(t, http.MethodPost, base+"/model/m/count-tokens", converseBody, nil); r.status != 404 {
		t.Fatalf("unknown operation: status %d", r.status)
	}
}

// TestBedrockMeteredExactly feeds each operation's response to its dialect
// and checks the meter reads exactly the usage the mock was asked for.
func TestBedrockMeteredExactly(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	h := map[string]string{mockllm.HeaderPromptTokens: "900", mockllm.HeaderCachedTokens: "500",
		mockllm.HeaderCacheWriteTokens: "100", mockllm.HeaderCompletionTokens: "5"}
	for op, d := range map[string]dialect.Dialect{
		"converse": dialect.BedrockConverse(), "converse-stream": dialect.BedrockConverseStream(),
		"invoke": dialect.BedrockInvoke(), "invoke-with-response-stream": dialect.BedrockInvokeStream(),
	} {
		body := converseBody
		if strings.HasPrefix(op, "invoke") {
			body = invokeBody
		}
		req, _, err := d.ParseRequest([]byte(body), dialect.RequestOptions{Path: bedrockModelPath + "/" + op})
		if err != nil || req.Model != bedrockModel {
			t.Fatalf("%s: request %+v, %v", op, req, err)
		}
		r := postBedrock(t, base, op, body, h)
		resp := dialect.Response{Status: r.status, ContentType: r.header.Get("Content-Type"),
			Header: func(name string) string { return r.header.Get(name) }}
		dec := d.NewDecoder(resp, 0)
		_ = dec.Feed(r.body)
		res := dec.Finish(true)
		u := res.Usage
		if res.Err != nil || u.Get(tmusage.Input) != 300 || u.Get(tmusage.CacheRead) != 500 || u.Get(tmusage.CacheWrite) != 100 || u.Get(tmusage.Output) != 5 {
			t.Errorf("%s: %v %+v", op, res.Err, u)
		}
	}
}
