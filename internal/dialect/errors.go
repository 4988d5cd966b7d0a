package dialect

import "encoding/json"

// Refusal is an answer tokenmeter gives in the provider's place: a budget
// exhausted (429), a model it cannot price (403), a body too large (413),
// its store unavailable or itself overloaded (503).
type Refusal struct {
	Status  int
	Code    string // tokenmeter's code: budget_exceeded, model_unpriced, ...
	Message string
}

// ErrorResponse is a refusal written as the dialect's API writes its own
// errors, so the caller's SDK raises its own typed error (RateLimitError,
// ThrottlingException...) that callers already handle. Headers are what the
// shape needs besides content-type: application/json.
type ErrorResponse struct {
	Body    []byte
	Headers [][2]string
}

// The error shapes of the providers' APIs.
type (
	openAIErrorJSON struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	anthropicErrorJSON struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	googleErrorJSON struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	messageErrorJSON struct {
		Message string `json:"message"`
	}
	ollamaErrorJSON struct {
		Error string `json:"error"`
	}
)

func errorJSON(v any) []byte {
	b, _ := json.Marshal(v) // structs of strings and ints always marshal
	return b
}

// OpenAIRefusal is OpenAI's shape, {"error":{"message","type","code"}}, which
// OpenAI-compatible servers share; it is also the answer for a request no
// dialect claimed.
func OpenAIRefusal(r Refusal) ErrorResponse {
	var e openAIErrorJSON
	e.Error.Message, e.Error.Type, e.Error.Code = r.Message, r.Code, r.Code
	return ErrorResponse{Body: errorJSON(e)}
}

// anthropicRefusal is Anthropic's shape; its SDK maps error.type to a class.
func anthropicRefusal(r Refusal) ErrorResponse {
	var e anthropicErrorJSON
	e.Type, e.Error.Message = "error", r.Message
	e.Error.Type = map[int]string{429: "rate_limit_error", 403: "permission_error", 401: "authentication_error"}[r.Status]
	if e.Error.Type == "" {
		e.Error.Type = "api_error"
	}
	return ErrorResponse{Body: errorJSON(e)}
}

// googleRefusal is Google's (Gemini, Vertex) shape with its canonical status.
func googleRefusal(r Refusal) ErrorResponse {
	var e googleErrorJSON
	e.Error.Code, e.Error.Message = r.Status, r.Message
	e.Error.Status = map[int]string{429: "RESOURCE_EXHAUSTED", 403: "PERMISSION_DENIED", 401: "UNAUTHENTICATED"}[r.Status]
	if e.Error.Status == "" {
		e.Error.Status = "UNAVAILABLE"
	}
	return ErrorResponse{Body: errorJSON(e)}
}

// bedrockRefusal is AWS's shape: the SDKs read the error type from a header.
func bedrockRefusal(r Refusal) ErrorResponse {
	t := map[int]string{429: "ThrottlingException", 403: "AccessDeniedException", 401: "UnrecognizedClientException"}[r.Status]
	if t == "" {
		t = "ServiceUnavailableException"
	}
	return ErrorResponse{Body: errorJSON(messageErrorJSON{Message: r.Message}), Headers: [][2]string{{bedrockErrorTypeHeader, t}}}
}

// cohereRefusal is Cohere's shape, {"message"}.
func cohereRefusal(r Refusal) ErrorResponse {
	return ErrorResponse{Body: errorJSON(messageErrorJSON{Message: r.Message})}
}

// ollamaRefusal is Ollama's shape, {"error"}.
func ollamaRefusal(r Refusal) ErrorResponse {
	return ErrorResponse{Body: errorJSON(ollamaErrorJSON{Error: r.Message})}
}
