package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestOpenAIEmbeddingsFixtures(t *testing.T) { runFixtures(t, OpenAIEmbeddings()) }

func TestOpenAIEmbeddingsIdentity(t *testing.T) {
	d := OpenAIEmbeddings()
	if d.Name() != "openai_embeddings" || d.Provider() != "openai" {
		t.Fatalf("Name %q Provider %q", d.Name(), d.Provider())
	}
}

func TestOpenAIEmbeddingsParseRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"string", `{"model":"text-embedding-3-small","input":"The food was delicious."}`,
			Request{Model: "text-embedding-3-small", Prompt: "The food was delicious.", PromptBytes: 23}},
		{"strings", `{"model":"m","input":["a","b\u00e9"],"dimensions":256,"encoding_format":"base64"}`,
			Request{Model: "m", Prompt: "abé", PromptBytes: 4}},
		{"token arrays", `{"model":"m","input":[[1,2,3],[4]]}`, Request{Model: "m"}},
		{"stream is not a thing", `{"model":"m","input":"x","stream":true}`, Request{Model: "m", Prompt: "x", PromptBytes: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, newBody, err := OpenAIEmbeddings().ParseRequest([]byte(tt.body), RequestOptions{InjectStreamUsage: true})
			if err != nil || newBody != nil || got != tt.want {
				t.Fatalf("got %+v %q %v, want %+v", got, newBody, err, tt.want)
			}
		})
	}
	for _, body := range []string{``, `{"input":}`} {
		if _, _, err := OpenAIEmbeddings().ParseRequest([]byte(body), RequestOptions{}); !errors.Is(err, reason.MalformedJSON) {
			t.Errorf("%q: %v", body, err)
		}
	}
	if _, _, err := OpenAIEmbeddings().ParseRequest([]byte(`"x"`), RequestOptions{}); !errors.Is(err, reason.UnexpectedShape) {
		t.Errorf("string body: %v", err)
	}
}

func decodeEmbeddings(max int, complete bool, chunks ...[]byte) Result {
	d := OpenAIEmbeddings().NewDecoder(Response{Status: 200, ContentType: "application/json"}, max)
	for _, c := range chunks {
		_ = d.Feed(c)
	}
	return d.Finish(complete)
}

func TestOpenAIEmbeddingsReasons(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		complete bool
		want     reason.Reason
	}{
		{"empty", ``, true, reason.MalformedJSON},
		{"empty, cut", ``, false, reason.Truncated},
		{"whitespace around", " \n{\"usage\":{\"prompt_tokens\":1}}\n ", true, ""},
		{"empty object", `{}`, true, reason.NoUsage},
		{"trailing comma", `{"usage":{"prompt_tokens":1},}`, true, reason.MalformedJSON},
		{"missing colon", `{"usage" {"prompt_tokens":1}}`, true, reason.MalformedJSON},
		{"bare key", `{usage:1}`, true, reason.MalformedJSON},
		{"mismatched brackets", `{"data":[{]}],"usage":{"prompt_tokens":1}}`, true, reason.MalformedJSON},
		{"kept value invalid", `{"usage":{"prompt_tokens":1,}}`, true, reason.MalformedJSON},
		{"two objects", `{}{}`, true, reason.MalformedJSON},
		{"number", `42`, true, reason.UnexpectedShape},
		{"string error", `{"error":"overloaded"}`, true, reason.ProviderError},
		{"usage beats error", `{"error":{"code":"x"},"usage":{"prompt_tokens":2,"total_tokens":2}}`, true, ""},
		{"usage without prompt", `{"usage":{"total_tokens":2}}`, true, reason.UnexpectedShape},
		{"negative", `{"usage":{"prompt_tokens":-2}}`, true, reason.InconsistentUsage},
		{"null clears", `{"usage":{"prompt_tokens":2,"prompt_tokens":null}}`, true, reason.UnexpectedShape},
		{"scalars skipped", `{"a":true,"b":null,"c":-1.5e3,"d":"x\"}","usage":{"prompt_tokens":1}}`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := decodeEmbeddings(0, tt.complete, []byte(tt.body))
			if got := reason.Of(r.Err); got != tt.want {
				t.Fatalf("reason %q, want %q (%v)", got, tt.want, r.Err)
			}
		})
	}
}

func TestOpenAIEmbeddingsKeptValueTooLarge(t *testing.T) {
	body := `{"model":"` + strings.Repeat("m", 100) + `","usage":{"prompt_tokens":3,"total_tokens":3}}`
	d := OpenAIEmbeddings().NewDecoder(Response{Status: 200, ContentType: "application/json"}, 64)
	if err := d.Feed([]byte(body[:90])); !errors.Is(err, reason.TooLarge) {
		t.Fatalf("Feed over the cap: %v", err)
	}
	if err := d.Feed([]byte(body[90:])); err != nil {
		t.Fatalf("Feed after the cap: %v, want nil (reported once)", err)
	}
	if r := d.Finish(true); !errors.Is(r.Err, reason.TooLarge) || r.Usage.Reported() {
		t.Fatalf("Finish: %+v", r)
	}
}

// The vectors are skipped, not held: a body far over the cap still yields
// its usage.
func TestOpenAIEmbeddingsBodyOverCap(t *testing.T) {
	body := embeddingsBody(64, 256)
	r := decodeEmbeddings(4<<10, true, randomChunks(body, 4096, rand.New(rand.NewPCG(3, 3)))...)
	if r.Err != nil || r.Usage.Get(usage.Input) != 64*7 || r.Model != "text-embedding-3-large" {
		t.Fatalf("%d-byte body: %+v", len(body), r)
	}
}

// embeddingsBody is a response of n vectors of dims dimensions.
func embeddingsBody(n, dims int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	r := rand.New(rand.NewPCG(4, 4))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"object":"embedding","index":%d,"embedding":[`, i)
		for j := range dims {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%.9f", r.Float64()*0.2-0.1)
		}
		b.WriteString("]}")
	}
	fmt.Fprintf(&b, `],"model":"text-embedding-3-large","usage":{"prompt_tokens":%d,"total_tokens":%d}}`, n*7, n*7)
	return b.Bytes()
}

// FuzzOpenAIEmbeddingsJSON checks the streaming reader against gjson, which
// reads whole documents: on a valid object they must agree on the model and
// the usage, and no split may change the result.
func FuzzOpenAIEmbeddingsJSON(f *testing.F) {
	f.Add([]byte(`{"data":[{"embedding":[0.1,-2e-3]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}`), uint(20))
	f.Add([]byte(`{"usage":{"prompt_tokens":1},"data":[[],{},"a\"]}"],"us\u0061ge":{"prompt_tokens":2}}`), uint(7))
	f.Add([]byte(` {"error":{"code":"x"},"model":null} `), uint(3))
	f.Fuzz(func(t *testing.T, body []byte, split uint) {
		at := int(split % uint(len(body)+1))
		whole := decodeEmbeddings(1<<10, true, body)
		parts := decodeEmbeddings(1<<10, true, body[:at], body[at:])
		if a, b := outcomeOf(whole), outcomeOf(parts); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, a, b)
		}
		s := string(body)
		if !gjson.Valid(s) || !gjson.Parse(s).IsObject() || len(body) > 1<<10 {
			return
		}
		if reason.Of(whole.Err) == reason.MalformedJSON {
			t.Fatalf("valid object read as malformed: %v", whole.Err)
		}
		var model, prompt gjson.Result
		gjson.Parse(s).ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "model":
				model = v
			case "usage":
				prompt = gjson.Result{}
				v.ForEach(func(k, v gjson.Result) bool {
					if k.Str == "prompt_tokens" {
						prompt = v
					}
					return true
				})
			}
			return true
		})
		if model.Type == gjson.String && whole.Model != model.Str {
			t.Fatalf("model %q, gjson reads %q", whole.Model, model.Str)
		}
		if prompt.Type == gjson.Number && whole.Usage.Get(usage.Input) != max(prompt.Int(), 0) {
			t.Fatalf("input %d, gjson reads %d", whole.Usage.Get(usage.Input), prompt.Int())
		}
	})
}

func BenchmarkOpenAIEmbeddingsJSON(b *testing.B) {
	body := embeddingsBody(32, 1536)
	chunks := randomChunks(body, 32<<10, rand.New(rand.NewPCG(1, 1)))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if r := decodeEmbeddings(0, true, chunks...); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}
