package mockllm_test

import (
	"bytes"
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

// ollamaLine is one object of an Ollama response. Counts are pointers: the
// mock must omit them when zero, as Ollama does.
type ollamaLine struct {
	Model     string `json:"model"`
	CreatedAt string `json:"created_at"`
	Message   *struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"message"`
	Response        *string `json:"response"`
	Done            bool    `json:"done"`
	DoneReason      string  `json:"done_reason"`
	PromptEvalCount *int64  `json:"prompt_eval_count"`
	EvalCount       *int64  `json:"eval_count"`
	Error           string  `json:"error"`
}

func (l ollamaLine) text() string {
	if l.Message != nil {
		return l.Message.Content
	}
	if l.Response != nil {
		return *l.Response
	}
	return ""
}

func ollamaChatBody(extra string) string {
	b := `{"model":"llama3.2","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"hello"}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

func ollamaGenerateBody(extra string) string {
	b := `{"model":"llama3.2","system":"You are helpful.","prompt":"hello"`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// ollamaPrompt is the formula applied to either body: 3 + (4 + ceil(16/4)) +
// (4 + ceil(5/4)).
const ollamaPrompt = 3 + (4 + 4) + (4 + 2)

// ollamaLines splits an NDJSON body, failing on a line that is not one
// JSON object.
func ollamaLines(t *testing.T, b []byte) []ollamaLine {
	t.Helper()
	var out []ollamaLine
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") || strings.Count(l, "\n") != 1 {
			t.Fatalf("line %q", l)
		}
		out = append(out, decode[ollamaLine](t, []byte(l)))
	}
	return out
}

func TestOllamaStreamsByDefault(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, tc := range []struct{ path, body string }{
		{"/api/chat", ollamaChatBody("")},
		{"/api/generate", ollamaGenerateBody("")},
		{"/ollama/api/chat", ollamaChatBody(`"stream":true`)},
	} {
		r := do(t, http.MethodPost, base+tc.path, tc.body, map[string]string{"X-Mock-Completion-Tokens": "3"})
		if r.status != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%s: status %d header %v", tc.path, r.status, r.header)
		}
		lines := ollamaLines(t, r.body)
		var text strings.Builder
		for _, l := range lines[:len(lines)-1] {
			if l.Done || l.Model != "llama3.2" || l.CreatedAt != "2023-11-14T22:13:20Z" {
				t.Fatalf("%s: line %+v", tc.path, l)
			}
			text.WriteString(l.text())
		}
		last := lines[len(lines)-1]
		if len(lines) != 4 || text.String() != mockllm.ReplyText(3) || !last.Done || last.DoneReason != "stop" ||
			*last.PromptEvalCount != ollamaPrompt || *last.EvalCount != 3 || last.text() != "" {
			t.Fatalf("%s: %d lines, text %q, last %+v", tc.path, len(lines), text.String(), last)
		}
		if (last.Response != nil) != strings.HasSuffix(tc.path, "generate") {
			t.Fatalf("%s: text in the wrong member: %s", tc.path, r.body)
		}
	}
}

func TestOllamaUsage(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	p := func(n int64) *int64 { return &n }
	tests := []struct {
		name        string
		path, body  string
		headers     map[string]string
		prompt, out *int64
		words       int
		reason      string
	}{
		{"chat", "/api/chat", ollamaChatBody(`"stream":false`), nil, p(ollamaPrompt), p(8), 8, "stop"},
		{"generate", "/api/generate", ollamaGenerateBody(`"stream":false`), nil, p(ollamaPrompt), p(8), 8, "stop"},
		{"generate without system", "/api/generate", `{"model":"m","prompt":"hello","stream":false}`, nil, p(3 + 6), p(8), 8, "stop"},
		{"num_predict caps", "/api/chat", ollamaChatBody(`"stream":false,"options":{"num_predict":2}`), nil, p(ollamaPrompt), p(2), 2, "length"},
		{"num_predict -1 is unlimited", "/api/chat", ollamaChatBody(`"stream":false,"options":{"num_predict":-1}`), nil, p(ollamaPrompt), p(8), 8, "stop"},
		{"partial cache hit", "/api/chat", ollamaChatBody(`"stream":false`), map[string]string{"X-Mock-Cached-Tokens": "10"}, p(ollamaPrompt - 10), p(8), 8, "stop"},
		{"full cache hit omits prompt_eval_count", "/api/chat", ollamaChatBody(`"stream":false`),
			map[string]string{"X-Mock-Cached-Tokens": itoa(ollamaPrompt)}, nil, p(8), 8, "stop"},
		{"zero words omits eval_count", "/api/generate", ollamaGenerateBody(`"stream":false`),
			map[string]string{"X-Mock-Completion-Tokens": "0", "X-Mock-Prompt-Tokens": "99"}, p(99), nil, 0, "stop"},
		{"load a model", "/api/generate", `{"model":"m"}`, nil, nil, nil, 0, "load"},
		{"load a chat model", "/api/chat", `{"model":"m","messages":[]}`, nil, nil, nil, 0, "load"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, http.MethodPost, base+tc.path, tc.body, tc.headers)
			if r.status != 200 || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
				t.Fatalf("status %d header %v: %s", r.status, r.header, r.body)
			}
			l := decode[ollamaLine](t, r.body)
			if !l.Done || l.DoneReason != tc.reason || l.text() != mockllm.ReplyText(tc.words) ||
				!eqPtr(l.PromptEvalCount, tc.prompt) || !eqPtr(l.EvalCount, tc.out) {
				t.Fatalf("got %s", r.body)
			}
			if tc.headers == nil && tc.reason != "load" {
				n, err := mockllm.OllamaPromptTokens([]byte(tc.body), strings.HasSuffix(tc.path, "generate"))
				if err != nil || n != *tc.prompt {
					t.Fatalf("OllamaPromptTokens = %d, %v", n, err)
				}
			}
			d := dialect.OllamaChat()
			if strings.HasSuffix(tc.path, "generate") {
				d = dialect.OllamaGenerate()
			}
			res := decodeWith(d, r, true)
			if res.Err != nil || res.Usage.Get(tmusage.Input) != deref(tc.prompt) || res.Usage.Get(tmusage.Output) != deref(tc.out) ||
				!res.Usage.Tokens[tmusage.Input].Reported || !res.Usage.Tokens[tmusage.Output].Reported {
				t.Fatalf("decoder: %+v %v", res.Usage.Tokens, res.Err)
			}
		})
	}
}

func eqPtr(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func TestOllamaStreamEndings(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name      string
		headers   map[string]string
		cut       bool
		wantWords int
		wantError bool
	}{
		{"stop after", map[string]string{"X-Mock-Stop-After": "2"}, true, 2, false},
		{"stop before any word", map[string]string{"X-Mock-Stop-After": "0"}, true, 0, false},
		{"stop after every word", map[string]string{"X-Mock-Stop-After": "9", "X-Mock-Completion-Tokens": "3"}, true, 3, false},
		{"error line", map[string]string{"X-Mock-Error-Event-After": "3"}, false, 3, true},
		{"error line after every word", map[string]string{"X-Mock-Error-Event-After": "8"}, false, 8, true},
		{"error wins a tie", map[string]string{"X-Mock-Error-Event-After": "1", "X-Mock-Stop-After": "1"}, false, 1, true},
		{"stop after with gzip", map[string]string{"X-Mock-Stop-After": "4", "X-Mock-Gzip": "true"}, true, 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, http.MethodPost, base+"/api/chat", ollamaChatBody(""), tc.headers)
			if r.status != http.StatusOK || (r.readErr != nil) != tc.cut {
				t.Fatalf("status %d, read error %v, want cut=%v", r.status, r.readErr, tc.cut)
			}
			got := r.body
			if tc.headers["X-Mock-Gzip"] != "" {
				var err error
				if got, err = gunzip(t, r.body); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("gunzip error %v, want unexpected EOF", err)
				}
			}
			lines := ollamaLines(t, got)
			words := 0
			for _, l := range lines {
				if l.Done {
					t.Fatalf("stream cut short carries a done object: %s", got)
				}
				if l.Error == "" {
					words++
				}
			}
			errorLast := len(lines) > 0 && lines[len(lines)-1].Error != ""
			if words != tc.wantWords || errorLast != tc.wantError {
				t.Fatalf("%d words; want %d, error=%v:\n%s", words, tc.wantWords, tc.wantError, got)
			}
			res := decodeWith(dialect.OllamaChat(), r, !tc.cut)
			want := reason.Truncated
			if tc.wantError {
				want = reason.ProviderError
			}
			if reason.Of(res.Err) != want || res.StreamedTextBytes != int64(len(mockllm.ReplyText(tc.wantWords))) {
				t.Fatalf("decoder: %v, %d text bytes", res.Err, res.StreamedTextBytes)
			}
		})
	}
}

func TestOllamaDecodesExactly(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, path := range []string{"/api/chat", "/api/generate"} {
		d, body := dialect.OllamaChat(), ollamaChatBody
		if path == "/api/generate" {
			d, body = dialect.OllamaGenerate(), ollamaGenerateBody
		}
		for _, extra := range []string{"", `"stream":false`} {
			for _, gz := range []string{"", "true"} {
				r := do(t, http.MethodPost, base+path, body(extra), map[string]string{"X-Mock-Completion-Tokens": "5", "X-Mock-Gzip": gz})
				res := decodeWith(d, r, true)
				if res.Err != nil || res.Usage.Get(tmusage.Input) != ollamaPrompt || res.Usage.Get(tmusage.Output) != 5 ||
					string(res.Text) != mockllm.ReplyText(5) || res.Model != "llama3.2" {
					t.Errorf("%s %s gzip=%q: %+v %q %v", path, extra, gz, res.Usage.Tokens, res.Text, res.Err)
				}
			}
		}
	}
}

func TestOllamaErrors(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name, body string
		headers    map[string]string
		status     int
	}{
		{"invalid JSON", "{", nil, 400},
		{"missing model", `{"messages":[]}`, nil, 400},
		{"bad content", `{"model":"m","messages":[{"role":"user","content":42}]}`, nil, 400},
		{"cached over prompt", ollamaChatBody(""), map[string]string{"X-Mock-Cached-Tokens": "1000"}, 400},
		{"bad header", ollamaChatBody(""), map[string]string{"X-Mock-Stop-After": "-1"}, 400},
		{"not found", ollamaChatBody(""), map[string]string{"X-Mock-Status": "404"}, 404},
		{"stream server error", ollamaChatBody(""), map[string]string{"X-Mock-Status": "500", "X-Mock-Gzip": "true"}, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, http.MethodPost, base+"/api/chat", tc.body, tc.headers)
			b := r.body
			if tc.headers["X-Mock-Gzip"] != "" {
				b, _ = gunzip(t, r.body)
			}
			if e := decode[ollamaLine](t, b); r.status != tc.status || e.Error == "" {
				t.Errorf("status %d body %s; want %d", r.status, b, tc.status)
			}
			if res := decodeWith(dialect.OllamaChat(), r, true); reason.Of(res.Err) != reason.ProviderError {
				t.Errorf("decoder: %v", res.Err)
			}
		})
	}
}

func TestOllamaChunkDelayAndDeterminism(t *testing.T) {
	const delay = 20 * time.Millisecond
	_, base := newServer(t, mockllm.Options{ChunkDelay: delay})
	start := time.Now()
	// 3 words and the done line: 3 gaps.
	r := do(t, http.MethodPost, base+"/api/generate", ollamaGenerateBody(""), map[string]string{"X-Mock-Completion-Tokens": "3"})
	if took := time.Since(start); took < 3*delay || r.readErr != nil {
		t.Errorf("took %v, want at least %v (read error %v)", took, 3*delay, r.readErr)
	}
	for _, h := range []map[string]string{{"X-Mock-Chunk-Delay-Ms": "0"}, {"X-Mock-Chunk-Delay-Ms": "0", "X-Mock-Gzip": "true"},
		{"X-Mock-Chunk-Delay-Ms": "0", "X-Mock-Error-Event-After": "2", "X-Mock-Model": "llama3.2:latest"}} {
		a := do(t, http.MethodPost, base+"/api/chat", ollamaChatBody(""), h)
		b := do(t, http.MethodPost, base+"/api/chat", ollamaChatBody(""), h)
		if a.status != b.status || !equalHeader(a.header, b.header) || !bytes.Equal(a.body, b.body) {
			t.Errorf("responses differ:\n%d %v %q\n%d %v %q", a.status, a.header, a.body, b.status, b.header, b.body)
		}
	}
}
