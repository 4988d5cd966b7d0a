package dialect

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"mime/multipart"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestOpenAIImagesFixtures(t *testing.T) { runMediaFixtures(t, OpenAIImages()) }

func TestOpenAIImagesParseRequest(t *testing.T) {
	edit := func(fields ...string) []byte {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		fw, _ := w.CreateFormFile("image[]", "fox.png")
		_, _ = fw.Write([]byte("\x89PNG\r\n\x1a\n"))
		for i := 0; i+1 < len(fields); i += 2 {
			_ = w.WriteField(fields[i], fields[i+1])
		}
		fw, _ = w.CreateFormFile("mask", "mask.png")
		_, _ = fw.Write([]byte("\x89PNG\r\n\x1a\n"))
		_ = w.Close()
		return buf.Bytes()
	}
	tests := []struct {
		name string
		body []byte
		want Request
	}{
		{"dall-e-3", []byte(`{"model":"dall-e-3","prompt":"a white siamese cat","n":1,"size":"1024x1792","quality":"hd"}`),
			Request{Model: "dall-e-3", Prompt: "a white siamese cat", PromptBytes: 19, ImageSize: "1024x1792", ImageQuality: "hd"}},
		// What the API assumes is filled in, so the request is priced as
		// it is billed (applyImageDefaults).
		{"no model: dall-e-2's defaults", []byte(`{"prompt":"caf\u00e9"}`),
			Request{Model: "dall-e-2", Prompt: "café", PromptBytes: 5, ImageSize: "1024x1024", ImageQuality: "standard"}},
		{"no model, a GPT image parameter: gpt-image-1", []byte(`{"prompt":"x","output_format":"webp"}`),
			Request{Model: "gpt-image-1", Prompt: "x", PromptBytes: 1, ImageSize: "auto", ImageQuality: "auto"}},
		{"dall-e-3 without quality: standard", []byte(`{"model":"dall-e-3","prompt":"x","size":"1792x1024"}`),
			Request{Model: "dall-e-3", Prompt: "x", PromptBytes: 1, ImageSize: "1792x1024", ImageQuality: "standard"}},
		{"dall-e-3 without size: 1024x1024", []byte(`{"model":"dall-e-3","prompt":"x","quality":"hd"}`),
			Request{Model: "dall-e-3", Prompt: "x", PromptBytes: 1, ImageSize: "1024x1024", ImageQuality: "hd"}},
		{"another model: no defaults", []byte(`{"model":"flux-pro","prompt":"x"}`),
			Request{Model: "flux-pro", Prompt: "x", PromptBytes: 1}},
		{"gpt-image-1 stream", []byte(`{"model":"gpt-image-1","prompt":"x","stream":true,"partial_images":2,"size":"auto"}`),
			Request{Model: "gpt-image-1", Stream: true, IncludeUsage: true, Prompt: "x", PromptBytes: 1, ImageSize: "auto", ImageQuality: "auto"}},
		{"edit form", edit("model", "gpt-image-1", "prompt", "add a hat", "n", "2", "size", "1024x1536", "quality", "low"),
			Request{Model: "gpt-image-1", Prompt: "add a hat", PromptBytes: 9, ImageSize: "1024x1536", ImageQuality: "low"}},
		{"edit form stream", edit("model", "gpt-image-1", "prompt", "p", "stream", "true"),
			Request{Model: "gpt-image-1", Prompt: "p", PromptBytes: 1, Stream: true, IncludeUsage: true, ImageSize: "auto", ImageQuality: "auto"}},
		{"variation form", edit("model", "dall-e-2", "n", "3", "size", "256x256"), Request{Model: "dall-e-2", ImageSize: "256x256", ImageQuality: "standard"}},
		{"variation form without a model", edit("n", "1"), Request{Model: "dall-e-2", ImageSize: "1024x1024", ImageQuality: "standard"}},
		{"edit as JSON", []byte(` {"model":"gpt-image-1","images":[{"image_url":"https://x/y.png"}],"prompt":"p"}`),
			Request{Model: "gpt-image-1", Prompt: "p", PromptBytes: 1, ImageSize: "auto", ImageQuality: "auto"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, newBody, err := OpenAIImages().ParseRequest(tt.body, RequestOptions{InjectStreamUsage: true})
			if err != nil || newBody != nil {
				t.Fatalf("err %v, new body %q", err, newBody)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	for body, want := range map[string]reason.Reason{``: reason.MalformedJSON, `[]`: reason.UnexpectedShape, "--b\r\n": reason.UnexpectedShape} {
		if _, _, err := OpenAIImages().ParseRequest([]byte(body), RequestOptions{}); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", body, err, want)
		}
	}
}

// imagesBody is a response of n images of size bytes each, with usage.
func imagesBody(n, size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"created":1713833628,"data":[`)
	img := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x89, 'P', 'N', 'G', 0, 1, 2}, size/7))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"b64_json":%q,"revised_prompt":"a fox"}`, img)
	}
	b.WriteString(`],"quality":"high","size":"1536x1024","usage":{"input_tokens":20,"input_tokens_details":` +
		`{"image_tokens":0,"text_tokens":20},"output_tokens":18720,"total_tokens":18740}}`)
	return b.Bytes()
}

// TestOpenAIImagesLargeBody decodes ten 3 MB images under a 64 KiB cap:
// the count and usage survive, and the decoder holds little.
func TestOpenAIImagesLargeBody(t *testing.T) {
	body := imagesBody(10, 3<<20)
	for _, chunk := range []int{len(body), 16 << 10, 1000} {
		d := OpenAIImages().NewDecoder(Response{Status: 200, ContentType: "application/json"}, 64<<10)
		for b := body; len(b) > 0; {
			n := min(chunk, len(b))
			if err := d.Feed(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		r := d.Finish(true)
		if r.Err != nil || r.Usage.Units[usage.Images].N != 10 || r.Usage.Get(usage.ImageOutput) != 18720 || r.Usage.ImageSize != "1536x1024" {
			t.Fatalf("chunks of %d: %+v", chunk, mediaOutcomeOf(r))
		}
		if held := len(d.(*imagesJSON).buf); held > 4<<10 {
			t.Fatalf("chunks of %d: %d bytes held", chunk, held)
		}
	}
}

// TestOpenAIImagesStructureTooLarge: past maxBuffer of structure, not
// payload, the decoder gives up.
func TestOpenAIImagesStructureTooLarge(t *testing.T) {
	body := `{"data":[` + strings.Repeat(`{"url":"u"},`, 1000) + `{"url":"u"}]}`
	d := OpenAIImages().NewDecoder(Response{Status: 200, ContentType: "application/json"}, 4<<10)
	if err := d.Feed([]byte(body)); !errors.Is(err, reason.TooLarge) {
		t.Fatalf("Feed: %v", err)
	}
	if r := d.Finish(true); !errors.Is(r.Err, reason.TooLarge) {
		t.Fatalf("Finish: %v", r.Err)
	}
}

func TestOpenAIImagesReasons(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		complete                bool
		want                    reason.Reason
	}{
		{"no data", "application/json", `{"created":1}`, true, reason.NoUsage},
		{"data null", "application/json", `{"created":1,"data":null}`, true, reason.NoUsage},
		{"usage without counts", "application/json", `{"usage":{"total_tokens":3}}`, true, reason.UnexpectedShape},
		{"string error", "application/json", `{"error":"overloaded"}`, true, reason.ProviderError},
		{"image over input", "application/json", `{"data":[],"usage":{"input_tokens":5,"input_tokens_details":{"image_tokens":6},"output_tokens":1}}`, true, reason.InconsistentUsage},
		{"completed then cut", "text/event-stream", "data: {\"type\":\"image_generation.completed\",\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}\n\ndata: {", false, reason.Truncated},
		{"completed, then [DONE], cancelled", "text/event-stream", "data: {\"type\":\"image_generation.completed\"}\n\ndata: [DONE]\n\n", false, ""},
		{"partial only", "text/event-stream", "event: image_generation.partial_image\ndata: {\"b64_json\":\"AAAA\"}\n\n", true, reason.NoUsage},
		{"error event", "text/event-stream", "data: {\"type\":\"error\",\"error\":{\"code\":\"moderation_blocked\"}}\n\n", true, reason.ProviderError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := OpenAIImages().NewDecoder(Response{Status: 200, ContentType: tt.contentType}, 0)
			_ = d.Feed([]byte(tt.body))
			if got := reason.Of(d.Finish(tt.complete).Err); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

// TestOpenAIImagesStreamSums adds the usage of two completed events, and
// takes its event type from the SSE event name when the data has none.
func TestOpenAIImagesStreamSums(t *testing.T) {
	ev := "event: image_generation.completed\ndata: {\"b64_json\":\"AAAA\",\"size\":\"1024x1024\",\"quality\":\"low\"," +
		"\"usage\":{\"input_tokens\":10,\"input_tokens_details\":{\"text_tokens\":10,\"image_tokens\":0},\"output_tokens\":272}}\n\n"
	d := OpenAIImages().NewDecoder(Response{Status: 200, ContentType: "text/event-stream"}, 0)
	_ = d.Feed([]byte(ev + ev))
	got := mediaOutcomeOf(d.Finish(true))
	want := mediaOutcome{Tokens: map[string]int64{"input": 20, "image_input": 0, "image_output": 544},
		Units: map[string]int64{"images": 2}, ImageSize: "1024x1024", ImageQuality: "low",
		Raw: map[string]int64{"input_tokens": 20, "output_tokens": 544, "input_tokens_details.text_tokens": 20, "input_tokens_details.image_tokens": 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// FuzzOpenAIImagesJSON checks that eliding does not change what a body
// says: the count of data elements equals gjson's on the whole body, and
// splitting the body anywhere changes nothing.
func FuzzOpenAIImagesJSON(f *testing.F) {
	f.Add([]byte(`{"data":[{"b64_json":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"},{"url":"https://x"}],"usage":{"input_tokens":5,"output_tokens":7}}`), uint(30))
	f.Add([]byte(`{"data":[{"b64_json":"a\"],\"x"}],"size":"1024x1024"}`), uint(12))
	f.Add([]byte(`{"error":{"code":"content_policy_violation"}}`), uint(3))
	f.Fuzz(func(t *testing.T, body []byte, split uint) {
		at := int(split % uint(len(body)+1))
		decode := func(chunks ...[]byte) mediaOutcome {
			d := OpenAIImages().NewDecoder(Response{Status: 200, ContentType: "application/json"}, 1<<10)
			for _, c := range chunks {
				_ = d.Feed(c)
			}
			return mediaOutcomeOf(d.Finish(true))
		}
		whole := decode(body)
		if parts := decode(body[:at], body[at:]); !reflect.DeepEqual(whole, parts) {
			t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, whole, parts)
		}
		r := gjson.ParseBytes(body)
		if !gjson.ValidBytes(body) || !r.IsObject() || whole.Reason == reason.TooLarge {
			return
		}
		// The count is the unit, whatever else was reported.
		n := whole.Units["images"]
		if data := r.Get("data"); data.IsArray() && n != int64(len(data.Array())) {
			t.Fatalf("%d images, gjson counts %d", n, len(data.Array()))
		}
	})
}

// BenchmarkOpenAIImagesJSON decodes four 2 MB images in 64 KiB chunks.
func BenchmarkOpenAIImagesJSON(b *testing.B) {
	body := imagesBody(4, 2<<20)
	resp := Response{Status: 200, ContentType: "application/json"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d := OpenAIImages().NewDecoder(resp, 64<<10)
		for c := body; len(c) > 0; {
			n := min(64<<10, len(c))
			_ = d.Feed(c[:n])
			c = c[n:]
		}
		if r := d.Finish(true); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}
