package dialect

import (
	"encoding/json"
	"slices"
	"testing"
)

// askedHeaders returns a Response.Header that answers from values and
// records, in asked, every name a decoder reads.
func askedHeaders(values map[string]string, asked map[string]bool) func(string) string {
	return func(name string) string {
		asked[name] = true
		return values[name]
	}
}

// Every header a decoder reads must be one its dialect declares: in split
// mode the observer is forwarded only the declared ones, and an undeclared
// header reads "" there, which is how Bedrock InvokeModel's usage headers
// were lost (issue 12, item 6). Each dialect's decoders are built for every
// fixture of its own and for every status and content type that picks a
// different decoder, fed a body, and finished.
func TestDecodersReadOnlyDeclaredHeaders(t *testing.T) {
	r := DefaultRegistry()
	for _, name := range r.Names() {
		d, _ := r.ByName(name)
		t.Run(name, func(t *testing.T) {
			asked := map[string]bool{}
			for _, f := range responseFixtures(t, name) {
				f.resp.Header = askedHeaders(f.headers, asked)
				dec := d.NewDecoder(f.resp, 64<<10)
				_ = dec.Feed(f.body)
				dec.Finish(true)
			}
			// The headers present, so a decoder that prefers them is built.
			present := map[string]string{}
			for _, h := range headerRawNames {
				if h != "" {
					present[h] = "7"
				}
			}
			for _, status := range []int{0, 200, 400, 429, 500, 503} {
				for _, ct := range []string{"application/json", "text/event-stream", "application/x-ndjson",
					"application/vnd.amazon.eventstream", "application/json-seq", ""} {
					for _, values := range []map[string]string{nil, present} {
						resp := Response{Status: status, ContentType: ct, Header: askedHeaders(values, asked)}
						dec := d.NewDecoder(resp, 64<<10)
						_ = dec.Feed([]byte(`{"error":{"message":"x"}}`))
						dec.Finish(true)
					}
				}
			}
			declared := d.ResponseHeaders()
			for h := range asked {
				if !slices.Contains(declared, h) {
					t.Errorf("a %s decoder reads header %q, which the dialect does not declare (declares %q)", name, h, declared)
				}
			}
		})
	}
}

// responseFixture is the response half of any dialect's fixture, whatever
// its expected.json holds.
type responseFixture struct {
	dir     string
	resp    Response
	headers map[string]string
	body    []byte
}

// responseFixtures loads the cases under testdata/<name>, none when the
// dialect has none.
func responseFixtures(t *testing.T, name string) []responseFixture {
	t.Helper()
	var fs []responseFixture
	for _, dir := range caseDirs(t, name) {
		var meta struct {
			Status          int               `json:"status"`
			ContentType     string            `json:"content_type"`
			ContentEncoding string            `json:"content_encoding"`
			Headers         map[string]string `json:"headers"`
		}
		if err := json.Unmarshal(readFile(t, dir, "meta.json"), &meta); err != nil {
			t.Fatalf("%s: meta.json: %v", dir, err)
		}
		fs = append(fs, responseFixture{
			dir:     dir,
			resp:    Response{Status: meta.Status, ContentType: meta.ContentType, ContentEncoding: meta.ContentEncoding},
			headers: meta.Headers, body: readFile(t, dir, "response"),
		})
	}
	return fs
}

// The union is what extproc.ObserverHeaders adds to the exchange's own and
// what envoy.yaml forwards: a change here is a change there.
func TestRegistryResponseHeaders(t *testing.T) {
	want := []string{
		"x-amzn-bedrock-cache-read-input-token-count",
		"x-amzn-bedrock-cache-write-input-token-count",
		"x-amzn-bedrock-input-token-count",
		"x-amzn-bedrock-output-token-count",
		"x-amzn-errortype",
	}
	if got := DefaultRegistry().ResponseHeaders(); !slices.Equal(got, want) {
		t.Fatalf("ResponseHeaders() = %q, want %q", got, want)
	}
}
