package dialect

import (
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestBedrockConverseFixtures(t *testing.T)       { runFixtures(t, BedrockConverse()) }
func TestBedrockConverseStreamFixtures(t *testing.T) { runFixtures(t, BedrockConverseStream()) }
func TestBedrockInvokeFixtures(t *testing.T)         { runFixtures(t, BedrockInvoke()) }
func TestBedrockInvokeStreamFixtures(t *testing.T)   { runFixtures(t, BedrockInvokeStream()) }

func TestBedrockIdentity(t *testing.T) {
	for _, tt := range []struct {
		d    Dialect
		name string
	}{
		{BedrockConverse(), "bedrock_converse"},
		{BedrockConverseStream(), "bedrock_converse_stream"},
		{BedrockInvoke(), "bedrock_invoke"},
		{BedrockInvokeStream(), "bedrock_invoke_stream"},
	} {
		if tt.d.Name() != tt.name || tt.d.Provider() != "bedrock" {
			t.Errorf("Name %q Provider %q, want %q bedrock", tt.d.Name(), tt.d.Provider(), tt.name)
		}
	}
}

func TestBedrockRegistry(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse", "bedrock_converse"},
		{"/model/us.anthropic.claude-3-5-sonnet-20241022-v2:0/converse-stream", "bedrock_converse_stream"},
		{"/model/amazon.nova-pro-v1%3A0/invoke", "bedrock_invoke"},
		{"/model/meta.llama3-70b-instruct-v1%3A0/invoke-with-response-stream", "bedrock_invoke_stream"},
		{"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
			"bedrock_converse"},
		{"/bedrock/model/m/converse?x=1", "bedrock_converse"},
		{"/model/m/converse/", ""},
		{"/model/m/invoke-with-response-streams", ""},
		{"/v1/converse", ""},
		{"/v1/invoke", ""},
		{"/model/m/count-tokens", ""},
	}
	r := DefaultRegistry()
	for _, tt := range tests {
		d, ok := r.ForPath(tt.path)
		got := ""
		if ok {
			got = d.Name()
		}
		if got != tt.want {
			t.Errorf("ForPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	for _, name := range []string{"bedrock_converse", "bedrock_converse_stream", "bedrock_invoke", "bedrock_invoke_stream"} {
		if _, ok := r.ByName(name); !ok {
			t.Errorf("ByName(%q) not found", name)
		}
	}
}

func TestBedrockModel(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse", "anthropic.claude-3-5-sonnet-20241022-v2:0"},
		{"/model/us.anthropic.claude-3-5-sonnet-20241022-v2:0/invoke", "us.anthropic.claude-3-5-sonnet-20241022-v2:0"},
		{"/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-2-1b-instruct-v1%3A0/converse",
			"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0"},
		// A gateway that decoded the path leaves the ARN's '/' raw.
		{"/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123/converse-stream",
			"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"},
		{"/gw/bedrock/model/amazon.titan-text-express-v1/invoke?trace=1", "amazon.titan-text-express-v1"},
		{"/model/bad%zzescape/converse", "bad%zzescape"},
		{"/model/converse", ""},
		{"/v1/chat/completions", ""},
	}
	for _, tt := range tests {
		if got := bedrockModel(tt.path); got != tt.want {
			t.Errorf("bedrockModel(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestBedrockConverseParseRequest(t *testing.T) {
	const path = "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
	const model = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"basic", `{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":512,"temperature":0.5}}`,
			Request{Model: model, MaxTokens: 512, PromptBytes: 5, Prompt: "Hello"}},
		{"system and blocks", `{"system":[{"text":"Be brief."},{"cachePoint":{"type":"default"}}],"messages":[` +
			`{"role":"user","content":[{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}},{"text":"What is this?"}]},` +
			`{"role":"assistant","content":[{"text":"A cat.\n"}]}]}`,
			Request{Model: model, PromptBytes: 9 + 1 + 13 + 1 + 7, Prompt: "Be brief.\nWhat is this?\nA cat.\n"}},
		{"escapes", `{"messages":[{"role":"user","content":[{"text":"caf\u00e9 \ud83d\ude00"}]}]}`,
			Request{Model: model, PromptBytes: 10, Prompt: "café 😀"}},
		{"negative maxTokens", `{"inferenceConfig":{"maxTokens":-1}}`, Request{Model: model}},
		{"repeated keys, last wins", `{"inferenceConfig":{"maxTokens":1},"inferenceConfig":{"maxTokens":2}}`, Request{Model: model, MaxTokens: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []Dialect{BedrockConverse(), BedrockConverseStream()} {
				want := tt.want
				want.Stream, want.IncludeUsage = d == BedrockConverseStream(), d == BedrockConverseStream()
				got, newBody, err := d.ParseRequest([]byte(tt.body), RequestOptions{Path: path, InjectStreamUsage: true})
				if err != nil || newBody != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: got %+v, %q, %v; want %+v", d.Name(), got, newBody, err, want)
				}
			}
		})
	}
}

func TestBedrockInvokeParseRequest(t *testing.T) {
	const path = "/model/m%3A0/invoke"
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"anthropic", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"system":"Be brief.",` +
			`"messages":[{"role":"user","content":"Hi"},{"role":"user","content":[{"type":"text","text":"there"}]}]}`,
			Request{Model: "m:0", MaxTokens: 1024, PromptBytes: 9 + 1 + 2 + 1 + 5, Prompt: "Be brief.\nHi\nthere"}},
		{"nova", `{"schemaVersion":"messages-v1","system":[{"text":"S"}],"messages":[{"role":"user","content":[{"text":"Q"}]}],` +
			`"inferenceConfig":{"max_new_tokens":300}}`,
			Request{Model: "m:0", MaxTokens: 300, PromptBytes: 3, Prompt: "S\nQ"}},
		{"llama", `{"prompt":"<|begin_of_text|>Hello","max_gen_len":128,"temperature":0.5}`,
			Request{Model: "m:0", MaxTokens: 128, PromptBytes: 22, Prompt: "<|begin_of_text|>Hello"}},
		{"titan", `{"inputText":"Hello","textGenerationConfig":{"maxTokenCount":64}}`,
			Request{Model: "m:0", MaxTokens: 64, PromptBytes: 5, Prompt: "Hello"}},
		{"cohere", `{"message":"Hello","max_tokens":10}`, Request{Model: "m:0", MaxTokens: 10, PromptBytes: 5, Prompt: "Hello"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, newBody, err := BedrockInvoke().ParseRequest([]byte(tt.body), RequestOptions{Path: path})
			if err != nil || newBody != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %q, %v; want %+v", got, newBody, err, tt.want)
			}
		})
	}
	got, _, _ := BedrockInvokeStream().ParseRequest([]byte(`{}`), RequestOptions{Path: "/model/m/invoke-with-response-stream"})
	if !got.Stream || !got.IncludeUsage || got.Model != "m" {
		t.Fatalf("stream request: %+v", got)
	}
}

func TestBedrockParseRequestErrors(t *testing.T) {
	for _, d := range []Dialect{BedrockConverse(), BedrockConverseStream(), BedrockInvoke(), BedrockInvokeStream()} {
		for body, want := range map[string]reason.Reason{`{"messages":`: reason.MalformedJSON, `[1]`: reason.UnexpectedShape, ``: reason.MalformedJSON} {
			req, _, err := d.ParseRequest([]byte(body), RequestOptions{Path: "/model/a.b%3A1/x"})
			// The model comes from the path, so it survives a bad body.
			if reason.Of(err) != want || req.Model != "a.b:1" {
				t.Errorf("%s %q: %+v, %v; want %s and the model", d.Name(), body, req, err, want)
			}
		}
	}
}

// decodeBedrock feeds chunks to a fresh decoder of d.
func decodeBedrock(d Dialect, resp Response, complete bool, chunks ...[]byte) Result {
	if resp.Header == nil {
		resp.Header = func(string) string { return "" }
	}
	dec := d.NewDecoder(resp, 64<<10)
	for _, c := range chunks {
		_ = dec.Feed(c)
	}
	return dec.Finish(complete)
}

func headers(kv ...string) func(string) string {
	return func(name string) string {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == name {
				return kv[i+1]
			}
		}
		return ""
	}
}

func TestBedrockInvokeHeaders(t *testing.T) {
	body := []byte(`{"content":[{"type":"text","text":"x"}],"usage":{"input_tokens":999,"output_tokens":999}}`)
	tests := []struct {
		name   string
		h      []string
		reason reason.Reason
		tokens map[string]int64
	}{
		{"headers win over the body", []string{"x-amzn-bedrock-input-token-count", "7", "x-amzn-bedrock-output-token-count", "3"},
			"", map[string]int64{"input": 7, "output": 3}},
		{"spaces", []string{"x-amzn-bedrock-input-token-count", " 7 ", "x-amzn-bedrock-output-token-count", "3"},
			"", map[string]int64{"input": 7, "output": 3}},
		{"not a number", []string{"x-amzn-bedrock-input-token-count", "7x", "x-amzn-bedrock-output-token-count", "3"},
			reason.UnexpectedShape, map[string]int64{"output": 3}},
		{"output missing", []string{"x-amzn-bedrock-input-token-count", "7"}, reason.UnexpectedShape, map[string]int64{"input": 7}},
		{"negative", []string{"x-amzn-bedrock-input-token-count", "-1", "x-amzn-bedrock-output-token-count", "3"},
			reason.InconsistentUsage, map[string]int64{"input": 0, "output": 3}},
		{"cache only", []string{"x-amzn-bedrock-cache-read-input-token-count", "5"}, reason.UnexpectedShape, map[string]int64{"cache_read": 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The body is not read: cut or whole, the headers decide.
			for _, complete := range []bool{true, false} {
				res := decodeBedrock(BedrockInvoke(), Response{Status: 200, ContentType: "application/json", Header: headers(tt.h...)},
					complete, body[:len(body)/2])
				if o := outcomeOf(res); o.Reason != tt.reason || !reflect.DeepEqual(o.Tokens, tt.tokens) || o.StreamedTextBytes != 0 {
					t.Fatalf("got %+v, want reason %q tokens %v", o, tt.reason, tt.tokens)
				}
			}
		})
	}
}

func TestBedrockConverseUsageChecks(t *testing.T) {
	tests := []struct {
		name   string
		usage  string
		reason reason.Reason
		tokens map[string]int64
	}{
		{"total disagrees", `{"inputTokens":10,"outputTokens":5,"cacheReadInputTokens":100,"totalTokens":15}`,
			reason.InconsistentUsage, map[string]int64{"input": 10, "cache_read": 100, "output": 5}},
		{"no total", `{"inputTokens":10,"outputTokens":5}`, "", map[string]int64{"input": 10, "output": 5}},
		{"details disagree", `{"inputTokens":1,"outputTokens":1,"cacheWriteInputTokens":10,"cacheDetails":[{"inputTokens":4,"ttl":"5m"}]}`,
			reason.InconsistentUsage, map[string]int64{"input": 1, "cache_write": 4, "output": 1}},
		{"1h details only", `{"inputTokens":1,"outputTokens":1,"cacheWriteInputTokens":10,"cacheDetails":[{"inputTokens":4,"ttl":"1h"}]}`,
			"", map[string]int64{"input": 1, "cache_write": 6, "cache_write_1h": 4, "output": 1}},
		{"unknown ttl", `{"inputTokens":1,"outputTokens":1,"cacheWriteInputTokens":10,"cacheDetails":[{"inputTokens":4,"ttl":"1d"}]}`,
			"", map[string]int64{"input": 1, "cache_write": 10, "output": 1}},
		{"negative", `{"inputTokens":-1,"outputTokens":1}`, reason.InconsistentUsage, map[string]int64{"input": 0, "output": 1}},
		{"no counts", `{"totalTokens":3}`, reason.UnexpectedShape, map[string]int64{}},
		{"null", `null`, reason.NoUsage, map[string]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"output":{"message":{"content":[]}},"usage":` + tt.usage + `}`
			res := decodeBedrock(BedrockConverse(), Response{Status: 200, ContentType: "application/json"}, true, []byte(body))
			if o := outcomeOf(res); o.Reason != tt.reason || !reflect.DeepEqual(o.Tokens, tt.tokens) {
				t.Fatalf("got %+v, want reason %q tokens %v", o, tt.reason, tt.tokens)
			}
			stream := encodeEventStream(t, []eventstream.Message{esEvent("metadata", `{"usage":`+tt.usage+`}`)})
			res = decodeBedrock(BedrockConverseStream(), Response{Status: 200, ContentType: awsEventStream}, true, stream)
			if o := outcomeOf(res); o.Reason != tt.reason || !reflect.DeepEqual(o.Tokens, tt.tokens) {
				t.Fatalf("stream: got %+v, want reason %q tokens %v", o, tt.reason, tt.tokens)
			}
		})
	}
}

func TestBedrockStreamEnds(t *testing.T) {
	es := Response{Status: 200, ContentType: "application/vnd.amazon.eventstream"}
	delta := esEvent("contentBlockDelta", `{"delta":{"text":"a"}}`)
	whole := encodeEventStream(t, []eventstream.Message{delta})
	var errMsg eventstream.Headers
	errMsg.Set(":message-type", eventstream.StringValue("error"))
	errMsg.Set(":error-code", eventstream.StringValue("InternalFailure"))
	corrupt := encodeEventStream(t, []eventstream.Message{delta, delta})
	corrupt[len(corrupt)-1] ^= 1
	big := encodeEventStream(t, []eventstream.Message{esEvent("metadata", `{"usage":{"inputTokens":1,"outputTokens":1},"p":"`+
		strings.Repeat("x", 70<<10)+`"}`)})
	tests := []struct {
		name     string
		body     []byte
		complete bool
		want     reason.Reason
	}{
		{"ended without metadata", whole, true, reason.NoUsage},
		{"cut between messages", whole, false, reason.Truncated},
		{"ended mid-message", whole[:len(whole)-1], true, reason.Truncated},
		{"error message", encodeEventStream(t, []eventstream.Message{delta, {Headers: errMsg}}), true, reason.ProviderError},
		{"corrupt", corrupt, true, reason.UnexpectedShape},
		{"metadata over the cap", big, true, reason.TooLarge},
		{"not json", encodeEventStream(t, []eventstream.Message{esEvent("metadata", `{"usage":`)}), true, reason.MalformedJSON},
		{"not an object", encodeEventStream(t, []eventstream.Message{esEvent("metadata", `[]`)}), true, reason.UnexpectedShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeBedrock(BedrockConverseStream(), es, tt.complete, tt.body)
			if reason.Of(res.Err) != tt.want || res.Usage.Reported() {
				t.Fatalf("got %v, usage %+v; want %s", res.Err, res.Usage, tt.want)
			}
		})
	}
}

func TestBedrockInvokeStreamAnthropicFallback(t *testing.T) {
	// Without invocation metrics the Anthropic usage stands: final once a
	// message_delta carried output_tokens.
	msgs := esConcat(anthropicStart, anthropicDeltas("a", "b"), []eventstream.Message{
		esChunk(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}`),
		esChunk(`{"type":"message_stop"}`),
	})
	res := decodeBedrock(BedrockInvokeStream(), Response{Status: 200, ContentType: awsEventStream}, true, encodeEventStream(t, msgs))
	if res.Err != nil || res.Usage.Get(usage.Output) != 2 || res.Usage.Get(usage.CacheRead) != 1024 || string(res.Text) != "ab" {
		t.Fatalf("got %v %+v %q", res.Err, res.Usage, res.Text)
	}
	// Bad base64, and a chunk whose bytes are not JSON, are malformed.
	bad := []eventstream.Message{esEvent("chunk", `{"bytes":"!!!"}`), esEvent("chunk", `{"bytes":"bm90IGpzb24="}`)}
	res = decodeBedrock(BedrockInvokeStream(), Response{Status: 200, ContentType: awsEventStream}, true, encodeEventStream(t, bad))
	if reason.Of(res.Err) != reason.MalformedJSON {
		t.Fatalf("bad chunks: %v", res.Err)
	}
	// "\/" is a legal spelling inside the base64 string.
	esc := []eventstream.Message{esEvent("chunk", `{"bytes":"`+strings.ReplaceAll(
		"eyJhbWF6b24tYmVkcm9jay1pbnZvY2F0aW9uTWV0cmljcyI6eyJpbnB1dFRva2VuQ291bnQiOjEsIm91dHB1dFRva2VuQ291bnQiOjJ9fQ==", "/", `\/`)+`"}`)}
	res = decodeBedrock(BedrockInvokeStream(), Response{Status: 200, ContentType: awsEventStream}, true, encodeEventStream(t, esc))
	if res.Err != nil || res.Usage.Get(usage.Output) != 2 {
		t.Fatalf("escaped base64: %v %+v", res.Err, res.Usage)
	}
}

// decodeConverseStream decodes a ConverseStream body split at the given
// chunks, for the fuzz test.
func decodeConverseStream(complete bool, chunks ...[]byte) Result {
	return decodeBedrock(BedrockConverseStream(), Response{Status: 200, ContentType: awsEventStream}, complete, chunks...)
}

func FuzzBedrockConverseStream(f *testing.F) {
	seed := func(msgs ...eventstream.Message) []byte { return encodeEventStream(f, msgs) }
	f.Add(seed(esEvent("contentBlockDelta", `{"delta":{"text":"a\n\u00e9"}}`),
		esEvent("metadata", `{"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5,"cacheDetails":[{"inputTokens":1,"ttl":"1h"}]}}`)), uint(40))
	f.Add(seed(esEvent("contentBlockDelta", `{"delta":{"toolUse":{"input":"{\"a\""}}}`), esException("throttlingException", "x")), uint(7))
	f.Add(seed(esEvent("metadata", `{"usage":{"inputTokens":-1,"outputTokens":1e3}}`))[:30], uint(3))
	f.Fuzz(func(t *testing.T, body []byte, split uint) {
		at := int(split % uint(len(body)+1))
		for _, complete := range []bool{true, false} {
			whole := outcomeOf(decodeConverseStream(complete, body))
			parts := outcomeOf(decodeConverseStream(complete, body[:at], body[at:]))
			if !reflect.DeepEqual(whole, parts) {
				t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, whole, parts)
			}
			for c, n := range whole.Tokens {
				if n < 0 {
					t.Fatalf("negative %s: %d", c, n)
				}
			}
		}
	})
}

func FuzzBedrockInvokeStream(f *testing.F) {
	f.Add(encodeEventStream(f, esConcat(anthropicStart, anthropicDeltas("a", "é"), []eventstream.Message{
		esChunk(`{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":1,"outputTokenCount":2}}`)})), uint(50))
	f.Fuzz(func(t *testing.T, body []byte, split uint) {
		at := int(split % uint(len(body)+1))
		resp := Response{Status: 200, ContentType: awsEventStream}
		whole := outcomeOf(decodeBedrock(BedrockInvokeStream(), resp, true, body))
		parts := outcomeOf(decodeBedrock(BedrockInvokeStream(), resp, true, body[:at], body[at:]))
		if !reflect.DeepEqual(whole, parts) {
			t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, whole, parts)
		}
	})
}

// bedrockConverseBody is a ConverseStream body of n text deltas.
func bedrockConverseBody(t testing.TB, n int, ended bool) []byte {
	words := []string{" the", " quick", " brown", " fox", ` "jumps"`, " over", "\n", " café", " dog", "."}
	var deltas []string
	for i := range n {
		deltas = append(deltas, words[i%len(words)])
	}
	msgs := esConcat(converseStart, converseDeltas(deltas...))
	if ended {
		msgs = esConcat(msgs, converseEnd, []eventstream.Message{esEvent("metadata",
			fmt.Sprintf(`{"metrics":{"latencyMs":900},"usage":{"cacheReadInputTokens":1024,"inputTokens":176,"outputTokens":%d,"totalTokens":%d}}`, n, 1200+n))})
	}
	return encodeEventStream(t, msgs)
}

// bedrockInvokeBody is an InvokeModelWithResponseStream body of n
// Anthropic text deltas.
func bedrockInvokeBody(t testing.TB, n int, ended bool) []byte {
	words := []string{" the", " quick", " brown", " fox", ` "jumps"`, " over", "\n", " café", " dog", "."}
	var deltas []string
	for i := range n {
		deltas = append(deltas, words[i%len(words)])
	}
	msgs := esConcat(anthropicStart, anthropicDeltas(deltas...))
	if ended {
		msgs = esConcat(msgs, []eventstream.Message{esChunk(fmt.Sprintf(`{"type":"message_stop","amazon-bedrock-invocationMetrics":`+
			`{"inputTokenCount":22,"outputTokenCount":%d,"invocationLatency":1834,"firstByteLatency":412,"cacheReadInputTokenCount":1024,"cacheWriteInputTokenCount":0}}`, n))})
	}
	return encodeEventStream(t, msgs)
}

func benchBedrockStream(b *testing.B, d Dialect, body func(testing.TB, int, bool) []byte) {
	full := body(b, 200, true)
	chunks := randomChunks(full, 200, rand.New(rand.NewPCG(1, 1))) // about 100 bytes each
	resp := Response{Status: 200, ContentType: awsEventStream}
	b.SetBytes(int64(len(full)))
	b.ReportAllocs()
	var res Result
	for b.Loop() {
		dec := d.NewDecoder(resp, 0)
		for _, c := range chunks {
			_ = dec.Feed(c)
		}
		res = dec.Finish(true)
	}
	if res.Err != nil || res.Usage.Get(usage.Output) != 200 || res.Usage.Get(usage.CacheRead) != 1024 {
		b.Fatalf("bad result: %v %+v", res.Err, res.Usage)
	}
	// Allocations per chunk of a long stream, whose decoder's setup and
	// buffers' growth are spread thin. (A decoder cannot be fed the same
	// chunks twice, as AllocsPerRun's warm-up would: an event-stream read
	// from mid-message is corrupt.)
	cs := randomChunks(body(b, 2000, false), 200, rand.New(rand.NewPCG(2, 2)))
	allocs := testing.AllocsPerRun(1, func() {
		dec := d.NewDecoder(resp, 0)
		for _, c := range cs {
			_ = dec.Feed(c)
		}
	})
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	b.ReportMetric(allocs/float64(len(cs)), "allocs/chunk")
	b.ReportMetric(allocs/2002, "allocs/message")
}

func BenchmarkBedrockConverseStream(b *testing.B) {
	benchBedrockStream(b, BedrockConverseStream(), bedrockConverseBody)
}

func BenchmarkBedrockInvokeStream(b *testing.B) {
	benchBedrockStream(b, BedrockInvokeStream(), bedrockInvokeBody)
}

func BenchmarkBedrockInvokeHeaders(b *testing.B) {
	resp := Response{Status: 200, ContentType: "application/json", Header: headers(
		"x-amzn-bedrock-input-token-count", "14", "x-amzn-bedrock-output-token-count", "12")}
	body := []byte(`{"content":[{"type":"text","text":"Hello"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		d := BedrockInvoke().NewDecoder(resp, 0)
		_ = d.Feed(body)
		if r := d.Finish(true); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}
