package mockllm_test

import (
	"bytes"
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

type cohereTokens struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

type cohereUsage struct {
	BilledUnits cohereTokens `json:"billed_units"`
	Tokens      cohereTokens `json:"tokens"`
}

type cohereResponse struct {
	ID      string `json:"id"`
	Message struct {
		Role    string `json:"role"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	} `json:"message"`
	FinishReason string      `json:"finish_reason"`
	Usage        cohereUsage `json:"usage"`
}

// cohereBody is a v2 chat request; extra is spliced in as more top-level
// fields, e.g. `"stream":true`.
func cohereBody(extra string) string {
	b := `{"model":"command-a-03-2025","messages":[{"role":"system","content":"You are helpful."},` +
		`{"role":"user","content":[{"type":"text","text":"hello"}]}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// coherePrompt is the formula applied to cohereBody: 3 + (4 + ceil(16/4)) +
// (4 + ceil(5/4)).
const coherePrompt = 3 + (4 + 4) + (4 + 2)

func postCohere(t *testing.T, base, body string, headers map[string]string) result {
	t.Helper()
	return do(t, http.MethodPost, base+"/v2/chat", body, headers)
}

// cohereEvent is one named SSE event of a v2 stream.
type cohereEvent struct{ name, data string }

// cohereEvents splits a v2 stream, failing on anything that is not exactly
// "event: X\ndata: Y\n\n" with Y's type equal to X.
func cohereEvents(t *testing.T, b []byte) []cohereEvent {
	t.Helper()
	var out []cohereEvent
	for _, ev := range strings.SplitAfter(string(b), "\n\n") {
		if ev == "" {
			continue
		}
		name, data, ok := strings.Cut(strings.TrimSuffix(ev, "\n\n"), "\ndata: ")
		name, ok2 := strings.CutPrefix(name, "event: ")
		if !ok || !ok2 {
			t.Fatalf("malformed event %q", ev)
		}
		if typ := decode[struct{ Type string }](t, []byte(data)).Type; typ != name {
			t.Fatalf("event %q carries type %q", name, typ)
		}
		out = append(out, cohereEvent{name, data})
	}
	return out
}

func TestCohereUsage(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		in      int64
		words   int
		finish  string
	}{
		{"defaults", cohereBody(""), nil, coherePrompt, 8, "COMPLETE"},
		{"prompt header", cohereBody(""), map[string]string{"X-Mock-Prompt-Tokens": "1000"}, 1000, 8, "COMPLETE"},
		{"completion header", cohereBody(""), map[string]string{"X-Mock-Completion-Tokens": "3"}, coherePrompt, 3, "COMPLETE"},
		{"max_tokens caps", cohereBody(`"max_tokens":2`), nil, coherePrompt, 2, "MAX_TOKENS"},
		{"zero words", cohereBody(""), map[string]string{"X-Mock-Completion-Tokens": "0"}, coherePrompt, 0, "COMPLETE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postCohere(t, base, tc.body, tc.headers)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			c := decode[cohereResponse](t, r.body)
			want := cohereUsage{BilledUnits: cohereTokens{tc.in, int64(tc.words)}, Tokens: cohereTokens{tc.in + mockllm.CohereTemplateTokens, int64(tc.words)}}
			if c.Usage != want || c.FinishReason != tc.finish || len(c.Message.Content) != 1 ||
				c.Message.Content[0].Text != mockllm.ReplyText(tc.words) {
				t.Errorf("got %+v, want usage %+v finish %s", c, want, tc.finish)
			}
		})
	}
	if n, err := mockllm.CoherePromptTokens([]byte(cohereBody(""))); err != nil || n != coherePrompt {
		t.Errorf("CoherePromptTokens = %d, %v", n, err)
	}
}

func TestCohereExactBytes(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body := cohereBody("")
	r := postCohere(t, base, body, map[string]string{"X-Mock-Completion-Tokens": "2"})
	id := decode[cohereResponse](t, r.body).ID
	want := `{"id":"` + id + `","message":{"role":"assistant","content":[{"type":"text","text":"lorem ipsum"}]},` +
		`"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":17,"output_tokens":2},"tokens":{"input_tokens":81,"output_tokens":2}}}`
	if string(r.body) != want || len(id) != 36 || id[8] != '-' {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
	sbody := cohereBody(`"stream":true`)
	r = postCohere(t, base, sbody, map[string]string{"X-Mock-Completion-Tokens": "1"})
	sid := decode[struct{ ID string }](t, []byte(cohereEvents(t, r.body)[0].data)).ID
	want = "event: message-start\ndata: " + `{"id":"` + sid + `","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}` + "\n\n" +
		"event: content-start\ndata: " + `{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}` + "\n\n" +
		"event: content-delta\ndata: " + `{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"lorem"}}}}` + "\n\n" +
		"event: content-end\ndata: " + `{"type":"content-end","index":0}` + "\n\n" +
		"event: message-end\ndata: " + `{"type":"message-end","delta":{"finish_reason":"COMPLETE","usage":{"billed_units":{"input_tokens":17,"output_tokens":1},"tokens":{"input_tokens":81,"output_tokens":1}}}}` + "\n\n"
	if string(r.body) != want || r.header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("stream\n got %s\nwant %s", r.body, want)
	}
}

func TestCohereStreamEndings(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body := cohereBody(`"stream":true`)
	tests := []struct {
		name      string
		headers   map[string]string
		cut       bool
		wantWords int
		wantError bool
	}{
		{"complete", nil, false, 8, false},
		{"stop after", map[string]string{"X-Mock-Stop-After": "2"}, true, 2, false},
		{"stop before any word", map[string]string{"X-Mock-Stop-After": "0"}, true, 0, false},
		{"stop after every word", map[string]string{"X-Mock-Stop-After": "50", "X-Mock-Completion-Tokens": "3"}, true, 3, false},
		{"error after", map[string]string{"X-Mock-Error-Event-After": "3"}, false, 3, true},
		{"error wins a tie", map[string]string{"X-Mock-Error-Event-After": "2", "X-Mock-Stop-After": "2"}, false, 2, true},
		{"stop after with gzip", map[string]string{"X-Mock-Stop-After": "4", "X-Mock-Gzip": "true"}, true, 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postCohere(t, base, body, tc.headers)
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
			events := cohereEvents(t, got)
			words, last := 0, events[len(events)-1]
			for _, ev := range events {
				if ev.name == "content-delta" {
					words++
				}
			}
			ended := last.name == "message-end"
			if words != tc.wantWords || ended == tc.cut || strings.Contains(last.data, `"ERROR"`) != tc.wantError {
				t.Fatalf("%d words, last %s; want %d words, cut=%v error=%v", words, last.data, tc.wantWords, tc.cut, tc.wantError)
			}
			res := decodeWith(dialect.CohereChat(), r, !tc.cut)
			if tc.cut {
				if reason.Of(res.Err) != reason.Truncated {
					t.Fatalf("decoder: %v", res.Err)
				}
				return
			}
			if res.Usage.Get(tmusage.Input) != coherePrompt || res.Usage.Get(tmusage.Output) != int64(tc.wantWords) ||
				(reason.Of(res.Err) == reason.ProviderError) != tc.wantError {
				t.Fatalf("decoder: usage %+v err %v", res.Usage.Tokens, res.Err)
			}
		})
	}
}

// decodeWith reads a mock response the way tokenmeter does: the dialect
// decoder, fed the raw (possibly compressed) bytes in small chunks.
func decodeWith(d dialect.Dialect, r result, complete bool) dialect.Result {
	dec := d.NewDecoder(dialect.Response{Status: r.status, ContentType: r.header.Get("Content-Type"),
		ContentEncoding: r.header.Get("Content-Encoding")}, 0)
	for b := r.body; len(b) > 0; {
		n := min(len(b), 7)
		_ = dec.Feed(b[:n])
		b = b[n:]
	}
	return dec.Finish(complete)
}

func TestCohereDecodesExactly(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, body := range []string{cohereBody(""), cohereBody(`"stream":true`)} {
		for _, gz := range []string{"", "true"} {
			r := postCohere(t, base, body, map[string]string{"X-Mock-Completion-Tokens": "5", "X-Mock-Gzip": gz})
			res := decodeWith(dialect.CohereChat(), r, true)
			if res.Err != nil || res.Usage.Get(tmusage.Input) != coherePrompt || res.Usage.Get(tmusage.Output) != 5 ||
				string(res.Text) != mockllm.ReplyText(5) {
				t.Errorf("%s gzip=%q: %+v %q %v", body, gz, res.Usage.Tokens, res.Text, res.Err)
			}
			if v, _ := res.Usage.RawValue("tokens.input_tokens"); v != coherePrompt+mockllm.CohereTemplateTokens {
				t.Errorf("raw tokens.input_tokens %d", v)
			}
		}
	}
}

func TestCohereErrors(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		status  int
	}{
		{"invalid JSON", "{", nil, 400},
		{"missing model", `{"messages":[]}`, nil, 400},
		{"missing messages", `{"model":"m"}`, nil, 400},
		{"zero max_tokens", cohereBody(`"max_tokens":0`), nil, 400},
		{"bad content", `{"model":"m","messages":[{"role":"user","content":42}]}`, nil, 400},
		{"bad header", cohereBody(""), map[string]string{"X-Mock-Error-Event-After": "x"}, 400},
		{"rate limited", cohereBody(""), map[string]string{"X-Mock-Status": "429"}, 429},
		{"stream server error", cohereBody(`"stream":true`), map[string]string{"X-Mock-Status": "500"}, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postCohere(t, base, tc.body, tc.headers)
			e := decode[struct{ ID, Message string }](t, r.body)
			if r.status != tc.status || e.Message == "" || e.ID == "" || r.header.Get("Content-Type") != "application/json" {
				t.Errorf("status %d body %s; want %d", r.status, r.body, tc.status)
			}
			if res := decodeWith(dialect.CohereChat(), r, true); reason.Of(res.Err) != reason.ProviderError {
				t.Errorf("decoder: %v", res.Err)
			}
		})
	}
}

func TestCohereDeterminism(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, tc := range []struct {
		body    string
		headers map[string]string
	}{
		{cohereBody(""), nil},
		{cohereBody(`"stream":true`), nil},
		{cohereBody(`"stream":true`), map[string]string{"X-Mock-Gzip": "true"}},
		{cohereBody(`"stream":true`), map[string]string{"X-Mock-Error-Event-After": "2"}},
		{cohereBody(""), map[string]string{"X-Mock-Status": "503"}},
	} {
		a, b := postCohere(t, base, tc.body, tc.headers), postCohere(t, base, tc.body, tc.headers)
		if a.status != b.status || !equalHeader(a.header, b.header) || !bytes.Equal(a.body, b.body) {
			t.Errorf("responses differ:\n%d %v %q\n%d %v %q", a.status, a.header, a.body, b.status, b.header, b.body)
		}
	}
}
