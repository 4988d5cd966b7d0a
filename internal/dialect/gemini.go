package dialect

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Gemini is Google's Gemini API (generativelanguage.googleapis.com):
// POST /v1beta/models/{model}:generateContent and :streamGenerateContent,
// and the same under /v1. The model is named in the path, not the body.
//
// Its usage (usageMetadata) overlaps only in part. promptTokenCount includes
// cachedContentTokenCount; candidatesTokenCount does not include
// thoughtsTokenCount; and toolUsePromptTokenCount, the results of
// server-side tools (Google Search, URL context) "provided back to the
// model as input", is in neither: the UsageMetadata reference defines
// totalTokenCount as the sum of prompt, candidates, tool-use prompt and
// thoughts counts. Tool-use prompt tokens are model input, billed at the
// input price; dropping them under-reports a grounded call many times over
// (vercel/ai#16400). The classes are therefore:
//
//	input        = prompt − cached + toolUsePrompt (− uncached audio)
//	cache_read   = cached
//	output       = candidates (− image and audio output)
//	reasoning    = thoughts
//	audio_input  = AUDIO of promptTokensDetails − AUDIO of cacheTokensDetails
//	image_output = IMAGE of candidatesTokensDetails
//	audio_output = AUDIO of candidatesTokensDetails
//
// The modality classes are split out only when the details list them,
// because Google's price list prices audio input, and image and audio
// output, apart from text. Image, video and document input cost what text costs, so they stay
// in input. Cached audio stays in cache_read: there is no class for it.
// A totalTokenCount that disagrees with the sum of the parts is kept in Raw
// and not reported as inconsistent: only a class that would go negative is.
func Gemini() Dialect { return gemini{name: geminiName, provider: "google"} }

// VertexGemini is Gemini on Google Cloud's Vertex AI
// (POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:
// generateContent and :streamGenerateContent). The wire format is Gemini's;
// the bill, and so the prices, are Vertex's.
func VertexGemini() Dialect { return gemini{name: vertexGeminiName, provider: "vertex"} }

const (
	geminiName       = "gemini"
	vertexGeminiName = "vertex_gemini"
)

type gemini struct{ name, provider string }

func (g gemini) Name() string     { return g.name }
func (g gemini) Provider() string { return g.provider }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (gemini) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (g gemini) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, g.parseRequest)
}

// ErrorBody implements Dialect.
func (gemini) ErrorBody(r Refusal) ErrorResponse { return googleRefusal(r) }

// parseRequest reads the request body; it never rewrites it, because every
// streamed chunk carries usageMetadata without being asked.
//
// Google parses request bodies as protocol buffer JSON, which accepts each
// field under its lowerCamelCase name and its original snake_case one (the
// REST examples write "system_instruction"), so both are read. Where a key
// is repeated the last one counts, as elsewhere.
func (g gemini) parseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	var req Request
	var method string
	req.Model, method = geminiTarget(opts.Path)
	req.Stream = method == "streamGenerateContent"
	req.IncludeUsage = req.Stream
	s, err := requestObject(g.name, body)
	if err != nil {
		// The path's model and method stand, for admission (see salvage).
		return req, nil, err
	}
	var contents, system, config string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "contents":
			contents = v
		case "systemInstruction", "system_instruction":
			system = v
		case "generationConfig", "generation_config":
			config = v
		}
	}
	var maxTokens string
	m = newMembers(config)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if k == "maxOutputTokens" || k == "max_output_tokens" {
			maxTokens = v
		}
	}
	n, _ := geminiInt(maxTokens)
	req.MaxTokens = max(n, 0)
	var text TextBuffer
	writeGeminiText(&text, system)
	if isArray(contents) {
		items := newElements(contents)
		for c, ok := items.next(); ok; c, ok = items.next() {
			writeGeminiText(&text, c)
		}
	} else {
		writeGeminiText(&text, contents) // a lone Content, as some clients send
	}
	req.Prompt, req.PromptBytes = string(text.Bytes()), text.Total()
	return req, nil, nil
}

// geminiTarget reads the model and the method from a request path: its last
// segment is "{model}:{method}", with the model URL-encoded. Paths name the
// model as a resource (models/{m}, tunedModels/{m}, publishers/google/
// models/{m}); the price list knows it by its last part.
func geminiTarget(path string) (model, method string) {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	seg := path[strings.LastIndexByte(path, '/')+1:]
	c := strings.LastIndexByte(seg, ':')
	if c < 0 {
		return "", ""
	}
	model, method = seg[:c], seg[c+1:]
	if m, err := url.PathUnescape(model); err == nil {
		model = m[strings.LastIndexByte(m, '/')+1:]
	}
	return model, method
}

// writeGeminiText writes the text parts of a Content ({"parts": [...]})
// to t. Other parts (inline data, files, function calls and responses)
// add nothing: this feeds an estimate, not a bill.
func writeGeminiText(t *TextBuffer, content string) {
	m := newMembers(content)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if k != "parts" {
			continue
		}
		parts := newElements(v)
		for p, ok := parts.next(); ok; p, ok = parts.next() {
			pm := newMembers(p)
			for pk, pv, ok := pm.next(); ok; pk, pv, ok = pm.next() {
				if pk == "text" {
					t.WriteJSONString(pv)
				}
			}
		}
	}
}

// geminiInt reads a protocol buffer JSON integer: a number, or a string of
// digits, which protobuf's JSON mapping also accepts.
func geminiInt(raw string) (int64, bool) {
	if n, ok := intValue(raw); ok {
		return n, true
	}
	if len(raw) < 2 || raw[0] != '"' {
		return 0, false
	}
	n, err := strconv.ParseInt(raw[1:len(raw)-1], 10, 64)
	return n, err == nil
}

func (g gemini) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	if isEventStream(resp.ContentType) {
		d := &geminiSSE{sse: framing.NewSSE(maxBuffer), geminiStream: geminiStream{dialect: g.name, max: maxBuffer}}
		return WithEncoding(resp.ContentEncoding, d, maxBuffer)
	}
	// generateContent answers with one object and streamGenerateContent
	// without alt=sse with an array of them, both as application/json, and
	// an error may come as either shape: the first byte decides.
	d := &geminiBody{obj: jsonBody{dialect: g.name, max: maxBuffer}, geminiStream: geminiStream{dialect: g.name, max: maxBuffer}}
	return WithEncoding(resp.ContentEncoding, d, maxBuffer)
}

// The counts of a usageMetadata object, by index into geminiUsage.n.
const (
	guPrompt = iota
	guCached
	guCandidates
	guThoughts
	guToolUse
	guTotal
	guFields
)

var geminiCountNames = [guFields]string{
	"promptTokenCount", "cachedContentTokenCount", "candidatesTokenCount",
	"thoughtsTokenCount", "toolUsePromptTokenCount", "totalTokenCount",
}

// The per-modality lists of a usageMetadata object, by index into
// geminiUsage.detail.
const (
	gdPrompt = iota
	gdCache
	gdCandidates
	gdToolUse
	gdLists
)

var geminiDetailNames = [gdLists]string{
	"promptTokensDetails", "cacheTokensDetails", "candidatesTokensDetails", "toolUsePromptTokensDetails",
}

// The modalities Google documents (ModalityTokenCount.modality).
const (
	gmUnspecified = iota
	gmText
	gmImage
	gmVideo
	gmAudio
	gmDocument
	gmModalities
)

var geminiModalityNames = [gmModalities]string{"MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "VIDEO", "AUDIO", "DOCUMENT"}

// geminiUsage is one usageMetadata object as the provider reported it.
type geminiUsage struct {
	n         [guFields]int64
	has       uint8 // bit i: count i was present
	detail    [gdLists][gmModalities]int64
	hasDetail [gdLists]uint8 // bit m: the list named modality m
}

// parseGeminiUsage reads a usageMetadata object. Protocol buffer JSON omits
// a zero count, so an absent count is zero; present records that the
// provider wrote it, for Raw. Unknown modalities are not billed apart and
// are skipped.
func parseGeminiUsage(obj string) geminiUsage {
	var u geminiUsage
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if i := geminiIndex(geminiCountNames[:], k); i >= 0 {
			n, ok := geminiInt(v)
			u.n[i] = n
			if ok {
				u.has |= 1 << i
			} else {
				u.has &^= 1 << i
			}
		} else if i := geminiIndex(geminiDetailNames[:], k); i >= 0 {
			u.detail[i], u.hasDetail[i] = parseGeminiModalities(v)
		}
	}
	return u
}

// parseGeminiModalities sums a [{modality, tokenCount}] list by modality.
func parseGeminiModalities(list string) (counts [gmModalities]int64, has uint8) {
	items := newElements(list)
	for it, ok := items.next(); ok; it, ok = items.next() {
		var mod, count string
		m := newMembers(it)
		for k, v, ok := m.next(); ok; k, v, ok = m.next() {
			switch k {
			case "modality":
				mod = v
			case "tokenCount":
				count = v
			}
		}
		i := geminiIndex(geminiModalityNames[:], geminiEnum(mod))
		n, ok := geminiInt(count)
		if i < 0 || !ok {
			continue
		}
		counts[i] += n
		has |= 1 << i
	}
	return counts, has
}

// geminiEnum returns a JSON string's contents when it holds no escape (as
// enum names never do), else "".
func geminiEnum(raw string) string {
	if len(raw) < 2 || raw[0] != '"' || strings.IndexByte(raw, '\\') >= 0 {
		return ""
	}
	return raw[1 : len(raw)-1]
}

func geminiIndex(names []string, s string) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return -1
}

// hasGeminiCounts reports whether a usageMetadata object holds any count:
// one without is no usage report. It is parseGeminiUsage(obj).has != 0
// without reading the modality lists, as every streamed chunk needs.
func hasGeminiCounts(obj string) bool {
	var has uint8
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if i := geminiIndex(geminiCountNames[:], k); i >= 0 {
			if _, ok := geminiInt(v); ok {
				has |= 1 << i
			} else {
				has &^= 1 << i
			}
		}
	}
	return has != 0
}

// raw lists the provider's numbers under its own names, a modality's count
// as "<list>.<MODALITY>".
func (u geminiUsage) raw() []usage.Field {
	var out []usage.Field
	for i, name := range geminiCountNames {
		if u.has&(1<<i) != 0 {
			out = append(out, usage.Field{Name: name, Value: u.n[i]})
		}
	}
	for l, list := range geminiDetailNames {
		for mod, name := range geminiModalityNames {
			if u.hasDetail[l]&(1<<mod) != 0 {
				out = append(out, usage.Field{Name: list + "." + name, Value: u.detail[l][mod]})
			}
		}
	}
	return out
}

// normalise splits the counts into disjoint classes (see Gemini). Every
// class is kept at or above zero, and the classes sum to what the provider
// billed; when a detail exceeds the count it is part of, the count wins,
// and the error says so.
func (u geminiUsage) normalise(dialect string) (usage.Usage, error) {
	out := usage.Usage{Raw: u.raw()}
	ok := true
	// clamp keeps n within [lo, hi] and notes when it was not.
	clamp := func(n, lo, hi int64) int64 {
		ok = ok && n >= lo && n <= hi
		return min(max(n, lo), hi)
	}
	const noLimit = 1<<63 - 1
	prompt := clamp(u.n[guPrompt], 0, noLimit)
	cand := clamp(u.n[guCandidates], 0, noLimit)
	thoughts := clamp(u.n[guThoughts], 0, noLimit)
	tool := clamp(u.n[guToolUse], 0, noLimit)
	cacheRead := clamp(u.n[guCached], 0, prompt)
	audioIn := clamp(u.detail[gdPrompt][gmAudio]-u.detail[gdCache][gmAudio], 0, prompt-cacheRead)
	imageOut := clamp(u.detail[gdCandidates][gmImage], 0, cand)
	audioOut := clamp(u.detail[gdCandidates][gmAudio], 0, cand-imageOut)

	out.Set(usage.Input, prompt-cacheRead-audioIn+tool)
	out.Set(usage.CacheRead, cacheRead)
	out.Set(usage.Output, cand-imageOut-audioOut)
	out.Set(usage.Reasoning, thoughts)
	if (u.hasDetail[gdPrompt]|u.hasDetail[gdCache])&(1<<gmAudio) != 0 {
		out.Set(usage.AudioInput, audioIn)
	}
	if u.hasDetail[gdCandidates]&(1<<gmImage) != 0 {
		out.Set(usage.ImageOutput, imageOut)
	}
	if u.hasDetail[gdCandidates]&(1<<gmAudio) != 0 {
		out.Set(usage.AudioOutput, audioOut)
	}
	if !ok {
		return out, fmt.Errorf("%s: usageMetadata promptTokenCount=%d cachedContentTokenCount=%d candidatesTokenCount=%d "+
			"thoughtsTokenCount=%d toolUsePromptTokenCount=%d, audio in %d (cached %d), image out %d, audio out %d: %w",
			dialect, u.n[guPrompt], u.n[guCached], u.n[guCandidates], u.n[guThoughts], u.n[guToolUse],
			u.detail[gdPrompt][gmAudio], u.detail[gdCache][gmAudio], u.detail[gdCandidates][gmImage],
			u.detail[gdCandidates][gmAudio], reason.InconsistentUsage)
	}
	return out, nil
}

// geminiStream is what the decoders learn from the GenerateContentResponse
// objects of a body: one for generateContent, one per chunk of a stream.
type geminiStream struct {
	dialect string
	max     int

	model      string
	usage      []byte // the last usageMetadata that held counts, raw
	hasUsage   bool
	usageFinal bool // the usage came with or after a finishReason or geminiBlocked
	finished   bool // some chunk finished a candidate, or blocked the prompt
	text       TextBuffer
	tooLarge   bool
	malformed  int // chunks that were not JSON
	badShape   int // chunks that were JSON but not a response
	provErr    error
}

// read takes one GenerateContentResponse, or an error object in its place.
//
// Each streamed usageMetadata is a running total, and Google may leave out
// a count (candidatesTokenCount) in early chunks: the last whole object is
// the report, and merging objects field by field would keep counts a later
// object no longer reports.
func (s *geminiStream) read(data []byte) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return
	}
	str := bstr(data)
	if !gjson.Valid(str) {
		s.malformed++
		return
	}
	if !isObject(str) {
		s.badShape++
		return
	}
	var candidates, feedback, usageObj, model, errObj string
	m := newMembers(str)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "candidates":
			candidates = v
		case "promptFeedback":
			feedback = v
		case "usageMetadata":
			usageObj = v
		case "modelVersion":
			model = v
		case "error":
			errObj = v
		}
	}
	s.finished = s.readCandidates(candidates) || geminiBlocked(feedback) || s.finished
	if s.model == "" {
		s.model, _ = stringValue(model)
	}
	switch {
	case isObject(usageObj) && hasGeminiCounts(usageObj):
		s.usage = append(s.usage[:0], usageObj...)
		s.hasUsage, s.usageFinal = true, s.finished
	case usageObj != "" && usageObj != "null":
		s.badShape++
	}
	if isObject(errObj) && s.provErr == nil {
		s.provErr = s.errorOf(errObj)
	}
}

// readCandidates writes the generated text of the candidates to s.text and
// reports whether one has a finishReason (SAFETY and the like included:
// they end a response, they are not errors).
func (s *geminiStream) readCandidates(arr string) bool {
	finished := false
	cands := newElements(arr)
	for c, ok := cands.next(); ok; c, ok = cands.next() {
		m := newMembers(c)
		for k, v, ok := m.next(); ok; k, v, ok = m.next() {
			switch k {
			case "content":
				s.readParts(v)
			case "finishReason":
				finished = finished || (v != "" && v != "null")
			}
		}
	}
	return finished
}

// readParts writes what a Content's parts generated: text (thought
// summaries included), a function call's arguments and executable code,
// which are billed as output too and so count towards an estimate when
// usage never comes.
func (s *geminiStream) readParts(content string) {
	m := newMembers(content)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if k != "parts" {
			continue
		}
		parts := newElements(v)
		for p, ok := parts.next(); ok; p, ok = parts.next() {
			pm := newMembers(p)
			for pk, pv, ok := pm.next(); ok; pk, pv, ok = pm.next() {
				switch pk {
				case "text":
					s.text.WriteJSONString(pv)
				case "functionCall":
					s.text.WriteString(geminiMember(pv, "args"))
				case "executableCode":
					s.text.WriteJSONString(geminiMember(pv, "code"))
				}
			}
		}
	}
}

// geminiBlocked reports whether a promptFeedback blocked the prompt: the
// response then ends with no candidates.
func geminiBlocked(feedback string) bool {
	r := geminiMember(feedback, "geminiBlocked")
	return r != "" && r != "null"
}

// geminiMember returns the raw value of obj's last member named key, or "".
func geminiMember(obj, key string) string {
	var val string
	m := newMembers(obj)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		if k == key {
			val = v
		}
	}
	return val
}

// errorOf describes a Google error object ({"code": 429, "message": ...,
// "status": "RESOURCE_EXHAUSTED"}).
func (s *geminiStream) errorOf(obj string) error {
	status, _ := stringValue(geminiMember(obj, "status"))
	if status == "" {
		status = geminiMember(obj, "code")
	}
	return fmt.Errorf("%s: provider error %q: %w", s.dialect, status, reason.ProviderError)
}

// result reports the usage when any arrived, with Err set to, in order:
// provider_error when an error object came; inconsistent_usage; too_large
// or truncated when the last usage came before any finishReason and an
// element was dropped or the body was cut. Without usage, the reason is the
// first of provider_error, too_large, truncated, malformed_json,
// unexpected_shape, no_usage; each earlier one better explains why the
// usage is missing.
func (s *geminiStream) result(cut bool) Result {
	res := Result{Model: s.model, Text: s.text.Bytes(), StreamedTextBytes: s.text.Total()}
	if s.hasUsage {
		res.Usage, res.Err = parseGeminiUsage(bstr(s.usage)).normalise(s.dialect)
		switch {
		case s.provErr != nil:
			res.Err = s.provErr
		case res.Err != nil || s.usageFinal:
		case s.tooLarge:
			res.Err = fmt.Errorf("%s: a chunk over %d bytes was dropped after the last usage: %w", s.dialect, s.max, reason.TooLarge)
		case cut:
			res.Err = fmt.Errorf("%s: stream cut after a running usage total: %w", s.dialect, reason.Truncated)
		}
		return res
	}
	switch {
	case s.provErr != nil:
		res.Err = s.provErr
	case s.tooLarge:
		res.Err = fmt.Errorf("%s: a chunk over %d bytes was dropped: %w", s.dialect, s.max, reason.TooLarge)
	case cut:
		res.Err = fmt.Errorf("%s: stream cut before its usage: %w", s.dialect, reason.Truncated)
	case s.malformed > 0:
		res.Err = fmt.Errorf("%s: %d chunks were not JSON: %w", s.dialect, s.malformed, reason.MalformedJSON)
	case s.badShape > 0:
		res.Err = fmt.Errorf("%s: %d chunks were not responses: %w", s.dialect, s.badShape, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usageMetadata: %w", s.dialect, reason.NoUsage)
	}
	return res
}

// geminiSSE decodes streamGenerateContent?alt=sse: one response object per
// event, and no end marker.
type geminiSSE struct {
	sse *framing.SSE
	geminiStream
}

func (d *geminiSSE) Feed(chunk []byte) error {
	err := d.sse.Feed(chunk, d.onEvent)
	if errors.Is(err, framing.ErrEventTooLarge) {
		d.tooLarge = true
		return fmt.Errorf("%s: stream event over %d bytes dropped: %w", d.dialect, d.max, reason.TooLarge)
	}
	return err
}

func (d *geminiSSE) onEvent(ev framing.Event) error {
	d.read(ev.Data)
	return nil
}

// Finish: with no end marker, the stream counts as cut when the body did
// not complete or ended mid-event.
func (d *geminiSSE) Finish(complete bool) Result {
	return d.result(!complete || d.sse.Pending())
}

// geminiBody decodes an application/json body: one response object, or a
// streamed array of them.
type geminiBody struct {
	mode uint8 // geminiUndecided until the first byte that is not whitespace
	obj  jsonBody
	arr  *framing.JSONArray
	geminiStream
}

const (
	geminiUndecided uint8 = iota
	geminiObject
	geminiArray
)

func (d *geminiBody) Feed(chunk []byte) error {
	if d.mode == geminiUndecided {
		i := skipWS(bstr(chunk), 0)
		switch {
		case i == len(chunk):
			return nil
		case chunk[i] == '[':
			d.mode, d.arr = geminiArray, framing.NewJSONArray(d.max)
		default:
			d.mode = geminiObject
		}
		chunk = chunk[i:]
	}
	if d.mode == geminiObject {
		return d.obj.Feed(chunk)
	}
	err := d.arr.Feed(chunk, d.onElement)
	switch {
	case errors.Is(err, framing.ErrElementTooLarge):
		d.tooLarge = true
		return fmt.Errorf("%s: stream chunk over %d bytes dropped: %w", d.dialect, d.max, reason.TooLarge)
	case errors.Is(err, framing.ErrArraySyntax):
		d.malformed++
		return fmt.Errorf("%s: %w: %w", d.dialect, err, reason.MalformedJSON)
	}
	return err
}

func (d *geminiBody) onElement(el []byte) error {
	d.read(el)
	return nil
}

// Finish: an array is complete at its closing ']', whether or not the
// client stayed for the end of the body; one that broke off is cut, unless
// it was not an array to begin with.
func (d *geminiBody) Finish(complete bool) Result {
	if d.mode == geminiArray {
		return d.result(!d.arr.Done() && d.arr.Err() == nil)
	}
	if _, err := d.obj.object(complete); err != nil {
		return Result{Err: err}
	}
	d.read(d.obj.buf)
	return d.result(false)
}
