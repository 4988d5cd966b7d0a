package dialect

import "strings"

// Registry maps a request path to the dialect that speaks it. It is built
// once and only read afterwards, so one Registry may serve every request.
type Registry struct {
	routes []route
}

// route matches paths that end in suffix.
type route struct {
	suffix  string
	dialect Dialect
}

// DefaultRegistry knows the built-in dialects by their documented paths.
// Suffixes rather than whole paths, because gateways and compatible servers
// mount the same API under their own prefixes (Azure's
// /openai/deployments/{name}/chat/completions, vLLM's /v1/chat/completions).
//
// Anthropic's suffix keeps its /v1: a bare "/messages" would also claim
// OpenAI's Assistants API (/v1/threads/{id}/messages). Gateways that mount
// Anthropic under a prefix keep the /v1 (/anthropic/v1/messages); its
// /v1/messages/count_tokens and /v1/messages/batches are not messages.
func DefaultRegistry() *Registry {
	return &Registry{routes: []route{
		{"/chat/completions", OpenAIChat()},
		{"/v1/messages", AnthropicMessages()},
	}}
}

// ForPath returns the dialect for an HTTP request path (the :path pseudo
// header, query string included or not). The first matching route wins.
func (r *Registry) ForPath(path string) (Dialect, bool) {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for _, rt := range r.routes {
		if strings.HasSuffix(path, rt.suffix) {
			return rt.dialect, true
		}
	}
	return nil, false
}
