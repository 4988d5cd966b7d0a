package mockllm_test

import (
	"encoding/json"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

// respBody is a Responses request: instructions (11 bytes) and an input of
// one string item (5 bytes) and one of parts (3 + 4 bytes).
func respBody(extra string) string {
	b := `{"model":"gpt-4.1","instructions":"Be helpful.","input":[{"role":"user","content":"hello"},` +
		`{"role":"user","content":[{"type":"input_text","text":"abc"},{"type":"input_image","image_url":"x"},{"type":"input_text","text":"defg"}]}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// respPrompt is the formula applied to respBody: 3 + (4+3) + (4+2) + (4+2).
const respPrompt = 3 + (4 + 3) + (4 + 2) + (4 + 2)

func postPath(t *testing.T, base, path, body string, headers map[string]string) result {
	t.Helper()
	return do(t, "POST", base+path, body, headers)
}

// meter decodes a response as tokenmeter would.
func meter(d dialect.Dialect, r result) dialect.Result {
	dec := d.NewDecoder(dialect.Response{Status: r.status, ContentType: r.header.Get("Content-Type"),
		ContentEncoding: r.header.Get("Content-Encoding")}, 1<<20)
	_ = dec.Feed(r.body)
	return dec.Finish(r.readErr == nil)
}

type namedEvent struct {
	name string
	data map[string]any
}

// namedEvents splits "event: X\ndata: Y\n\n" frames, failing on anything
// else; a trailing partial frame is dropped.
func namedEvents(t *testing.T, b []byte) []namedEvent {
	t.Helper()
	var out []namedEvent
	for _, frame := range strings.SplitAfter(string(b), "\n\n") {
		if !strings.HasSuffix(frame, "\n\n") {
			continue
		}
		name, data, ok := strings.Cut(strings.TrimSuffix(frame, "\n\n"), "\ndata: ")
		name, ok2 := strings.CutPrefix(name, "event: ")
		if !ok || !ok2 {
			t.Fatalf("frame %q is not event + data", frame)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("frame %q: %v", frame, err)
		}
		if m["type"] != name {
			t.Fatalf("frame %q: type %v under event %q", frame, m["type"], name)
		}
		out = append(out, namedEvent{name, m})
	}
	return out
}

func TestResponsesPromptTokens(t *testing.T) {
	for _, tt := range []struct {
		body string
		want int64
	}{
		{respBody(""), respPrompt},
		{`{"model":"m","input":"hello"}`, 3 + 4 + 2},
		{`{"model":"m"}`, 3},
	} {
		got, err := mockllm.ResponsesPromptTokens([]byte(tt.body))
		if err != nil || got != tt.want {
			t.Errorf("%s: %d %v, want %d", tt.body, got, err, tt.want)
		}
	}
}

func TestResponsesJSON(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	hdr := map[string]string{"X-Mock-Cached-Tokens": "4", "X-Mock-Reasoning-Tokens": "6", "X-Mock-Completion-Tokens": "3"}
	r := postPath(t, base, "/v1/responses", respBody(""), hdr)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %v %s", r.status, r.header, r.body)
	}
	var resp struct {
		ID, Object, Status, Model string
		Output                    []struct {
			Type    string
			Content []struct{ Type, Text string }
		}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.ID, "resp_") || resp.Object != "response" || resp.Status != "completed" ||
		resp.Model != "gpt-4.1" || resp.Output[0].Content[0].Text != mockllm.ReplyText(3) {
		t.Fatalf("body %s", r.body)
	}
	res := meter(dialect.OpenAIResponses(), r)
	want := map[tmusage.Class]int64{tmusage.Input: respPrompt - 4, tmusage.CacheRead: 4, tmusage.Output: 3, tmusage.Reasoning: 6}
	checkUsage(t, res, want)
}

// checkUsage asserts a decode without error and the exact classes.
func checkUsage(t *testing.T, res dialect.Result, want map[tmusage.Class]int64) {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("decode: %v", res.Err)
	}
	for c, n := range want {
		if got := res.Usage.Get(c); got != n {
			t.Errorf("%s = %d, want %d", c, got, n)
		}
	}
	if total := res.Usage.Total(); total != sum(want) {
		t.Errorf("total %d, want %d", total, sum(want))
	}
}

func sum(m map[tmusage.Class]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func TestResponsesStream(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name     string
		extra    string
		headers  map[string]string
		terminal string
		words    int
	}{
		{"completed", `"stream":true`, nil, "response.completed", mockllm.DefaultCompletionWords},
		{"incomplete by header", `"stream":true`, map[string]string{"X-Mock-Incomplete": "true"}, "response.incomplete", mockllm.DefaultCompletionWords},
		{"incomplete by max_output_tokens", `"stream":true,"max_output_tokens":3`, nil, "response.incomplete", 3},
		{"gzip", `"stream":true`, map[string]string{"X-Mock-Gzip": "true"}, "response.completed", mockllm.DefaultCompletionWords},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postPath(t, base, "/v1/responses", respBody(tt.extra), tt.headers)
			res := meter(dialect.OpenAIResponses(), r)
			checkUsage(t, res, map[tmusage.Class]int64{tmusage.Input: respPrompt, tmusage.CacheRead: 0, tmusage.Output: int64(tt.words), tmusage.Reasoning: 0})
			if string(res.Text) != mockllm.ReplyText(tt.words) || res.Model != "gpt-4.1" {
				t.Fatalf("text %q model %q", res.Text, res.Model)
			}
			body := r.body
			if tt.headers["X-Mock-Gzip"] != "" {
				var err error
				if body, err = gunzip(t, r.body); err != nil {
					t.Fatal(err)
				}
			}
			evs := namedEvents(t, body)
			var deltas strings.Builder
			for i, e := range evs {
				if e.data["sequence_number"] != float64(i) {
					t.Fatalf("event %d has sequence_number %v", i, e.data["sequence_number"])
				}
				if e.name == "response.output_text.delta" {
					deltas.WriteString(e.data["delta"].(string))
				}
			}
			last := evs[len(evs)-1]
			if evs[0].name != "response.created" || last.name != tt.terminal || deltas.String() != mockllm.ReplyText(tt.words) {
				t.Fatalf("events %v ... %s, deltas %q", evs[0].name, last.name, deltas.String())
			}
			if status := last.data["response"].(map[string]any)["status"]; status != strings.TrimPrefix(tt.terminal, "response.") {
				t.Fatalf("terminal status %v", status)
			}
		})
	}
}

func TestResponsesEndings(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	r := postPath(t, base, "/v1/responses", respBody(`"stream":true`), map[string]string{"X-Mock-Stop-After": "2"})
	if r.readErr == nil {
		t.Fatal("the cut stream read to its end")
	}
	if res := meter(dialect.OpenAIResponses(), r); reason.Of(res.Err) != reason.Truncated || string(res.Text) != mockllm.ReplyText(2) {
		t.Fatalf("cut stream: %+v", res)
	}
	r = postPath(t, base, "/v1/responses", respBody(""), map[string]string{"X-Mock-Status": "503"})
	if res := meter(dialect.OpenAIResponses(), r); r.status != 503 || reason.Of(res.Err) != reason.ProviderError {
		t.Fatalf("503: %d %s %v", r.status, r.body, res.Err)
	}
	for _, tt := range []struct{ body, header string }{
		{`{"input":"x"}`, ""},
		{`{"model":"m","input":42}`, ""},
		{`{"model":"m","max_output_tokens":0}`, ""},
		{respBody(""), "maybe"},
	} {
		r := postPath(t, base, "/v1/responses", tt.body, map[string]string{"X-Mock-Incomplete": tt.header})
		if r.status != 400 {
			t.Errorf("%s %q: %d %s, want 400", tt.body, tt.header, r.status, r.body)
		}
	}
}

func TestResponsesDeterministic(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, extra := range []string{"", `"stream":true`} {
		a := postPath(t, base, "/v1/responses", respBody(extra), nil)
		b := postPath(t, base, "/v1/responses", respBody(extra), nil)
		if string(a.body) != string(b.body) || !equalHeader(a.header, b.header) {
			t.Fatalf("%q: two answers differ:\n%s\n%s", extra, a.body, b.body)
		}
	}
}
