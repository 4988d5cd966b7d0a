package dialect

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestOllamaChatFixtures(t *testing.T)     { runFixtures(t, OllamaChat()) }
func TestOllamaGenerateFixtures(t *testing.T) { runFixtures(t, OllamaGenerate()) }

func TestOllamaIdentity(t *testing.T) {
	for d, name := range map[Dialect]string{OllamaChat(): "ollama_chat", OllamaGenerate(): "ollama_generate"} {
		if d.Name() != name || d.Provider() != "ollama" {
			t.Fatalf("Name %q Provider %q, want %q ollama", d.Name(), d.Provider(), name)
		}
	}
}

func TestRegistryOllamaCohere(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/api/chat", "ollama_chat"},
		{"/ollama/api/chat", "ollama_chat"},
		{"/api/generate", "ollama_generate"},
		{"/api/generate?x=1", "ollama_generate"},
		{"/v2/chat", "cohere_chat"},
		{"/cohere/v2/chat", "cohere_chat"},
		{"/v1/chat", "cohere_chat_v1"},
		{"/v1/chat/completions", "openai_chat"}, // Ollama's OpenAI-compatible route
		{"/api/chat/completions", "openai_chat"},
		{"/api/embed", ""},
		{"/api/tags", ""},
		{"/v2/chat/", ""},
		{"/v2/xchat", ""},
		{"/v2/embed", ""},
		{"/chat", ""},
		{"/generate", ""},
	}
	r := DefaultRegistry()
	for _, tt := range tests {
		got := ""
		if d, ok := r.ForPath(tt.path); ok {
			got = d.Name()
		}
		if got != tt.want {
			t.Errorf("ForPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	for _, name := range []string{"ollama_chat", "ollama_generate", "cohere_chat", "cohere_chat_v1"} {
		if d, ok := r.ByName(name); !ok || d.Name() != name {
			t.Errorf("ByName(%q) = %v, %v", name, d, ok)
		}
	}
}

func TestOllamaParseRequest(t *testing.T) {
	tests := []struct {
		name string
		chat bool
		body string
		want Request
	}{
		{"chat streams by default", true, `{"model":"llama3.2","messages":[{"role":"user","content":"why is the sky blue?"}]}`,
			Request{Model: "llama3.2", Stream: true, IncludeUsage: true, PromptBytes: 20, Prompt: "why is the sky blue?"}},
		{"stream false", true, `{"model":"m","stream":false,"messages":[]}`, Request{Model: "m"}},
		{"stream null is the default", true, `{"model":"m","stream":null}`, Request{Model: "m", Stream: true, IncludeUsage: true}},
		{"stream true", true, `{"model":"m","stream":true}`, Request{Model: "m", Stream: true, IncludeUsage: true}},
		{"repeated stream, last wins", true, `{"model":"m","stream":false,"stream":true}`, Request{Model: "m", Stream: true, IncludeUsage: true}},
		{"num_predict", true, `{"model":"m","stream":false,"options":{"temperature":0,"num_predict":100}}`, Request{Model: "m", MaxTokens: 100}},
		{"num_predict unlimited", true, `{"model":"m","stream":false,"options":{"num_predict":-1}}`, Request{Model: "m"}},
		{"max_tokens is not an Ollama option", true, `{"model":"m","stream":false,"max_tokens":5}`, Request{Model: "m"}},
		{"chat messages joined, escapes decoded", true,
			`{"model":"m","stream":false,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"caf\u00e9\n","images":["aGk="]},{"role":"assistant","content":null}]}`,
			Request{Model: "m", PromptBytes: 9 + 6, Prompt: "Be brief.café\n"}},
		{"generate prompt, system, suffix", false,
			`{"model":"codellama:code","prompt":"def f(a):","suffix":"    return a","system":"You write Python.","stream":false}`,
			Request{Model: "codellama:code", PromptBytes: 17 + 9 + 12, Prompt: "You write Python.def f(a):    return a"}},
		{"generate ignores messages", false, `{"model":"m","messages":[{"content":"x"}],"prompt":"y"}`,
			Request{Model: "m", Stream: true, IncludeUsage: true, PromptBytes: 1, Prompt: "y"}},
		{"chat ignores prompt", true, `{"model":"m","prompt":"y"}`, Request{Model: "m", Stream: true, IncludeUsage: true}},
		{"load a model", false, `{"model":"llama3.2"}`, Request{Model: "llama3.2", Stream: true, IncludeUsage: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := OllamaGenerate()
			if tt.chat {
				d = OllamaChat()
			}
			got, newBody, err := d.ParseRequest([]byte(tt.body), RequestOptions{InjectStreamUsage: true, Path: "/api/x"})
			if err != nil || newBody != nil {
				t.Fatalf("err %v, newBody %q", err, newBody)
			}
			if got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	for body, want := range map[string]reason.Reason{`{"model":`: reason.MalformedJSON, `[1]`: reason.UnexpectedShape, ``: reason.MalformedJSON} {
		if _, _, err := OllamaChat().ParseRequest([]byte(body), RequestOptions{}); !errors.Is(err, want) {
			t.Errorf("%q: err %v, want %s", body, err, want)
		}
	}
}

func TestOllamaPromptAliasesBodyAndCaps(t *testing.T) {
	long := strings.Repeat("a", MaxEstimateText+10)
	body := []byte(`{"model":"m","prompt":"` + long + `"}`)
	req, _, err := OllamaGenerate().ParseRequest(body, RequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if req.PromptBytes != int64(len(long)) || len(req.Prompt) != MaxEstimateText {
		t.Fatalf("PromptBytes %d, len(Prompt) %d", req.PromptBytes, len(req.Prompt))
	}
	body[len(`{"model":"m","prompt":"`)] = 'b'
	if req.Prompt[0] != 'b' {
		t.Fatal("a lone unescaped prompt should alias the body, not copy it")
	}
	// Two pieces are copied and still capped.
	body = []byte(`{"model":"m","system":"s","prompt":"` + long + `"}`)
	req, _, _ = OllamaGenerate().ParseRequest(body, RequestOptions{})
	if req.PromptBytes != int64(len(long))+1 || len(req.Prompt) != MaxEstimateText || req.Prompt[:2] != "sa" {
		t.Fatalf("PromptBytes %d, len(Prompt) %d, %q", req.PromptBytes, len(req.Prompt), req.Prompt[:2])
	}
}

// decodeOllama feeds chunks to a fresh stream decoder.
func decodeOllama(chat, complete bool, chunks ...[]byte) Result {
	d := OllamaChat()
	if !chat {
		d = OllamaGenerate()
	}
	dec := d.NewDecoder(Response{Status: 200, ContentType: "application/x-ndjson"}, 1<<10)
	for _, c := range chunks {
		_ = dec.Feed(c)
	}
	return dec.Finish(complete)
}

func TestOllamaStreamText(t *testing.T) {
	body := `{"model":"m","message":{"role":"assistant","content":"","thinking":"Let me think."},"done":false}` + "\n" +
		`{"model":"m","message":{"role":"assistant","content":"Caf\u00e9 \"ok\""},"done":false}` + "\n" +
		`{"model":"m","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":false}` + "\n" +
		`{"model":"m","message":{"role":"assistant","content":""},"done":true,"prompt_eval_count":3,"eval_count":9}` + "\n"
	res := decodeOllama(true, true, []byte(body))
	want := `Let me think.Café "ok"{"a":1}`
	if string(res.Text) != want || res.StreamedTextBytes != int64(len(want)) || res.Err != nil {
		t.Fatalf("Text %q (%d bytes), err %v; want %q", res.Text, res.StreamedTextBytes, res.Err, want)
	}
	gen := `{"model":"m","thinking":"hmm","response":"","done":false}` + "\n" + `{"model":"m","response":"Hi","done":false}` + "\n"
	res = decodeOllama(false, true, []byte(gen))
	if string(res.Text) != "hmmHi" || !errors.Is(res.Err, reason.NoUsage) {
		t.Fatalf("generate Text %q err %v", res.Text, res.Err)
	}
}

func TestOllamaStreamReasons(t *testing.T) {
	done := `{"model":"m","done":true,"prompt_eval_count":4,"eval_count":2}` + "\n"
	word := `{"model":"m","message":{"content":"x"},"done":false}` + "\n"
	tests := []struct {
		name     string
		body     string
		complete bool
		reason   reason.Reason
		in, out  int64 // expected when reported
		reported bool
	}{
		{"done", word + done, true, "", 4, 2, true},
		{"done, client went away after", word + done, false, "", 4, 2, true},
		{"no done, complete", word, true, reason.NoUsage, 0, 0, false},
		{"no done, cut", word, false, reason.Truncated, 0, 0, false},
		{"cut mid-line", word + `{"model":"m","mess`, true, reason.Truncated, 0, 0, false},
		{"not json", word + "<html>502</html>\n", true, reason.MalformedJSON, 0, 0, false},
		{"not an object", "[1,2]\n" + word, true, reason.UnexpectedShape, 0, 0, false},
		{"error line wins over done", word + `{"error":"boom"}` + "\n" + done, true, reason.ProviderError, 4, 2, true},
		{"empty error is none", `{"error":"","model":"m","done":true,"eval_count":1}` + "\n", true, "", 0, 1, true},
		{"negative count", `{"done":true,"prompt_eval_count":-3,"eval_count":2}`, true, reason.InconsistentUsage, 0, 2, true},
		{"count not a number", `{"done":true,"prompt_eval_count":"3","eval_count":2}`, true, reason.UnexpectedShape, 0, 2, true},
		{"null count is absent", `{"done":true,"prompt_eval_count":null,"eval_count":2}`, true, "", 0, 2, true},
		{"done false with counts is no usage", `{"done":false,"prompt_eval_count":3,"eval_count":2}`, true, reason.NoUsage, 0, 0, false},
		{"too large line, then done", strings.Repeat("y", 2000) + "\n" + done, true, "", 4, 2, true},
		{"too large line, no done", word + strings.Repeat("y", 2000) + "\n", true, reason.TooLarge, 0, 0, false},
		{"empty body", "", true, reason.NoUsage, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeOllama(true, tt.complete, []byte(tt.body))
			if reason.Of(res.Err) != tt.reason {
				t.Fatalf("reason %q (%v), want %q", reason.Of(res.Err), res.Err, tt.reason)
			}
			u := res.Usage
			if u.Reported() != tt.reported || u.Get(usage.Input) != tt.in || u.Get(usage.Output) != tt.out {
				t.Fatalf("usage %+v, want reported=%v in=%d out=%d", u.Tokens, tt.reported, tt.in, tt.out)
			}
			if tt.reported && (!u.Tokens[usage.Input].Reported || !u.Tokens[usage.Output].Reported) {
				t.Fatal("a done object reports both classes")
			}
		})
	}
}

func TestOllamaJSONReasons(t *testing.T) {
	tests := []struct {
		name, ct, body string
		complete       bool
		reason         reason.Reason
	}{
		{"done", "application/json", `{"model":"m","response":"x","done":true,"eval_count":1}`, true, ""},
		{"not done", "application/json", `{"model":"m","response":"x","done":false}`, true, reason.NoUsage},
		{"error", "application/json", `{"error":"model requires more system memory"}`, true, reason.ProviderError},
		{"malformed", "application/json", `{"done":tru`, true, reason.MalformedJSON},
		{"cut", "application/json", `{"done":tru`, false, reason.Truncated},
		{"array", "APPLICATION/JSON; charset=utf-8", `[{"done":true}]`, true, reason.UnexpectedShape},
		{"no content type reads lines", "", `{"model":"m","response":"x","done":true,"eval_count":1}`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := OllamaGenerate().NewDecoder(Response{Status: 200, ContentType: tt.ct}, 0)
			_ = dec.Feed([]byte(tt.body))
			if res := dec.Finish(tt.complete); reason.Of(res.Err) != tt.reason {
				t.Fatalf("reason %q (%v), want %q", reason.Of(res.Err), res.Err, tt.reason)
			}
		})
	}
}

func TestOllamaGzipStream(t *testing.T) {
	body := readFile(t, "testdata/ollama_chat/chat_ndjson", "response")
	dec := OllamaChat().NewDecoder(Response{Status: 200, ContentType: "application/x-ndjson", ContentEncoding: "gzip"}, 0)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		_, _ = zw.Write(line)
		_ = zw.Flush() // as a streaming server flushes each line
	}
	_ = zw.Close()
	gz := buf.Bytes()
	for _, c := range randomChunks(gz, 50, rand.New(rand.NewPCG(3, 3))) {
		_ = dec.Feed(c)
	}
	res := dec.Finish(true)
	if res.Err != nil || res.Usage.Get(usage.Input) != 26 || res.Usage.Get(usage.Output) != 9 {
		t.Fatalf("got %+v", outcomeOf(res))
	}
}

func FuzzOllamaStream(f *testing.F) {
	// Small seeds: the fixture tests split the recorded streams everywhere.
	f.Add([]byte(`{"model":"m","message":{"content":"a\n\u00e9"},"done":false}`+"\r\n\r\n"+`{"done":true,"prompt_eval_count":3,"eval_count":1}`), uint(40), true)
	f.Add([]byte(`{"response":"x","thinking":"y","done":false}`+"\n"+`{"error":"boom"}`+"\n"+`{"done":tr`), uint(9), false)
	f.Add([]byte(`{"done":true,"prompt_eval_count":-1,"eval_count":"2"}`+"\n[1]\nnot json\n"), uint(3), true)
	f.Add([]byte(`{"message":{"tool_calls":[{"function":{"arguments":{"a":[1,{"b":"}"}]}}}]},"done":true}`), uint(30), true)
	f.Fuzz(func(t *testing.T, body []byte, split uint, chat bool) {
		at := int(split % uint(len(body)+1))
		for _, complete := range []bool{true, false} {
			whole := decodeOllama(chat, complete, body)
			parts := decodeOllama(chat, complete, body[:at], body[at:])
			if !reflect.DeepEqual(outcomeOf(whole), outcomeOf(parts)) || !bytes.Equal(whole.Text, parts.Text) {
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

// ollamaStreamBody is a realistic /api/chat stream of n words, ending with
// the done object when ended is set.
func ollamaStreamBody(n int, ended bool) []byte {
	var b bytes.Buffer
	words := []string{" the", " quick", " brown", " fox", ` \"jumps\"`, " over", `\n`, " café", " dog", "."}
	for i := range n {
		fmt.Fprintf(&b, `{"model":"llama3.2","created_at":"2024-07-22T20:47:51.%06dZ","message":{"role":"assistant","content":"%s"},"done":false}`+"\n",
			i%1000000, words[i%len(words)])
	}
	if ended {
		fmt.Fprintf(&b, `{"model":"llama3.2","created_at":"2024-07-22T20:47:52.1Z","message":{"role":"assistant","content":""},`+
			`"done_reason":"stop","done":true,"total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,`+
			`"prompt_eval_duration":342546000,"eval_count":%d,"eval_duration":4535599000}`+"\n", n)
	}
	return b.Bytes()
}

func BenchmarkOllamaStream(b *testing.B) {
	body := ollamaStreamBody(200, true)
	chunks := randomChunks(body, 200, rand.New(rand.NewPCG(1, 1))) // about 100 bytes each
	dialect := OllamaChat()
	resp := Response{Status: 200, ContentType: "application/x-ndjson"}
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
	if res.Err != nil || res.Usage.Get(usage.Output) != 200 || res.Usage.Get(usage.Input) != 26 {
		b.Fatalf("bad result: %+v", outcomeOf(res))
	}
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	b.ReportMetric(steadyAllocsPerChunk(b, dialect, resp, ollamaStreamBody(2000, false)), "allocs/chunk")
}
