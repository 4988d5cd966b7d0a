package mockllm

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// OpenAI audio and images (POST .../v1/audio/transcriptions,
// .../v1/audio/translations, .../v1/audio/speech, .../v1/images/generations,
// .../v1/images/edits, .../v1/images/variations).
//
// Transcriptions and translations take a multipart form: model and file
// are required; prompt, response_format (json, verbose_json, text, srt,
// vtt; default json) and stream are read. The transcript is ReplyText of N
// words (DefaultCompletionWords, or X-Mock-Completion-Tokens). The audio's
// duration is its file size in bytes / 1000 seconds, exactly (a 1234-byte
// file lasts 1.234 s). By model:
//
//   - whisper models (a "whisper" prefix) bill duration: usage
//     {"type":"duration","seconds":D}. stream is ignored, as OpenAI does.
//   - other models bill tokens: usage {"type":"tokens", input_tokens =
//     text_tokens + audio_tokens, input_token_details {text_tokens =
//     ceil(len(prompt)/4), audio_tokens = ceil(file bytes/100)},
//     output_tokens = N, total_tokens}. With stream=true the answer is
//     events: one transcript.text.delta per word, then
//     transcript.text.done with the text and the usage.
//
// verbose_json adds task, language, "duration" and an empty segments list;
// translations answer without usage, as OpenAI's Translation object has
// none, so verbose_json's duration is all they report. text, srt and vtt
// answer text/plain without usage.
//
// Speech takes JSON: model, input and voice are required; response_format
// (mp3 default) picks the Content-Type of the few fixed bytes of fake audio
// returned. stream_format "sse" (refused for tts-1 models, as OpenAI does)
// answers two speech.audio.delta events and speech.audio.done with usage
// {input_tokens = ceil((len(input)+len(instructions))/4), output_tokens =
// 2 × code points of input, total_tokens}.
//
// X-Mock-Status, -Gzip and -Chunk-Delay-Ms keep their chat meaning here and
// for images.

// FakeAudio is the body of every non-streamed speech response.
var FakeAudio = []byte("ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64\x00\x00\x00\x00")

// isMediaPath reports whether path is one of the audio or images routes.
func isMediaPath(path string) bool { return mediaHandler(path) != nil }

type mediaRoute struct {
	suffix  string
	handler func(*Server, http.ResponseWriter, *http.Request, []byte)
}

var mediaRoutes = []mediaRoute{
	{"/v1/audio/transcriptions", (*Server).transcription},
	{"/v1/audio/translations", (*Server).transcription},
	{"/v1/audio/speech", (*Server).speech},
	{"/v1/images/generations", (*Server).images},
	{"/v1/images/edits", (*Server).images},
	{"/v1/images/variations", (*Server).images},
}

func mediaHandler(path string) func(*Server, http.ResponseWriter, *http.Request, []byte) {
	for _, rt := range mediaRoutes {
		if strings.HasSuffix(path, rt.suffix) {
			return rt.handler
		}
	}
	return nil
}

// media answers the audio and images routes.
func (s *Server) media(w http.ResponseWriter, r *http.Request, body []byte) {
	mediaHandler(r.URL.Path)(s, w, r, body)
}

// mediaStart reads the X-Mock-* headers and answers what they decide by
// themselves (a bad header, a non-2xx status); it reports false when it
// answered.
func mediaStart(w http.ResponseWriter, r *http.Request) (overrides, bool) {
	o, err := parseOverrides(r.Header)
	if err != nil {
		writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: "invalid_request_error", Code: "invalid_mock_header"}, nil, false)
		return o, false
	}
	if o.status < 200 || o.status > 299 {
		writeError(w, o.status, mockStatusError(o.status), nil, o.gzip)
		return o, false
	}
	return o, true
}

func writeBadRequest(w http.ResponseWriter, err error, gz bool) {
	code := "invalid_request"
	if br, ok := errors.AsType[*badRequest](err); ok {
		code = br.code
	}
	writeError(w, http.StatusBadRequest, apiError{Message: err.Error(), Type: "invalid_request_error", Code: code}, nil, gz)
}

// form is a parsed multipart request: the last value of each field, and
// the byte size of each file part, by field name.
type form struct {
	fields map[string]string
	files  map[string][]int64
}

func readForm(r *http.Request, body []byte) (*form, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, &badRequest{"the request must be multipart/form-data with a boundary", "invalid_content_type"}
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	f := &form{fields: map[string]string{}, files: map[string][]int64{}}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return f, nil
		}
		if err != nil {
			return nil, &badRequest{fmt.Sprintf("could not parse multipart form: %v", err), "invalid_multipart"}
		}
		if p.FileName() != "" {
			n, _ := io.Copy(io.Discard, p)
			f.files[p.FormName()] = append(f.files[p.FormName()], n)
			continue
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return nil, &badRequest{fmt.Sprintf("could not read form field: %v", err), "invalid_multipart"}
		}
		f.fields[p.FormName()] = string(v)
	}
}

// transcriptionUsage is either usage shape; the unused half is omitted.
type transcriptionUsage struct {
	Type              string            `json:"type"`
	InputTokens       int64             `json:"input_tokens,omitempty"`
	InputTokenDetails *audioInputDetail `json:"input_token_details,omitempty"`
	OutputTokens      int64             `json:"output_tokens,omitempty"`
	TotalTokens       int64             `json:"total_tokens,omitempty"`
	Seconds           json.Number       `json:"seconds,omitempty"`
}

type audioInputDetail struct {
	TextTokens  int64 `json:"text_tokens"`
	AudioTokens int64 `json:"audio_tokens"`
}

type transcriptionJSON struct {
	Task     string              `json:"task,omitempty"`
	Language string              `json:"language,omitempty"`
	Duration json.Number         `json:"duration,omitempty"`
	Text     string              `json:"text"`
	Segments *[]struct{}         `json:"segments,omitempty"`
	Usage    *transcriptionUsage `json:"usage,omitempty"`
}

type transcriptPlan struct {
	translate, stream bool
	format, text      string
	words             int
	durationMs        int64
	usage             *transcriptionUsage
}

func newTranscriptPlan(r *http.Request, body []byte, o overrides) (*transcriptPlan, error) {
	f, err := readForm(r, body)
	if err != nil {
		return nil, err
	}
	model := f.fields["model"]
	sizes := f.files["file"]
	switch {
	case model == "":
		return nil, &badRequest{"you must provide a model parameter", "missing_required_parameter"}
	case len(sizes) == 0:
		return nil, &badRequest{"you must provide a file parameter", "missing_required_parameter"}
	}
	p := &transcriptPlan{
		translate: strings.HasSuffix(r.URL.Path, "/translations"),
		format:    cmpOr(f.fields["response_format"], "json"),
		words:     DefaultCompletionWords,
	}
	if !strings.Contains(" json verbose_json text srt vtt ", " "+p.format+" ") {
		return nil, &badRequest{fmt.Sprintf("Invalid response_format %q", p.format), "invalid_value"}
	}
	if o.completion >= 0 {
		p.words = int(o.completion)
	}
	p.text = ReplyText(p.words)
	fileBytes := sizes[len(sizes)-1]
	p.durationMs = fileBytes
	whisper := strings.HasPrefix(model, "whisper")
	p.stream = !whisper && !p.translate && strings.EqualFold(strings.TrimSpace(f.fields["stream"]), "true")
	switch {
	case p.translate:
	case whisper:
		p.usage = &transcriptionUsage{Type: "duration", Seconds: p.seconds()}
	default:
		text := (int64(len(f.fields["prompt"])) + 3) / 4
		audio := (fileBytes + 99) / 100
		p.usage = &transcriptionUsage{Type: "tokens", InputTokens: text + audio,
			InputTokenDetails: &audioInputDetail{TextTokens: text, AudioTokens: audio},
			OutputTokens:      int64(p.words), TotalTokens: text + audio + int64(p.words)}
	}
	return p, nil
}

// seconds is the duration as an exact decimal: "1.234", "2.5", "3".
func (p *transcriptPlan) seconds() json.Number {
	s := strconv.FormatInt(p.durationMs/1000, 10)
	if ms := p.durationMs % 1000; ms != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%03d", ms), "0")
	}
	return json.Number(s)
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (s *Server) transcription(w http.ResponseWriter, r *http.Request, body []byte) {
	o, ok := mediaStart(w, r)
	if !ok {
		return
	}
	p, err := newTranscriptPlan(r, body, o)
	if err != nil {
		writeBadRequest(w, err, o.gzip)
		return
	}
	if p.stream {
		s.streamTranscript(w, r, p, o)
		return
	}
	if b, ok := p.plainText(); ok {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		writeMaybeGzip(w, http.StatusOK, b, o.gzip)
		return
	}
	out := transcriptionJSON{Text: p.text, Usage: p.usage}
	if p.format == "verbose_json" {
		out.Task, out.Language, out.Duration, out.Segments = "transcribe", "english", p.seconds(), &[]struct{}{}
		if p.translate {
			out.Task = "translate"
		}
	}
	writeJSON(w, out, o.gzip)
}

// plainText is the body of the text, srt and vtt formats: one cue that
// lasts the whole audio.
func (p *transcriptPlan) plainText() ([]byte, bool) {
	end := p.durationMs
	stamp := func(sep string) string {
		return fmt.Sprintf("%02d:%02d:%02d%s%03d", end/3600000, end/60000%60, end/1000%60, sep, end%1000)
	}
	switch p.format {
	case "text":
		return []byte(p.text + "\n"), true
	case "srt":
		return []byte("1\n00:00:00,000 --> " + stamp(",") + "\n" + p.text + "\n\n"), true
	case "vtt":
		return []byte("WEBVTT\n\n00:00:00.000 --> " + stamp(".") + "\n" + p.text + "\n\n"), true
	}
	return nil, false
}

func writeJSON(w http.ResponseWriter, v any, gz bool) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Errorf("mockllm: marshal %T: %w", v, err)) // static types: cannot happen
	}
	w.Header().Set("Content-Type", "application/json")
	writeMaybeGzip(w, http.StatusOK, b, gz)
}

// startStream writes the headers of an event stream and returns its writer.
func (s *Server) startStream(w http.ResponseWriter, r *http.Request, o overrides) *eventWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	if o.gzip {
		h.Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(http.StatusOK)
	ev := &eventWriter{ctx: r.Context(), w: w, rc: http.NewResponseController(w), delay: s.opts.ChunkDelay}
	if o.hasDelay {
		ev.delay = o.delay
	}
	if o.gzip {
		ev.gz = gzip.NewWriter(w) // zero ModTime in the header keeps it deterministic
		ev.w = ev.gz
	}
	return ev
}

func (s *Server) streamTranscript(w http.ResponseWriter, r *http.Request, p *transcriptPlan, o overrides) {
	ev := s.startStream(w, r, o)
	err := func() error {
		for i := range p.words {
			if err := ev.send(map[string]any{"type": "transcript.text.delta", "delta": word(i)}); err != nil {
				return err
			}
		}
		done := struct {
			Type  string              `json:"type"`
			Text  string              `json:"text"`
			Usage *transcriptionUsage `json:"usage"`
		}{"transcript.text.done", p.text, p.usage}
		if err := ev.send(done); err != nil {
			return err
		}
		return ev.end()
	}()
	if err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}

type speechRequest struct {
	Model          string  `json:"model"`
	Input          *string `json:"input"`
	Voice          any     `json:"voice"`
	Instructions   string  `json:"instructions"`
	ResponseFormat string  `json:"response_format"`
	StreamFormat   string  `json:"stream_format"`
}

var speechTypes = map[string]string{
	"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav", "pcm": "audio/pcm",
}

type speechUsage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
	TotalTokens  int64 `json:"total_tokens"`
}

func (s *Server) speech(w http.ResponseWriter, r *http.Request, body []byte) {
	o, ok := mediaStart(w, r)
	if !ok {
		return
	}
	var req speechRequest
	err := json.Unmarshal(body, &req)
	format := cmpOr(req.ResponseFormat, "mp3")
	switch {
	case err != nil:
		err = &badRequest{fmt.Sprintf("We could not parse the JSON body of your request: %v", err), "invalid_json"}
	case req.Model == "" || req.Input == nil || *req.Input == "" || req.Voice == nil:
		err = &badRequest{"model, input and voice are required", "missing_required_parameter"}
	case speechTypes[format] == "":
		err = &badRequest{fmt.Sprintf("Invalid response_format %q", format), "invalid_value"}
	case req.StreamFormat == "sse" && strings.HasPrefix(req.Model, "tts-1"):
		err = &badRequest{"Unsupported value: 'stream_format' does not support 'sse' with this model.", "unsupported_value"}
	}
	if err != nil {
		writeBadRequest(w, err, o.gzip)
		return
	}
	if req.StreamFormat != "sse" {
		w.Header().Set("Content-Type", speechTypes[format])
		writeMaybeGzip(w, http.StatusOK, FakeAudio, o.gzip)
		return
	}
	in := (int64(len(*req.Input)+len(req.Instructions)) + 3) / 4
	out := 2 * int64(utf8.RuneCountInString(*req.Input))
	ev := s.startStream(w, r, o)
	err = func() error {
		for _, half := range [][]byte{FakeAudio[:len(FakeAudio)/2], FakeAudio[len(FakeAudio)/2:]} {
			delta := map[string]string{"type": "speech.audio.delta", "audio": base64.StdEncoding.EncodeToString(half)}
			if err := ev.send(delta); err != nil {
				return err
			}
		}
		done := struct {
			Type  string      `json:"type"`
			Usage speechUsage `json:"usage"`
		}{"speech.audio.done", speechUsage{in, out, in + out}}
		if err := ev.send(done); err != nil {
			return err
		}
		return ev.end()
	}()
	if err != nil {
		s.log.Debug("stream ended early", "err", err)
	}
}
