package dialect

import (
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"testing"
)

func TestAzureOpenAIChatFixtures(t *testing.T) { runFixtures(t, AzureOpenAIChat()) }

func TestAzureOpenAIIdentity(t *testing.T) {
	for _, tt := range []struct {
		d    Dialect
		name string
	}{
		{AzureOpenAIChat(), "azure_openai_chat"},
		{AzureOpenAICompletions(), "azure_openai_completions"},
		{AzureOpenAIEmbeddings(), "azure_openai_embeddings"},
		{AzureOpenAIResponses(), "azure_openai_responses"},
	} {
		if tt.d.Name() != tt.name || tt.d.Provider() != "azure" {
			t.Errorf("Name %q Provider %q, want %q azure", tt.d.Name(), tt.d.Provider(), tt.name)
		}
	}
}

// TestRegistryOpenAIRoutes covers the OpenAI and Azure OpenAI routes; the
// shared TestRegistryForPath covers the rest.
func TestRegistryOpenAIRoutes(t *testing.T) {
	tests := []struct {
		path string
		want string // dialect name; "" for no match
	}{
		{"/v1/chat/completions", "openai_chat"},
		{"/v1/completions", "openai_completions"},
		{"/v1/completions?x=1", "openai_completions"},
		{"/api/v1/completions", "openai_completions"},
		{"/v1/embeddings", "openai_embeddings"},
		{"/v1/responses", "openai_responses"},
		{"/proxy/v1/responses?stream=true", "openai_responses"},
		{"/v1/responses/resp_123", ""},
		{"/v1/responses/resp_123/input_items", ""},
		{"/v1/responses/resp_123/cancel", ""},
		{"/v1/responses/input_tokens", ""},
		{"/v1/completions/extra", ""},
		{"/v1/xcompletions", ""},

		{"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "azure_openai_chat"},
		{"/openai/deployments/gpt-35-instruct/completions?api-version=2024-10-21", "azure_openai_completions"},
		{"/openai/deployments/ada-002/embeddings?api-version=2024-10-21", "azure_openai_embeddings"},
		// A deployment may be called "chat": this is legacy completions.
		{"/openai/deployments/chat/completions", "azure_openai_completions"},
		{"/openai/deployments/chat/chat/completions", "azure_openai_chat"},
		{"/gateway/openai/deployments/my-gpt/chat/completions", "azure_openai_chat"},
		{"/openai/v1/chat/completions?api-version=preview", "azure_openai_chat"},
		{"/openai/v1/completions", "azure_openai_completions"},
		{"/openai/v1/embeddings", "azure_openai_embeddings"},
		{"/openai/v1/responses", "azure_openai_responses"},
		{"/openai/responses?api-version=2025-04-01-preview", "azure_openai_responses"},
		{"/openai/v1/responses/resp_123", ""},
	}
	r := DefaultRegistry()
	for _, tt := range tests {
		d, ok := r.ForPath(tt.path)
		got := ""
		if ok {
			got = d.Name()
		}
		if got != tt.want {
			t.Errorf("ForPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	for _, name := range []string{"openai_completions", "openai_embeddings", "openai_responses",
		"azure_openai_chat", "azure_openai_completions", "azure_openai_embeddings", "azure_openai_responses"} {
		if d, ok := r.ByName(name); !ok || d.Name() != name {
			t.Errorf("ByName(%q) = %v, %v", name, d, ok)
		}
	}
}

func TestAzureDeployment(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "gpt-4o"},
		{"/openai/deployments/my%20gpt/chat/completions", "my gpt"},
		{"/openai/deployments/bad%zz/chat/completions", "bad%zz"},
		{"/x/openai/deployments/a/openai/deployments/b/embeddings", "b"},
		{"/openai/deployments/", ""},
		{"/openai/v1/chat/completions", ""},
		{"/openai/v1/chat/completions?next=/openai/deployments/x/", ""},
		{"", ""},
	} {
		if got := azureDeployment(tt.path); got != tt.want {
			t.Errorf("azureDeployment(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestAzureOpenAIModel(t *testing.T) {
	const dep = "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
	tests := []struct {
		name string
		d    Dialect
		path string
		body string
		want string
		err  reason.Reason
	}{
		{"from the body", AzureOpenAIChat(), dep, `{"model":"gpt-4o","messages":[]}`, "gpt-4o", ""},
		{"from the deployment", AzureOpenAIChat(), dep, `{"messages":[]}`, "prod-gpt4o", ""},
		{"empty body model", AzureOpenAIChat(), dep, `{"model":"","messages":[]}`, "prod-gpt4o", ""},
		{"unreadable body", AzureOpenAIChat(), dep, `{"messages":`, "prod-gpt4o", reason.MalformedJSON},
		{"v1 path names none", AzureOpenAIChat(), "/openai/v1/chat/completions", `{"messages":[]}`, "", ""},
		{"completions", AzureOpenAICompletions(), "/openai/deployments/inst/completions", `{"prompt":"x"}`, "inst", ""},
		{"embeddings", AzureOpenAIEmbeddings(), "/openai/deployments/emb-large/embeddings", `{"input":"x"}`, "emb-large", ""},
		{"responses", AzureOpenAIResponses(), "/openai/v1/responses", `{"model":"o4-mini","input":"x"}`, "o4-mini", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _, err := tt.d.ParseRequest([]byte(tt.body), RequestOptions{Path: tt.path})
			if req.Model != tt.want || reason.Of(err) != tt.err {
				t.Fatalf("model %q err %v, want %q %q", req.Model, err, tt.want, tt.err)
			}
		})
	}
}

// Azure rewrites the body as OpenAI does when injecting include_usage.
func TestAzureOpenAIInjectsStreamUsage(t *testing.T) {
	req, newBody, err := AzureOpenAIChat().ParseRequest([]byte(`{"messages":[],"stream":true}`),
		RequestOptions{Path: "/openai/deployments/d1/chat/completions", InjectStreamUsage: true})
	if err != nil || newBody == nil || !req.IncludeUsage || req.Model != "d1" {
		t.Fatalf("got %+v %q %v", req, newBody, err)
	}
	d := AzureOpenAIChat().NewDecoder(Response{Status: 200, ContentType: "text/event-stream", ContentEncoding: "zstd"}, 0)
	if r := d.Finish(true); !errors.Is(r.Err, reason.UnsupportedEncoding) {
		t.Fatalf("the inner decoder's encoding handling was lost: %v", r.Err)
	}
}
