package dialect

import "testing"

// The tier a response says it was served at, in the catalog's names.
func TestServedServiceTier(t *testing.T) {
	const (
		sse  = "text/event-stream"
		json = "application/json"
	)
	tests := []struct {
		name  string
		d     Dialect
		ctype string
		body  string
		want  string
	}{
		{"openai json flex", OpenAIChat(), json,
			`{"model":"m","service_tier":"flex","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, "flex"},
		{"openai json default", OpenAIChat(), json,
			`{"model":"m","service_tier":"default","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, ServedStandard},
		{"openai json silent", OpenAIChat(), json,
			`{"model":"m","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, ""},
		{"openai sse priority", OpenAIChat(), sse,
			"data: {\"model\":\"m\",\"service_tier\":\"priority\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
				"data: {\"model\":\"m\",\"service_tier\":\"priority\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\ndata: [DONE]\n\n", "priority"},
		{"anthropic json priority", AnthropicMessages(), json,
			`{"model":"c","usage":{"input_tokens":1,"output_tokens":1,"service_tier":"priority"}}`, "priority"},
		{"anthropic json standard", AnthropicMessages(), json,
			`{"model":"c","usage":{"input_tokens":1,"output_tokens":1,"service_tier":"standard"}}`, ServedStandard},
		{"anthropic sse batch", AnthropicMessages(), sse,
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1,\"service_tier\":\"batch\"}}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":2}}\n\n" +
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", "batch"},
	}
	for _, tt := range tests {
		d := tt.d.NewDecoder(Response{Status: 200, ContentType: tt.ctype}, 1<<20)
		if err := d.Feed([]byte(tt.body)); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		res := d.Finish(true)
		if res.Err != nil || res.ServiceTier != tt.want {
			t.Errorf("%s: tier %q err %v, want %q", tt.name, res.ServiceTier, res.Err, tt.want)
		}
	}
}
