package mockllm_test

import (
	"encoding/json"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

func TestLegacyPromptTokens(t *testing.T) {
	for _, tt := range []struct {
		prompt string
		want   int64
	}{
		{`"hello"`, 3 + 4 + 2},
		{`["hello","abcdefghi"]`, 3 + (4 + 2) + (4 + 3)},
		{`[1,2,3]`, 3 + 4 + 3},
		{`[[1,2],[3]]`, 3 + (4 + 2) + (4 + 1)},
		{`null`, 3},
	} {
		got, err := mockllm.LegacyPromptTokens([]byte(`{"model":"m","prompt":` + tt.prompt + `}`))
		if err != nil || got != tt.want {
			t.Errorf("%s: %d %v, want %d", tt.prompt, got, err, tt.want)
		}
	}
	if _, err := mockllm.LegacyPromptTokens([]byte(`{"prompt":{}}`)); err == nil {
		t.Error("an object prompt was accepted")
	}
}

func TestLegacyCompletions(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	const prompt = 3 + 4 + 2
	body := func(extra string) string {
		b := `{"model":"gpt-3.5-turbo-instruct","prompt":"hello"`
		if extra != "" {
			b += "," + extra
		}
		return b + "}"
	}
	tests := []struct {
		name    string
		extra   string
		headers map[string]string
		words   int
		want    map[tmusage.Class]int64
		reason  reason.Reason
	}{
		{"json", "", map[string]string{"X-Mock-Cached-Tokens": "2"}, 8,
			map[tmusage.Class]int64{tmusage.Input: prompt - 2, tmusage.CacheRead: 2, tmusage.Output: 8, tmusage.Reasoning: 0}, ""},
		{"max_tokens", `"max_tokens":3`, nil, 3,
			map[tmusage.Class]int64{tmusage.Input: prompt, tmusage.CacheRead: 0, tmusage.Output: 3, tmusage.Reasoning: 0}, ""},
		{"stream with usage", `"stream":true,"stream_options":{"include_usage":true}`, nil, 8,
			map[tmusage.Class]int64{tmusage.Input: prompt, tmusage.CacheRead: 0, tmusage.Output: 8, tmusage.Reasoning: 0}, ""},
		{"usage with choices", `"stream":true,"stream_options":{"include_usage":true}`, map[string]string{"X-Mock-Usage-With-Choices": "true"}, 8,
			map[tmusage.Class]int64{tmusage.Input: prompt, tmusage.CacheRead: 0, tmusage.Output: 8, tmusage.Reasoning: 0}, ""},
		{"stream without usage", `"stream":true`, nil, 8, nil, reason.NoUsage},
		{"cut", `"stream":true,"stream_options":{"include_usage":true}`, map[string]string{"X-Mock-Stop-After": "2"}, 2, nil, reason.Truncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postPath(t, base, "/v1/completions", body(tt.extra), tt.headers)
			res := meter(dialect.OpenAICompletions(), r)
			if string(res.Text) != mockllm.ReplyText(tt.words) || res.Model != "gpt-3.5-turbo-instruct" {
				t.Fatalf("text %q model %q (%s)", res.Text, res.Model, r.body)
			}
			if tt.reason != "" {
				if got := reason.Of(res.Err); got != tt.reason {
					t.Fatalf("reason %q, want %q", got, tt.reason)
				}
				return
			}
			checkUsage(t, res, tt.want)
		})
	}
}

func TestLegacyCompletionsShape(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	r := postPath(t, base, "/v1/completions", `{"model":"m","prompt":["a","b"]}`, nil)
	var c struct {
		ID, Object string
		Choices    []struct {
			Text         string
			FinishReason string `json:"finish_reason"`
		}
	}
	if err := json.Unmarshal(r.body, &c); err != nil || c.Object != "text_completion" || len(c.Choices) != 1 ||
		c.Choices[0].FinishReason != "stop" || c.ID[:5] != "cmpl-" {
		t.Fatalf("%v %s", err, r.body)
	}
	for _, bad := range []string{`{"prompt":"x"}`, `{"model":"m","prompt":{}}`, `{"model":"m","max_tokens":0}`} {
		if r := postPath(t, base, "/v1/completions", bad, nil); r.status != 400 {
			t.Errorf("%s: %d, want 400", bad, r.status)
		}
	}
}
