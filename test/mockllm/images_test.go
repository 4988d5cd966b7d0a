package mockllm_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

func TestImagesGenerations(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name, body    string
		images        int64
		tokens        map[tmusage.Class]int64
		size, quality string // in the response's usage; "" for DALL·E
		url           bool
	}{
		{"dall-e-3 url", `{"model":"dall-e-3","prompt":"a cat","size":"1024x1792","quality":"hd"}`, 1, nil, "", "", true},
		{"dall-e-2 b64, n=2", `{"prompt":"a cat","n":2,"response_format":"b64_json","size":"256x256"}`, 2, nil, "", "", false},
		{"gpt-image-1 auto", `{"model":"gpt-image-1","prompt":"a red fox in the snow"}`, 1,
			map[tmusage.Class]int64{tmusage.Input: 6, tmusage.ImageInput: 0, tmusage.ImageOutput: 1056}, "1024x1024", "medium", false},
		{"gpt-image-1 n=3 high portrait", `{"model":"gpt-image-1","prompt":"fox","n":3,"size":"1024x1536","quality":"high"}`, 3,
			map[tmusage.Class]int64{tmusage.Input: 1, tmusage.ImageInput: 0, tmusage.ImageOutput: 3 * 6240}, "1024x1536", "high", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodPost, base+"/v1/images/generations", tt.body, map[string]string{"Content-Type": "application/json"})
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			_, res := mediaMeter(t, dialect.OpenAIImages(), tt.body, r)
			if res.Err != nil || res.Usage.ImageSize != tt.size || res.Usage.ImageQuality != tt.quality {
				t.Fatalf("%+v", res)
			}
			wantImages(t, res.Usage, tt.tokens, tt.images)
			if got := strings.Contains(string(r.body), `"url":"https://mock.invalid/images/`); got != tt.url {
				t.Fatalf("url %v: %s", got, r.body)
			}
		})
	}
}

func TestImagesEditsAndVariations(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	edit, ct := mediaForm(t, []mediaFile{{"image[]", 100}, {"image[]", 200}, {"mask", 50}},
		"model", "gpt-image-1", "prompt", "add a hat", "quality", "low", "n", "2")
	r := do(t, http.MethodPost, base+"/v1/images/edits", edit, map[string]string{"Content-Type": ct})
	req, res := mediaMeter(t, dialect.OpenAIImages(), edit, r)
	if r.status != http.StatusOK || res.Err != nil || req.Model != "gpt-image-1" || req.ImageQuality != "low" {
		t.Fatalf("%d %+v %+v: %s", r.status, req, res, r.body)
	}
	wantImages(t, res.Usage, map[tmusage.Class]int64{tmusage.Input: 3, tmusage.ImageInput: 130, tmusage.ImageOutput: 2 * 272}, 2)

	variation, ct := mediaForm(t, []mediaFile{{"image", 100}}, "n", "3", "size", "512x512")
	r = do(t, http.MethodPost, base+"/v1/images/variations", variation, map[string]string{"Content-Type": ct})
	req, res = mediaMeter(t, dialect.OpenAIImages(), variation, r)
	if r.status != http.StatusOK || res.Err != nil || req.ImageSize != "512x512" {
		t.Fatalf("%d %+v %+v: %s", r.status, req, res, r.body)
	}
	wantCounts(t, res.Usage, nil, map[tmusage.Unit]int64{tmusage.Images: 3})
}

// TestImagesStream: the completed events' usages add up to the usage of
// the same request unstreamed.
func TestImagesStream(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, path := range []string{"/v1/images/generations", "/v1/images/edits"} {
		body := `{"model":"gpt-image-1","prompt":"a red fox","n":2,"quality":"low","stream":true,"partial_images":2}`
		ct := "application/json"
		if strings.HasSuffix(path, "edits") {
			body, ct = mediaForm(t, []mediaFile{{"image", 10}}, "model", "gpt-image-1", "prompt", "a red fox",
				"n", "2", "quality", "low", "stream", "true", "partial_images", "2")
		}
		r := do(t, http.MethodPost, base+path, body, map[string]string{"Content-Type": ct})
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		if n := strings.Count(string(r.body), "partial_image\n"); n != 4 {
			t.Fatalf("%s: %d partial images, want 4:\n%s", path, n, r.body)
		}
		_, streamed := mediaMeter(t, dialect.OpenAIImages(), body, r)
		plain := strings.Replace(body, `"stream":true`, `"stream":false`, 1)
		if ct != "application/json" {
			plain, ct = mediaForm(t, []mediaFile{{"image", 10}}, "model", "gpt-image-1", "prompt", "a red fox", "n", "2", "quality", "low")
		}
		r = do(t, http.MethodPost, base+path, plain, map[string]string{"Content-Type": ct})
		_, whole := mediaMeter(t, dialect.OpenAIImages(), plain, r)
		if streamed.Err != nil || whole.Err != nil || streamed.Usage.Tokens != whole.Usage.Tokens ||
			streamed.Usage.Units != whole.Usage.Units || imageCount(whole.Usage) != 2 || imageCount(streamed.Usage) != 2 {
			t.Fatalf("%s: streamed %+v\nwhole %+v", path, streamed.Usage, whole.Usage)
		}
	}
}

func TestImagesErrors(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	noImage, ct := mediaForm(t, nil, "prompt", "x")
	for _, tt := range []struct{ path, body, ct string }{
		{"/v1/images/generations", `{"model":"dall-e-3","prompt":"x","n":2}`, "application/json"},
		{"/v1/images/generations", `{"model":"dall-e-2","prompt":"x","stream":true}`, "application/json"},
		{"/v1/images/generations", `{"model":"gpt-image-1","prompt":"x","size":"256x256"}`, "application/json"},
		{"/v1/images/generations", `{"model":"gpt-image-1"}`, "application/json"},
		{"/v1/images/generations", `{"n":11,"prompt":"x"}`, "application/json"},
		{"/v1/images/edits", noImage, ct},
		{"/v1/images/variations", `{"model":"dall-e-2"}`, "application/json"},
	} {
		r := do(t, http.MethodPost, base+tt.path, tt.body, map[string]string{"Content-Type": tt.ct})
		var e struct{ Error struct{ Code string } }
		if r.status != http.StatusBadRequest || json.Unmarshal(r.body, &e) != nil || e.Error.Code == "" {
			t.Errorf("%s %s: %d %s", tt.path, tt.body, r.status, r.body)
		}
	}
}

// imageCount is the number of images a usage reports: the unit, whether
// or not tokens were reported too (pricing prices it only when they were
// not).
func imageCount(u tmusage.Usage) int64 { return u.Units[tmusage.Images].N }

// wantImages checks the token counts and that n images are reported as the
// unit, token-billed or not.
func wantImages(t *testing.T, u tmusage.Usage, tokens map[tmusage.Class]int64, n int64) {
	t.Helper()
	wantCounts(t, u, tokens, map[tmusage.Unit]int64{tmusage.Images: n})
}
