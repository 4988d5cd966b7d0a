package dialect

import (
	"bytes"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strings"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// OpenAIImages is OpenAI's Images API: generations (POST
// /v1/images/generations, a JSON request), edits (POST /v1/images/edits)
// and variations (POST /v1/images/variations), both multipart/form-data
// uploads. Metering reads model, prompt, size, quality and stream from
// either form; n is not read, because the response says how many images
// came.
//
// A response lists the images in "data", each as b64_json (megabytes of
// base64) or a url: Units[Images] counts them. DALL·E bills per image, by
// size and quality, which the request names (the exchange copies them
// into the usage); GPT image models also answer with the size and quality
// they used, which win. GPT image models bill tokens too: usage
// {input_tokens, input_tokens_details {text_tokens, image_tokens},
// output_tokens, output_tokens_details {text_tokens, image_tokens}}. The
// input splits into Input (text) and ImageInput; without details it is
// taken as text, which a generation's input is. The output is ImageOutput,
// unless output details name text tokens, which are Output.
//
// The decoder does not buffer the images: long strings are elided as they
// arrive (see stringElider), so maxBuffer bounds the response's structure,
// not its payload, and a 40 MB response of ten images still yields its
// count and usage. Only a response whose structure alone passes maxBuffer
// is too_large.
//
// A stream (stream=true, GPT image models) is server-sent events:
// image_generation.partial_image (or image_edit.partial_image) previews,
// which are not counted, and one image_generation.completed (or
// image_edit.completed) per image, carrying usage. The usages of several
// completed events are added: the documentation does not say whether a
// stream of n images reports one usage per image or a running total, and
// a stream of one image, the common case, reads the same either way.
func OpenAIImages() Dialect { return openAIImages{} }

type openAIImages struct{}

const openAIImagesName = "openai_images"

func (openAIImages) Name() string     { return openAIImagesName }
func (openAIImages) Provider() string { return "openai" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (openAIImages) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (x openAIImages) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, x.parseRequest)
}

// ErrorBody implements Dialect.
func (openAIImages) ErrorBody(r Refusal) ErrorResponse { return OpenAIRefusal(r) }

// parseRequest reads a JSON body (generations, and edits sent as JSON) or a
// multipart one (edits, variations), telling them apart by the body
// itself. Where a key or field repeats the last one counts.
func (openAIImages) parseRequest(body []byte, _ RequestOptions) (Request, []byte, error) {
	if bytes.HasPrefix(body, dashes) {
		return parseImagesForm(body)
	}
	s, err := requestObject(openAIImagesName, body)
	if err != nil {
		return Request{}, nil, err
	}
	var model, prompt, size, quality, stream string
	gptOnly := false
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		gptOnly = gptOnly || gptImageOnly(k)
		switch k {
		case "model":
			model = v
		case "prompt":
			prompt = v
		case "size":
			size = v
		case "quality":
			quality = v
		case "stream":
			stream = v
		}
	}
	var req Request
	req.Model, _ = stringValue(model)
	req.ImageSize, _ = stringValue(size)
	req.ImageQuality, _ = stringValue(quality)
	req.Stream = stream == "true"
	req.IncludeUsage = req.Stream
	req.Prompt, req.PromptBytes = jsonTextPrompt(prompt)
	applyImageDefaults(&req, gptOnly)
	return req, nil, nil
}

// applyImageDefaults fills in what OpenAI's Images API assumes when a
// request leaves it out, so that the request is priced as the provider
// bills it (issue 12, item 8: a dall-e-3 request without quality went
// unpriced). From the API reference (create image, create image edit):
//
//   - model: dall-e-2, unless a parameter only GPT image models take is
//     present (gptOnly), when it is gpt-image-1.
//   - dall-e-2 and dall-e-3: size 1024x1024, quality standard (dall-e-2
//     has no other quality).
//   - GPT image models: size and quality "auto", the provider's choice;
//     their response names the size and quality used, which win
//     (setImageSpec), and they bill tokens, not images.
func applyImageDefaults(req *Request, gptOnly bool) {
	if req.Model == "" {
		req.Model = "dall-e-2"
		if gptOnly {
			req.Model = "gpt-image-1"
		}
	}
	size, quality := "1024x1024", "standard"
	if strings.HasPrefix(req.Model, "gpt-image") {
		size, quality = "auto", "auto"
	} else if !strings.HasPrefix(req.Model, "dall-e-") {
		return // another model's defaults are not known here
	}
	if req.ImageSize == "" {
		req.ImageSize = size
	}
	if req.ImageQuality == "" {
		req.ImageQuality = quality
	}
}

// gptImageOnly reports whether a request parameter is one only GPT image
// models take, which makes the API default the model to gpt-image-1.
func gptImageOnly(key string) bool {
	switch key {
	case "background", "moderation", "output_compression", "output_format", "partial_images", "input_fidelity":
		return true
	}
	return false
}

func parseImagesForm(body []byte) (Request, []byte, error) {
	var req Request
	gptOnly := false
	err := formFields(body, func(name string, v []byte) {
		gptOnly = gptOnly || gptImageOnly(name)
		switch name {
		case "model":
			req.Model = string(v)
		case "prompt":
			req.Prompt, req.PromptBytes = cutUTF8(bstr(v), MaxEstimateText), int64(len(v))
		case "size":
			req.ImageSize = string(v)
		case "quality":
			req.ImageQuality = string(v)
		case "stream":
			req.Stream = formBool(v)
		}
	})
	req.IncludeUsage = req.Stream
	if err != nil {
		return req, nil, fmt.Errorf("%s: request body: %w", openAIImagesName, err)
	}
	applyImageDefaults(&req, gptOnly)
	return req, nil, nil
}

func (openAIImages) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if isEventStream(resp.ContentType) {
		s := &imagesSSE{mediaStream: newMediaStream(openAIImagesName, maxBuffer, mediaKeepBytes)}
		s.emit = s.onEvent
		return WithEncoding(resp.ContentEncoding, s, maxBuffer)
	}
	return WithEncoding(resp.ContentEncoding, &imagesJSON{newCompactBody(openAIImagesName, maxBuffer, mediaKeepBytes)}, maxBuffer)
}

// The fields of an images usage, by index into tokenFields.
const (
	imInputTokens = iota
	imOutputTokens
	imTotalTokens
	imInputText
	imInputImage
	imOutputText
	imOutputImage
)

var imagesUsagePaths = []string{
	"input_tokens", "output_tokens", "total_tokens",
	"input_tokens_details.text_tokens", "input_tokens_details.image_tokens",
	"output_tokens_details.text_tokens", "output_tokens_details.image_tokens",
}

// readImagesUsage reads a usage object; ok is false when it holds neither
// input nor output tokens.
func readImagesUsage(obj string) (tokenFields, bool) {
	t := readTokenFields(obj, imagesUsagePaths)
	return t, t.has&(1<<imInputTokens|1<<imOutputTokens) != 0
}

// add sums another event's usage into t: a field is present when it was
// in either.
func (t *tokenFields) add(o tokenFields) {
	for i := range t.n {
		t.n[i] += o.n[i]
	}
	t.has |= o.has
}

// normaliseImages sets u's token classes from t.
func normaliseImages(t *tokenFields, u *usage.Usage) error {
	t.raw(u)
	in, hasIn := t.get(imInputTokens)
	inText, hasInText := t.get(imInputText)
	inImage, hasInImage := t.get(imInputImage)
	spIn := splitMedia(in, inImage, inText, hasIn, hasInImage, hasInText, false)
	spIn.set(u, usage.Input, usage.ImageInput)
	out, hasOut := t.get(imOutputTokens)
	outText, hasOutText := t.get(imOutputText)
	outImage, hasOutImage := t.get(imOutputImage)
	spOut := splitMedia(out, outImage, outText, hasOut, hasOutImage, hasOutText, true)
	spOut.set(u, usage.Output, usage.ImageOutput)
	if !spIn.ok || !spOut.ok {
		return fmt.Errorf("%s: usage input_tokens=%d (text %d, image %d) output_tokens=%d (text %d, image %d): %w",
			openAIImagesName, in, inText, inImage, out, outText, outImage, reason.InconsistentUsage)
	}
	return nil
}

// setImageSpec records the size and quality a response names. They are
// cloned: the views die with the buffer.
func setImageSpec(u *usage.Usage, size, quality string) {
	if s := jsonStringView(size); s != "" {
		u.ImageSize = strings.Clone(s)
	}
	if q := jsonStringView(quality); q != "" {
		u.ImageQuality = strings.Clone(q)
	}
}

// imagesJSON decodes a whole images response.
type imagesJSON struct{ compactBody }

// Finish reports, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape, then the images and
// usage (with inconsistent_usage when the tokens do not add up), else
// provider_error, else no_usage.
func (d *imagesJSON) Finish(complete bool) Result {
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	var data, usageRaw, size, quality, errRaw string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "data":
			data = v
		case "usage":
			usageRaw = v
		case "size":
			size = v
		case "quality":
			quality = v
		case "error":
			errRaw = v
		}
	}
	var res Result
	t, hasUsage := readImagesUsage(usageRaw)
	switch {
	case isArray(data) || hasUsage:
		if hasUsage {
			res.Err = normaliseImages(&t, &res.Usage)
		}
		if isArray(data) {
			setImageCount(&res.Usage, countElements(data))
		}
		setImageSpec(&res.Usage, size, quality)
	case mediaErrorCode(errRaw) != "":
		res.Err = fmt.Errorf("%s: provider error %q: %w", openAIImagesName, mediaErrorCode(errRaw), reason.ProviderError)
	case isObject(usageRaw):
		res.Err = fmt.Errorf("%s: usage has no token counts: %w", openAIImagesName, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no data: %w", openAIImagesName, reason.NoUsage)
	}
	return res
}

func countElements(arr string) int64 {
	var n int64
	e := newElements(arr)
	for _, ok := e.next(); ok; _, ok = e.next() {
		n++
	}
	return n
}

// imagesSSE decodes a streamed image generation or edit.
type imagesSSE struct {
	mediaStream
	images        int64
	usage         tokenFields
	hasUsage      bool
	size, quality string // the last completed event's, cloned
}

func (d *imagesSSE) onEvent(ev framing.Event) error {
	obj, typ, ok := d.object(ev)
	if !ok || (typ != "image_generation.completed" && typ != "image_edit.completed") {
		return nil
	}
	d.images++
	if raw := mediaMember(obj, "usage"); isObject(raw) {
		if t, has := readImagesUsage(raw); has {
			if !d.hasUsage {
				d.usage = tokenFields{paths: imagesUsagePaths}
			}
			d.usage.add(t)
			d.hasUsage = true
		} else {
			d.badShape++
		}
	}
	if s := jsonStringView(mediaMember(obj, "size")); s != "" {
		d.size = strings.Clone(s)
	}
	if q := jsonStringView(mediaMember(obj, "quality")); q != "" {
		d.quality = strings.Clone(q)
	}
	return nil
}

// Finish reports the images and usage of the completed events. A stream
// cut after some of them (no [DONE], and the body incomplete or ended
// mid-event) keeps what they reported but says truncated: more images may
// have been on their way. Without any, the reason is mediaStream.missing's.
func (d *imagesSSE) Finish(complete bool) Result {
	cut := !d.sawDone && (!complete || d.sse.Pending())
	if d.images == 0 {
		return Result{Err: d.missing(cut)}
	}
	var res Result
	if d.hasUsage {
		res.Err = normaliseImages(&d.usage, &res.Usage)
	}
	setImageCount(&res.Usage, d.images)
	res.Usage.ImageSize, res.Usage.ImageQuality = d.size, d.quality
	if res.Err == nil && cut {
		res.Err = fmt.Errorf("%s: stream cut after %d images: %w", openAIImagesName, d.images, reason.Truncated)
	}
	return res
}

// setImageCount records how many images came back, in Units[Images]
// whatever else the response reports: the ledger's images column is the
// images generated (docs/ledger-export.md). Models billed per image
// (DALL·E) report no tokens, and the count is their bill; models billed by
// tokens (gpt-image-1) report both, and pricing then prices the tokens and
// takes the count for information (pricing.Entry.Cost), so nothing is
// priced twice.
func setImageCount(u *usage.Usage, n int64) {
	u.SetUnit(usage.Images, n)
}
