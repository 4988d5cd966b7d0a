package mockllm_test

import (
	"cmp"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

const lorem8 = "lorem ipsum dolor sit amet consectetur adipiscing elit"

type usageCase struct {
	name        string
	path        string // default /v1/chat/completions
	body        string
	headers     map[string]string
	want        usage
	wantContent string
	wantFinish  string // default "stop"
	wantModel   string // default gpt-4o-mini
}

var usageCases = []usageCase{
	{name: "defaults", body: chatBody(""), want: mkUsage(defaultPrompt, 8, 0, 0), wantContent: lorem8},
	{
		name: "content parts count only text",
		body: `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abcd"},` +
			`{"type":"image_url","image_url":{"url":"https://x/y.png"}},{"type":"text","text":"efghi"}]}]}`,
		want: mkUsage(3+4+3, 8, 0, 0), wantContent: lorem8, wantModel: "m",
	},
	{
		name:      "null content counts zero",
		body:      `{"model":"m","messages":[{"role":"assistant","content":null}]}`,
		want:      mkUsage(3+4, 8, 0, 0),
		wantModel: "m", wantContent: lorem8,
	},
	{name: "empty messages", body: `{"model":"m","messages":[]}`, want: mkUsage(3, 8, 0, 0), wantModel: "m", wantContent: lorem8},
	{name: "multibyte content counts bytes", body: `{"model":"m","messages":[{"role":"user","content":"héllo"}]}`, want: mkUsage(3+4+2, 8, 0, 0), wantModel: "m", wantContent: lorem8},
	{
		name: "prompt override", body: chatBody(""),
		headers: map[string]string{"X-Mock-Prompt-Tokens": "1000"},
		want:    mkUsage(1000, 8, 0, 0), wantContent: lorem8,
	},
	{
		name: "completion override", body: chatBody(""),
		headers: map[string]string{"X-Mock-Completion-Tokens": "3"},
		want:    mkUsage(defaultPrompt, 3, 0, 0), wantContent: "lorem ipsum dolor",
	},
	{
		name: "zero completion", body: chatBody(""),
		headers: map[string]string{"X-Mock-Completion-Tokens": "0"},
		want:    mkUsage(defaultPrompt, 0, 0, 0), wantContent: "",
	},
	{
		name: "words cycle through the lorem list", body: chatBody(""),
		headers: map[string]string{"X-Mock-Completion-Tokens": "21"},
		want:    mkUsage(defaultPrompt, 21, 0, 0), wantContent: mockllm.ReplyText(21),
	},
	{
		name: "cached", body: chatBody(""),
		headers: map[string]string{"X-Mock-Prompt-Tokens": "100", "X-Mock-Cached-Tokens": "64"},
		want:    mkUsage(100, 8, 64, 0), wantContent: lorem8,
	},
	{
		name: "cached equal to prompt", body: chatBody(""),
		headers: map[string]string{"X-Mock-Cached-Tokens": "17"},
		want:    mkUsage(defaultPrompt, 8, defaultPrompt, 0), wantContent: lorem8,
	},
	{
		name: "reasoning adds on top of words", body: chatBody(""),
		headers: map[string]string{"X-Mock-Reasoning-Tokens": "10"},
		want:    mkUsage(defaultPrompt, 18, 0, 10), wantContent: lorem8,
	},
	{
		name: "all overrides", body: chatBody(""),
		headers: map[string]string{
			"X-Mock-Prompt-Tokens": "500", "X-Mock-Cached-Tokens": "200",
			"X-Mock-Completion-Tokens": "2", "X-Mock-Reasoning-Tokens": "30",
			"X-Mock-Model": "gpt-4o-mini-2024-07-18",
		},
		want: mkUsage(500, 32, 200, 30), wantContent: "lorem ipsum", wantModel: "gpt-4o-mini-2024-07-18",
	},
	{
		name: "model override", body: chatBody(""),
		headers: map[string]string{"X-Mock-Model": "gpt-4o-mini-2024-07-18"},
		want:    mkUsage(defaultPrompt, 8, 0, 0), wantContent: lorem8, wantModel: "gpt-4o-mini-2024-07-18",
	},
	{
		name: "max_tokens truncates", body: chatBody(`"max_tokens":5`),
		want: mkUsage(defaultPrompt, 5, 0, 0), wantContent: "lorem ipsum dolor sit amet", wantFinish: "length",
	},
	{
		name: "max_tokens above reply is inert", body: chatBody(`"max_tokens":8`),
		want: mkUsage(defaultPrompt, 8, 0, 0), wantContent: lorem8,
	},
	{
		name:    "max_completion_tokens wins and reasoning spends first",
		body:    chatBody(`"max_tokens":100,"max_completion_tokens":6`),
		headers: map[string]string{"X-Mock-Reasoning-Tokens": "4"},
		want:    mkUsage(defaultPrompt, 6, 0, 4), wantContent: "lorem ipsum", wantFinish: "length",
	},
	{
		name: "reasoning alone exhausts the budget", body: chatBody(`"max_completion_tokens":6`),
		headers: map[string]string{"X-Mock-Reasoning-Tokens": "10"},
		want:    mkUsage(defaultPrompt, 6, 0, 6), wantContent: "", wantFinish: "length",
	},
	{
		name: "any path ending in chat/completions", path: "/openai/deployments/d1/chat/completions", body: chatBody(""),
		want: mkUsage(defaultPrompt, 8, 0, 0), wantContent: lorem8,
	},
}

func TestCompletionUsage(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, tc := range usageCases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, http.MethodPost, base+cmp.Or(tc.path, "/v1/chat/completions"), tc.body, tc.headers)
			checkCompletion(t, tc, r)
		})
	}
}

func checkCompletion(t *testing.T, tc usageCase, r result) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := r.header.Get("Content-Length"); cl != itoa(len(r.body)) {
		t.Errorf("Content-Length %q for %d bytes", cl, len(r.body))
	}
	c := decode[completion](t, r.body)
	if c.Usage != tc.want {
		t.Errorf("usage %+v, want %+v", c.Usage, tc.want)
	}
	if len(c.Choices) != 1 {
		t.Fatalf("choices %+v", c.Choices)
	}
	ch := c.Choices[0]
	if ch.Message.Role != "assistant" || ch.Message.Content != tc.wantContent {
		t.Errorf("message %+v, want content %q", ch.Message, tc.wantContent)
	}
	if want := cmp.Or(tc.wantFinish, "stop"); ch.FinishReason != want {
		t.Errorf("finish_reason %q, want %q", ch.FinishReason, want)
	}
	if want := cmp.Or(tc.wantModel, "gpt-4o-mini"); c.Model != want {
		t.Errorf("model %q, want %q", c.Model, want)
	}
	if c.Object != "chat.completion" || c.Created != mockllm.Created || !strings.HasPrefix(c.ID, "chatcmpl-") || len(c.ID) != len("chatcmpl-")+12 {
		t.Errorf("envelope id=%q object=%q created=%d", c.ID, c.Object, c.Created)
	}
	if tc.headers["X-Mock-Prompt-Tokens"] == "" {
		if got, err := mockllm.PromptTokens([]byte(tc.body)); err != nil || got != tc.want.PromptTokens {
			t.Errorf("PromptTokens = %d, %v; want %d", got, err, tc.want.PromptTokens)
		}
	}
}

// TestCompletionExactBytes pins the whole response, headers included, since
// end-to-end tests compare bytes through the proxy.
func TestCompletionExactBytes(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	r := post(t, base, body, map[string]string{"X-Mock-Completion-Tokens": "2"})
	want := `{"id":"chatcmpl-` + sha12(body) + `","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"lorem ipsum"},"logprobs":null,"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10,` +
		`"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`
	if string(r.body) != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
	wantHeader := http.Header{"Content-Type": {"application/json"}, "Content-Length": {itoa(len(want))}}
	if !equalHeader(r.header, wantHeader) {
		t.Errorf("header %v, want %v", r.header, wantHeader)
	}
}

func TestBadRequests(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name     string
		body     string
		headers  map[string]string
		wantCode string
	}{
		{"invalid JSON", `{"model":`, nil, "invalid_json"},
		{"trailing garbage", chatBody("") + "x", nil, "invalid_json"},
		{"body is an array", `[]`, nil, "invalid_json"},
		{"stream is not a bool", chatBody(`"stream":"yes"`), nil, "invalid_json"},
		{"missing model", `{"messages":[]}`, nil, "missing_required_parameter"},
		{"content is a number", `{"model":"m","messages":[{"role":"user","content":7}]}`, nil, "invalid_type"},
		{"max_tokens zero", chatBody(`"max_tokens":0`), nil, "integer_below_min_value"},
		{"cached above prompt", chatBody(""), map[string]string{"X-Mock-Cached-Tokens": "18"}, "invalid_mock_header"},
		{"non-numeric header", chatBody(""), map[string]string{"X-Mock-Prompt-Tokens": "ten"}, "invalid_mock_header"},
		{"negative header", chatBody(""), map[string]string{"X-Mock-Completion-Tokens": "-1"}, "invalid_mock_header"},
		{"bad bool header", chatBody(""), map[string]string{"X-Mock-Gzip": "yes please"}, "invalid_mock_header"},
		{"status out of range", chatBody(""), map[string]string{"X-Mock-Status": "99"}, "invalid_mock_header"},
		{"status without body", chatBody(""), map[string]string{"X-Mock-Status": "204"}, "invalid_mock_header"},
		{"delay too long", chatBody(""), map[string]string{"X-Mock-Chunk-Delay-Ms": "60001"}, "invalid_mock_header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, base, tc.body, tc.headers)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", r.status, r.body)
			}
			e := decode[errorBody](t, r.body)
			if e.Error.Code != tc.wantCode || e.Error.Type != "invalid_request_error" || e.Error.Message == "" || e.Usage != nil {
				t.Errorf("error body %s, want code %q", r.body, tc.wantCode)
			}
		})
	}
}

func TestMockStatus(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	u := mkUsage(defaultPrompt, 8, 0, 0)
	tests := []struct {
		name      string
		body      string
		headers   map[string]string
		status    int
		wantType  string
		wantCode  string
		wantUsage *usage
	}{
		{"500 without usage", chatBody(""), map[string]string{"X-Mock-Status": "500"}, 500, "server_error", "mock_status", nil},
		{"500 with usage", chatBody(""), map[string]string{"X-Mock-Status": "500", "X-Mock-Status-Usage": "true"}, 500, "server_error", "mock_status", &u},
		{"429", chatBody(""), map[string]string{"X-Mock-Status": "429"}, 429, "rate_limit_error", "rate_limit_exceeded", nil},
		{"400 with overridden usage", chatBody(""), map[string]string{
			"X-Mock-Status": "400", "X-Mock-Status-Usage": "1", "X-Mock-Prompt-Tokens": "40", "X-Mock-Reasoning-Tokens": "2",
		}, 400, "invalid_request_error", "mock_status", new(mkUsage(40, 10, 0, 2))},
		{"stream request still gets a JSON error", chatBody(`"stream":true`), map[string]string{"X-Mock-Status": "503"}, 503, "server_error", "mock_status", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, base, tc.body, tc.headers)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			e := decode[errorBody](t, r.body)
			if e.Error.Type != tc.wantType || e.Error.Code != tc.wantCode || e.Error.Message == "" {
				t.Errorf("error %+v", e.Error)
			}
			switch {
			case tc.wantUsage == nil && strings.Contains(string(r.body), `"usage"`):
				t.Errorf("unexpected usage in %s", r.body)
			case tc.wantUsage != nil && (e.Usage == nil || *e.Usage != *tc.wantUsage):
				t.Errorf("usage %+v, want %+v", e.Usage, tc.wantUsage)
			}
		})
	}

	t.Run("2xx status keeps the normal answer", func(t *testing.T) {
		r := post(t, base, chatBody(""), map[string]string{"X-Mock-Status": "201", "X-Mock-Status-Usage": "true"})
		if r.status != 201 {
			t.Fatalf("status %d", r.status)
		}
		if c := decode[completion](t, r.body); c.Usage != u || c.Object != "chat.completion" {
			t.Errorf("body %s", r.body)
		}
	})
}

func TestRoutes(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/v1/models", 404, `{"error":{"message":"Invalid URL (GET /v1/models)","type":"invalid_request_error","code":"not_found"}}`},
		{"GET", "/v1/chat/completions", 404, `{"error":{"message":"Invalid URL (GET /v1/chat/completions)","type":"invalid_request_error","code":"not_found"}}`},
		{"POST", "/healthz", 404, `{"error":{"message":"Invalid URL (POST /healthz)","type":"invalid_request_error","code":"not_found"}}`},
		{"POST", "/v1/edits", 404, `{"error":{"message":"Invalid URL (POST /v1/edits)","type":"invalid_request_error","code":"not_found"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := do(t, tc.method, base+tc.path, "", nil)
			if r.status != tc.status || string(r.body) != tc.body {
				t.Errorf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.body)
			}
			if _, ok := r.header["Date"]; ok {
				t.Errorf("Date header present: responses must not depend on the clock")
			}
		})
	}
}
