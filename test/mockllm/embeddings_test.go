package mockllm_test

import (
	"encoding/base64"
	"encoding/json"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

func TestEmbeddings(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		n, dims int
		prompt  int64
		b64     bool
	}{
		{"string", `{"model":"text-embedding-3-small","input":"hello"}`, nil, 1, mockllm.DefaultEmbeddingDimensions, 3 + 4 + 2, false},
		{"strings", `{"model":"text-embedding-3-small","input":["hello","abcdefghi"],"dimensions":40}`, nil, 2, 40, 3 + 6 + 7, false},
		{"token array", `{"model":"text-embedding-3-small","input":[1,2,3]}`, nil, 1, mockllm.DefaultEmbeddingDimensions, 3 + 4 + 3, false},
		{"token arrays, base64", `{"model":"text-embedding-3-small","input":[[1],[2,3]],"encoding_format":"base64"}`, nil, 2, 8, 3 + 5 + 6, true},
		{"prompt header, gzip", `{"model":"text-embedding-3-small","input":"x"}`, map[string]string{"X-Mock-Prompt-Tokens": "77", "X-Mock-Gzip": "true"}, 1, 8, 77, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postPath(t, base, "/v1/embeddings", tt.body, tt.headers)
			res := meter(dialect.OpenAIEmbeddings(), r)
			checkUsage(t, res, map[tmusage.Class]int64{tmusage.Input: tt.prompt, tmusage.Output: 0})
			body := r.body
			if tt.headers["X-Mock-Gzip"] != "" {
				var err error
				if body, err = gunzip(t, r.body); err != nil {
					t.Fatal(err)
				}
			}
			var e struct {
				Object string
				Data   []struct {
					Index     int
					Embedding json.RawMessage
				}
				Usage struct{ PromptTokens, TotalTokens int64 }
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Object != "list" || len(e.Data) != tt.n {
				t.Fatalf("%v %s", err, body)
			}
			for i, d := range e.Data {
				var floats []float32
				var s string
				switch {
				case !tt.b64 && json.Unmarshal(d.Embedding, &floats) == nil && len(floats) == tt.dims:
				case tt.b64 && json.Unmarshal(d.Embedding, &s) == nil:
					if raw, err := base64.StdEncoding.DecodeString(s); err != nil || len(raw) != 4*tt.dims {
						t.Fatalf("vector %d: %v %d bytes", i, err, len(raw))
					}
				default:
					t.Fatalf("vector %d: %s", i, d.Embedding)
				}
				if d.Index != i {
					t.Fatalf("index %d at %d", d.Index, i)
				}
			}
		})
	}
}

func TestEmbeddingsErrors(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, bad := range []string{`{"input":"x"}`, `{"model":"m","input":""}`, `{"model":"m","input":[]}`, `{"model":"m"}`,
		`{"model":"m","input":{}}`, `{"model":"m","input":"x","dimensions":0}`, `{"model":"m","input":"x","encoding_format":"int8"}`} {
		if r := postPath(t, base, "/v1/embeddings", bad, nil); r.status != 400 {
			t.Errorf("%s: %d %s, want 400", bad, r.status, r.body)
		}
	}
	r := postPath(t, base, "/v1/embeddings", `{"model":"m","input":"x"}`, map[string]string{"X-Mock-Status": "429"})
	if res := meter(dialect.OpenAIEmbeddings(), r); r.status != 429 || reason.Of(res.Err) != reason.ProviderError {
		t.Fatalf("429: %d %v", r.status, res.Err)
	}
	a := postPath(t, base, "/v1/embeddings", `{"model":"m","input":["x","y"]}`, nil)
	b := postPath(t, base, "/v1/embeddings", `{"model":"m","input":["x","y"]}`, nil)
	if string(a.body) != string(b.body) {
		t.Fatal("embeddings are not deterministic")
	}
}
