package mockllm_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

// rawClient never asks for or undoes compression, so tests see the exact
// bytes the mock wrote.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func newServer(t *testing.T, opts mockllm.Options) (*mockllm.Server, string) {
	t.Helper()
	s := mockllm.New(opts)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

type result struct {
	status  int
	header  http.Header
	body    []byte
	readErr error // set when the body was cut short
}

func do(t *testing.T, method, url, body string, headers map[string]string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b, readErr: rerr}
}

func post(t *testing.T, base, body string, headers map[string]string) result {
	t.Helper()
	return do(t, http.MethodPost, base+"/v1/chat/completions", body, headers)
}

type usage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func mkUsage(prompt, completion, cached, reasoning int64) usage {
	var u usage
	u.PromptTokens, u.CompletionTokens, u.TotalTokens = prompt, completion, prompt+completion
	u.PromptTokensDetails.CachedTokens = cached
	u.CompletionTokensDetails.ReasoningTokens = reasoning
	return u
}

type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

type errorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
	Usage *usage `json:"usage"`
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T from %q: %v", v, b, err)
	}
	return v
}

// sseData splits an SSE body into its data payloads, failing on anything
// that is not exactly "data: X\n\n". A trailing partial event is returned as
// is, for truncated streams.
func sseData(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.SplitAfter(string(b), "\n\n") {
		if ev == "" {
			continue
		}
		payload, ok := strings.CutPrefix(ev, "data: ")
		if !ok {
			t.Fatalf("event %q lacks the data: prefix", ev)
		}
		out = append(out, strings.TrimSuffix(payload, "\n\n"))
	}
	return out
}

func gunzip(t *testing.T, b []byte) ([]byte, error) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// chatBody builds a request body; extra is spliced in as more top-level
// fields, e.g. `"stream":true`.
func chatBody(extra string) string {
	b := `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"hello"}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// defaultPrompt is the documented formula applied to chatBody's messages:
// 3 + (4 + ceil(16/4)) + (4 + ceil(5/4)).
const defaultPrompt = 3 + (4 + 4) + (4 + 2)

var itoa = strconv.Itoa

// sha12 is how the mock derives ids: the first 12 hex digits of the body's
// SHA-256.
func sha12(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])[:12]
}

func equalHeader(a, b http.Header) bool { return reflect.DeepEqual(a, b) }
