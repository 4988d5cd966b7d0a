package dialect

import (
	"net/url"
	"strings"
)

// Azure OpenAI speaks OpenAI's wire formats under its own paths and bills
// under its own prices, so its dialects wrap OpenAI's and differ only in
// their name, their provider ("azure", which qualifies pricing) and where
// the model comes from.
//
// Paths: /openai/deployments/{deployment}/chat/completions (and
// /completions, /embeddings), and the v1 style /openai/v1/chat/completions
// (and /completions, /embeddings, /responses). A deployment is a name the
// customer chose for a model; the request body need not name the model. The
// model is the body's when present, else the deployment's name. Azure's
// responses name the model that served, which pricing prefers anyway.
//
// Azure's streams may open with a chunk of empty choices and
// prompt_filter_results and no usage, and carry content_filter_results in
// each choice; the OpenAI decoders skip both.

// AzureOpenAIChat is Azure OpenAI's chat completions.
func AzureOpenAIChat() Dialect { return azureOpenAI{"azure_openai_chat", OpenAIChat()} }

// AzureOpenAICompletions is Azure OpenAI's legacy completions.
func AzureOpenAICompletions() Dialect {
	return azureOpenAI{"azure_openai_completions", OpenAICompletions()}
}

// AzureOpenAIEmbeddings is Azure OpenAI's embeddings.
func AzureOpenAIEmbeddings() Dialect {
	return azureOpenAI{"azure_openai_embeddings", OpenAIEmbeddings()}
}

// AzureOpenAIResponses is Azure OpenAI's Responses API.
func AzureOpenAIResponses() Dialect { return azureOpenAI{"azure_openai_responses", OpenAIResponses()} }

type azureOpenAI struct {
	name  string
	inner Dialect
}

func (a azureOpenAI) Name() string   { return a.name }
func (azureOpenAI) Provider() string { return "azure" }

// ResponseHeaders are the wrapped OpenAI dialect's: Azure answers in its shapes.
func (a azureOpenAI) ResponseHeaders() []string { return a.inner.ResponseHeaders() }

// ParseRequest parses as OpenAI does, then names the deployment as the
// model when the body names none; even when the body cannot be read, since
// the path still says what is being paid for.
func (a azureOpenAI) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	req, newBody, err := a.inner.ParseRequest(body, opts)
	if req.Model == "" {
		req.Model = azureDeployment(opts.Path)
	}
	return req, newBody, err
}

// ErrorBody implements Dialect.
func (a azureOpenAI) ErrorBody(r Refusal) ErrorResponse { return a.inner.ErrorBody(r) }

func (a azureOpenAI) NewDecoder(resp Response, maxBuffer int) Decoder {
	return a.inner.NewDecoder(resp, maxBuffer)
}

const azureDeployments = "/openai/deployments/"

// azureDeployment returns the deployment a path names
// (.../openai/deployments/{deployment}/...), percent-decoded, or "".
func azureDeployment(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	i := strings.LastIndex(path, azureDeployments)
	if i < 0 {
		return ""
	}
	dep, _, _ := strings.Cut(path[i+len(azureDeployments):], "/")
	if d, err := url.PathUnescape(dep); err == nil {
		dep = d
	}
	return dep
}
