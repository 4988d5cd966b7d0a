// Package estimate counts tokens when a provider did not: a stream cut before
// its usage, a response that omits it. OpenAI-family models are counted with
// their real BPE encoding (github.com/tiktoken-go/tokenizer, whose
// vocabularies are compiled into the binary: nothing is downloaded at run
// time). Other models get a documented approximation.
//
// Estimates are for records that would otherwise say zero; they are marked
// estimated wherever they appear. Budget reservations do not use this
// package: they need an upper bound in microseconds, not a count.
package estimate

import (
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"
)

// Method names how a count was obtained; it is recorded with the estimate.
type Method string

// The methods.
const (
	BPEo200k   Method = "bpe_o200k_base"  // gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o-series, gpt-image
	BPEcl100k  Method = "bpe_cl100k_base" // gpt-4, gpt-3.5, text-embedding-3 and -ada-002
	BytesDiv4  Method = "bytes_div_4"     // every other model: ceil(bytes / 4)
	BytesOnly  Method = "bytes_div_4_fallback"
	noEstimate Method = ""
)

// BytesPerToken is the approximation for models without a known encoding:
// about four bytes of English text per token for the BPE vocabularies in use
// (Claude, Gemini, Llama and Mistral tokenizers land between 3.5 and 4.5).
const BytesPerToken = 4

// o200k prefixes are checked before the cl100k ones: "gpt-4o" also starts
// with "gpt-4".
var families = []struct {
	prefix string
	method Method
}{
	{"gpt-4o", BPEo200k}, {"chatgpt-4o", BPEo200k}, {"gpt-4.1", BPEo200k}, {"gpt-4.5", BPEo200k},
	{"gpt-5", BPEo200k}, {"gpt-image", BPEo200k}, {"o1", BPEo200k}, {"o3", BPEo200k}, {"o4", BPEo200k},
	{"gpt-4", BPEcl100k}, {"gpt-3.5", BPEcl100k}, {"gpt-35", BPEcl100k}, {"text-embedding-3", BPEcl100k},
	{"text-embedding-ada-002", BPEcl100k},
}

// MethodFor returns how tokens of model are estimated.
func MethodFor(model string) Method {
	m := strings.ToLower(model)
	// Azure deployments and gateways prefix models ("openai/gpt-4o").
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	for _, f := range families {
		if strings.HasPrefix(m, f.prefix) {
			return f.method
		}
	}
	return BytesDiv4
}

var codecs sync.Map // Method → tokenizer.Codec, built once: building one parses its vocabulary

func codec(m Method) (tokenizer.Codec, bool) {
	if c, ok := codecs.Load(m); ok {
		return c.(tokenizer.Codec), true
	}
	enc := tokenizer.O200kBase
	if m == BPEcl100k {
		enc = tokenizer.Cl100kBase
	}
	c, err := tokenizer.Get(enc)
	if err != nil {
		return nil, false
	}
	actual, _ := codecs.LoadOrStore(m, c)
	return actual.(tokenizer.Codec), true
}

// Tokens estimates the tokens of a text of total bytes, of which text holds
// the first len(text) (callers keep a capped prefix). The count of the kept
// prefix is scaled to the total.
func Tokens(model string, text []byte, total int64) (int64, Method) {
	if total <= 0 {
		return 0, noEstimate
	}
	m := MethodFor(model)
	if m == BytesDiv4 || len(text) == 0 {
		return ceilDiv(total, BytesPerToken), BytesDiv4
	}
	c, ok := codec(m)
	if !ok {
		return ceilDiv(total, BytesPerToken), BytesOnly
	}
	n, err := c.Count(string(text))
	if err != nil {
		return ceilDiv(total, BytesPerToken), BytesOnly
	}
	if int64(len(text)) >= total {
		return int64(n), m
	}
	return ceilDiv(int64(n)*total, int64(len(text))), m
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
