package mockllm_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

type cacheCreation struct {
	Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
}

type anthUsage struct {
	InputTokens              int64          `json:"input_tokens"`
	CacheCreationInputTokens int64          `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64          `json:"cache_read_input_tokens"`
	CacheCreation            *cacheCreation `json:"cache_creation"`
	OutputTokens             int64          `json:"output_tokens"`
}

type anthBlock struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	Thinking  string `json:"thinking"`
	Signature string `json:"signature"`
}

type anthMessage struct {
	ID           string      `json:"id"`
	Type         string      `json:"type"`
	Role         string      `json:"role"`
	Model        string      `json:"model"`
	Content      []anthBlock `json:"content"`
	StopReason   *string     `json:"stop_reason"`
	StopSequence *string     `json:"stop_sequence"`
	Usage        anthUsage   `json:"usage"`
}

type anthErrorBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// anthBody is a Messages request; extra is spliced in as more top-level
// fields, e.g. `"stream":true`.
func anthBody(extra string) string {
	b := `{"model":"claude-sonnet-4-20250514","max_tokens":1024,"system":"You are helpful.","messages":[{"role":"user","content":"hello"}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

// anthPrompt is the formula applied to anthBody: the system prompt is one
// more term, 3 + (4 + ceil(16/4)) + (4 + ceil(5/4)).
const anthPrompt = 3 + (4 + 4) + (4 + 2)

func postMessages(t *testing.T, base, body string, headers map[string]string) result {
	t.Helper()
	return do(t, http.MethodPost, base+"/v1/messages", body, headers)
}

// anthEvent is one named SSE event of a Messages stream.
type anthEvent struct {
	name string
	data string
}

// anthEvents splits a Messages stream, failing on anything that is not
// exactly "event: X\ndata: Y\n\n" with Y's type equal to X.
func anthEvents(t *testing.T, b []byte) []anthEvent {
	t.Helper()
	var out []anthEvent
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
		out = append(out, anthEvent{name, data})
	}
	return out
}

func TestAnthropicUsage(t *testing.T) {
	cc := func(m5, h1 int64) *cacheCreation { return &cacheCreation{m5, h1} }
	tests := []struct {
		name     string
		body     string
		headers  map[string]string
		want     anthUsage
		thinking int
		words    int
		stop     string // default end_turn
	}{
		{name: "defaults", body: anthBody(""), want: anthUsage{InputTokens: anthPrompt, OutputTokens: 8}, words: 8},
		{name: "no system", body: `{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hello"}]}`,
			want: anthUsage{InputTokens: 3 + 6, OutputTokens: 8}, words: 8},
		{name: "system and content blocks count text", body: `{"model":"m","max_tokens":9,"system":[{"type":"text","text":"abcd"},` +
			`{"type":"text","text":"efghi","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[` +
			`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"text","text":"x"}]}]}`,
			want: anthUsage{InputTokens: 3 + (4 + 3) + (4 + 1), OutputTokens: 8}, words: 8},
		{name: "cache read comes out of input", body: anthBody(""), headers: map[string]string{"X-Mock-Cached-Tokens": "10"},
			want: anthUsage{InputTokens: anthPrompt - 10, CacheReadInputTokens: 10, OutputTokens: 8}, words: 8},
		{name: "cache writes with breakdown", body: anthBody(""),
			headers: map[string]string{"X-Mock-Prompt-Tokens": "5000", "X-Mock-Cached-Tokens": "3000",
				"X-Mock-Cache-Write-Tokens": "1000", "X-Mock-Cache-Write-1h-Tokens": "500"},
			want: anthUsage{InputTokens: 500, CacheCreationInputTokens: 1500, CacheReadInputTokens: 3000,
				CacheCreation: cc(1000, 500), OutputTokens: 8}, words: 8},
		{name: "1h write only", body: anthBody(""), headers: map[string]string{"X-Mock-Cache-Write-1h-Tokens": "7"},
			want: anthUsage{InputTokens: anthPrompt - 7, CacheCreationInputTokens: 7, CacheCreation: cc(0, 7), OutputTokens: 8}, words: 8},
		{name: "whole prompt from cache", body: anthBody(""), headers: map[string]string{"X-Mock-Cached-Tokens": "17"},
			want: anthUsage{CacheReadInputTokens: anthPrompt, OutputTokens: 8}, words: 8},
		{name: "thinking is output", body: anthBody(""), headers: map[string]string{"X-Mock-Reasoning-Tokens": "5", "X-Mock-Completion-Tokens": "3"},
			want: anthUsage{InputTokens: anthPrompt, OutputTokens: 8}, thinking: 5, words: 3},
		{name: "max_tokens cuts words", body: strings.Replace(anthBody(""), "1024", "3", 1),
			want: anthUsage{InputTokens: anthPrompt, OutputTokens: 3}, words: 3, stop: "max_tokens"},
		{name: "max_tokens cuts thinking first", body: strings.Replace(anthBody(""), "1024", "4", 1),
			headers: map[string]string{"X-Mock-Reasoning-Tokens": "6"},
			want:    anthUsage{InputTokens: anthPrompt, OutputTokens: 4}, thinking: 4, words: 0, stop: "max_tokens"},
		{name: "zero words", body: anthBody(""), headers: map[string]string{"X-Mock-Completion-Tokens": "0"},
			want: anthUsage{InputTokens: anthPrompt}, words: 0},
	}
	_, base := newServer(t, mockllm.Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postMessages(t, base, tc.body, tc.headers)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			m := decode[anthMessage](t, r.body)
			if !reflect.DeepEqual(m.Usage, tc.want) {
				t.Errorf("usage %+v, want %+v", m.Usage, tc.want)
			}
			prompt, err := mockllm.AnthropicPromptTokens([]byte(tc.body))
			if sum := m.Usage.InputTokens + m.Usage.CacheReadInputTokens + m.Usage.CacheCreationInputTokens; tc.headers["X-Mock-Prompt-Tokens"] == "" && (err != nil || sum != prompt) {
				t.Errorf("input+cache %d, AnthropicPromptTokens %d (%v)", sum, prompt, err)
			}
			want := []anthBlock{{Type: "text", Text: mockllm.ReplyText(tc.words)}}
			if tc.thinking > 0 {
				want = append([]anthBlock{{Type: "thinking", Thinking: mockllm.ReplyText(tc.thinking), Signature: m.Content[0].Signature}}, want...)
			}
			if !reflect.DeepEqual(m.Content, want) {
				t.Errorf("content %+v, want %+v", m.Content, want)
			}
			if stop := cmp.Or(tc.stop, "end_turn"); m.StopReason == nil || *m.StopReason != stop {
				t.Errorf("stop_reason %v, want %s", m.StopReason, stop)
			}
		})
	}
}

func TestAnthropicMessageEnvelope(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body := anthBody("")
	r := postMessages(t, base, body, map[string]string{"X-Mock-Completion-Tokens": "2", "X-Mock-Model": "claude-sonnet-4-5"})
	want := `{"id":"msg_` + sha12(body) + `","type":"message","role":"assistant","model":"claude-sonnet-4-5",` +
		`"content":[{"type":"text","text":"lorem ipsum"}],"stop_reason":"end_turn","stop_sequence":null,` +
		`"usage":{"input_tokens":17,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}`
	if string(r.body) != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
	wantHeader := http.Header{"Content-Type": {"application/json"}, "Content-Length": {itoa(len(want))}}
	if !equalHeader(r.header, wantHeader) {
		t.Errorf("header %v, want %v", r.header, wantHeader)
	}
}

func TestAnthropicStreamExactBytes(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body := anthBody(`"stream":true`)
	r := postMessages(t, base, body, map[string]string{"X-Mock-Completion-Tokens": "2", "X-Mock-Cached-Tokens": "5"})
	want := "event: message_start\ndata: " + `{"type":"message_start","message":{"id":"msg_` + sha12(body) + `","type":"message",` +
		`"role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,` +
		`"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":5,"output_tokens":1}}}` + "\n\n" +
		"event: content_block_start\ndata: " + `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}` + "\n\n" +
		"event: content_block_delta\ndata: " + `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lorem"}}` + "\n\n" +
		"event: content_block_delta\ndata: " + `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" ipsum"}}` + "\n\n" +
		"event: content_block_stop\ndata: " + `{"type":"content_block_stop","index":0}` + "\n\n" +
		"event: message_delta\ndata: " + `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}` + "\n\n" +
		"event: message_stop\ndata: " + `{"type":"message_stop"}` + "\n\n"
	if string(r.body) != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
	wantHeader := http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	if !equalHeader(r.header, wantHeader) {
		t.Errorf("header %v, want %v", r.header, wantHeader)
	}
}

// streamStory is what a stream says: its event names, the text and
// thinking it spelled out, and its two usages.
type streamStory struct {
	names          []string
	text, thinking string
	start          anthUsage
	delta          map[string]json.RawMessage
}

func readStory(t *testing.T, events []anthEvent) streamStory {
	t.Helper()
	var s streamStory
	var text, thinking strings.Builder
	for _, ev := range events {
		s.names = append(s.names, ev.name)
		switch ev.name {
		case "message_start":
			s.start = decode[struct{ Message anthMessage }](t, []byte(ev.data)).Message.Usage
		case "content_block_delta":
			d := decode[struct{ Delta anthBlock }](t, []byte(ev.data)).Delta
			text.WriteString(d.Text)
			thinking.WriteString(d.Thinking)
		case "message_delta":
			s.delta = decode[struct{ Usage map[string]json.RawMessage }](t, []byte(ev.data)).Usage
		}
	}
	s.text, s.thinking = text.String(), thinking.String()
	return s
}

func TestAnthropicStream(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name      string
		headers   map[string]string
		wantNames string
		wantDelta string // message_delta usage keys, sorted
	}{
		{"text", map[string]string{"X-Mock-Completion-Tokens": "2"},
			"message_start content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop",
			"output_tokens"},
		{"thinking", map[string]string{"X-Mock-Completion-Tokens": "1", "X-Mock-Reasoning-Tokens": "2"},
			"message_start content_block_start content_block_delta content_block_delta content_block_delta content_block_stop " +
				"content_block_start content_block_delta content_block_stop message_delta message_stop",
			"output_tokens"},
		{"full delta usage", map[string]string{"X-Mock-Completion-Tokens": "1", "X-Mock-Delta-Full-Usage": "true",
			"X-Mock-Cached-Tokens": "4", "X-Mock-Cache-Write-Tokens": "3"},
			"message_start content_block_start content_block_delta content_block_stop message_delta message_stop",
			"cache_creation cache_creation_input_tokens cache_read_input_tokens input_tokens output_tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postMessages(t, base, anthBody(`"stream":true`), tc.headers)
			if r.status != http.StatusOK || r.readErr != nil {
				t.Fatalf("status %d, read error %v", r.status, r.readErr)
			}
			s := readStory(t, anthEvents(t, r.body))
			if got := strings.Join(s.names, " "); got != tc.wantNames {
				t.Errorf("events\n got %s\nwant %s", got, tc.wantNames)
			}
			// The stream must tell the same story as the whole response.
			m := decode[anthMessage](t, postMessages(t, base, anthBody(""), tc.headers).body)
			whole := m.Usage
			whole.OutputTokens = 1
			if !reflect.DeepEqual(s.start, whole) {
				t.Errorf("message_start usage %+v, want %+v with output 1", s.start, m.Usage)
			}
			if s.text != m.Content[len(m.Content)-1].Text || (len(m.Content) == 2) != (s.thinking != "") ||
				len(m.Content) == 2 && s.thinking != m.Content[0].Thinking {
				t.Errorf("stream text %q thinking %q, message %+v", s.text, s.thinking, m.Content)
			}
			var keys []string
			for k := range s.delta {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if got := strings.Join(keys, " "); got != tc.wantDelta || string(s.delta["output_tokens"]) != itoa(int(m.Usage.OutputTokens)) {
				t.Errorf("message_delta usage %v, want keys %s and output %d", s.delta, tc.wantDelta, m.Usage.OutputTokens)
			}
			if in, ok := s.delta["input_tokens"]; ok && string(in) != itoa(int(m.Usage.InputTokens)) {
				t.Errorf("message_delta input_tokens %s, want %d", in, m.Usage.InputTokens)
			}
		})
	}
}

func TestAnthropicStreamEndings(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body := anthBody(`"stream":true`)
	tests := []struct {
		name      string
		headers   map[string]string
		cut       bool // the connection drops
		wantWords int
		wantError bool // ends with an error event
	}{
		{"error event mid stream", map[string]string{"X-Mock-Error-Event-After": "2"}, false, 2, true},
		{"error event before any word", map[string]string{"X-Mock-Error-Event-After": "0"}, false, 0, true},
		{"error event after every word", map[string]string{"X-Mock-Error-Event-After": "50", "X-Mock-Completion-Tokens": "3"}, false, 3, true},
		{"error event counts thinking words", map[string]string{"X-Mock-Error-Event-After": "3", "X-Mock-Reasoning-Tokens": "2"}, false, 3, true},
		{"error event wins a tie", map[string]string{"X-Mock-Error-Event-After": "2", "X-Mock-Stop-After": "2"}, false, 2, true},
		{"stop after", map[string]string{"X-Mock-Stop-After": "2"}, true, 2, false},
		{"stop before the error event", map[string]string{"X-Mock-Error-Event-After": "5", "X-Mock-Stop-After": "1"}, true, 1, false},
		{"stop after with gzip", map[string]string{"X-Mock-Stop-After": "4", "X-Mock-Gzip": "true"}, true, 4, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postMessages(t, base, body, tc.headers)
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
			events := anthEvents(t, got)
			words := 0
			for _, ev := range events {
				if ev.name == "content_block_delta" && !strings.Contains(ev.data, "signature_delta") {
					words++
				}
				if ev.name == "message_delta" || ev.name == "message_stop" {
					t.Fatalf("stream cut short carries %s", ev.name)
				}
			}
			last := events[len(events)-1]
			if words != tc.wantWords || (last.name == "error") != tc.wantError {
				t.Fatalf("%d words, last event %s; want %d words, error=%v:\n%s", words, last.name, tc.wantWords, tc.wantError, got)
			}
			if tc.wantError {
				e := decode[anthErrorBody](t, []byte(last.data))
				if e.Type != "error" || e.Error.Type != "overloaded_error" || e.Error.Message == "" {
					t.Errorf("error event %s", last.data)
				}
			}
		})
	}
	t.Run("ignored without stream", func(t *testing.T) {
		h := map[string]string{"X-Mock-Stop-After": "1", "X-Mock-Error-Event-After": "1"}
		if r := postMessages(t, base, anthBody(""), h); r.status != 200 || r.readErr != nil {
			t.Errorf("status %d, read error %v", r.status, r.readErr)
		}
	})
}

func TestAnthropicErrors(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name     string
		body     string
		headers  map[string]string
		status   int
		wantType string
	}{
		{"invalid JSON", "{", nil, 400, "invalid_request_error"},
		{"missing model", `{"max_tokens":1,"messages":[]}`, nil, 400, "invalid_request_error"},
		{"missing max_tokens", `{"model":"m","messages":[]}`, nil, 400, "invalid_request_error"},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[]}`, nil, 400, "invalid_request_error"},
		{"bad system", `{"model":"m","max_tokens":1,"system":42,"messages":[]}`, nil, 400, "invalid_request_error"},
		{"bad header", anthBody(""), map[string]string{"X-Mock-Cache-Write-Tokens": "x"}, 400, "invalid_request_error"},
		{"bad shared header", anthBody(""), map[string]string{"X-Mock-Status": "99"}, 400, "invalid_request_error"},
		{"cache over prompt", anthBody(""), map[string]string{"X-Mock-Cached-Tokens": "10", "X-Mock-Cache-Write-Tokens": "8"}, 400, "invalid_request_error"},
		{"rate limited", anthBody(""), map[string]string{"X-Mock-Status": "429"}, 429, "rate_limit_error"},
		{"overloaded", anthBody(`"stream":true`), map[string]string{"X-Mock-Status": "529"}, 529, "overloaded_error"},
		{"server error", anthBody(""), map[string]string{"X-Mock-Status": "500"}, 500, "api_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := postMessages(t, base, tc.body, tc.headers)
			e := decode[anthErrorBody](t, r.body)
			if r.status != tc.status || e.Type != "error" || e.Error.Type != tc.wantType || e.Error.Message == "" {
				t.Errorf("status %d body %s; want %d %s", r.status, r.body, tc.status, tc.wantType)
			}
		})
	}
}

func TestAnthropicRouting(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for path, want := range map[string]int{
		"/v1/messages":              200,
		"/anthropic/v1/messages":    200,
		"/v1/messages/count_tokens": 404,
		"/v1/messages/batches":      404,
	} {
		if r := do(t, http.MethodPost, base+path, anthBody(""), nil); r.status != want {
			t.Errorf("POST %s: status %d, want %d", path, r.status, want)
		}
	}
	if r := do(t, http.MethodGet, base+"/v1/messages", "", nil); r.status != 404 {
		t.Errorf("GET /v1/messages: status %d", r.status)
	}
}

func TestAnthropicDeterminism(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	stream := anthBody(`"stream":true`)
	full := map[string]string{"X-Mock-Reasoning-Tokens": "3", "X-Mock-Cache-Write-1h-Tokens": "2", "X-Mock-Delta-Full-Usage": "true"}
	tests := []struct {
		name    string
		body    string
		headers map[string]string
	}{
		{"message", anthBody(""), full},
		{"stream", stream, full},
		{"gzip message", anthBody(""), map[string]string{"X-Mock-Gzip": "true"}},
		{"gzip stream", stream, map[string]string{"X-Mock-Gzip": "true"}},
		{"error event", stream, map[string]string{"X-Mock-Error-Event-After": "3"}},
		{"error status", anthBody(""), map[string]string{"X-Mock-Status": "529"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := postMessages(t, base, tc.body, tc.headers)
			b := postMessages(t, base, tc.body, tc.headers)
			if a.status != b.status || !equalHeader(a.header, b.header) || !bytes.Equal(a.body, b.body) {
				t.Errorf("responses differ:\n%d %v %q\n%d %v %q", a.status, a.header, a.body, b.status, b.header, b.body)
			}
		})
	}
	t.Run("gzip carries the same bytes", func(t *testing.T) {
		for _, body := range []string{anthBody(""), stream} {
			plain := postMessages(t, base, body, nil)
			zipped := postMessages(t, base, body, map[string]string{"X-Mock-Gzip": "true"})
			got, err := gunzip(t, zipped.body)
			if err != nil || !bytes.Equal(got, plain.body) || zipped.header.Get("Content-Encoding") != "gzip" {
				t.Errorf("gunzip %v:\n%s\nplain\n%s", err, got, plain.body)
			}
		}
	})
}

func TestAnthropicPromptTokens(t *testing.T) {
	if n, err := mockllm.AnthropicPromptTokens([]byte(anthBody(""))); err != nil || n != anthPrompt {
		t.Errorf("AnthropicPromptTokens = %d, %v; want %d", n, err, anthPrompt)
	}
	if _, err := mockllm.AnthropicPromptTokens([]byte(`{"system":{}}`)); err == nil {
		t.Error("a system prompt that is an object was accepted")
	}
}
