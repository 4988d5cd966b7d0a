package apikey_test

import (
	"net/http"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
)

// Each provider's key is read where its API carries it, in the order its
// servers read them; a provider tokenmeter does not know is read in the
// generic order.
func TestRead(t *testing.T) {
	const sigV4 = "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261102/us-east-1/bedrock/aws4_request, " +
		"SignedHeaders=host;x-amz-date, Signature=abc123"
	for _, tt := range []struct {
		name     string
		provider string
		headers  map[string]string
		path     string
		want     string
	}{
		{"bearer", "openai", map[string]string{"authorization": "Bearer sk-1"}, "/v1/chat/completions", "sk-1"},
		{"the scheme in any case", "openai", map[string]string{"authorization": "bEaReR sk-1"}, "/", "sk-1"},
		{"spaces around", "openai", map[string]string{"authorization": "  Bearer   sk-1  "}, "/", "sk-1"},
		{"another scheme is no key", "openai", map[string]string{"authorization": "Basic dXNlcjpwYXNz"}, "/", ""},
		{"a bare token is no key", "openai", map[string]string{"authorization": "sk-1"}, "/", ""},
		{"openai reads no x-api-key", "openai", map[string]string{"x-api-key": "sk-1"}, "/", ""},
		{"anthropic's x-api-key", "anthropic", map[string]string{"x-api-key": "sk-ant-1"}, "/v1/messages", "sk-ant-1"},
		{"anthropic's x-api-key before a bearer", "anthropic",
			map[string]string{"x-api-key": "sk-ant-1", "authorization": "Bearer oauth"}, "/v1/messages", "sk-ant-1"},
		{"anthropic with a bearer only", "anthropic", map[string]string{"authorization": "Bearer oauth"}, "/v1/messages", "oauth"},
		{"google's x-goog-api-key", "google", map[string]string{"x-goog-api-key": "AIza1"}, "/v1beta/models/gemini:generateContent", "AIza1"},
		{"google's ?key=", "google", nil, "/v1beta/models/gemini:generateContent?alt=sse&key=AIza2", "AIza2"},
		{"google's header before ?key=", "google", map[string]string{"x-goog-api-key": "AIza1"}, "/v1beta/models/g:generateContent?key=AIza2", "AIza1"},
		{"a bad query is no key", "google", nil, "/v1beta/models/g:generateContent?key=%zz", ""},
		{"vertex reads the bearer first", "vertex",
			map[string]string{"authorization": "Bearer ya29", "x-goog-api-key": "AIza1"}, "/", "ya29"},
		{"azure's api-key", "azure", map[string]string{"api-key": "az-1"}, "/openai/deployments/d/chat/completions", "az-1"},
		{"azure's api-key before a bearer", "azure",
			map[string]string{"api-key": "az-1", "authorization": "Bearer entra"}, "/", "az-1"},
		{"bedrock's SigV4 gives the access key id", "bedrock", map[string]string{"authorization": sigV4}, "/model/m/converse", "AKIAEXAMPLE"},
		{"SigV4 without a credential", "bedrock",
			map[string]string{"authorization": "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc"}, "/", ""},
		{"bedrock's API key as a bearer", "bedrock", map[string]string{"authorization": "Bearer ABSK1"}, "/", "ABSK1"},
		{"an unknown provider: the bearer first", "acme",
			map[string]string{"authorization": "Bearer b", "x-api-key": "x", "api-key": "a"}, "/?key=q", "b"},
		{"an unknown provider: then x-api-key", "", map[string]string{"x-api-key": "x", "x-goog-api-key": "g", "api-key": "a"}, "/?key=q", "x"},
		{"an unknown provider: then x-goog-api-key", "", map[string]string{"x-goog-api-key": "g", "api-key": "a"}, "/?key=q", "g"},
		{"an unknown provider: then api-key", "", map[string]string{"api-key": "a"}, "/?key=q", "a"},
		{"an unknown provider: then ?key=", "", nil, "/?key=q", "q"},
		{"nothing", "openai", nil, "/v1/chat/completions", ""},
		{"nothing, unknown provider", "", nil, "/", ""},
		{"a blank header", "anthropic", map[string]string{"x-api-key": "  "}, "/", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			if got := apikey.Read(tt.provider, h.Get, tt.path); got != tt.want {
				t.Fatalf("Read = %q, want %q", got, tt.want)
			}
		})
	}
}
