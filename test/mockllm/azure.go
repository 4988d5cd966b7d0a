package mockllm

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tidwall/sjson"
)

// Azure OpenAI (POST .../openai/deployments/{deployment}/chat/completions,
// /completions and /embeddings). Azure names the model by its deployment,
// and its bodies need not name one: the mock answers as its OpenAI routes
// do, with the body's model when present, else the deployment's name.
// X-Mock-Model stands in for the model Azure reports (the one the
// deployment serves). The v1 style paths (/openai/v1/chat/completions and
// so on) need no route of their own: their suffixes are OpenAI's.

// handler is a route's answer.
type handler func(s *Server, w http.ResponseWriter, r *http.Request, body []byte)

// openAIRoute returns the handler for the OpenAI routes besides chat, and
// for Azure's deployment paths (chat included, whose bodies may lack the
// model), or nil.
func openAIRoute(path string) handler {
	if dep, api, ok := azureDeploymentPath(path); ok {
		next := map[string]handler{
			"chat/completions": (*Server).chatCompletions,
			"completions":      (*Server).legacyCompletions,
			"embeddings":       (*Server).embeddings,
		}[api]
		if next == nil {
			return nil
		}
		return func(s *Server, w http.ResponseWriter, r *http.Request, body []byte) {
			next(s, w, r, withModel(body, dep))
		}
	}
	switch {
	case strings.HasSuffix(path, "/v1/responses"):
		return (*Server).responses
	case strings.HasSuffix(path, "/v1/completions"):
		return (*Server).legacyCompletions
	case strings.HasSuffix(path, "/v1/embeddings"):
		return (*Server).embeddings
	}
	return nil
}

// azureDeploymentPath splits ".../openai/deployments/{dep}/{api}".
func azureDeploymentPath(path string) (dep, api string, ok bool) {
	const marker = "/openai/deployments/"
	i := strings.LastIndex(path, marker)
	if i < 0 {
		return "", "", false
	}
	dep, api, ok = strings.Cut(path[i+len(marker):], "/")
	return dep, api, ok && dep != ""
}

// withModel returns body with "model" set to dep when body is an object
// that names no model; any other body is left for the route to reject.
func withModel(body []byte, dep string) []byte {
	var req struct {
		Model *string `json:"model"`
	}
	if json.Unmarshal(body, &req) != nil || (req.Model != nil && *req.Model != "") {
		return body
	}
	out, err := sjson.SetBytes(body, "model", dep)
	if err != nil {
		return body
	}
	return out
}
