package dialect

import (
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"testing"

	"github.com/tidwall/gjson"
)

func TestOpenAICompletionsFixtures(t *testing.T) { runFixtures(t, OpenAICompletions()) }

func TestOpenAICompletionsIdentity(t *testing.T) {
	d := OpenAICompletions()
	if d.Name() != "openai_completions" || d.Provider() != "openai" {
		t.Fatalf("Name %q Provider %q", d.Name(), d.Provider())
	}
}

func TestOpenAICompletionsParseRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"string prompt", `{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test","max_tokens":7}`,
			Request{Model: "gpt-3.5-turbo-instruct", MaxTokens: 7, Prompt: "Say this is a test", PromptBytes: 18}},
		{"array of strings", `{"model":"m","prompt":["a\n","caf\u00e9"]}`,
			Request{Model: "m", Prompt: "a\ncafé", PromptBytes: 7}},
		{"token array", `{"model":"m","prompt":[1212,318,257,1332]}`, Request{Model: "m"}},
		{"token arrays", `{"model":"m","prompt":[[1212,318],[257]]}`, Request{Model: "m"}},
		{"streaming with usage", `{"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":true}}`,
			Request{Model: "m", Stream: true, IncludeUsage: true, Prompt: "x", PromptBytes: 1}},
		{"messages are not a prompt", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, Request{Model: "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, newBody, err := OpenAICompletions().ParseRequest([]byte(tt.body), RequestOptions{})
			if err != nil || newBody != nil || got != tt.want {
				t.Fatalf("got %+v %q %v, want %+v", got, newBody, err, tt.want)
			}
		})
	}
	if _, _, err := OpenAICompletions().ParseRequest([]byte(`{"prompt":`), RequestOptions{}); !errors.Is(err, reason.MalformedJSON) {
		t.Fatalf("malformed body: %v", err)
	}
}

// The legacy API takes stream_options as chat does; the injection is chat's.
func TestOpenAICompletionsInjectStreamUsage(t *testing.T) {
	body := []byte(`{"model":"gpt-3.5-turbo-instruct","prompt":"Hi","stream":true}`)
	req, newBody, err := OpenAICompletions().ParseRequest(body, RequestOptions{InjectStreamUsage: true})
	if err != nil || newBody == nil || !req.IncludeUsage {
		t.Fatalf("got %+v %q %v; want an injected body", req, newBody, err)
	}
	if gjson.GetBytes(newBody, "stream_options.include_usage").Type != gjson.True {
		t.Fatalf("new body %s lacks include_usage", newBody)
	}
	assertOnlyIncludeUsageChanged(t, body, newBody)
	again, _, err := OpenAICompletions().ParseRequest(newBody, RequestOptions{})
	if err != nil || again != req {
		t.Fatalf("re-parsed %+v %v, want %+v", again, err, req)
	}
}
