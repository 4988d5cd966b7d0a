package dialect

import (
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strings"
	"unicode/utf8"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// OpenAISpeech is OpenAI's text-to-speech API (POST /v1/audio/speech). The
// request is JSON: model, input (the text to speak), voice, instructions,
// response_format and stream_format.
//
// tts-1 and tts-1-hd bill per character of input, which only the request
// knows: Request.InputCharacters counts its Unicode code points, as the
// provider's Python len() would. The response is then the audio itself,
// which the decoder passes over without reading or counting.
//
// gpt-4o-mini-tts bills tokens. With stream_format "sse" the response is
// server-sent events, speech.audio.delta carrying base64 audio and
// speech.audio.done the usage {input_tokens, output_tokens, total_tokens}:
// input_tokens are the text (input and instructions), Input; output_tokens
// are the audio generated, AudioOutput. Its plain audio response carries
// no usage at all.
func OpenAISpeech() Dialect { return openAISpeech{} }

type openAISpeech struct{}

const openAISpeechName = "openai_speech"

func (openAISpeech) Name() string     { return openAISpeechName }
func (openAISpeech) Provider() string { return "openai" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (openAISpeech) ResponseHeaders() []string { return nil }

// ParseRequest parses leniently: see Dialect.ParseRequest and lenient.go.
func (x openAISpeech) ParseRequest(body []byte, opts RequestOptions) (Request, []byte, error) {
	return parseLeniently(body, opts, x.parseRequest)
}

// ErrorBody implements Dialect.
func (openAISpeech) ErrorBody(r Refusal) ErrorResponse { return OpenAIRefusal(r) }

// parseRequest reads the request body; where a key repeats the last one
// counts. The prompt is the input text; its bytes also count the
// instructions, which are input tokens too.
func (openAISpeech) parseRequest(body []byte, _ RequestOptions) (Request, []byte, error) {
	s, err := requestObject(openAISpeechName, body)
	if err != nil {
		return Request{}, nil, err
	}
	var model, input, instructions, streamFormat string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "model":
			model = v
		case "input":
			input = v
		case "instructions":
			instructions = v
		case "stream_format":
			streamFormat = v
		}
	}
	var req Request
	req.Model, _ = stringValue(model)
	req.Stream = jsonStringView(streamFormat) == "sse"
	// The done event of every stream carries the usage, unasked.
	req.IncludeUsage = req.Stream
	req.Prompt, req.PromptBytes = jsonTextPrompt(input)
	req.PromptBytes += stringBytes(instructions)
	req.InputCharacters = jsonStringRunes(input)
	return req, nil, nil
}

// jsonStringRunes counts the code points of a raw JSON string's value
// without decoding it: an escape is one code point, a surrogate pair
// escape one, and each invalid UTF-8 byte one (the U+FFFD a decoder puts
// in its place). 0 when raw is not a string.
func jsonStringRunes(raw string) int64 {
	if len(raw) < 2 || raw[0] != '"' {
		return 0
	}
	s := raw[1 : len(raw)-1]
	var n int64
	for len(s) > 0 {
		i := strings.IndexByte(s, '\\')
		if i < 0 {
			return n + int64(utf8.RuneCountInString(s))
		}
		n += int64(utf8.RuneCountInString(s[:i])) + 1
		s = s[i:]
		switch {
		case len(s) >= 12 && s[1] == 'u' && s[6] == '\\' && s[7] == 'u' && isSurrogatePair(s[2:6], s[8:12]):
			s = s[12:]
		case len(s) >= 6 && s[1] == 'u':
			s = s[6:]
		default:
			s = s[min(2, len(s)):]
		}
	}
	return n
}

func isSurrogatePair(hi, lo string) bool {
	h, l := hexRune(hi), hexRune(lo)
	return h >= 0xD800 && h < 0xDC00 && l >= 0xDC00 && l < 0xE000
}

func (openAISpeech) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	var d Decoder
	switch {
	case isEventStream(resp.ContentType):
		s := &speechSSE{mediaStream: newMediaStream(openAISpeechName, maxBuffer, mediaKeepBytes)}
		s.emit = s.onEvent
		d = s
	case isJSONMediaType(resp.ContentType) && resp.ContentType != "":
		// Errors come as JSON; audio never does.
		d = &speechJSON{newCompactBody(openAISpeechName, maxBuffer, mediaKeepBytes)}
	default:
		return speechAudio{}
	}
	return WithEncoding(resp.ContentEncoding, d, maxBuffer)
}

// speechAudio passes over an audio body: its usage is the request's
// characters. It reads nothing, so it needs no decompression either.
type speechAudio struct{}

func (speechAudio) Feed([]byte) error  { return nil }
func (speechAudio) Finish(bool) Result { return Result{} }

// speechJSON reads a JSON answer, which is an error.
type speechJSON struct{ compactBody }

func (d *speechJSON) Finish(complete bool) Result {
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	if code := mediaErrorCode(mediaMember(s, "error")); code != "" {
		return Result{Err: fmt.Errorf("%s: provider error %q: %w", openAISpeechName, code, reason.ProviderError)}
	}
	return Result{Err: fmt.Errorf("%s: a JSON response carries no usage: %w", openAISpeechName, reason.NoUsage)}
}

// The fields of a speech stream's usage, by index into tokenFields.
const (
	spInputTokens = iota
	spOutputTokens
	spTotalTokens
)

var speechUsagePaths = []string{"input_tokens", "output_tokens", "total_tokens"}

// speechSSE decodes a streamed speech response.
type speechSSE struct {
	mediaStream
	usage    tokenFields
	hasUsage bool
	done     bool // speech.audio.done was seen
}

func (d *speechSSE) onEvent(ev framing.Event) error {
	obj, typ, ok := d.object(ev)
	if !ok || typ != "speech.audio.done" {
		return nil
	}
	d.done = true
	if raw := mediaMember(obj, "usage"); isObject(raw) {
		t := readTokenFields(raw, speechUsagePaths)
		if t.has&(1<<spInputTokens|1<<spOutputTokens) != 0 {
			d.usage, d.hasUsage = t, true
		} else {
			d.badShape++
		}
	}
	return nil
}

// Finish reports the done event's usage, or why there is none, as
// mediaStream.missing orders the reasons. The stream counts as cut when
// neither the done event nor [DONE] came and either the body did not
// complete or it ended mid-event.
func (d *speechSSE) Finish(complete bool) Result {
	if !d.hasUsage {
		cut := !d.done && !d.sawDone && (!complete || d.sse.Pending())
		return Result{Err: d.missing(cut)}
	}
	var res Result
	t := &d.usage
	t.raw(&res.Usage)
	in, hasIn := t.get(spInputTokens)
	out, hasOut := t.get(spOutputTokens)
	if hasIn {
		res.Usage.Set(usage.Input, max(in, 0))
	}
	if hasOut {
		res.Usage.Set(usage.AudioOutput, max(out, 0))
	}
	if in < 0 || out < 0 {
		res.Err = fmt.Errorf("%s: usage input_tokens=%d output_tokens=%d: %w", openAISpeechName, in, out, reason.InconsistentUsage)
	}
	return res
}
