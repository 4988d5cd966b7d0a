package dialect

import (
	"cmp"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"path/filepath"
	"testing"
)

// Bodies providers' servers accept though RFC 8259 does not must be read
// (issue 12, item 1: each was admitted unpriced and charged afterwards).
// Each fixture under testdata/lenient/openai_chat is one case, by name.
func TestOpenAIChatLenientFixtures(t *testing.T) {
	const prompt = "What is NaN?"
	want := func(stream bool, l Leniency) Request {
		return Request{Model: "gpt-4o-mini", Stream: stream, MaxTokens: 64, Prompt: prompt, PromptBytes: int64(len(prompt)), Lenient: l}
	}
	tests := []struct {
		name   string
		want   Request
		reason reason.Reason
	}{
		{"nan_temperature", want(false, LenientNonFinite), ""},
		{"infinity_top_p", want(false, LenientNonFinite), ""},
		{"negative_infinity_in_array", want(false, LenientNonFinite), ""},
		{"utf8_bom", want(false, LenientBOM), ""},
		{"trailing_garbage", want(false, LenientTrailing), ""},
		// The first value is what Go's json.Decoder acts on, not the second.
		{"trailing_second_object", want(false, LenientTrailing), ""},
		{"bom_nan_trailing", want(true, LenientBOM|LenientNonFinite|LenientTrailing), ""},
		{"nan_in_a_string_is_text", Request{Model: "gpt-4o-mini", MaxTokens: 64, Prompt: "NaN, Infinity", PromptBytes: 13}, ""},
		// Valid JSON without a model: read, and the model is empty (the
		// unpriced-model policy is admission's).
		{"no_model", Request{MaxTokens: 64, Prompt: prompt, PromptBytes: int64(len(prompt))}, ""},
		// A NaN where max_tokens is reads as no cap.
		{"max_tokens_nan", Request{Model: "gpt-4o-mini", Prompt: prompt, PromptBytes: int64(len(prompt)), Lenient: LenientNonFinite}, ""},
		// Unreadable even so: the error, with what admission can use.
		{"truncated", Request{Model: "gpt-4o-mini", Stream: true, PromptBytes: 101}, reason.MalformedJSON},
		{"nan_glued_to_a_number", Request{Model: "gpt-4o-mini", PromptBytes: 96}, reason.MalformedJSON},
	}
	dir := filepath.Join("testdata", "lenient", "openai_chat")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != len(tests) {
		t.Fatalf("%d fixtures in %s, %d cases: each fixture needs its case", len(files), dir, len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := readFile(t, dir, tt.name+".json")
			for _, inject := range []bool{false, true} {
				got, newBody, err := OpenAIChat().ParseRequest(body, RequestOptions{InjectStreamUsage: inject})
				if reason.Of(err) != tt.reason || (err != nil) != (tt.reason != "") {
					t.Fatalf("inject=%v: err %v, want reason %q", inject, err, tt.reason)
				}
				// A leniently read body passes as sent: a rewrite would
				// send the normalised copy.
				if newBody != nil && (tt.want.Lenient != 0 || err != nil) {
					t.Fatalf("inject=%v: rewrote a lenient body: %q", inject, newBody)
				}
				if newBody != nil {
					continue // the strict path's injection, tested elsewhere
				}
				if got != tt.want {
					t.Fatalf("inject=%v:\ngot  %+v\nwant %+v", inject, got, tt.want)
				}
			}
		})
	}
}

// jsonRequestCases adds bodies to each dialect's testdata/<dialect>/request.json:
// a stream flag, a cap, a deployment's or Vertex's path.
var jsonRequestCases = []struct{ path, body string }{
	{"/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"hello there"}]}`},
	{"/openai/deployments/prod/chat/completions", `{"model":"gpt-4o","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`},
	{"/openai/deployments/prod/completions", `{"model":"gpt-35","max_tokens":5,"prompt":"hi"}`},
	{"/openai/deployments/prod/embeddings", `{"model":"ada","input":"hi"}`},
	{"/openai/v1/responses", `{"model":"gpt-4o","max_output_tokens":9,"input":"hi"}`},
	{"/v1/completions", `{"model":"gpt-3.5-turbo-instruct","max_tokens":7,"prompt":"Say this"}`},
	{"/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`},
	{"/v1/responses", `{"model":"gpt-4o","max_output_tokens":9,"input":"hi"}`},
	{"/v1/audio/speech", `{"model":"tts-1","input":"hello","voice":"alloy"}`},
	{"/v1/images/generations", `{"model":"dall-e-3","prompt":"a cat","size":"1024x1024","quality":"hd"}`},
	{"/v1/messages", `{"model":"claude-sonnet-4","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
	{"/v2/chat", `{"model":"command-r","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`},
	{"/v1/chat", `{"model":"command-r","max_tokens":5,"message":"hi"}`},
	{"/api/chat", `{"model":"llama3","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":5}}`},
	{"/api/generate", `{"model":"llama3","prompt":"hi"}`},
	{"/v1beta/models/gemini-2.0-flash:streamGenerateContent", `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":5}}`},
	{"/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`},
	{"/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse", `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":5}}`},
	{"/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse-stream", `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`},
	{"/model/meta.llama3-3-70b-instruct-v1:0/invoke", `{"prompt":"hi","max_gen_len":5}`},
	{"/model/meta.llama3-3-70b-instruct-v1:0/invoke-with-response-stream", `{"prompt":"hi","max_gen_len":5}`},
}

// Every JSON dialect reads each lenient variant of its strict body as it
// reads the strict one, and an unreadable body as its contract says: the
// bodies of jsonRequestCases and every JSON request.json under testdata,
// which every dialect has (TestEveryDialectHasItsRequest). A multipart body
// (openai_audio) is not JSON and has no lenient variants.
func TestEveryJSONDialectParsesLeniently(t *testing.T) {
	r := DefaultRegistry()
	type jsonCase struct{ name, path, body string }
	var cases []jsonCase
	for _, c := range jsonRequestCases {
		cases = append(cases, jsonCase{"", c.path, c.body})
	}
	for _, rf := range requestFixtures(t) {
		if rf.json() {
			cases = append(cases, jsonCase{filepath.ToSlash(rf.file), rf.path, string(rf.body)})
		}
	}
	for _, c := range cases {
		d, ok := r.ForPath(c.path)
		if !ok {
			t.Fatalf("no dialect for %s", c.path)
		}
		t.Run(cmp.Or(c.name, d.Name()+c.path), func(t *testing.T) { checkLenientVariants(t, d, c.path, c.body) })
	}
}

// checkLenientVariants parses body strictly, then each lenient variant of
// it (which must read the same, noted), then body cut short (which must
// fail with what admission can use).
func checkLenientVariants(t *testing.T, d Dialect, path, body string) {
	t.Helper()
	const bom = "\xef\xbb\xbf"
	opts := RequestOptions{Path: path}
	strict, _, err := d.ParseRequest([]byte(body), opts)
	if err != nil || strict.Lenient != 0 || strict.Model == "" || strict.PromptBytes == 0 {
		t.Fatalf("strict body: %+v, %v", strict, err)
	}
	withNaN := `{"temperature":NaN,"top_p":-Infinity,"seed":Infinity,` + body[1:]
	for _, v := range []struct {
		name, body string
		how        Leniency
	}{
		{"non-finite", withNaN, LenientNonFinite},
		{"bom", bom + body, LenientBOM},
		{"trailing", body + "}garbage", LenientTrailing},
		{"all", bom + " " + withNaN + "\n\x00", LenientBOM | LenientNonFinite | LenientTrailing},
	} {
		got, newBody, err := d.ParseRequest([]byte(v.body), opts)
		want := strict
		want.Lenient = v.how
		if err != nil || newBody != nil || got != want {
			t.Errorf("%s: got %+v, %q, %v\nwant %+v", v.name, got, newBody, err, want)
		}
	}
	cut := body[:len(body)-4]
	got, newBody, err := d.ParseRequest([]byte(cut), opts)
	if reason.Of(err) != reason.MalformedJSON || newBody != nil || got.Model != strict.Model ||
		got.PromptBytes != int64(len(cut)) || got.Prompt != "" {
		t.Errorf("truncated: got %+v, %v; want the model %q and PromptBytes %d", got, err, strict.Model, len(cut))
	}
}

func TestNormaliseJSON(t *testing.T) {
	tests := []struct {
		in, out string
		how     Leniency
		ok      bool
	}{
		{`{"a":1}`, "", 0, false},
		{`{"a":NaN}`, `{"a":0  }`, LenientNonFinite, true},
		{`{"a":[-Infinity,Infinity]}`, `{"a":[0        ,0       ]}`, LenientNonFinite, true},
		{`{"a":"NaN"}x`, `{"a":"NaN"}`, LenientTrailing, true},
		{"\xef\xbb\xbf[1]", "[1]", LenientBOM, true},
		{`{"a":NaNa}`, "", 0, false},
		{`{"a":-NaN}`, "", 0, false},
		{`{"a":+Infinity}`, "", 0, false},
		{`{"a":1NaN}`, "", 0, false},
		{`{"a":NaN`, "", LenientNonFinite, false},
		{`{"a\"NaN":NaN}`, `{"a\"NaN":0  }`, LenientNonFinite, true},
		{"", "", 0, false},
		{"\xef\xbb\xbf", "", LenientBOM, false},
	}
	for _, tt := range tests {
		out, how, ok := normaliseJSON([]byte(tt.in))
		if ok != tt.ok || how != tt.how || (ok && string(out) != tt.out) {
			t.Errorf("normaliseJSON(%q) = %q, %v, %v; want %q, %v, %v", tt.in, out, how, ok, tt.out, tt.how, tt.ok)
		}
	}
	if got := (LenientBOM | LenientTrailing).String(); got != "bom,trailing_bytes" {
		t.Errorf("String() = %q", got)
	}
}
