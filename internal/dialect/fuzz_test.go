package dialect

import (
	"reflect"
	"testing"
)

// everyDialect is each dialect the default registry routes to, once, in
// registry order: the dialects without a fuzz target of their own (legacy
// completions, speech, Azure's, Vertex's, Cohere v1, Ollama generate) are
// fuzzed here with the others.
func everyDialect() []Dialect {
	var out []Dialect
	seen := map[Dialect]bool{}
	for _, r := range DefaultRegistry().routes {
		if !seen[r.dialect] {
			seen[r.dialect] = true
			out = append(out, r.dialect)
		}
	}
	return out
}

// FuzzEveryDialect drives one request and one response through any
// registered dialect, as the exchange does. Neither may panic; a rewritten
// request still parses to the same model; the response decodes to the same
// result whole and split in two (the Decoder contract: chunks split
// anywhere); counts are never negative and kept text stays bounded.
func FuzzEveryDialect(f *testing.F) {
	dialects := everyDialect()
	index := func(name string) uint8 {
		for i, d := range dialects {
			if d.Name() == name {
				return uint8(i)
			}
		}
		f.Fatalf("no dialect %q", name)
		return 0
	}
	f.Add(index("openai_completions")|0x80, "/v1/completions", []byte(`{"model":"gpt-3.5-turbo-instruct","prompt":"hi","stream":true}`),
		uint16(200), "text/event-stream", "", "", []byte("data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n"), uint(9))
	f.Add(index("openai_speech"), "/v1/audio/speech", []byte(`{"model":"tts-1","input":"hello","voice":"alloy"}`),
		uint16(200), "audio/mpeg", "", "", []byte("\xff\xfb\x90"), uint(1))
	f.Add(index("bedrock_invoke"), "/model/meta.llama3-8b-instruct-v1:0/invoke", []byte(`{"prompt":"hi","max_gen_len":5}`),
		uint16(200), "application/json", "", "12", []byte(`{"generation":"ok","prompt_token_count":3,"generation_token_count":1}`), uint(4))
	f.Add(index("anthropic_messages")|0x80, "/v1/messages", []byte(`{"model":"claude-sonnet-4","max_tokens":10,"stream":true,"messages":[]}`),
		uint16(200), "text/event-stream", "gzip", "", []byte("event: message_start\ndata: {}\n\n"), uint(3))
	f.Add(index("gemini"), "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", []byte(`{"contents":[]}`),
		uint16(429), "application/json", "", "", []byte(`{"error":{"code":429}}`), uint(5))
	f.Fuzz(func(t *testing.T, which uint8, path string, reqB []byte, status uint16, ctype, enc, hdr string, resp []byte, split uint) {
		d := dialects[int(which&0x7f)%len(dialects)]
		opts := RequestOptions{Path: path, InjectStreamUsage: which&0x80 != 0}
		req, newBody, err := d.ParseRequest(reqB, opts)
		if req.PromptBytes < 0 || len(req.Prompt) > MaxEstimateText || req.InputCharacters < 0 {
			t.Fatalf("%s: request %+v", d.Name(), req)
		}
		if err == nil && newBody != nil {
			again, _, err := d.ParseRequest(newBody, opts)
			if err != nil || again.Model != req.Model || again.Stream != req.Stream {
				t.Fatalf("%s: the rewritten body %q reads as %+v (%v), the original as %+v", d.Name(), newBody, again, err, req)
			}
		}
		r := Response{Status: int(status), ContentType: ctype, ContentEncoding: enc, Header: func(string) string { return hdr }}
		decode := func(chunks ...[]byte) Result {
			dec := d.NewDecoder(r, 4096)
			for _, c := range chunks {
				_ = dec.Feed(c)
			}
			return dec.Finish(true)
		}
		at := int(split % uint(len(resp)+1))
		whole, parts := decode(resp), decode(resp[:at], resp[at:])
		if w, p := outcomeOf(whole), outcomeOf(parts); !reflect.DeepEqual(w, p) {
			t.Fatalf("%s: split at %d changed the result:\nwhole %+v\nsplit %+v", d.Name(), at, w, p)
		}
		for c, n := range whole.Usage.Tokens {
			if n.N < 0 {
				t.Fatalf("%s: negative class %d: %d", d.Name(), c, n.N)
			}
		}
		if len(whole.Text) > MaxEstimateText || whole.StreamedTextBytes < int64(len(whole.Text)) {
			t.Fatalf("%s: kept %d bytes of text, counted %d", d.Name(), len(whole.Text), whole.StreamedTextBytes)
		}
	})
}
