package dialect

import (
	"encoding/json"
	"testing"
)

// A deny is written in the caller's dialect, so its SDK raises its own
// rate-limit (or permission) error.
func TestErrorShapes(t *testing.T) {
	tests := []struct {
		dialect string
		status  int
		body    string
		header  string // extra header "name: value", or ""
	}{
		{"openai_chat", 429, `{"error":{"message":"m","type":"budget_exceeded","code":"budget_exceeded"}}`, ""},
		{"azure_openai_chat", 403, `{"error":{"message":"m","type":"budget_exceeded","code":"budget_exceeded"}}`, ""},
		{"anthropic_messages", 429, `{"type":"error","error":{"type":"rate_limit_error","message":"m"}}`, ""},
		{"anthropic_messages", 403, `{"type":"error","error":{"type":"permission_error","message":"m"}}`, ""},
		{"anthropic_messages", 503, `{"type":"error","error":{"type":"api_error","message":"m"}}`, ""},
		{"gemini", 429, `{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED"}}`, ""},
		{"vertex_gemini", 403, `{"error":{"code":403,"message":"m","status":"PERMISSION_DENIED"}}`, ""},
		{"gemini", 503, `{"error":{"code":503,"message":"m","status":"UNAVAILABLE"}}`, ""},
		{"anthropic_messages", 401, `{"type":"error","error":{"type":"authentication_error","message":"m"}}`, ""},
		{"gemini", 401, `{"error":{"code":401,"message":"m","status":"UNAUTHENTICATED"}}`, ""},
		{"bedrock_converse", 401, `{"message":"m"}`, "x-amzn-errortype: UnrecognizedClientException"},
		{"bedrock_converse", 429, `{"message":"m"}`, "x-amzn-errortype: ThrottlingException"},
		{"bedrock_invoke", 403, `{"message":"m"}`, "x-amzn-errortype: AccessDeniedException"},
		{"cohere_chat", 429, `{"message":"m"}`, ""},
		{"ollama_chat", 429, `{"error":"m"}`, ""},
	}
	reg := DefaultRegistry()
	for _, tt := range tests {
		d, ok := reg.ByName(tt.dialect)
		if !ok {
			t.Fatalf("no dialect %s", tt.dialect)
		}
		e := d.ErrorBody(Refusal{Status: tt.status, Code: "budget_exceeded", Message: "m"})
		if string(e.Body) != tt.body {
			t.Errorf("%s %d: body %s, want %s", tt.dialect, tt.status, e.Body, tt.body)
		}
		var got string
		for _, h := range e.Headers {
			got = h[0] + ": " + h[1]
		}
		if got != tt.header {
			t.Errorf("%s %d: header %q, want %q", tt.dialect, tt.status, got, tt.header)
		}
	}
}

// Every registered dialect answers a refusal with a JSON body.
func TestEveryDialectWritesItsErrors(t *testing.T) {
	reg := DefaultRegistry()
	for _, name := range reg.Names() {
		d, _ := reg.ByName(name)
		for _, status := range []int{401, 403, 413, 429, 503} {
			e := d.ErrorBody(Refusal{Status: status, Code: "c", Message: "a \"quoted\" message"})
			if !json.Valid(e.Body) {
				t.Errorf("%s %d: %s is not JSON", d.Name(), status, e.Body)
			}
		}
	}
}
