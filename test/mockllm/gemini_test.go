package mockllm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	usagepkg "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

type gemModality struct {
	Modality   string `json:"modality"`
	TokenCount int64  `json:"tokenCount"`
}

type gemUsage struct {
	PromptTokenCount        int64         `json:"promptTokenCount"`
	CandidatesTokenCount    int64         `json:"candidatesTokenCount"`
	TotalTokenCount         int64         `json:"totalTokenCount"`
	CachedContentTokenCount int64         `json:"cachedContentTokenCount"`
	ThoughtsTokenCount      int64         `json:"thoughtsTokenCount"`
	PromptTokensDetails     []gemModality `json:"promptTokensDetails"`
	CacheTokensDetails      []gemModality `json:"cacheTokensDetails"`
	CandidatesTokensDetails []gemModality `json:"candidatesTokensDetails"`
}

type gemResponse struct {
	Candidates []struct {
		Content struct {
			Role  string `json:"role"`
			Parts []struct {
				Text string `json:"text"`
			} `json:"parts"`
		} `json:"content"`
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	UsageMetadata gemUsage `json:"usageMetadata"`
	ModelVersion  string   `json:"modelVersion"`
	ResponseID    string   `json:"responseId"`
	Error         *struct {
		Code   int    `json:"code"`
		Status string `json:"status"`
	} `json:"error"`
}

func (r gemResponse) text() string {
	var b strings.Builder
	for _, c := range r.Candidates {
		for _, p := range c.Content.Parts {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func (r gemResponse) finish() string {
	if len(r.Candidates) == 0 {
		return ""
	}
	return r.Candidates[0].FinishReason
}

// gemBody is a GenerateContentRequest; extra is spliced in as more
// top-level fields.
func gemBody(extra string) string {
	b := `{"systemInstruction":{"parts":[{"text":"You are helpful."}]},"contents":[{"role":"user","parts":[{"text":"hel"},{"text":"lo"}]}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// gemPrompt is the formula applied to gemBody: the system instruction is
// one more term, 3 + (4 + ceil(5/4)) + (4 + ceil(16/4)).
const gemPrompt = 3 + (4 + 2) + (4 + 4)

const gemPath = "/v1beta/models/gemini-2.5-flash"

func postGemini(t *testing.T, base, method, body string, headers map[string]string) result {
	t.Helper()
	return do(t, http.MethodPost, base+gemPath+":"+method, body, headers)
}

func TestGeminiGenerateContent(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		want    gemUsage
		words   int
		finish  string
	}{
		{"default", gemBody(""), nil,
			gemUsage{PromptTokenCount: gemPrompt, CandidatesTokenCount: 8, TotalTokenCount: gemPrompt + 8}, 8, "STOP"},
		{"cached and thoughts", gemBody(""), map[string]string{"X-Mock-Cached-Tokens": "10", "X-Mock-Reasoning-Tokens": "30", "X-Mock-Completion-Tokens": "3"},
			gemUsage{PromptTokenCount: gemPrompt, CandidatesTokenCount: 3, TotalTokenCount: gemPrompt + 33, CachedContentTokenCount: 10, ThoughtsTokenCount: 30}, 3, "STOP"},
		{"prompt override", gemBody(""), map[string]string{"X-Mock-Prompt-Tokens": "1000", "X-Mock-Cached-Tokens": "1000"},
			gemUsage{PromptTokenCount: 1000, CandidatesTokenCount: 8, TotalTokenCount: 1008, CachedContentTokenCount: 1000}, 8, "STOP"},
		{"max tokens: thoughts first", gemBody(`"generationConfig":{"maxOutputTokens":10}`), map[string]string{"X-Mock-Reasoning-Tokens": "7"},
			gemUsage{PromptTokenCount: gemPrompt, CandidatesTokenCount: 3, TotalTokenCount: gemPrompt + 10, ThoughtsTokenCount: 7}, 3, "MAX_TOKENS"},
		{"snake_case max tokens", gemBody(`"generation_config":{"max_output_tokens":2}`), nil,
			gemUsage{PromptTokenCount: gemPrompt, CandidatesTokenCount: 2, TotalTokenCount: gemPrompt + 2}, 2, "MAX_TOKENS"},
		{"no words", gemBody(""), map[string]string{"X-Mock-Completion-Tokens": "0"},
			gemUsage{PromptTokenCount: gemPrompt, TotalTokenCount: gemPrompt}, 0, "STOP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postGemini(t, base, "generateContent", tc.body, tc.headers)
			if r.status != 200 || r.header.Get("Content-Type") != "application/json; charset=UTF-8" {
				t.Fatalf("status %d, type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
			}
			got := decode[gemResponse](t, r.body)
			u := got.UsageMetadata
			u.PromptTokensDetails, u.CacheTokensDetails, u.CandidatesTokensDetails = nil, nil, nil
			if !reflect.DeepEqual(u, tc.want) || got.text() != mockllm.ReplyText(tc.words) || got.finish() != tc.finish || got.ModelVersion != "gemini-2.5-flash" {
				t.Fatalf("got %+v %q %q %q\nwant %+v %q %q", u, got.text(), got.finish(), got.ModelVersion, tc.want, mockllm.ReplyText(tc.words), tc.finish)
			}
			checkDetails(t, got.UsageMetadata)
		})
	}
}

// checkDetails checks that the per-modality details add up to the counts.
func checkDetails(t *testing.T, u gemUsage) {
	t.Helper()
	sum := func(ms []gemModality) (n int64) {
		for _, m := range ms {
			n += m.TokenCount
		}
		return n
	}
	if sum(u.PromptTokensDetails) != u.PromptTokenCount || sum(u.CacheTokensDetails) != u.CachedContentTokenCount ||
		sum(u.CandidatesTokensDetails) != u.CandidatesTokenCount {
		t.Errorf("details do not add up: %+v", u)
	}
}

// gemStream reads a stream body: a JSON array, or SSE with alt=sse.
func gemStream(t *testing.T, body []byte, sse bool) []gemResponse {
	t.Helper()
	if !sse {
		return decode[[]gemResponse](t, body)
	}
	var out []gemResponse
	for ev := range strings.SplitAfterSeq(string(body), "\r\n\r\n") {
		if ev == "" {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || !strings.HasSuffix(data, "\r\n\r\n") {
			t.Fatalf("event %q is not data: X\\r\\n\\r\\n", ev)
		}
		out = append(out, decode[gemResponse](t, []byte(data)))
	}
	return out
}

func TestGeminiStream(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	headers := map[string]string{"X-Mock-Completion-Tokens": "5", "X-Mock-Reasoning-Tokens": "4", "X-Mock-Cached-Tokens": "2"}
	for _, tc := range []struct {
		method, ct string
		sse        bool
	}{
		{"streamGenerateContent", "application/json; charset=UTF-8", false},
		{"streamGenerateContent?alt=sse", "text/event-stream", true},
	} {
		t.Run(tc.method, func(t *testing.T) {
			r := postGemini(t, base, tc.method, gemBody(""), headers)
			if r.status != 200 || r.header.Get("Content-Type") != tc.ct || r.readErr != nil {
				t.Fatalf("status %d, type %q, %v", r.status, r.header.Get("Content-Type"), r.readErr)
			}
			if !tc.sse && (!bytes.HasPrefix(r.body, []byte("[{\n")) || !bytes.Contains(r.body, []byte("}\n,\r\n{\n")) || !bytes.HasSuffix(r.body, []byte("}\n]"))) {
				t.Errorf("not Google's array framing:\n%s", r.body)
			}
			chunks := gemStream(t, r.body, tc.sse)
			if len(chunks) != 5 {
				t.Fatalf("%d chunks, want 5", len(chunks))
			}
			var text string
			for i, c := range chunks {
				text += c.text()
				u := c.UsageMetadata
				want := gemUsage{PromptTokenCount: gemPrompt, CandidatesTokenCount: int64(i + 1), TotalTokenCount: gemPrompt + int64(i+1) + 4,
					CachedContentTokenCount: 2, ThoughtsTokenCount: 4}
				last := i == len(chunks)-1
				if (len(u.PromptTokensDetails) > 0) != last || (c.finish() != "") != last {
					t.Errorf("chunk %d: details %v, finish %q", i, u.PromptTokensDetails, c.finish())
				}
				u.PromptTokensDetails, u.CacheTokensDetails, u.CandidatesTokensDetails = nil, nil, nil
				if !reflect.DeepEqual(u, want) || c.ModelVersion != "gemini-2.5-flash" {
					t.Errorf("chunk %d: usage %+v model %q, want %+v", i, u, c.ModelVersion, want)
				}
			}
			checkDetails(t, chunks[len(chunks)-1].UsageMetadata)
			if text != mockllm.ReplyText(5) {
				t.Errorf("text %q", text)
			}
		})
	}
}

// The dialect reads what the mock writes, every way it writes it.
func TestGeminiDecodesMock(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	headers := map[string]string{"X-Mock-Completion-Tokens": "6", "X-Mock-Reasoning-Tokens": "9", "X-Mock-Cached-Tokens": "5"}
	paths := []string{
		gemPath + ":generateContent",
		gemPath + ":streamGenerateContent",
		gemPath + ":streamGenerateContent?alt=sse",
		"/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent",
	}
	for _, path := range paths {
		for _, gz := range []string{"false", "true"} {
			h := map[string]string{"X-Mock-Gzip": gz}
			for k, v := range headers {
				h[k] = v
			}
			r := do(t, http.MethodPost, base+path, gemBody(""), h)
			d, ok := dialect.DefaultRegistry().ForPath(path)
			if !ok {
				t.Fatalf("no dialect for %s", path)
			}
			dec := d.NewDecoder(dialect.Response{Status: r.status, ContentType: r.header.Get("Content-Type"),
				ContentEncoding: r.header.Get("Content-Encoding"), Header: func(string) string { return "" }}, 1<<20)
			_ = dec.Feed(r.body)
			res := dec.Finish(true)
			u := res.Usage
			if res.Err != nil || u.Get(usagepkg.Input) != gemPrompt-5 || u.Get(usagepkg.CacheRead) != 5 || u.Get(usagepkg.Output) != 6 ||
				u.Get(usagepkg.Reasoning) != 9 || res.Model != "gemini-2.5-flash" || string(res.Text) != mockllm.ReplyText(6) {
				t.Errorf("%s gzip %s: %+v %v", path, gz, res, res.Err)
			}
		}
	}
}

func TestGeminiErrors(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name, method, body string
		headers            map[string]string
		status             int
		googleStatus       string
		inArray            bool
	}{
		{"mock status", "generateContent", gemBody(""), map[string]string{"X-Mock-Status": "429"}, 429, "RESOURCE_EXHAUSTED", false},
		{"mock status, array stream", "streamGenerateContent", gemBody(""), map[string]string{"X-Mock-Status": "503"}, 503, "UNAVAILABLE", true},
		{"mock status, sse stream", "streamGenerateContent?alt=sse", gemBody(""), map[string]string{"X-Mock-Status": "500"}, 500, "INTERNAL", false},
		{"invalid JSON", "generateContent", `{"contents":`, nil, 400, "INVALID_ARGUMENT", false},
		{"no contents", "generateContent", `{"contents":[]}`, nil, 400, "INVALID_ARGUMENT", false},
		{"cached over prompt", "streamGenerateContent", gemBody(""), map[string]string{"X-Mock-Cached-Tokens": "1000"}, 400, "INVALID_ARGUMENT", true},
		{"bad header", "generateContent", gemBody(""), map[string]string{"X-Mock-Reasoning-Tokens": "-1"}, 400, "INVALID_ARGUMENT", false},
		{"zero max tokens", "generateContent", gemBody(`"generationConfig":{"maxOutputTokens":0}`), nil, 400, "INVALID_ARGUMENT", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postGemini(t, base, tc.method, tc.body, tc.headers)
			body := r.body
			if tc.inArray {
				els := decode[[]json.RawMessage](t, body)
				if len(els) != 1 {
					t.Fatalf("%d elements: %s", len(els), body)
				}
				body = els[0]
			}
			e := decode[gemResponse](t, body).Error
			if r.status != tc.status || e == nil || e.Code != tc.status || e.Status != tc.googleStatus {
				t.Errorf("status %d body %s; want %d %s", r.status, r.body, tc.status, tc.googleStatus)
			}
		})
	}
}

func TestGeminiRouting(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for path, want := range map[string]int{
		"/v1beta/models/gemini-2.0-flash:generateContent":                                                200,
		"/v1/models/gemini-2.0-flash:streamGenerateContent":                                              200,
		"/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent": 200,
		"/v1beta/models/gemini-2.0-flash:countTokens":                                                    404,
	} {
		if r := do(t, http.MethodPost, base+path, gemBody(""), nil); r.status != want {
			t.Errorf("POST %s: status %d, want %d", path, r.status, want)
		}
	}
	r := do(t, http.MethodPost, base+"/v1beta/models/gemini%2D2.0%2Dflash:generateContent", gemBody(""), map[string]string{"X-Mock-Model": ""})
	if got := decode[gemResponse](t, r.body).ModelVersion; got != "gemini-2.0-flash" {
		t.Errorf("URL-encoded model: modelVersion %q", got)
	}
	r = postGemini(t, base, "generateContent", gemBody(""), map[string]string{"X-Mock-Model": "gemini-2.5-flash-preview-05-20"})
	if got := decode[gemResponse](t, r.body).ModelVersion; got != "gemini-2.5-flash-preview-05-20" {
		t.Errorf("X-Mock-Model: modelVersion %q", got)
	}
}

func TestGeminiStopAfter(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		chunks  int
	}{
		{"array mid stream", "streamGenerateContent", map[string]string{"X-Mock-Stop-After": "2"}, 2},
		{"array after all words", "streamGenerateContent", map[string]string{"X-Mock-Stop-After": "50", "X-Mock-Completion-Tokens": "3"}, 3},
		{"sse mid stream", "streamGenerateContent?alt=sse", map[string]string{"X-Mock-Stop-After": "4"}, 4},
		{"sse gzip", "streamGenerateContent?alt=sse", map[string]string{"X-Mock-Stop-After": "1", "X-Mock-Gzip": "true"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postGemini(t, base, tc.method, gemBody(""), tc.headers)
			if r.readErr == nil {
				t.Fatal("stream ended cleanly; want a cut connection")
			}
			got := r.body
			if tc.headers["X-Mock-Gzip"] != "" {
				var err error
				if got, err = gunzip(t, r.body); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("gunzip error %v, want unexpected EOF", err)
				}
			}
			sse := strings.Contains(tc.method, "alt=sse")
			if !sse {
				got = append(got, ']') // what was sent is an array but for its end
			}
			chunks := gemStream(t, got, sse)
			if len(chunks) != tc.chunks {
				t.Fatalf("%d chunks, want %d", len(chunks), tc.chunks)
			}
			for _, c := range chunks {
				if c.finish() != "" {
					t.Errorf("a cut stream carries finishReason %q", c.finish())
				}
			}
		})
	}
}

func TestGeminiDeterminismAndGzip(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, method := range []string{"generateContent", "streamGenerateContent", "streamGenerateContent?alt=sse"} {
		h := map[string]string{"X-Mock-Reasoning-Tokens": "3", "X-Mock-Cached-Tokens": "2"}
		a := postGemini(t, base, method, gemBody(""), h)
		b := postGemini(t, base, method, gemBody(""), h)
		if a.status != b.status || !equalHeader(a.header, b.header) || !bytes.Equal(a.body, b.body) {
			t.Errorf("%s: responses differ:\n%q\n%q", method, a.body, b.body)
		}
		h["X-Mock-Gzip"] = "true"
		z := postGemini(t, base, method, gemBody(""), h)
		got, err := gunzip(t, z.body)
		if err != nil || !bytes.Equal(got, a.body) || z.header.Get("Content-Encoding") != "gzip" {
			t.Errorf("%s: gunzip %v:\n%s\nplain\n%s", method, err, got, a.body)
		}
	}
}

func TestGeminiChunkDelay(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	const delay = 20 * time.Millisecond
	// Three chunks, two gaps; the closing ']' waits for none.
	start := time.Now()
	r := postGemini(t, base, "streamGenerateContent", gemBody(""), map[string]string{"X-Mock-Completion-Tokens": "3", "X-Mock-Chunk-Delay-Ms": "20"})
	if took := time.Since(start); took < 2*delay || r.readErr != nil {
		t.Errorf("took %v, want at least %v (read error %v)", took, 2*delay, r.readErr)
	}
}

func TestGeminiPromptTokens(t *testing.T) {
	if n, err := mockllm.GeminiPromptTokens([]byte(gemBody(""))); err != nil || n != gemPrompt {
		t.Errorf("GeminiPromptTokens = %d, %v; want %d", n, err, gemPrompt)
	}
	snake := `{"system_instruction":{"parts":[{"text":"You are helpful."}]},"contents":[{"parts":[{"text":"hello"}]}]}`
	if n, err := mockllm.GeminiPromptTokens([]byte(snake)); err != nil || n != gemPrompt {
		t.Errorf("snake_case: GeminiPromptTokens = %d, %v; want %d", n, err, gemPrompt)
	}
	if _, err := mockllm.GeminiPromptTokens([]byte(`{"contents":{}}`)); err == nil {
		t.Error("contents that is an object was accepted")
	}
}
