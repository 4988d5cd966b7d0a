package dialect

import (
	"bytes"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestGeminiFixtures(t *testing.T) { runFixtures(t, Gemini()) }

// Vertex AI speaks Gemini's wire format: only the name and the provider,
// which qualify prices, differ.
func TestVertexGeminiDecodesGeminiWire(t *testing.T) {
	if d := VertexGemini(); d.Name() != "vertex_gemini" || d.Provider() != "vertex" {
		t.Fatalf("VertexGemini is %s/%s", d.Name(), d.Provider())
	}
	if d := Gemini(); d.Name() != "gemini" || d.Provider() != "google" {
		t.Fatalf("Gemini is %s/%s", d.Name(), d.Provider())
	}
	for _, f := range loadDialectFixtures(t, "gemini") {
		if got := f.decodeWith(VertexGemini(), [][]byte{f.response}); !reflect.DeepEqual(got, f.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", f.name, got, f.want)
		}
	}
}

func TestGeminiRegistry(t *testing.T) {
	tests := []struct {
		path string
		want string // dialect name; "" for no match
	}{
		{"/v1beta/models/gemini-2.0-flash:generateContent", "gemini"},
		{"/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "gemini"},
		{"/v1beta/models/gemini-2.0-flash:streamGenerateContent", "gemini"},
		{"/v1/models/gemini-2.5-pro:generateContent?key=abc", "gemini"},
		{"/v1beta/tunedModels/my-model-123:generateContent", "gemini"},
		{"/google/v1beta/models/gemini-2.0-flash:generateContent", "gemini"},
		{"/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:generateContent", "vertex_gemini"},
		{"/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse", "vertex_gemini"},
		{"/v1beta1/projects/p/locations/europe-west4/endpoints/123:generateContent", "vertex_gemini"},
		{"/v1/publishers/google/models/gemini-2.0-flash:generateContent?key=k", "vertex_gemini"}, // express mode
		{"/v1beta/models/gemini-2.0-flash:countTokens", ""},
		{"/v1beta/models/gemini-2.0-flash:batchGenerateContent", ""},
		{"/v1beta/models/text-embedding-004:embedContent", ""},
		{"/v1/projects/p/locations/l/publishers/anthropic/models/claude:streamRawPredict", ""},
		{"/v1beta/models/gemini-2.0-flash:generateContent/", ""},
		{"/v1beta/models?next=:generateContent", ""},
		{"/v1beta/models/gemini-2.0-flash:generatecontent", ""},
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
	for _, name := range []string{"gemini", "vertex_gemini"} {
		if d, ok := r.ByName(name); !ok || d.Name() != name {
			t.Errorf("ByName(%q) = %v, %v", name, d, ok)
		}
	}
}

func TestGeminiParseRequest(t *testing.T) {
	const flash = "/v1beta/models/gemini-2.0-flash:generateContent"
	tests := []struct {
		name, path, body string
		want             Request
		reason           reason.Reason
	}{
		{"text parts and system instruction", flash,
			`{"systemInstruction":{"parts":[{"text":"Be brief. "}]},"contents":[{"role":"user","parts":[{"text":"Hi \"you\"\n"},{"inlineData":{"mimeType":"image/png","data":"AAAA"}},{"text":"é"}]},{"role":"model","parts":[{"text":"Yo"}]}],"generationConfig":{"maxOutputTokens":256,"temperature":0.2}}`,
			Request{Model: "gemini-2.0-flash", MaxTokens: 256, Prompt: "Be brief. Hi \"you\"\néYo", PromptBytes: 23}, ""},
		{"snake_case names", flash,
			`{"system_instruction":{"parts":[{"text":"S"}]},"contents":[{"parts":[{"text":"T"}]}],"generation_config":{"max_output_tokens":"64"}}`,
			Request{Model: "gemini-2.0-flash", MaxTokens: 64, Prompt: "ST", PromptBytes: 2}, ""},
		{"stream, with alt=sse", "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
			`{"contents":[{"parts":[{"text":"hello"}]}]}`,
			Request{Model: "gemini-2.5-pro", Stream: true, IncludeUsage: true, Prompt: "hello", PromptBytes: 5}, ""},
		{"stream, array", "/v1/models/gemini-2.5-pro:streamGenerateContent",
			`{"contents":[]}`, Request{Model: "gemini-2.5-pro", Stream: true, IncludeUsage: true}, ""},
		{"URL-encoded model", "/v1beta/models/gemini%2D2.5%2Dflash%2Dlite:generateContent?key=a%3Ab",
			`{}`, Request{Model: "gemini-2.5-flash-lite"}, ""},
		{"encoded resource name", "/v1beta/models%2Fgemini-2.0-flash:generateContent", `{}`, Request{Model: "gemini-2.0-flash"}, ""},
		{"bad escape kept as is", "/v1beta/models/gemini%zz:generateContent", `{}`, Request{Model: "gemini%zz"}, ""},
		{"vertex", "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:streamGenerateContent",
			`{"contents":{"role":"user","parts":[{"text":"lone content"}]}}`,
			Request{Model: "gemini-2.0-flash-001", Stream: true, IncludeUsage: true, Prompt: "lone content", PromptBytes: 12}, ""},
		{"repeated key: the last counts", flash,
			`{"generationConfig":{"maxOutputTokens":5},"generation_config":{"maxOutputTokens":9}}`,
			Request{Model: "gemini-2.0-flash", MaxTokens: 9}, ""},
		{"negative max", flash, `{"generationConfig":{"maxOutputTokens":-3}}`, Request{Model: "gemini-2.0-flash"}, ""},
		{"no method in the path", "/v1beta/models/gemini-2.0-flash", `{}`, Request{}, ""},
		// An unreadable body keeps the path's model, and its length bounds
		// the prompt (Dialect.ParseRequest's contract).
		{"malformed", flash, `{"contents":[`, Request{Model: "gemini-2.0-flash", PromptBytes: 13}, reason.MalformedJSON},
		{"not an object", flash, `[{"contents":[]}]`, Request{Model: "gemini-2.0-flash", PromptBytes: 17}, reason.UnexpectedShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []Dialect{Gemini(), VertexGemini()} {
				got, newBody, err := d.ParseRequest([]byte(tt.body), RequestOptions{Path: tt.path, InjectStreamUsage: true})
				if reason.Of(err) != tt.reason || (err != nil) != (tt.reason != "") {
					t.Fatalf("%s: err %v, want reason %q", d.Name(), err, tt.reason)
				}
				if newBody != nil {
					t.Fatalf("%s: rewrote the body: %s", d.Name(), newBody)
				}
				if got != tt.want {
					t.Fatalf("%s:\ngot  %+v\nwant %+v", d.Name(), got, tt.want)
				}
			}
		})
	}
}

// geminiChunk is one streamed response object with a running usage total.
func geminiChunk(text, usageMeta string, finish bool) string {
	fr := ""
	if finish {
		fr = `,"finishReason":"STOP"`
	}
	return `{"candidates":[{"content":{"parts":[{"text":"` + text + `"}],"role":"model"}` + fr + `,"index":0}],` +
		`"usageMetadata":` + usageMeta + `,"modelVersion":"gemini-2.5-flash"}`
}

func decodeGemini(ct string, complete bool, chunks ...[]byte) Result {
	d := Gemini().NewDecoder(Response{Status: 200, ContentType: ct}, 1<<10)
	for _, c := range chunks {
		_ = d.Feed(c)
	}
	return d.Finish(complete)
}

// A later usageMetadata replaces the earlier one whole: a count it leaves
// out is zero, not the earlier value.
func TestGeminiLastUsageObjectWins(t *testing.T) {
	body := "data: " + geminiChunk("a", `{"promptTokenCount":10,"cachedContentTokenCount":5,"totalTokenCount":10}`, false) + "\n\n" +
		"data: " + geminiChunk("b", `{"promptTokenCount":10,"candidatesTokenCount":2,"totalTokenCount":12}`, true) + "\n\n"
	res := decodeGemini("text/event-stream", true, []byte(body))
	if res.Err != nil || res.Usage.Get(usage.CacheRead) != 0 || res.Usage.Get(usage.Input) != 10 || res.Usage.Get(usage.Output) != 2 {
		t.Fatalf("got %+v", outcomeOf(res))
	}
	if string(res.Text) != "ab" || res.StreamedTextBytes != 2 {
		t.Fatalf("text %q, %d bytes", res.Text, res.StreamedTextBytes)
	}
}

func TestGeminiResultText(t *testing.T) {
	body := readFile(t, filepath.Join("testdata", "gemini", "json_cached_thoughts"), "response")
	res := decodeGemini("application/json", true, body)
	want := "**Weighing the question**\nI consider [brackets] and {braces}.The answer is 42, because \"six by nine\"."
	if string(res.Text) != want || res.StreamedTextBytes != int64(len(want)) {
		t.Fatalf("text %q (%d bytes), want %q", res.Text, res.StreamedTextBytes, want)
	}
}

func TestGeminiStreamEndings(t *testing.T) {
	u := func(cand int) string {
		return fmt.Sprintf(`{"promptTokenCount":4,"candidatesTokenCount":%d,"totalTokenCount":%d}`, cand, 4+cand)
	}
	big := geminiChunk(strings.Repeat("x", 2<<10), u(3), false)
	tests := []struct {
		name, ct, body string
		complete       bool
		reason         reason.Reason
		output         int64
	}{
		{"array complete", "application/json", "[" + geminiChunk("a", u(1), false) + ",\r\n" + geminiChunk("b", u(2), true) + "]", false, "", 2},
		{"array cut after the final chunk", "application/json", "[" + geminiChunk("a", u(1), true) + ",", false, "", 1},
		{"array ended early by the provider", "application/json", "[" + geminiChunk("a", u(1), false), true, reason.Truncated, 1},
		{"array with nothing", "application/json", "[", true, reason.Truncated, 0},
		{"array of nothing", "application/json", "[]", true, reason.NoUsage, 0},
		{"array syntax error", "application/json", `[{"a":1} {"b":2}]`, true, reason.MalformedJSON, 0},
		{"array of non-objects", "application/json", `[1, "x"]`, true, reason.UnexpectedShape, 0},
		{"array of malformed objects", "application/json", `[{"a":}]`, true, reason.MalformedJSON, 0},
		{"dropped chunk after the last usage", "application/json", "[" + geminiChunk("a", u(1), false) + "," + big + "]", true, reason.TooLarge, 1},
		{"dropped chunk before the final usage", "application/json", "[" + big + "," + geminiChunk("a", u(5), true) + "]", true, "", 5},
		{"sse cut", "text/event-stream", "data: " + geminiChunk("a", u(1), false) + "\n\n", false, reason.Truncated, 1},
		{"sse cut mid-event", "text/event-stream", "data: " + geminiChunk("a", u(1), false) + "\n\ndata: {", true, reason.Truncated, 1},
		{"sse complete without finishReason", "text/event-stream", "data: " + geminiChunk("a", u(1), false) + "\n\n", true, "", 1},
		{"sse error after usage", "text/event-stream", "data: " + geminiChunk("a", u(1), false) + "\n\ndata: {\"error\":{\"code\":500,\"status\":\"INTERNAL\"}}\n\n", true, reason.ProviderError, 1},
		{"sse too large", "text/event-stream", "data: " + big + "\n\n", true, reason.TooLarge, 0},
		{"whole body too large", "application/json", big, true, reason.TooLarge, 0},
		{"whole body cut", "application/json", `{"usageMetadata":{"promptTokenCount":4`, false, reason.Truncated, 0},
		{"whole body without counts", "application/json", `{"usageMetadata":{"trafficType":"ON_DEMAND"}}`, true, reason.UnexpectedShape, 0},
		{"whole body without usage", "application/json", `{"candidates":[]}`, true, reason.NoUsage, 0},
		{"empty body", "application/json", "", true, reason.MalformedJSON, 0},
		{"whitespace then object", "application/json", "\r\n " + geminiChunk("a", u(1), true), true, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeGemini(tt.ct, tt.complete, []byte(tt.body))
			if reason.Of(res.Err) != tt.reason || (res.Err != nil) != (tt.reason != "") || res.Usage.Get(usage.Output) != tt.output {
				t.Fatalf("got %+v, err %v; want reason %q, output %d", outcomeOf(res), res.Err, tt.reason, tt.output)
			}
		})
	}
}

func TestGeminiNormalise(t *testing.T) {
	tests := []struct {
		name   string
		meta   string
		want   map[string]int64
		reason reason.Reason
	}{
		{"total disagrees: kept, not an error", `{"promptTokenCount":5,"candidatesTokenCount":5,"totalTokenCount":99}`,
			map[string]int64{"input": 5, "cache_read": 0, "output": 5, "reasoning": 0}, ""},
		{"audio output", `{"promptTokenCount":5,"candidatesTokenCount":50,"candidatesTokensDetails":[{"modality":"AUDIO","tokenCount":50}]}`,
			map[string]int64{"input": 5, "cache_read": 0, "output": 0, "audio_output": 50, "reasoning": 0}, ""},
		{"cached audio only", `{"promptTokenCount":30,"cachedContentTokenCount":30,"cacheTokensDetails":[{"modality":"AUDIO","tokenCount":30}],"promptTokensDetails":[{"modality":"AUDIO","tokenCount":30}]}`,
			map[string]int64{"input": 0, "cache_read": 30, "audio_input": 0, "output": 0, "reasoning": 0}, ""},
		{"repeated modality entries add up", `{"promptTokenCount":30,"promptTokensDetails":[{"modality":"AUDIO","tokenCount":10},{"modality":"AUDIO","tokenCount":5},{"modality":"FUTURE","tokenCount":7}]}`,
			map[string]int64{"input": 15, "cache_read": 0, "audio_input": 15, "output": 0, "reasoning": 0}, ""},
		{"string counts", `{"promptTokenCount":"12","candidatesTokenCount":3}`,
			map[string]int64{"input": 12, "cache_read": 0, "output": 3, "reasoning": 0}, ""},
		{"image output over candidates", `{"promptTokenCount":1,"candidatesTokenCount":10,"candidatesTokensDetails":[{"modality":"IMAGE","tokenCount":12}]}`,
			map[string]int64{"input": 1, "cache_read": 0, "output": 0, "image_output": 10, "reasoning": 0}, reason.InconsistentUsage},
		{"cached audio over prompt audio", `{"promptTokenCount":20,"cachedContentTokenCount":10,"promptTokensDetails":[{"modality":"AUDIO","tokenCount":2}],"cacheTokensDetails":[{"modality":"AUDIO","tokenCount":5}]}`,
			map[string]int64{"input": 10, "cache_read": 10, "audio_input": 0, "output": 0, "reasoning": 0}, reason.InconsistentUsage},
		{"negative count", `{"promptTokenCount":-4,"candidatesTokenCount":3,"thoughtsTokenCount":-1}`,
			map[string]int64{"input": 0, "cache_read": 0, "output": 3, "reasoning": 0}, reason.InconsistentUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeGemini("application/json", true, []byte(`{"usageMetadata":`+tt.meta+`}`))
			if got := outcomeOf(res); !reflect.DeepEqual(got.Tokens, tt.want) || got.Reason != tt.reason {
				t.Fatalf("got %+v (%v), want %v %q", got.Tokens, res.Err, tt.want, tt.reason)
			}
		})
	}
}

func FuzzGeminiStream(f *testing.F) {
	f.Add([]byte("data: "+geminiChunk(`a\n\u00e9`, `{"promptTokenCount":5,"cachedContentTokenCount":2,"candidatesTokenCount":1}`, false)+"\r\n\r\n"+
		"data: {\"error\":{\"status\":\"X\"}}\r\n\r\n"), uint(40), uint8(0))
	f.Add([]byte("["+geminiChunk("x", `{"promptTokenCount":5,"promptTokensDetails":[{"modality":"AUDIO","tokenCount":9}]}`, true)+"\n,\r\n{\"error\":{}}\n]"), uint(7), uint8(1))
	f.Add([]byte(`{"usageMetadata":{"promptTokenCount":-1,"candidatesTokenCount":1e3,"candidatesTokensDetails":[{"modality":"IMAGE","tokenCount":"7"}]}}`), uint(9), uint8(1))
	f.Add([]byte(`[{"usageMetadata":{"promptTokenCount":1}}`), uint(3), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, split uint, kind uint8) {
		ct := [...]string{"text/event-stream", "application/json", "application/json; charset=UTF-8"}[int(kind)%3]
		at := int(split % uint(len(body)+1))
		for _, complete := range []bool{true, false} {
			whole := decodeGemini(ct, complete, body)
			parts := decodeGemini(ct, complete, body[:at], body[at:])
			if w, p := outcomeOf(whole), outcomeOf(parts); !reflect.DeepEqual(w, p) || !bytes.Equal(whole.Text, parts.Text) {
				t.Fatalf("split at %d changed the result:\nwhole %+v %q\nsplit %+v %q", at, w, whole.Text, p, parts.Text)
			}
			for c, n := range whole.Usage.Tokens {
				if n.N < 0 {
					t.Fatalf("negative %s: %d", usage.Class(c), n.N)
				}
			}
		}
	})
}

func FuzzGeminiRequest(f *testing.F) {
	f.Add([]byte(`{"systemInstruction":{"parts":[{"text":"a\u00e9"}]},"contents":[{"parts":[{"text":"b"}]}],"generationConfig":{"maxOutputTokens":"7"}}`),
		"/v1beta/models/gemini%2D2.0:streamGenerateContent?alt=sse")
	f.Add([]byte(`{"contents":{"parts":[{"text":"\ud83d\ude00"}]}}`), "/v1/projects/p/locations/l/publishers/google/models/m:generateContent")
	f.Add([]byte(`[]`), ":")
	f.Add([]byte("\xef\xbb\xbf{\"generationConfig\":{\"temperature\":NaN,\"maxOutputTokens\":5}}trailing"), "/v1beta/models/m:generateContent")
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		req, newBody, err := Gemini().ParseRequest(body, RequestOptions{Path: path})
		if newBody != nil {
			t.Fatal("rewrote the body")
		}
		if err != nil {
			if r := reason.Of(err); r != reason.MalformedJSON && r != reason.UnexpectedShape {
				t.Fatalf("error without a reason: %v", err)
			}
			if req.PromptBytes != int64(len(body)) || req.Prompt != "" {
				t.Fatalf("error %v with %+v: want the body's length as the prompt bound", err, req)
			}
			return
		}
		if int64(len(req.Prompt)) > req.PromptBytes || req.MaxTokens < 0 || req.IncludeUsage != req.Stream {
			t.Fatalf("inconsistent request %+v", req)
		}
	})
}

// geminiSSEStream is a realistic alt=sse stream of n text chunks.
func geminiSSEStream(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "data: %s\r\n\r\n", geminiBenchChunk(i, i == n-1, false))
	}
	return b.Bytes()
}

// geminiArrayStream is the same stream as Google sends it without alt=sse,
// one element per chunk when perElement.
func geminiArrayStream(n int) [][]byte {
	out := [][]byte{[]byte("[")}
	for i := range n {
		sep := ""
		if i > 0 {
			sep = ",\r\n"
		}
		out = append(out, []byte(sep+geminiBenchChunk(i, i == n-1, true)+"\n"))
	}
	return append(out, []byte("]"))
}

func geminiBenchChunk(i int, last, pretty bool) string {
	fr := ""
	if last {
		fr = `,"finishReason":"STOP"`
	}
	s := fmt.Sprintf(`{"candidates":[{"content":{"parts":[{"text":" word%d, \"quoted\"\n"}],"role":"model"}%s,"index":0}],`+
		`"usageMetadata":{"promptTokenCount":1100,"cachedContentTokenCount":1024,"candidatesTokenCount":%d,"totalTokenCount":%d,`+
		`"promptTokensDetails":[{"modality":"TEXT","tokenCount":1100}],"thoughtsTokenCount":300},`+
		`"modelVersion":"gemini-2.5-flash","responseId":"bench"}`, i, fr, 2*(i+1), 1400+2*(i+1))
	if pretty {
		s = strings.ReplaceAll(strings.ReplaceAll(s, `{"`, "{\n  \""), `,"`, ",\n  \"")
	}
	return s
}

func benchmarkGemini(b *testing.B, ct string, chunks [][]byte, long [][]byte) {
	d0 := Gemini()
	resp := Response{Status: 200, ContentType: ct}
	b.SetBytes(int64(len(bytes.Join(chunks, nil))))
	b.ReportAllocs()
	var res Result
	for b.Loop() {
		d := d0.NewDecoder(resp, 0)
		for _, c := range chunks {
			_ = d.Feed(c)
		}
		res = d.Finish(true)
	}
	if res.Err != nil || res.Usage.Get(usage.Output) != 400 || res.Usage.Get(usage.CacheRead) != 1024 {
		b.Fatalf("bad result: %+v %v", outcomeOf(res), res.Err)
	}
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	b.ReportMetric(allocsPerChunk(b, func() Decoder { return d0.NewDecoder(resp, 0) }, long), "allocs/chunk")
}

func BenchmarkGeminiSSE(b *testing.B) {
	chunks := randomChunks(geminiSSEStream(200), 200, rand.New(rand.NewPCG(1, 1))) // about 100 bytes each
	long := randomChunks(geminiSSEStream(2000), 200, rand.New(rand.NewPCG(2, 2)))
	benchmarkGemini(b, "text/event-stream", chunks, long)
}

// BenchmarkGeminiArrayStream feeds the array one element per chunk, as
// Google writes it: no element is copied.
func BenchmarkGeminiArrayStream(b *testing.B) {
	benchmarkGemini(b, "application/json; charset=UTF-8", geminiArrayStream(200), geminiArrayStream(2000))
}

func BenchmarkGeminiJSON(b *testing.B) {
	body, err := os.ReadFile(filepath.Join("testdata", "gemini", "json_modalities", "response"))
	if err != nil {
		b.Fatal(err)
	}
	resp := Response{Status: 200, ContentType: "application/json"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d := Gemini().NewDecoder(resp, 0)
		_ = d.Feed(body)
		if r := d.Finish(true); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}
