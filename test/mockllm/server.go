// Package mockllm is a deterministic, offline stand-in for the OpenAI Chat
// Completions API and the Anthropic Messages API, for demos and end-to-end
// tests through a real Envoy. The Anthropic route is described with its
// headers, at HeaderCacheWriteTokens.
//
// Every byte it writes (status, headers and body) is a pure function of the
// request's method, path, body and X-Mock-* headers: ids are derived from a
// hash of the body, "created" is fixed, and the automatic Date header is
// suppressed. Tests can therefore assert exact token counts and exact bytes.
//
// # Default token counts
//
// prompt_tokens = 3 + Σ over messages of (4 + ceil(len(text)/4)), where text
// is the message content in bytes: the string itself, or the concatenated
// "text" fields of an array of parts (other parts count 0).
//
// The reply is the first N words of a fixed lorem-ipsum list, cycled, joined
// by single spaces; N is DefaultCompletionWords unless overridden. Each word
// is one token, so completion_tokens = N + reasoning_tokens.
//
// max_completion_tokens (or, when absent, max_tokens) caps completion_tokens
// like a real provider does: reasoning is capped first, then words fill what
// is left, and finish_reason becomes "length" when anything was cut.
//
// # Test headers
//
// See the Header* constants for the per-request overrides.
package mockllm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxRecorded bounds memory in long demo runs while keeping enough history
// for any single test.
const maxRecorded = 100

// maxBodyBytes is far above any realistic chat request; it only stops a
// runaway client from exhausting memory.
const maxBodyBytes = 32 << 20

// Options configure a Server. The zero value is ready to use.
type Options struct {
	// ChunkDelay is slept between consecutive stream events (not before the
	// first), so demos look like a live model and tests can exercise
	// timeouts. Default 0. The X-Mock-Chunk-Delay-Ms header overrides it.
	ChunkDelay time.Duration

	// Logger receives one Info record per request. Nil discards.
	Logger *slog.Logger
}

// Recorded is one request as the mock received it, for tests that check what
// a proxy forwarded upstream.
type Recorded struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	// ContentLength is the request's declared length: -1 when unknown (for
	// example chunked), so tests can tell a rewritten body whose
	// Content-Length was fixed up from one that was not.
	ContentLength int64
}

// Server is the mock. It is safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	recorded []Recorded
}

// New returns a Server configured by opts.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log}
}

// ServeHTTP implements http.Handler.
//
// With X-Mock-Stop-After it deliberately panics with http.ErrAbortHandler
// mid-stream: that is how net/http lets a handler drop the connection, so the
// client sees a truncated stream. Run it under an http.Server, not a bare
// httptest.ResponseRecorder, when using that header.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A nil value tells net/http not to add Date, the one header that would
	// otherwise make responses time-dependent.
	w.Header()["Date"] = nil

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	s.record(r, body)
	s.log.Info("request", "method", r.Method, "path", r.URL.Path, "bytes", len(body))
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, apiError{
			Message: fmt.Sprintf("could not read request body: %v", err),
			Type:    "invalid_request_error",
			Code:    "invalid_body",
		}, nil, false)
		return
	}

	switch {
	case r.Method == http.MethodPost && openAIRoute(r.URL.Path) != nil: // before chat: Azure's chat path ends like it
		openAIRoute(r.URL.Path)(s, w, r, body)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions"):
		s.chatCompletions(w, r, body)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v1/messages"):
		s.anthropicMessages(w, r, body)
	case r.Method == http.MethodPost && isMediaPath(r.URL.Path):
		s.media(w, r, body)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/v2/chat"):
		s.cohereChat(w, r, body)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/api/chat"):
		s.ollama(w, r, body, false)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/api/generate"):
		s.ollama(w, r, body, true)
	case r.Method == http.MethodPost && isGeminiPath(r.URL.Path):
		s.gemini(w, r, body)
	case r.Method == http.MethodPost && isBedrockPath(r.URL.Path):
		s.bedrock(w, r, body)
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == "/healthz":
		b := []byte("ok")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		writeBody(w, http.StatusOK, b)
	default:
		writeError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path),
			Type:    "invalid_request_error",
			Code:    "not_found",
		}, nil, false)
	}
}

func (s *Server) record(r *http.Request, body []byte) {
	rec := Recorded{
		Method:        r.Method,
		Path:          r.URL.Path,
		Header:        r.Header.Clone(),
		Body:          bytes.Clone(body),
		ContentLength: r.ContentLength,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recorded) >= maxRecorded {
		// Copy down rather than reslice so the backing array does not keep
		// growing over a long demo run.
		n := copy(s.recorded, s.recorded[len(s.recorded)-maxRecorded+1:])
		s.recorded = s.recorded[:n]
	}
	s.recorded = append(s.recorded, rec)
}

// Requests returns the most recent requests received (at most 100), oldest
// first. The result is a deep copy: callers may modify it freely.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Recorded, len(s.recorded))
	for i, r := range s.recorded {
		r.Header = r.Header.Clone()
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// Reset forgets all recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recorded = nil
}
