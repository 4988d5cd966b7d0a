package dialect

import (
	"slices"
	"strings"
)

// Registry maps a request path to the dialect that speaks it. It is built
// once and only read afterwards, so one Registry may serve every request.
type Registry struct {
	routes []route
}

// route matches paths that end in suffix. A suffix "head*tail" matches
// paths that end in tail and hold head before it, for APIs that tell their
// hosts apart by a segment earlier in the path.
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
		// Azure OpenAI before the generic OpenAI suffixes its paths also
		// end in. Chat before completions: ".../{deployment}/chat/completions"
		// also ends in "/completions" under "/openai/deployments/".
		{"/openai/deployments/*/chat/completions", AzureOpenAIChat()},
		{"/openai/deployments/*/completions", AzureOpenAICompletions()},
		{"/openai/deployments/*/embeddings", AzureOpenAIEmbeddings()},
		{"/openai/v1/chat/completions", AzureOpenAIChat()},
		{"/openai/v1/completions", AzureOpenAICompletions()},
		{"/openai/v1/embeddings", AzureOpenAIEmbeddings()},
		{"/openai/v1/responses", AzureOpenAIResponses()},
		{"/openai/responses", AzureOpenAIResponses()},
		{"/chat/completions", OpenAIChat()},
		// The legacy completions, embeddings and Responses suffixes keep
		// their /v1, as Anthropic's does: "/responses" alone is too common
		// to claim, and /v1/responses/{id} (a stored response) bills nothing.
		{"/v1/completions", OpenAICompletions()},
		{"/v1/embeddings", OpenAIEmbeddings()},
		{"/v1/responses", OpenAIResponses()},
		{"/v1/audio/transcriptions", OpenAIAudio()},
		{"/v1/audio/translations", OpenAIAudio()},
		{"/v1/audio/speech", OpenAISpeech()},
		{"/v1/images/generations", OpenAIImages()},
		{"/v1/images/edits", OpenAIImages()},
		{"/v1/images/variations", OpenAIImages()},
		{"/v1/messages", AnthropicMessages()},
		// Cohere's and Ollama's suffixes keep their version or /api
		// segment: a bare "/chat" or "/generate" is too common to claim.
		{"/v2/chat", CohereChat()},
		{"/v1/chat", CohereChatV1()},
		{"/api/chat", OllamaChat()},
		{"/api/generate", OllamaGenerate()},
		// Gemini names the model and the method in the last segment
		// ({model}:generateContent). Vertex AI's paths hold /projects/
		// (/v1/projects/{p}/locations/{l}/publishers/google/models/...), or
		// /publishers/ alone in its express mode; the Gemini API's never do.
		{"/projects/*:generateContent", VertexGemini()},
		{"/projects/*:streamGenerateContent", VertexGemini()},
		{"/publishers/*:generateContent", VertexGemini()},
		{"/publishers/*:streamGenerateContent", VertexGemini()},
		{":generateContent", Gemini()},
		{":streamGenerateContent", Gemini()},
		// Bedrock names the model in the path: /model/{modelId}/{operation}.
		{"/model/*/converse", BedrockConverse()},
		{"/model/*/converse-stream", BedrockConverseStream()},
		{"/model/*/invoke", BedrockInvoke()},
		{"/model/*/invoke-with-response-stream", BedrockInvokeStream()},
	}}
}

// ForPath returns the dialect for an HTTP request path (the :path pseudo
// header, query string included or not). The first matching route wins.
func (r *Registry) ForPath(path string) (Dialect, bool) {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for _, rt := range r.routes {
		if matchSuffix(path, rt.suffix) {
			return rt.dialect, true
		}
	}
	return nil, false
}

// ResponseHeaders is the sorted union of every registered dialect's
// ResponseHeaders: what an observer must be forwarded to decode any of them.
func (r *Registry) ResponseHeaders() []string {
	var names []string
	for _, rt := range r.routes {
		for _, h := range rt.dialect.ResponseHeaders() {
			if !slices.Contains(names, h) {
				names = append(names, h)
			}
		}
	}
	slices.Sort(names)
	return names
}

// matchSuffix reports whether path ends in suffix, or, for "head*tail",
// ends in tail and holds head before it.
func matchSuffix(path, suffix string) bool {
	head, tail, wild := strings.Cut(suffix, "*")
	if !wild {
		return strings.HasSuffix(path, suffix)
	}
	return strings.HasSuffix(path, tail) && strings.Contains(path[:len(path)-len(tail)], head)
}
