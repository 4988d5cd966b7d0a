package mockllm_test

import (
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

func TestAzureDeploymentRoutes(t *testing.T) {
	s, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name, path, body string
		d                dialect.Dialect
		model            string
	}{
		{"chat, model from deployment", "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
			`{"messages":[{"role":"user","content":"hello"}]}`, dialect.AzureOpenAIChat(), "prod-4o"},
		{"chat, model from body", "/openai/deployments/prod-4o/chat/completions",
			`{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`, dialect.AzureOpenAIChat(), "gpt-4o"},
		{"chat, null model", "/openai/deployments/prod-4o/chat/completions",
			`{"model":null,"messages":[]}`, dialect.AzureOpenAIChat(), "prod-4o"},
		{"a deployment called chat", "/openai/deployments/chat/completions",
			`{"prompt":"hello"}`, dialect.AzureOpenAICompletions(), "chat"},
		{"embeddings", "/openai/deployments/emb/embeddings", `{"input":"hello"}`, dialect.AzureOpenAIEmbeddings(), "emb"},
		{"v1 chat", "/openai/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[]}`, dialect.AzureOpenAIChat(), "gpt-4o-mini"},
		{"v1 responses", "/openai/v1/responses", `{"model":"gpt-4.1","input":"hello"}`, dialect.AzureOpenAIResponses(), "gpt-4.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postPath(t, base, tt.path, tt.body, nil)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			// The dialect names the model from the path as the mock does.
			req, _, _ := tt.d.ParseRequest([]byte(tt.body), dialect.RequestOptions{Path: tt.path})
			res := meter(tt.d, r)
			if res.Err != nil || res.Model != tt.model || req.Model != tt.model || !res.Usage.Reported() {
				t.Fatalf("response model %q, request model %q, %v; want %q", res.Model, req.Model, res.Err, tt.model)
			}
		})
	}
	if got := s.Requests(); string(got[0].Body) != tests[0].body {
		t.Fatalf("recorded %s, want the body as sent", got[0].Body)
	}
	if r := postPath(t, base, "/openai/deployments/d/audio/transcriptions", `{}`, nil); r.status != 404 {
		t.Fatalf("unknown Azure API: %d", r.status)
	}
}
