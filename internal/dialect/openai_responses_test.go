package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestOpenAIResponsesFixtures(t *testing.T) { runFixtures(t, OpenAIResponses()) }

func TestOpenAIResponsesIdentity(t *testing.T) {
	d := OpenAIResponses()
	if d.Name() != "openai_responses" || d.Provider() != "openai" {
		t.Fatalf("Name %q Provider %q", d.Name(), d.Provider())
	}
}

func TestOpenAIResponsesParseRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"string input", `{"model":"gpt-4.1","input":"Tell me a joke."}`,
			Request{Model: "gpt-4.1", Prompt: "Tell me a joke.", PromptBytes: 15}},
		{"stream and max_output_tokens", `{"model":"o4-mini","stream":true,"max_output_tokens":512,"input":"Hi"}`,
			Request{Model: "o4-mini", Stream: true, IncludeUsage: true, MaxTokens: 512, Prompt: "Hi", PromptBytes: 2}},
		{"instructions first", `{"model":"m","input":"b","instructions":"a\n"}`,
			Request{Model: "m", Prompt: "a\nb", PromptBytes: 3}},
		{"items with string and part contents", `{"model":"m","input":[` +
			`{"role":"developer","content":"Be terse."},` +
			`{"type":"message","role":"user","content":[{"type":"input_text","text":"What is "},` +
			`{"type":"input_image","image_url":"data:image/png;base64,AAAA"},{"type":"input_text","text":"this?"}]},` +
			`{"type":"message","role":"assistant","content":[{"type":"output_text","text":" A cat."}]},` +
			`{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},` +
			`{"type":"function_call_output","call_id":"c1","output":"42"}]}`,
			Request{Model: "m", Prompt: "Be terse.What is this? A cat.42", PromptBytes: 31}},
		{"escapes", `{"model":"m","input":"caf\u00e9 \ud83d\ude00 \"q\""}`,
			Request{Model: "m", Prompt: "café 😀 \"q\"", PromptBytes: 14}},
		{"repeated keys, last wins", `{"model":"a","input":"x","model":"b","input":"yz","stream":true,"stream":false}`,
			Request{Model: "b", Prompt: "yz", PromptBytes: 2}},
		{"negative max_output_tokens", `{"model":"m","max_output_tokens":-1}`, Request{Model: "m"}},
		{"no input (previous_response_id)", `{"model":"m","previous_response_id":"resp_1"}`, Request{Model: "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, inject := range []bool{false, true} {
				got, newBody, err := OpenAIResponses().ParseRequest([]byte(tt.body), RequestOptions{InjectStreamUsage: inject})
				if err != nil || newBody != nil {
					t.Fatalf("err %v, new body %q", err, newBody)
				}
				if got != tt.want {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			}
		})
	}
}

func TestOpenAIResponsesParseRequestErrors(t *testing.T) {
	for _, tt := range []struct {
		body string
		want reason.Reason
	}{
		{``, reason.MalformedJSON},
		{`{"input":"x",}`, reason.MalformedJSON},
		{`["input"]`, reason.UnexpectedShape},
	} {
		req, newBody, err := OpenAIResponses().ParseRequest([]byte(tt.body), RequestOptions{})
		if !errors.Is(err, tt.want) || newBody != nil || req != (Request{PromptBytes: int64(len(tt.body))}) {
			t.Errorf("%q: got %+v %q %v, want %v", tt.body, req, newBody, err, tt.want)
		}
	}
}

// responsesUsageJSON is a terminal event's usage object.
const responsesUsageJSON = `{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":6,` +
	`"output_tokens_details":{"reasoning_tokens":2},"total_tokens":16}`

func TestOpenAIResponsesSSEReasons(t *testing.T) {
	completed := "data: {\"type\":\"response.completed\",\"response\":{\"model\":\"m\",\"usage\":" + responsesUsageJSON + "}}\n\n"
	tests := []struct {
		name     string
		body     string
		complete bool
		want     reason.Reason
		tokens   bool // usage is reported
	}{
		{"completed", completed, true, "", true},
		{"completed, then client gone", completed, false, "", true},
		{"error event after usage", completed + "event: error\ndata: {}\n\n", true, reason.ProviderError, true},
		{"failed without error object", "data: {\"type\":\"response.failed\",\"response\":{\"usage\":" + responsesUsageJSON + "}}\n\n", true, reason.ProviderError, true},
		{"failed without usage", "data: {\"type\":\"response.failed\",\"response\":{\"usage\":null,\"error\":{\"code\":\"server_error\"}}}\n\n", true, reason.ProviderError, false},
		{"incomplete is billed", "data: {\"type\":\"response.incomplete\",\"response\":{\"usage\":" + responsesUsageJSON + "}}\n\n", true, "", true},
		{"inconsistent", "data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":1,\"input_tokens_details\":{\"cached_tokens\":2},\"output_tokens\":0}}}\n\n", true, reason.InconsistentUsage, true},
		{"completed with null usage", "data: {\"type\":\"response.completed\",\"response\":{\"usage\":null}}\n\n", true, reason.NoUsage, false},
		{"completed with empty usage", "data: {\"type\":\"response.completed\",\"response\":{\"usage\":{}}}\n\n", true, reason.UnexpectedShape, false},
		{"cut before terminal", "data: {\"type\":\"response.created\",\"response\":{}}\n\n", false, reason.Truncated, false},
		{"ended mid-event", "data: {\"type\":\"response.created\",\"response\":{}}\n\ndata: {\"ty", true, reason.Truncated, false},
		{"no terminal, complete body", "data: {\"type\":\"response.created\",\"response\":{}}\n\n", true, reason.NoUsage, false},
		{"malformed", "data: nope\n\n", true, reason.MalformedJSON, false},
		{"not an object", "data: [1]\n\n", true, reason.UnexpectedShape, false},
		{"error event beats truncation", "data: {\"type\":\"error\",\"code\":\"x\"}\n\ndata: {\"ty", false, reason.ProviderError, false},
		{"empty body", "", true, reason.NoUsage, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := OpenAIResponses().NewDecoder(Response{Status: 200, ContentType: "text/event-stream"}, 0)
			_ = d.Feed([]byte(tt.body))
			r := d.Finish(tt.complete)
			if got := reason.Of(r.Err); got != tt.want || r.Usage.Reported() != tt.tokens {
				t.Fatalf("reason %q reported %v, want %q %v (%v)", got, r.Usage.Reported(), tt.want, tt.tokens, r.Err)
			}
		})
	}
}

func TestOpenAIResponsesJSONReasons(t *testing.T) {
	tests := []struct {
		name string
		body string
		want reason.Reason
	}{
		{"completed", `{"status":"completed","error":null,"usage":` + responsesUsageJSON + `}`, ""},
		{"failed by status alone", `{"status":"failed","usage":` + responsesUsageJSON + `}`, reason.ProviderError},
		{"error object", `{"error":{"code":"server_error"}}`, reason.ProviderError},
		{"no usage", `{"status":"completed","usage":null}`, reason.NoUsage},
		{"usage without counts", `{"usage":{"total_tokens":3}}`, reason.UnexpectedShape},
		{"array", `[]`, reason.UnexpectedShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := OpenAIResponses().NewDecoder(Response{Status: 200, ContentType: "application/json"}, 0)
			_ = d.Feed([]byte(tt.body))
			if got := reason.Of(d.Finish(true).Err); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOpenAIResponsesNormalise(t *testing.T) {
	u, ok := parseResponsesUsage(responsesUsageJSON)
	if !ok {
		t.Fatal("parseResponsesUsage failed")
	}
	got, err := u.normalise(openAIResponsesName)
	o := outcomeOf(Result{Usage: got, Err: err})
	want := map[string]int64{"input": 6, "cache_read": 4, "output": 4, "reasoning": 2}
	wantRaw := map[string]int64{"input_tokens": 10, "cached_tokens": 4, "output_tokens": 6, "reasoning_tokens": 2, "total_tokens": 16}
	if !reflect.DeepEqual(o.Tokens, want) || !reflect.DeepEqual(o.Raw, wantRaw) || err != nil {
		t.Fatalf("got %v %v %v", o.Tokens, o.Raw, err)
	}
	if _, ok := parseResponsesUsage(`{"total_tokens":3}`); ok {
		t.Fatal("a usage without input or output tokens was accepted")
	}
}

func TestOpenAIResponsesSSETooLarge(t *testing.T) {
	body := "data: {\"type\":\"response.completed\",\"response\":{\"instructions\":\"" + strings.Repeat("x", 100) +
		"\",\"usage\":" + responsesUsageJSON + "}}\n\n"
	d := OpenAIResponses().NewDecoder(Response{Status: 200, ContentType: "text/event-stream"}, 64)
	if err := d.Feed([]byte(body)); !errors.Is(err, reason.TooLarge) {
		t.Fatalf("Feed: %v", err)
	}
	if r := d.Finish(true); !errors.Is(r.Err, reason.TooLarge) {
		t.Fatalf("Finish: %v", r.Err)
	}
}

func decodeResponsesSSE(chunks ...[]byte) outcome {
	d := OpenAIResponses().NewDecoder(Response{Status: 200, ContentType: "text/event-stream"}, 512)
	for _, c := range chunks {
		_ = d.Feed(c)
	}
	return outcomeOf(d.Finish(true))
}

func FuzzOpenAIResponsesSSE(f *testing.F) {
	// Small seeds: the fixture test splits the recorded streams everywhere.
	f.Add([]byte("event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"m\",\"usage\":null}}\n\n"+
		"data: {\"type\":\"response.output_text.delta\",\"delta\":\"a\\n\\u00e9\"}\n\n"+
		"data: {\"type\":\"response.completed\",\"response\":{\"usage\":"+responsesUsageJSON+"}}\n\n"), uint(50))
	f.Add([]byte("data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"x\"},\"usage\":{\"input_tokens\":1}}}\r\n\r\n"), uint(9))
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"code\":null}\n\ndata: {\"ty"), uint(20))
	f.Add([]byte("event: response.output_text.delta\ndata: {\"delta\":\"\\ud83d\\ude00\"}\r\revent: response.incomplete\rdata: {\"response\":{\"usage\":{\"output_tokens\":-1}}}\r\r"), uint(30))
	f.Fuzz(func(t *testing.T, body []byte, split uint) {
		at := int(split % uint(len(body)+1))
		whole := decodeResponsesSSE(body)
		parts := decodeResponsesSSE(body[:at], body[at:])
		if !reflect.DeepEqual(whole, parts) {
			t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, whole, parts)
		}
		for c, n := range whole.Tokens {
			if n < 0 {
				t.Fatalf("negative %s: %d", c, n)
			}
		}
		if int64(len(whole.Text)) != min(whole.StreamedTextBytes, MaxEstimateText) {
			t.Fatalf("kept %d bytes of text, counted %d", len(whole.Text), whole.StreamedTextBytes)
		}
	})
}

// responsesStream is a realistic Responses stream of n text deltas.
func responsesStream(n int, withTerminal bool) []byte {
	var b bytes.Buffer
	resp := `{"id":"resp_6840f1a2b3c4d5e6f7a8b9c0d1e2f3a4","object":"response","created_at":1749000000,"status":"in_progress",` +
		`"model":"gpt-4.1-2025-04-14","output":[],"usage":null}`
	fmt.Fprintf(&b, "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":%s}\n\n", resp)
	fmt.Fprintf(&b, "event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":%s}\n\n", resp)
	words := []string{" the", " quick", " brown", " fox", ` \"jumps\"`, " over", `\n`, " caf\\u00e9", " dog", "."}
	for i := range n {
		fmt.Fprintf(&b, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,"+
			"\"item_id\":\"msg_6840f1a3aa1c8191b2c3d4e5f6a7b8c9\",\"output_index\":0,\"content_index\":0,\"delta\":\"%s\",\"logprobs\":[]}\n\n",
			i+2, words[i%len(words)])
	}
	if withTerminal {
		fmt.Fprintf(&b, "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":%d,\"response\":"+
			`{"id":"resp_6840f1a2b3c4d5e6f7a8b9c0d1e2f3a4","object":"response","status":"completed","model":"gpt-4.1-2025-04-14",`+
			`"output":[],"usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1024},"output_tokens":%d,`+
			`"output_tokens_details":{"reasoning_tokens":0},"total_tokens":%d}}}`+"\n\n", n+2, n, 1200+n)
	}
	return b.Bytes()
}

func BenchmarkOpenAIResponsesSSE(b *testing.B) {
	body := responsesStream(200, true)
	chunks := randomChunks(body, 200, rand.New(rand.NewPCG(1, 1)))
	d := OpenAIResponses()
	resp := Response{Status: 200, ContentType: "text/event-stream"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var res Result
	for b.Loop() {
		dec := d.NewDecoder(resp, 0)
		for _, c := range chunks {
			_ = dec.Feed(c)
		}
		res = dec.Finish(true)
	}
	if res.Err != nil || res.Usage.Get(usage.Output) != 200 {
		b.Fatalf("bad result: %+v", res)
	}
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	b.ReportMetric(steadyAllocsPerChunk(b, d, resp, responsesStream(2000, false)), "allocs/chunk")
}
