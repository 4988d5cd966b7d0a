package dialect

import "iter"

// OpenAICompletions is OpenAI's legacy Completions API (POST
// /v1/completions), still served by vLLM, DeepSeek (FIM) and other
// compatible servers.
//
// It is chat with a plain prompt: the request's "prompt" stands for
// "messages", each choice carries its "text" as a string rather than a
// message, and usage, streaming, [DONE] and stream_options.include_usage
// are chat's, so it shares chat's request parsing and decoders and
// normalises usage the same way.
func OpenAICompletions() Dialect { return openAICompletions{} }

type openAICompletions struct{}

const openAICompletionsName = "openai_completions"

func (openAICompletions) Name() string     { return openAICompletionsName }
func (openAICompletions) Provider() string { return "openai" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (openAICompletions) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (x openAICompletions) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, x.parseRequest)
}

// ErrorBody implements Dialect.
func (openAICompletions) ErrorBody(r Refusal) ErrorResponse { return OpenAIRefusal(r) }

// parseRequest reads the request body and, when asked, injects
// stream_options.include_usage, as for chat.
func (openAICompletions) parseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseOpenAIRequest(openAICompletionsName, "prompt", promptTexts, body, opts)
}

// promptTexts yields the raw strings of a prompt: a string, or each string
// of an array. Token arrays (an array of integers, or of such arrays) yield
// nothing: this feeds an estimate by bytes of text.
func promptTexts(prompt string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if !isArray(prompt) {
			yield(prompt)
			return
		}
		elems := newElements(prompt)
		for e, ok := elems.next(); ok; e, ok = elems.next() {
			if !yield(e) {
				return
			}
		}
	}
}

func (openAICompletions) NewDecoder(resp Response, maxBuffer int) Decoder {
	shape := chatShape{openAICompletionsName, "text"}
	return newChatDecoder(shape, shape, resp, maxBuffer)
}
