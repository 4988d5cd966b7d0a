package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestCohereChatFixtures(t *testing.T)   { runFixtures(t, CohereChat()) }
func TestCohereChatV1Fixtures(t *testing.T) { runFixtures(t, CohereChatV1()) }

func TestCohereIdentity(t *testing.T) {
	for d, name := range map[Dialect]string{CohereChat(): "cohere_chat", CohereChatV1(): "cohere_chat_v1"} {
		if d.Name() != name || d.Provider() != "cohere" {
			t.Fatalf("Name %q Provider %q, want %q cohere", d.Name(), d.Provider(), name)
		}
	}
}

func TestCohereParseRequest(t *testing.T) {
	tests := []struct {
		name string
		v1   bool
		body string
		want Request
	}{
		{"minimal", false, `{"model":"command-a-03-2025","messages":[{"role":"user","content":"Hello world!"}]}`,
			Request{Model: "command-a-03-2025", PromptBytes: 12, Prompt: "Hello world!"}},
		{"stream carries usage", false, `{"model":"m","stream":true,"max_tokens":300,"messages":[]}`,
			Request{Model: "m", Stream: true, IncludeUsage: true, MaxTokens: 300}},
		{"content parts, text only", false, `{"model":"m","messages":[{"role":"system","content":"Be brief."},` +
			`{"role":"user","content":[{"type":"text","text":"What is "},{"type":"image_url","image_url":{"url":"data:x"}},{"type":"text","text":"this?"}]},` +
			`{"role":"tool","tool_call_id":"t1","content":[{"type":"document","document":{"data":"{\"t\":1}"}}]}]}`,
			Request{Model: "m", PromptBytes: 9 + 8 + 5, Prompt: "Be brief.What is this?"}},
		{"escapes", false, `{"model":"m","messages":[{"role":"user","content":"caf\u00e9"}]}`,
			Request{Model: "m", PromptBytes: 5, Prompt: "café"}},
		{"negative max_tokens", false, `{"model":"m","max_tokens":-1}`, Request{Model: "m"}},
		{"stream not a bool", false, `{"model":"m","stream":"true"}`, Request{Model: "m"}},
		{"v2 ignores v1 fields", false, `{"model":"m","message":"hi","preamble":"p"}`, Request{Model: "m"}},
		{"v1 preamble, history, message", true, `{"model":"command-r","preamble":"Be nice.","chat_history":[` +
			`{"role":"USER","message":"Hi"},{"role":"CHATBOT","message":"Hello!"}],"message":"How are you?","stream":true,"max_tokens":50}`,
			Request{Model: "command-r", Stream: true, IncludeUsage: true, MaxTokens: 50, PromptBytes: 8 + 2 + 6 + 12,
				Prompt: "Be nice.HiHello!How are you?"}},
		{"v1 ignores messages", true, `{"model":"m","messages":[{"content":"x"}],"message":"y"}`,
			Request{Model: "m", PromptBytes: 1, Prompt: "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := CohereChat()
			if tt.v1 {
				d = CohereChatV1()
			}
			got, newBody, err := d.ParseRequest([]byte(tt.body), RequestOptions{InjectStreamUsage: true, Path: "/v2/chat"})
			if err != nil || newBody != nil {
				t.Fatalf("err %v, newBody %q", err, newBody)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	for body, want := range map[string]reason.Reason{`{"model":`: reason.MalformedJSON, `"x"`: reason.UnexpectedShape} {
		if _, _, err := CohereChat().ParseRequest([]byte(body), RequestOptions{}); !errors.Is(err, want) {
			t.Errorf("%q: err %v, want %s", body, err, want)
		}
	}
}

func TestCohereNormalise(t *testing.T) {
	tests := []struct {
		name   string
		usage  string
		tokens map[string]int64
		reason reason.Reason
	}{
		{"billed, not tokens", `{"billed_units":{"input_tokens":5,"output_tokens":9},"tokens":{"input_tokens":71,"output_tokens":9}}`,
			map[string]int64{"input": 5, "output": 9}, ""},
		{"whole-number floats", `{"billed_units":{"input_tokens":5.0,"output_tokens":9e0}}`, map[string]int64{"input": 5, "output": 9}, ""},
		{"fraction", `{"billed_units":{"input_tokens":5.5,"output_tokens":9}}`, map[string]int64{"output": 9}, reason.UnexpectedShape},
		{"negative", `{"billed_units":{"input_tokens":-5,"output_tokens":9}}`, map[string]int64{"input": 0, "output": 9}, reason.InconsistentUsage},
		{"output only", `{"billed_units":{"output_tokens":9}}`, map[string]int64{"output": 9}, ""},
		{"repeated, null wins", `{"billed_units":{"input_tokens":5,"output_tokens":9},"billed_units":{"input_tokens":null,"output_tokens":2}}`,
			map[string]int64{"output": 2}, ""},
		{"other units ignored", `{"billed_units":{"input_tokens":5,"output_tokens":9,"search_units":1,"image_tokens":7}}`,
			map[string]int64{"input": 5, "output": 9}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := parseCohereUsage(tt.usage).normalise("t")
			got := outcomeOf(Result{Usage: u, Err: err})
			if !reflect.DeepEqual(got.Tokens, tt.tokens) || got.Reason != tt.reason {
				t.Fatalf("got %v %q, want %v %q", got.Tokens, got.Reason, tt.tokens, tt.reason)
			}
			if u.Get(usage.Input) < 0 || u.Get(usage.Output) < 0 {
				t.Fatal("negative class")
			}
		})
	}
}

func decodeCohere(d Dialect, contentType string, complete bool, chunks ...[]byte) Result {
	dec := d.NewDecoder(Response{Status: 200, ContentType: contentType}, 1<<10)
	for _, c := range chunks {
		_ = dec.Feed(c)
	}
	return dec.Finish(complete)
}

// checkSplits decodes body whole, split in two everywhere and in random
// chunks, and requires the same outcome each time.
func checkSplits(t *testing.T, d Dialect, contentType string, complete bool, body []byte) outcome {
	t.Helper()
	want := outcomeOf(decodeCohere(d, contentType, complete, body))
	for i := 0; i <= len(body); i++ {
		if got := outcomeOf(decodeCohere(d, contentType, complete, body[:i], body[i:])); !reflect.DeepEqual(got, want) {
			t.Fatalf("split at %d:\ngot  %+v\nwant %+v", i, got, want)
		}
	}
	r := rand.New(rand.NewPCG(5, uint64(len(body))))
	for range 50 {
		if got := outcomeOf(decodeCohere(d, contentType, complete, randomChunks(body, 16, r)...)); !reflect.DeepEqual(got, want) {
			t.Fatalf("random chunks:\ngot  %+v\nwant %+v", got, want)
		}
	}
	return want
}

func TestCohereSSEReasons(t *testing.T) {
	start := `data: {"type":"message-start","id":"x","delta":{"message":{"role":"assistant"}}}` + "\n\n"
	delta := "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hi\"}}}}\n\n"
	end := func(d string) string {
		return "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":" + d + "}\n\n"
	}
	usageOK := `"usage":{"billed_units":{"input_tokens":3,"output_tokens":1},"tokens":{"input_tokens":60,"output_tokens":1}}`
	tests := []struct {
		name     string
		body     string
		complete bool
		reason   reason.Reason
		reported bool
	}{
		{"ok", start + delta + end(`{"finish_reason":"COMPLETE",`+usageOK+`}`), true, "", true},
		{"max tokens is no error", start + delta + end(`{"finish_reason":"MAX_TOKENS",`+usageOK+`}`), true, "", true},
		{"timeout is a provider error", start + end(`{"finish_reason":"TIMEOUT",`+usageOK+`}`), true, reason.ProviderError, true},
		{"error text without finish", start + end(`{"error":"boom",`+usageOK+`}`), true, reason.ProviderError, true},
		{"null error is none", start + end(`{"error":null,`+usageOK+`}`), true, "", true},
		{"tokens only", start + end(`{"finish_reason":"COMPLETE","usage":{"tokens":{"input_tokens":60,"output_tokens":1}}}`), true, reason.UnexpectedShape, false},
		{"end without usage", start + end(`{"finish_reason":"COMPLETE"}`), true, reason.NoUsage, false},
		{"cut", start + delta, false, reason.Truncated, false},
		{"cut mid-event", start + delta[:30], true, reason.Truncated, false},
		{"error event", start + "event: error\ndata: {\"message\":\"overloaded\"}\n\n", true, reason.ProviderError, false},
		{"malformed", start + "data: {oops\n\n", true, reason.MalformedJSON, false},
		{"type from event name", "event: message-end\ndata: {\"delta\":{" + usageOK + "}}\n\n", true, "", true},
		{"done tolerated", start + end(`{`+usageOK+`}`) + "data: [DONE]\n\n", true, "", true},
		{"too large", start + "data: \"" + string(bytes.Repeat([]byte("x"), 2000)) + "\"\n\n", true, reason.TooLarge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkSplits(t, CohereChat(), "text/event-stream", tt.complete, []byte(tt.body))
			if got.Reason != tt.reason || (len(got.Tokens) > 0) != tt.reported {
				t.Fatalf("got %+v, want reason %q reported %v", got, tt.reason, tt.reported)
			}
		})
	}
}

func TestCohereV1(t *testing.T) {
	meta := `"meta":{"api_version":{"version":"1"},"billed_units":{"input_tokens":13,"output_tokens":9},"tokens":{"input_tokens":79,"output_tokens":9}}`
	words := []string{"Hello", "!", " How", " can", " I", " help", " you", " today", "?"}
	var stream bytes.Buffer
	stream.WriteString(`{"is_finished":false,"event_type":"stream-start","generation_id":"d686011c-e1bb-41c1-9964-ffb6a4d9a1f5"}` + "\n")
	for _, w := range words {
		fmt.Fprintf(&stream, `{"is_finished":false,"event_type":"text-generation","text":%q}`+"\n", w)
	}
	stream.WriteString(`{"is_finished":true,"event_type":"stream-end","response":{"response_id":"r","text":"Hello! How can I help you today?",` +
		`"generation_id":"g","chat_history":[],"finish_reason":"COMPLETE",` + meta + `},"finish_reason":"COMPLETE"}` + "\n")
	want := map[string]int64{"input": 13, "output": 9}
	wantRaw := map[string]int64{"billed_units.input_tokens": 13, "billed_units.output_tokens": 9, "tokens.input_tokens": 79, "tokens.output_tokens": 9}
	text := "Hello! How can I help you today?"

	check := func(name string, got outcome, reason reason.Reason, tokens map[string]int64) {
		t.Helper()
		if got.Reason != reason || !reflect.DeepEqual(got.Tokens, tokens) {
			t.Fatalf("%s: got %+v, want %q %v", name, got, reason, tokens)
		}
	}
	got := checkSplits(t, CohereChatV1(), "application/stream+json", true, stream.Bytes())
	check("ndjson", got, "", want)
	if !reflect.DeepEqual(got.Raw, wantRaw) || got.Text != text {
		t.Fatalf("ndjson: raw %v text %q", got.Raw, got.Text)
	}
	var sse bytes.Buffer
	for _, line := range bytes.SplitAfter(stream.Bytes(), []byte("\n")) {
		if len(line) > 0 {
			sse.WriteString("data: " + string(line) + "\n")
		}
	}
	check("sse", checkSplits(t, CohereChatV1(), "text/event-stream", true, sse.Bytes()), "", want)
	cut := stream.Bytes()[:bytes.LastIndex(stream.Bytes(), []byte(`{"is_finished":true`))+20]
	check("cut", checkSplits(t, CohereChatV1(), "application/stream+json", true, cut), reason.Truncated, map[string]int64{})
	errEnd := bytes.ReplaceAll(stream.Bytes(), []byte(`"COMPLETE"`), []byte(`"ERROR_TOXIC"`))
	check("toxic", checkSplits(t, CohereChatV1(), "application/stream+json", true, errEnd), reason.ProviderError, want)

	body := `{"response_id":"r","text":"` + text + `","generation_id":"g","chat_history":[],"finish_reason":"COMPLETE",` + meta + `}`
	got = checkSplits(t, CohereChatV1(), "application/json", true, []byte(body))
	check("json", got, "", want)
	if got.StreamedTextBytes != int64(len(text)) {
		t.Fatalf("json: %d text bytes", got.StreamedTextBytes)
	}
	check("json error", checkSplits(t, CohereChatV1(), "application/json", true, []byte(`{"message":"invalid api token"}`)), reason.ProviderError, map[string]int64{})
	check("json no usage", checkSplits(t, CohereChatV1(), "application/json", true, []byte(`{"text":"x"}`)), reason.NoUsage, map[string]int64{})
}

func FuzzCohereSSE(f *testing.F) {
	// Small seeds: the fixture tests split the recorded streams everywhere.
	f.Add([]byte("event: content-delta\r\ndata: {\"type\":\"content-delta\",\"delta\":{\"message\":{\"content\":{\"text\":\"a\\n\\u00e9\"}}}}\r\n\r\n"+
		"data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":3,\"output_tokens\":1.0}}}}\n\n"), uint(40), false)
	f.Add([]byte("data: {\"type\":\"tool-call-delta\",\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{\\\"a\\\"\"}}}}}\n\nevent: error\ndata: x\n\n"), uint(9), false)
	f.Add([]byte("data: {\"type\":\"message-end\",\"delta\":{\"error\":\"e\",\"usage\":{\"billed_units\":{\"input_tokens\":-1,\"output_tokens\":2.5}}}}\r\rdata: {\"ty"), uint(7), false)
	f.Add([]byte(`{"event_type":"text-generation","text":"Hi"}`+"\n"+`{"event_type":"stream-end","response":{"meta":{"billed_units":{"input_tokens":1,"output_tokens":1}}},"finish_reason":"ERROR"}`), uint(30), true)
	f.Fuzz(func(t *testing.T, body []byte, split uint, v1 bool) {
		d, ct := CohereChat(), "text/event-stream"
		if v1 {
			d, ct = CohereChatV1(), "application/stream+json"
		}
		at := int(split % uint(len(body)+1))
		for _, complete := range []bool{true, false} {
			whole := decodeCohere(d, ct, complete, body)
			parts := decodeCohere(d, ct, complete, body[:at], body[at:])
			if !reflect.DeepEqual(outcomeOf(whole), outcomeOf(parts)) {
				t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, outcomeOf(whole), outcomeOf(parts))
			}
			if int64(len(whole.Text)) > whole.StreamedTextBytes {
				t.Fatalf("Text %d bytes, StreamedTextBytes %d", len(whole.Text), whole.StreamedTextBytes)
			}
			for c, n := range outcomeOf(whole).Tokens {
				if n < 0 {
					t.Fatalf("negative %s: %d", c, n)
				}
			}
		}
	})
}

// cohereStreamBody is a realistic v2 stream of n content deltas, ending
// with message-end when ended is set.
func cohereStreamBody(n int, ended bool) []byte {
	var b bytes.Buffer
	b.WriteString("event: message-start\ndata: {\"id\":\"29f14a5a-11de-4cae-9800-25e4747408ea\",\"type\":\"message-start\"," +
		"\"delta\":{\"message\":{\"role\":\"assistant\",\"content\":[],\"tool_plan\":\"\",\"tool_calls\":[],\"citations\":[]}}}\n\n")
	b.WriteString("event: content-start\ndata: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"\"}}}}\n\n")
	words := []string{" the", " quick", " brown", " fox", ` \"jumps\"`, " over", `\n`, " café", " dog", "."}
	for i := range n {
		fmt.Fprintf(&b, "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"%s\"}}}}\n\n",
			words[i%len(words)])
	}
	if ended {
		b.WriteString("event: content-end\ndata: {\"type\":\"content-end\",\"index\":0}\n\n")
		fmt.Fprintf(&b, "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\","+
			"\"usage\":{\"billed_units\":{\"input_tokens\":12,\"output_tokens\":%d},\"tokens\":{\"input_tokens\":78,\"output_tokens\":%d}}}}\n\n", n, n)
	}
	return b.Bytes()
}

func BenchmarkCohereSSE(b *testing.B) {
	body := cohereStreamBody(200, true)
	chunks := randomChunks(body, 200, rand.New(rand.NewPCG(1, 1))) // about 100 bytes each
	dialect := CohereChat()
	resp := Response{Status: 200, ContentType: "text/event-stream"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var res Result
	for b.Loop() {
		d := dialect.NewDecoder(resp, 0)
		for _, c := range chunks {
			_ = d.Feed(c)
		}
		res = d.Finish(true)
	}
	if res.Err != nil || res.Usage.Get(usage.Output) != 200 || res.Usage.Get(usage.Input) != 12 {
		b.Fatalf("bad result: %+v", outcomeOf(res))
	}
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	b.ReportMetric(steadyAllocsPerChunk(b, dialect, resp, cohereStreamBody(2000, false)), "allocs/chunk")
}
