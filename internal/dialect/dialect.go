// Package dialect knows the wire shapes of LLM provider APIs: it parses a
// request body for the model and streaming options, and decodes a response
// body, whole or in chunks split anywhere, into a usage.Usage.
//
// It knows nothing of gRPC, Envoy or budgets: the extproc package feeds it
// bytes and reads results.
package dialect

import (
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Request is what metering needs from a request body.
type Request struct {
	Model        string // as the client asked for it; may be empty
	Stream       bool   // the client asked for a streamed response
	IncludeUsage bool   // the stream will carry usage (asked for, or injected by us)
	MaxTokens    int64  // max output tokens asked for; 0 when absent
	PromptBytes  int64  // bytes of prompt text, for estimation when usage is missing
	// Prompt is the prompt text, as far as MaxEstimateText bytes, for a
	// tokenizer to estimate input when usage is missing. It may alias the
	// body: the exchange keeps the body alive while it holds the Request.
	Prompt string
	// InputCharacters is billed input known from the request alone
	// (text-to-speech input); the exchange adds it as usage.Characters.
	InputCharacters int64
	// ImageSize and ImageQuality qualify generated images, whose response
	// says how many but not how large (DALL·E); the exchange copies them
	// into the usage.
	ImageSize, ImageQuality string
	// ServiceTier is the price tier the request asks for (flex, priority,
	// batch), as the catalog names it; empty for the default tier or when
	// the provider chooses ("auto").
	ServiceTier string
	// Lenient is what the body departed from strict JSON in ways the
	// providers' servers accept (NaN, a BOM, trailing bytes); 0 for strict
	// JSON. What was read is the same either way.
	Lenient Leniency
}

// RequestOptions control request parsing.
type RequestOptions struct {
	// Path is the request's :path (query included). Gemini, Vertex, Bedrock
	// and Azure name the model or deployment there, not in the body.
	Path string
	// InjectStreamUsage asks the dialect to rewrite a streaming request so the
	// provider reports usage (OpenAI: stream_options.include_usage=true).
	InjectStreamUsage bool
}

// Response describes the response before its body arrives.
type Response struct {
	Status          int    // HTTP status
	ContentType     string // e.g. "text/event-stream", "application/json"
	ContentEncoding string // e.g. "gzip"; "" or "identity" for none
	// Header returns a response header by lower-case name ("" when absent);
	// never nil. Bedrock's InvokeModel reports usage only in headers.
	Header func(name string) string
}

// Result is what a decoder read from a response.
type Result struct {
	Usage usage.Usage
	Model string // the model the response names; may be empty
	// StreamedTextBytes counts bytes of generated text seen, for estimating
	// output when a stream ends before its usage arrives.
	StreamedTextBytes int64
	// Text is the generated text, as far as MaxEstimateText bytes, for a
	// tokenizer to estimate output when usage is missing.
	Text []byte
	// Err is why the decoder could not read usage (nil when it could). Its
	// reason.Reason is the metric label.
	Err error
	// ServiceTier is the price tier the provider says it served the request
	// at, in the catalog's names (flex, priority, batch), or ServedStandard;
	// empty when the response does not say. It outranks the tier the request
	// asked for: "auto" is resolved only by the provider, and a request for
	// flex may be served at the standard tier.
	ServiceTier string
}

// ServedStandard is Result.ServiceTier for a response served at the
// standard (base) price.
const ServedStandard = "standard"

// Dialect is one provider API shape.
type Dialect interface {
	// Name is a stable identifier, e.g. "openai_chat"; also a metric label.
	Name() string
	// Provider names who bills for it, e.g. "openai".
	Provider() string
	// ParseRequest reads body. When it rewrites the body it returns the new
	// bytes; otherwise newBody is nil and the original passes unchanged.
	//
	// A JSON body is read as providers' servers read it (lenient.go): NaN,
	// Infinity and -Infinity as numbers, a UTF-8 BOM, and bytes after the
	// first value are accepted and noted in req.Lenient; such a body is
	// never rewritten. A body that still cannot be read returns an error
	// whose reason.Reason says why (malformed_json, unexpected_shape) AND a req
	// holding what could be read, for admission against a worst case:
	// Model (from the path, or the body's top level before it broke; may
	// be empty), Stream, and PromptBytes = len(body), an upper bound of the
	// prompt; Prompt is empty and MaxTokens is 0 unless it was read. The
	// caller must not take such a req for a parsed one.
	ParseRequest(body []byte, opts RequestOptions) (req Request, newBody []byte, err error)
	// ResponseHeaders lists, lower-case, every response header the
	// dialect's decoders read through Response.Header, beyond the status,
	// Content-Type and Content-Encoding every exchange reads. In split mode
	// Envoy forwards the observer only the union of these declarations
	// (extproc.ObserverHeaders, Registry.ResponseHeaders): an undeclared
	// header reads "" there, so a test fails a decoder that asks for one.
	ResponseHeaders() []string
	// ErrorBody writes a refusal as this API writes its own errors (shape,
	// status names, headers), so the caller's SDK raises its own error.
	ErrorBody(r Refusal) ErrorResponse
	// NewDecoder returns a decoder for one response. maxBuffer caps the bytes
	// it may hold at once; past it, Feed returns reason.TooLarge and the
	// decoder stops buffering.
	NewDecoder(resp Response, maxBuffer int) Decoder
}

// Decoder reads one response body. Feed receives the body in chunks split
// anywhere; Finish is called once, when the body ends or the stream is cut.
// A Feed error is informational: the bytes still pass, and Finish still
// reports what was read.
type Decoder interface {
	Feed(chunk []byte) error
	Finish(complete bool) Result
}
