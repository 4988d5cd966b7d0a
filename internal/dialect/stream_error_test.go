package dialect

import (
	"cmp"
	"encoding/json"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"path/filepath"
	"reflect"
	"testing"
)

// sharedFixtures names, for each dialect whose decoders are another's, the
// dialect whose fixtures prove it: Azure's and Vertex's variants, and
// Bedrock's non-streaming operations, whose decoders follow the content
// type. A dialect with fixtures of its own has no line here.
var sharedFixtures = map[string]string{
	"azure_openai_chat":        "openai_chat",
	"azure_openai_completions": "openai_completions",
	"azure_openai_responses":   "openai_responses",
	"vertex_gemini":            "gemini",
	"bedrock_converse":         "bedrock_converse_stream",
	"bedrock_invoke":           "bedrock_invoke_stream",
}

// textlessStreams are the streaming dialects whose streams carry no text:
// image and speech streams bill units the request names.
var textlessStreams = map[string]bool{"openai_images": true, "openai_speech": true}

// errorAfterOutput is a fixture and what its expected.json says of a
// stream that ended in a provider's error after some output.
type errorAfterOutput struct {
	responseFixture
	want struct {
		Reason            reason.Reason `json:"reason"`
		StreamedTextBytes int64         `json:"streamed_text_bytes"`
		Text              string        `json:"text"`
	}
}

// errorAfterOutputFixtures are the cases under testdata/<name> that prove a
// decoder keeps output before an error: their expected.json has reason
// provider_error and the text before it.
func errorAfterOutputFixtures(t *testing.T, name string) []errorAfterOutput {
	t.Helper()
	var out []errorAfterOutput
	for _, f := range responseFixtures(t, name) {
		e := errorAfterOutput{responseFixture: f}
		if err := json.Unmarshal(readFile(t, f.dir, "expected.json"), &e.want); err != nil {
			t.Fatalf("%s: %v", f.dir, err)
		}
		if e.want.Reason == reason.ProviderError && e.want.Text != "" {
			out = append(out, e)
		}
	}
	return out
}

// A stream that ends in a provider's error after some output was still
// generated, and billed, up to the error: its decoder must keep the text
// (for the estimate of the output) and any usage already reported, with
// provider_error as the reason (issue 12, item 7). Every streaming dialect
// has a fixture that proves it (found by its expected.json), replayed whole
// and at every split.
func TestStreamsKeepOutputBeforeAnError(t *testing.T) {
	r := DefaultRegistry()
	for name := range sharedFixtures {
		if _, ok := r.ByName(name); !ok {
			t.Fatalf("no dialect %s", name)
		}
	}
	for name := range textlessStreams {
		if d, ok := r.ByName(name); !ok || !streams(d) {
			t.Fatalf("%s is not a streaming dialect", name)
		}
	}
	for _, name := range r.Names() {
		d, _ := r.ByName(name)
		if !streams(d) || textlessStreams[name] {
			continue
		}
		fixtures := errorAfterOutputFixtures(t, cmp.Or(sharedFixtures[name], name))
		if len(fixtures) == 0 {
			t.Errorf("streaming dialect %s has no error-after-output fixture: a case whose expected.json has reason %s and the text before it", name, reason.ProviderError)
		}
		for _, f := range fixtures {
			t.Run(name+"/"+filepath.Base(f.dir), func(t *testing.T) { checkOutputBeforeError(t, d, f) })
		}
	}
}

// checkOutputBeforeError replays f whole and split at every byte: each
// keeps the reason and the text, and the usage read whole.
func checkOutputBeforeError(t *testing.T, d Dialect, f errorAfterOutput) {
	t.Helper()
	want := f.want
	if want.StreamedTextBytes != int64(len(want.Text)) {
		t.Fatalf("%s does not prove it: want %+v", f.dir, want)
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
