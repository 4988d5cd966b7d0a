package dialect

import (
	"encoding/json"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"path/filepath"
	"reflect"
	"testing"
)

// errorAfterOutputFixtures maps each dialect to the fixture under testdata
// that proves it keeps output before an error; "" where a stream carries no
// text: image and speech streams bill units the request names.
var errorAfterOutputFixtures = map[string]string{
	"openai_chat":              "openai_chat/sse_error_event",
	"azure_openai_chat":        "openai_chat/sse_error_event",
	"openai_completions":       "openai_completions/error_after_output",
	"azure_openai_completions": "openai_completions/error_after_output",
	"openai_responses":         "openai_responses/sse_error_event",
	"azure_openai_responses":   "openai_responses/sse_error_event",
	"openai_audio":             "openai_audio/sse_error",
	"openai_images":            "",
	"openai_speech":            "",
	"anthropic_messages":       "anthropic_messages/sse_error_under_200",
	"gemini":                   "gemini/error_after_output",
	"vertex_gemini":            "gemini/error_after_output",
	// Bedrock's decoders follow the content type, not the operation.
	"bedrock_converse":        "bedrock_converse_stream/converse_stream_exception",
	"bedrock_converse_stream": "bedrock_converse_stream/converse_stream_exception",
	"bedrock_invoke":          "bedrock_invoke_stream/invoke_stream_exception",
	"bedrock_invoke_stream":   "bedrock_invoke_stream/invoke_stream_exception",
	"cohere_chat":             "cohere_chat/sse_finish_error",
	"cohere_chat_v1":          "cohere_chat_v1/error_after_output",
	"ollama_chat":             "ollama_chat/error_line",
	"ollama_generate":         "ollama_generate/error_after_output",
}

// A stream that ends in a provider's error after some output was still
// generated, and billed, up to the error: its decoder must keep the text
// (for the estimate of the output) and any usage already reported, with
// provider_error as the reason (issue 12, item 7). One fixture per
// streaming dialect proves it, replayed whole and at every split.
func TestStreamsKeepOutputBeforeAnError(t *testing.T) {
	fixtures := errorAfterOutputFixtures
	r := DefaultRegistry()
	for name, fixture := range fixtures {
		d, ok := r.ByName(name)
		if !ok {
			t.Fatalf("no dialect %s", name)
		}
		if fixture == "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", fixture)
			var f responseFixture
			for _, g := range responseFixtures(t, filepath.Dir(fixture)) {
				if g.dir == dir {
					f = g
				}
			}
			if f.dir == "" {
				t.Fatalf("no fixture %s", dir)
			}
			var want struct {
				Reason            reason.Reason `json:"reason"`
				StreamedTextBytes int64         `json:"streamed_text_bytes"`
				Text              string        `json:"text"`
			}
			if err := json.Unmarshal(readFile(t, dir, "expected.json"), &want); err != nil {
				t.Fatal(err)
			}
			if want.Reason != reason.ProviderError || want.Text == "" || want.StreamedTextBytes != int64(len(want.Text)) {
				t.Fatalf("%s does not prove it: want %+v", dir, want)
			}
			decode := func(chunks ...[]byte) Result {
				f.resp.Header = func(n string) string { return f.headers[n] }
				dec := d.NewDecoder(f.resp, 64<<10)
				for _, c := range chunks {
					_ = dec.Feed(c)
				}
				return dec.Finish(true)
			}
			whole := decode(f.body)
			for i := 0; i <= len(f.body); i++ {
				got := decode(f.body[:i], f.body[i:])
				how := fmt.Sprintf("split at %d", i)
				if reason.Of(got.Err) != want.Reason || string(got.Text) != want.Text || got.StreamedTextBytes != want.StreamedTextBytes {
					t.Fatalf("%s: reason %q, text %q (%d bytes); want %q, %q", how, reason.Of(got.Err), got.Text, got.StreamedTextBytes, want.Reason, want.Text)
				}
				if !reflect.DeepEqual(got.Usage, whole.Usage) {
					t.Fatalf("%s: usage %+v, whole %+v", how, got.Usage, whole.Usage)
				}
			}
		})
	}
	for _, name := range r.Names() {
		if d, _ := r.ByName(name); streams(d) && !hasKey(fixtures, name) {
			t.Errorf("streaming dialect %s has no error-after-output fixture here", name)
		}
	}
}

// streams reports whether d is a streaming dialect: one whose decoder for a
// stream content type differs from its JSON one.
func streams(d Dialect) bool {
	for _, ct := range []string{"text/event-stream", "application/x-ndjson", "application/vnd.amazon.eventstream"} {
		js := fmt.Sprintf("%T", d.NewDecoder(Response{Status: 200, ContentType: "application/json"}, 1024))
		if fmt.Sprintf("%T", d.NewDecoder(Response{Status: 200, ContentType: ct}, 1024)) != js {
			return true
		}
	}
	return false
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
