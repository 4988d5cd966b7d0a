package builtin

import (
	"errors"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
)

// An image request is priced as the provider bills it (issue 12, item 8):
// what the API assumes for a field the request leaves out is applied before
// pricing (dialect.OpenAIImages), and a token-billed model's image count is
// kept in Units[Images] without being priced a second time. Each case runs
// the request and response through the dialect, copies the request's size
// and quality as the exchange does, and prices with the built-in catalog.
func TestImagesPricedAsBilled(t *testing.T) {
	c := load(t)
	tests := []struct {
		name, request, response string
		images                  int64
		want                    string // USD
	}{
		// DALL·E 3 without quality is standard: $0.04, not unpriced.
		{"dall-e-3 default quality", `{"model":"dall-e-3","prompt":"a cat"}`,
			`{"created":1,"data":[{"url":"https://x/1.png"}]}`, 1, "0.04"},
		{"dall-e-3 wide, default quality", `{"model":"dall-e-3","prompt":"a cat","size":"1792x1024"}`,
			`{"created":1,"data":[{"url":"https://x/1.png"}]}`, 1, "0.08"},
		{"dall-e-3 hd", `{"model":"dall-e-3","prompt":"a cat","size":"1792x1024","quality":"hd"}`,
			`{"created":1,"data":[{"url":"https://x/1.png"}]}`, 1, "0.12"},
		// gpt-image-1 bills tokens: 10 text in × $5 + 40 image in × $10 +
		// 4,160 image out × $40, per million = $0.16685. The image is kept,
		// and not priced again.
		{"gpt-image-1 tokens and an image", `{"model":"gpt-image-1","prompt":"a cat"}`,
			`{"created":1,"size":"1024x1024","quality":"high","data":[{"b64_json":"AAAA"}],"usage":{"input_tokens":50,` +
				`"input_tokens_details":{"text_tokens":10,"image_tokens":40},"output_tokens":4160,"total_tokens":4210}}`, 1, "0.16685"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dialect.OpenAIImages()
			req, _, err := d.ParseRequest([]byte(tt.request), dialect.RequestOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dec := d.NewDecoder(dialect.Response{Status: 200, ContentType: "application/json"}, 1<<20)
			_ = dec.Feed([]byte(tt.response))
			res := dec.Finish(true)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			u := res.Usage
			if u.ImageSize == "" { // as extproc's charge does
				u.ImageSize, u.ImageQuality = req.ImageSize, req.ImageQuality
			}
			if n := u.Units[usage.Images].N; n != tt.images {
				t.Fatalf("Units[Images] = %d, want %d", n, tt.images)
			}
			e, ok := c.Lookup("openai", req.Model, at)
			if !ok {
				t.Fatalf("no entry for %s", req.Model)
			}
			got, err := e.Cost(&u, pricing.CostOptions{})
			if err != nil || got != money.MustParse(tt.want) {
				t.Fatalf("cost %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

// A catalog that prices DALL·E 3 only by size and quality (as one converted
// from LiteLLM does) can price a request only once its default quality is
// applied; without one, the image is unpriced, never free.
func TestImagesWithoutQualityNeedTheDefault(t *testing.T) {
	c, err := pricing.Parse("litellm-like.yaml", []byte(`currency: USD
models:
  - name: dall-e-3
    provider: openai
    source: https://example.invalid
    as_of: 2026-11-22
    prices: {input: 0, output: 0}
    units:
      image: {"1024x1024/standard": 0.04, "1024x1024/hd": 0.08}
`))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := c.Lookup("openai", "dall-e-3", at)
	var u usage.Usage
	u.SetUnit(usage.Images, 1)
	u.ImageSize = "1024x1024"
	if _, err := e.Cost(&u, pricing.CostOptions{}); !errors.Is(err, pricing.ErrNoPrice) {
		t.Fatalf("no quality: err %v, want ErrNoPrice", err)
	}
	req, _, _ := dialect.OpenAIImages().ParseRequest([]byte(`{"model":"dall-e-3","prompt":"x"}`), dialect.RequestOptions{})
	u.ImageQuality = req.ImageQuality
	if got, err := e.Cost(&u, pricing.CostOptions{}); err != nil || got != money.MustParse("0.04") {
		t.Fatalf("default quality %q: cost %s, %v; want 0.04", req.ImageQuality, got, err)
	}
}
