package mockllm

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
)

// OpenAI Embeddings (POST .../v1/embeddings).
//
// The input is a string, an array of strings, a token array or an array of
// token arrays, counted as a legacy completions prompt is: 3 + Σ (4 +
// ceil(len/4)) over strings, 4 + len over token arrays. usage is
// {prompt_tokens, total_tokens}, both that count. Each input gets a vector
// of "dimensions" values (default DefaultEmbeddingDimensions, at most
// maxDimensions) derived from a hash of the body, as floats or, with
// "encoding_format":"base64", as little-endian float32s in base64.
//
// X-Mock-Prompt-Tokens, -Status, -Model and -Gzip keep their chat meaning;
// the headers about generated tokens, streaming and delays do not apply.

// DefaultEmbeddingDimensions is the vector length when the request does not
// set "dimensions": short, because tests read these bodies.
const DefaultEmbeddingDimensions = 8

const maxDimensions = 4096

type embeddingsRequest struct {
	Model          *string         `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

type embeddingsJSON struct {
	Object string          `json:"object"`
	Data   []embeddingJSON `json:"data"`
	Model  string          `json:"model"`
	Usage  embeddingsUsage `json:"usage"`
}

type embeddingJSON struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float32, or a base64 string
}

type embeddingsUsage struct {
	PromptTokens int64 `json:"prompt_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request, body []byte) {
	o, err := parseOverrides(r.Header)
	var resp *embeddingsJSON
	if err == nil {
		resp, err = newEmbeddings(body, o)
	}
	if err != nil {
		code := "invalid_mock_header"
		if br, ok := errors.AsType[*badRequest](err); ok {
			code = br.code
		}
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: "invalid_request_error", Code: code}, nil, o.gzip)
		return
	}
	if o.status < 200 || o.status > 299 {
		writeError(w, o.status, mockStatusError(o.status), nil, o.gzip)
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal embeddings: %w", err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeMaybeGzip(w, o.status, b, o.gzip)
}

func newEmbeddings(body []byte, o overrides) (*embeddingsJSON, error) {
	var req embeddingsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, &badRequest{fmt.Sprintf("We could not parse the JSON body of your request: %v", err), "invalid_json"}
	}
	if req.Model == nil || *req.Model == "" {
		return nil, &badRequest{"you must provide a model parameter", "missing_required_parameter"}
	}
	n, err := inputCount(req.Input)
	if err != nil {
		return nil, err
	}
	prompt, _ := inputTokens(req.Input, "input") // inputCount checked its shape
	if o.prompt >= 0 {
		prompt = o.prompt
	}
	dims := DefaultEmbeddingDimensions
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > maxDimensions {
			return nil, &badRequest{fmt.Sprintf("Invalid 'dimensions': %d is out of range 1..%d", *req.Dimensions, maxDimensions), "invalid_value"}
		}
		dims = *req.Dimensions
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		return nil, &badRequest{fmt.Sprintf("Invalid 'encoding_format': %q", req.EncodingFormat), "invalid_value"}
	}
	resp := &embeddingsJSON{Object: "list", Model: *req.Model, Usage: embeddingsUsage{prompt, prompt}}
	if o.model != "" {
		resp.Model = o.model
	}
	for i := range n {
		v := vector(body, i, dims)
		e := embeddingJSON{Object: "embedding", Index: i, Embedding: v}
		if req.EncodingFormat == "base64" {
			raw := make([]byte, 4*len(v))
			for j, f := range v {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(f))
			}
			e.Embedding = base64.StdEncoding.EncodeToString(raw)
		}
		resp.Data = append(resp.Data, e)
	}
	return resp, nil
}

// inputCount is the number of inputs, each of which gets a vector. The
// real API rejects an empty input; so does the mock.
func inputCount(raw json.RawMessage) (int, error) {
	if _, err := inputTokens(raw, "input"); err != nil {
		return 0, &badRequest{err.Error(), "invalid_type"}
	}
	var s string
	var list []json.RawMessage
	switch {
	case json.Unmarshal(raw, &s) == nil:
		if s == "" {
			break
		}
		return 1, nil
	case json.Unmarshal(raw, &list) == nil && len(list) > 0:
		if len(list[0]) > 0 && list[0][0] != '"' && list[0][0] != '[' {
			return 1, nil // one token array
		}
		return len(list), nil
	}
	return 0, &badRequest{"'input' cannot be empty", "invalid_value"}
}

// vector derives input i's vector from the body, so that it is
// deterministic, with values k/128 that print short.
func vector(body []byte, i, dims int) []float32 {
	v := make([]float32, dims)
	var h [sha256.Size]byte
	for j := range v {
		if j%sha256.Size == 0 {
			h = sha256.Sum256(fmt.Appendf(body[:len(body):len(body)], "#%d.%d", i, j/sha256.Size))
		}
		v[j] = float32(int8(h[j%sha256.Size])) / 128
	}
	return v
}
