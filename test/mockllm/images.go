package mockllm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Images (see audio.go for the shared description of the media routes).
//
// Generations take JSON; edits and variations a multipart form whose
// files are image (or image[]) and mask. Read: model (default dall-e-2, as
// OpenAI's), prompt (required but for variations), n (1-10, default 1;
// dall-e-3 only 1), size, quality, response_format, stream and
// partial_images. The answer lists n images in "data":
//
//   - dall-e models: a url each (dall-e-3 adds revised_prompt = the
//     prompt), or, with response_format b64_json, TinyPNG; no usage.
//   - gpt-image models: TinyPNG each, the size and quality used ("auto" or
//     absent is 1024x1024 and medium), and usage {input_tokens =
//     text_tokens + image_tokens, input_tokens_details {text_tokens =
//     ceil(len(prompt)/4), image_tokens = 65 × input image files},
//     output_tokens = n × the tokens of one image, total_tokens}, one
//     image's tokens by size and quality as OpenAI documents them: low
//     272, medium 1056, high 4160 at 1024x1024, and 408, 1584, 6240 at
//     1024x1536 or 1536x1024.
//
// With stream=true (gpt-image models only) the answer is events, named on
// the "event:" line and in "type": for each image, partial_images
// image_generation.partial_image previews (image_edit.* for edits), then
// image_generation.completed with the image, size, quality and usage. The
// first completed event carries the input tokens, later ones none; each
// carries its own image's output tokens, so the events' usages add up to
// the non-streamed usage.

// TinyPNG is the base64 of a 1×1 PNG, every b64_json image's payload.
const TinyPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

const maxImages = 10

// ImageTokens is the output tokens of one gpt-image image; 0 for a size or
// quality it does not know.
func ImageTokens(size, quality string) int64 {
	q := map[string]int{"low": 0, "medium": 1, "high": 2}
	i, ok := q[quality]
	switch {
	case !ok:
		return 0
	case size == "1024x1024":
		return [...]int64{272, 1056, 4160}[i]
	case size == "1024x1536" || size == "1536x1024":
		return [...]int64{408, 1584, 6240}[i]
	}
	return 0
}

type imagesRequest struct {
	Model          string `json:"model"`
	Prompt         string `json:"prompt"`
	N              *int   `json:"n"`
	Size           string `json:"size"`
	Quality        string `json:"quality"`
	ResponseFormat string `json:"response_format"`
	Stream         bool   `json:"stream"`
	PartialImages  int    `json:"partial_images"`
}

type imagesPlan struct {
	imagesRequest
	op          string // "generations", "edits" or "variations"
	id          string
	n           int
	inputImages int
	gpt         bool
}

type imagesUsage struct {
	InputTokens        int64              `json:"input_tokens"`
	InputTokensDetails imagesInputDetails `json:"input_tokens_details"`
	OutputTokens       int64              `json:"output_tokens"`
	TotalTokens        int64              `json:"total_tokens"`
}

type imagesInputDetails struct {
	ImageTokens int64 `json:"image_tokens"`
	TextTokens  int64 `json:"text_tokens"`
}

type imagesResponse struct {
	Created      int64        `json:"created"`
	Background   string       `json:"background,omitempty"`
	Data         []imageData  `json:"data"`
	OutputFormat string       `json:"output_format,omitempty"`
	Quality      string       `json:"quality,omitempty"`
	Size         string       `json:"size,omitempty"`
	Usage        *imagesUsage `json:"usage,omitempty"`
}

type imageData struct {
	B64JSON       string `json:"b64_json,omitempty"`
	URL           string `json:"url,omitempty"`
	RevisedPrompt string `json:"revised_prompt,omitempty"`
}

func (s *Server) images(w http.ResponseWriter, r *http.Request, body []byte) {
	o, ok := mediaStart(w, r)
	if !ok {
		return
	}
	p, err := newImagesPlan(r, body)
	if err != nil {
		writeBadRequest(w, err, o.gzip)
		return
	}
	if p.Stream {
		s.streamImages(w, r, p, o)
		return
	}
	resp := imagesResponse{Created: Created}
	for i := range p.n {
		resp.Data = append(resp.Data, p.image(i))
	}
	if p.gpt {
		resp.Background, resp.OutputFormat, resp.Quality, resp.Size = "opaque", "png", p.Quality, p.Size
		u := p.usage(true, p.n)
		resp.Usage = &u
	}
	writeJSON(w, resp, o.gzip)
}

func newImagesPlan(r *http.Request, body []byte) (*imagesPlan, error) {
	p := &imagesPlan{op: r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]}
	sum := sha256.Sum256(body)
	p.id = hex.EncodeToString(sum[:6])
	if err := p.read(r, body); err != nil {
		return nil, err
	}
	p.Model = cmpOr(p.Model, "dall-e-2")
	p.gpt = strings.HasPrefix(p.Model, "gpt-image")
	p.n = 1
	if p.N != nil {
		p.n = *p.N
	}
	if p.gpt && (p.Size == "" || p.Size == "auto") {
		p.Size = "1024x1024"
	}
	if p.gpt && (p.Quality == "" || p.Quality == "auto") {
		p.Quality = "medium"
	}
	return p, p.validate()
}

// read fills the request from JSON (generations) or a form (the others).
func (p *imagesPlan) read(r *http.Request, body []byte) error {
	if p.op == "generations" {
		if err := json.Unmarshal(body, &p.imagesRequest); err != nil {
			return &badRequest{fmt.Sprintf("We could not parse the JSON body of your request: %v", err), "invalid_json"}
		}
		return nil
	}
	f, err := readForm(r, body)
	if err != nil {
		return err
	}
	p.Model, p.Prompt, p.Size, p.Quality = f.fields["model"], f.fields["prompt"], f.fields["size"], f.fields["quality"]
	p.ResponseFormat = f.fields["response_format"]
	p.Stream = strings.EqualFold(strings.TrimSpace(f.fields["stream"]), "true")
	p.inputImages = len(f.files["image"]) + len(f.files["image[]"])
	for name, dst := range map[string]*int{"n": nil, "partial_images": &p.PartialImages} {
		v, ok := f.fields[name]
		if !ok {
			continue
		}
		k, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return &badRequest{fmt.Sprintf("Invalid %s %q", name, v), "invalid_type"}
		}
		if dst == nil {
			p.N = &k
		} else {
			*dst = k
		}
	}
	if p.inputImages == 0 {
		return &badRequest{"you must provide an image parameter", "missing_required_parameter"}
	}
	return nil
}

func (p *imagesPlan) validate() error {
	var msg string
	switch {
	case p.op != "variations" && p.Prompt == "":
		msg = "you must provide a prompt parameter"
	case p.op == "variations" && p.Model != "dall-e-2":
		msg = "variations are only supported by dall-e-2"
	case p.n < 1 || p.n > maxImages || (p.Model == "dall-e-3" && p.n != 1):
		msg = fmt.Sprintf("Invalid n %d for %s", p.n, p.Model)
	case p.gpt && ImageTokens(p.Size, p.Quality) == 0:
		msg = fmt.Sprintf("Invalid size %q or quality %q", p.Size, p.Quality)
	case p.Stream && !p.gpt:
		msg = "streaming is only supported by gpt-image models"
	case p.PartialImages < 0 || p.PartialImages > 3:
		msg = fmt.Sprintf("Invalid partial_images %d", p.PartialImages)
	default:
		return nil
	}
	return &badRequest{msg, "invalid_value"}
}

func (p *imagesPlan) image(i int) imageData {
	if p.gpt || p.ResponseFormat == "b64_json" {
		return imageData{B64JSON: TinyPNG}
	}
	d := imageData{URL: fmt.Sprintf("https://mock.invalid/images/%s-%d.png", p.id, i)}
	if p.Model == "dall-e-3" {
		d.RevisedPrompt = p.Prompt
	}
	return d
}

// usage is what a gpt-image response bills for images images, with or
// without the input.
func (p *imagesPlan) usage(input bool, images int) imagesUsage {
	var u imagesUsage
	if input {
		u.InputTokensDetails = imagesInputDetails{ImageTokens: 65 * int64(p.inputImages), TextTokens: (int64(len(p.Prompt)) + 3) / 4}
		u.InputTokens = u.InputTokensDetails.ImageTokens + u.InputTokensDetails.TextTokens
	}
	u.OutputTokens = int64(images) * ImageTokens(p.Size, p.Quality)
	u.TotalTokens = u.InputTokens + u.OutputTokens
	return u
}

// imageEvent is a partial or completed image event.
type imageEvent struct {
	Type              string       `json:"type"`
	B64JSON           string       `json:"b64_json"`
	CreatedAt         int64        `json:"created_at"`
	Size              string       `json:"size"`
	Quality           string       `json:"quality"`
	Background        string       `json:"background"`
	OutputFormat      string       `json:"output_format"`
	PartialImageIndex *int         `json:"partial_image_index,omitempty"`
	Usage             *imagesUsage `json:"usage,omitempty"`
}

func (s *Server) streamImages(w http.ResponseWriter, r *http.Request, p *imagesPlan, o overrides) {
	prefix := "image_generation."
	if p.op == "edits" {
		prefix = "image_edit."
	}
	ev := s.startStream(w, r, o)
	send := func(e imageEvent) error {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("marshal event: %w", err)
		}
		return ev.writeFrame([]byte("event: " + e.Type + "\ndata: " + string(b) + "\n\n"))
	}
	err := func() error {
		for i := range p.n {
			e := imageEvent{B64JSON: TinyPNG, CreatedAt: Created, Size: p.Size, Quality: p.Quality, Background: "opaque", OutputFormat: "png"}
			for k := range p.PartialImages {
				e.Type, e.PartialImageIndex = prefix+"partial_image", &k
				if err := send(e); err != nil {
					return err
				}
			}
			u := p.usage(i == 0, 1)
			e.Type, e.PartialImageIndex, e.Usage = prefix+"completed", nil, &u
			if err := send(e); err != nil {
				return err
			}
		}
		return ev.end()
	}()
	if err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}
