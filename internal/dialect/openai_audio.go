package dialect

import (
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math"
	"strings"

	"github.com/tokenmeter/tokenmeter/internal/framing"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// OpenAIAudio is OpenAI's speech-to-text API: transcriptions (POST
// /v1/audio/transcriptions) and translations (POST /v1/audio/translations).
// The request is multipart/form-data: an audio file of up to 25 MB and
// form fields, of which metering reads model, stream and prompt.
//
// The response reports usage in one of two shapes:
//
//   - Token-billed models (gpt-4o-transcribe, gpt-4o-mini-transcribe):
//     usage {"type":"tokens", input_tokens, input_token_details {text_tokens,
//     audio_tokens}, output_tokens, total_tokens}. input_tokens includes
//     both details, which split it into Input (the prompt text) and
//     AudioInput. output_tokens is the transcript: Output. See splitMedia
//     for details that are absent or disagree.
//   - Duration-billed models (whisper-1): usage {"type":"duration",
//     "seconds": N}, or, in older verbose_json responses without usage, the
//     top-level "duration". Units[AudioMillis] is the duration exactly,
//     rounded up to the millisecond.
//
// OpenAI bills whisper-1 per second, rounding up: pricing must round
// AudioMillis up to whole seconds before it multiplies; this dialect keeps
// the milliseconds so that no rule of pricing is baked into usage.
//
// response_format text, srt and vtt answer plain text without usage: the
// exchange estimates from the text, which the decoder counts. A stream
// (stream=true; whisper-1 ignores it) is server-sent events:
// transcript.text.delta carries text, and transcript.text.done the usage.
func OpenAIAudio() Dialect { return openAIAudio{} }

type openAIAudio struct{}

const openAIAudioName = "openai_audio"

func (openAIAudio) Name() string     { return openAIAudioName }
func (openAIAudio) Provider() string { return "openai" }

// ResponseHeaders is empty: the body carries everything this dialect reads.
func (openAIAudio) ResponseHeaders() []string { return nil }

// ParseRequest reads the form fields. response_format is not read: the
// decoder follows the response's Content-Type, which is what arrives.
// Where the form breaks off, the fields before the break still count, and
// the error says why.
func (openAIAudio) ParseRequest(body []byte, _ RequestOptions) (Request, []byte, error) {
	var req Request
	err := formFields(body, func(name string, v []byte) {
		switch name {
		case "model":
			req.Model = string(v)
		case "stream":
			req.Stream = formBool(v)
		case "prompt":
			req.Prompt, req.PromptBytes = cutUTF8(bstr(v), MaxEstimateText), int64(len(v))
		}
	})
	// The done event of every stream carries the usage, unasked.
	req.IncludeUsage = req.Stream
	if err != nil {
		return req, nil, fmt.Errorf("%s: request body: %w", openAIAudioName, err)
	}
	return req, nil, nil
}

// ErrorBody implements Dialect.
func (openAIAudio) ErrorBody(r Refusal) ErrorResponse { return OpenAIRefusal(r) }

// audioStreamKeep is the head kept of each string in a transcription
// stream: far more than any delta, but it bounds the done event, which
// repeats the whole transcript beside the usage.
const audioStreamKeep = 64 << 10

func (openAIAudio) NewDecoder(resp Response, maxBuffer int) Decoder {
	if maxBuffer <= 0 {
		maxBuffer = defaultMaxBuffer
	}
	var d Decoder
	switch {
	case isEventStream(resp.ContentType):
		s := &audioSSE{mediaStream: newMediaStream(openAIAudioName, maxBuffer, audioStreamKeep)}
		s.emit = s.onEvent
		d = s
	case isJSONMediaType(resp.ContentType):
		// The transcript is kept as far as MaxEstimateText, for estimates.
		d = &audioJSON{newCompactBody(openAIAudioName, maxBuffer, MaxEstimateText)}
	default:
		d = &audioText{}
	}
	return WithEncoding(resp.ContentEncoding, d, maxBuffer)
}

// isJSONMediaType reports whether a Content-Type is JSON (application/json
// or any +json type), or absent, when JSON is what the API documents.
func isJSONMediaType(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// The fields of a transcription's token usage, by index into tokenFields.
const (
	auInputTokens = iota
	auOutputTokens
	auTotalTokens
	auTextTokens
	auAudioTokens
)

var audioUsagePaths = []string{
	"input_tokens", "output_tokens", "total_tokens",
	"input_token_details.text_tokens", "input_token_details.audio_tokens",
}

// audioUsage normalises a usage object of either shape. has is false when
// it holds neither token counts nor a duration.
func audioUsage(obj string) (u usage.Usage, has bool, err error) {
	t := readTokenFields(obj, audioUsagePaths)
	t.raw(&u)
	ok := true
	if t.has&(1<<auInputTokens|1<<auOutputTokens) != 0 {
		has = true
		in, hasIn := t.get(auInputTokens)
		text, hasText := t.get(auTextTokens)
		audio, hasAudio := t.get(auAudioTokens)
		// Without details, the input is taken as audio: it is almost all
		// audio (the text is an optional prompt), and pricing it as text
		// would undercharge it by more than half.
		sp := splitMedia(in, audio, text, hasIn, hasAudio, hasText, true)
		sp.set(&u, usage.Input, usage.AudioInput)
		ok = sp.ok
		if out, hasOut := t.get(auOutputTokens); hasOut {
			u.Set(usage.Output, max(out, 0))
			ok = ok && out >= 0
		}
	}
	if ms, okSec := secondsToMillis(mediaMember(obj, "seconds")); okSec {
		has = true
		u.SetUnit(usage.AudioMillis, ms)
		u.Raw = append(u.Raw, usage.Field{Name: "seconds_ms", Value: ms})
	}
	if has && !ok {
		err = fmt.Errorf("%s: usage input_tokens=%d text_tokens=%d audio_tokens=%d output_tokens=%d: %w", openAIAudioName,
			t.n[auInputTokens], t.n[auTextTokens], t.n[auAudioTokens], t.n[auOutputTokens], reason.InconsistentUsage)
	}
	return u, has, err
}

// secondsToMillis reads raw, a JSON number of seconds, as whole
// milliseconds rounded up, in exact decimal arithmetic: 1.0001 seconds is
// 1001 ms, where float64 would give 1000 or 1001 depending on the digits.
// It reports false for anything but a non-negative JSON number whose
// milliseconds fit an int64.
func secondsToMillis(raw string) (int64, bool) {
	neg := strings.HasPrefix(raw, "-")
	intPart, frac, exp, ok := splitJSONNumber(strings.TrimPrefix(raw, "-"))
	if !ok {
		return 0, false
	}
	digit := func(k int) int64 {
		if k < len(intPart) {
			return int64(intPart[k] - '0')
		}
		return int64(frac[k-len(intPart)] - '0')
	}
	total := len(intPart) + len(frac)
	nonzero := false
	for k := range total {
		nonzero = nonzero || digit(k) != 0
	}
	switch {
	case !nonzero:
		return 0, true
	case neg:
		return 0, false
	}
	// The digits before the millisecond value's decimal point; exp is
	// capped, so this cannot overflow an int.
	point := len(intPart) + exp + 3
	var n int64
	for k := 0; k < point; k++ {
		var d int64
		if k < total {
			d = digit(k)
		}
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	for k := max(point, 0); k < total; k++ {
		if digit(k) != 0 {
			if n == math.MaxInt64 {
				return 0, false
			}
			return n + 1, true
		}
	}
	return n, true
}

// splitJSONNumber splits an unsigned JSON number into its integer digits,
// fraction digits and exponent, capped at ±10⁶ (far past any int64).
func splitJSONNumber(s string) (intPart, frac string, exp int, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || (s[0] == '0' && i > 1) {
		return "", "", 0, false
	}
	intPart = s[:i]
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return "", "", 0, false
		}
		frac, i = s[i+1:j], j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		sign := 1
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			if s[i] == '-' {
				sign = -1
			}
			i++
		}
		start := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			exp = min(exp*10+int(s[i]-'0'), 1_000_000)
		}
		if i == start {
			return "", "", 0, false
		}
		exp *= sign
	}
	return intPart, frac, exp, i == len(s)
}

// audioJSON decodes a whole transcription or translation: json,
// verbose_json or diarized_json.
type audioJSON struct{ compactBody }

// Finish reports, in order of precedence: too_large, malformed_json (or
// truncated when the body was cut), unexpected_shape, then the usage (with
// inconsistent_usage when it does not add up), else verbose_json's
// duration, else provider_error, else no_usage.
func (d *audioJSON) Finish(complete bool) Result {
	s, err := d.object(complete)
	if err != nil {
		return Result{Err: err}
	}
	var text, usageRaw, duration, errRaw string
	m := newMembers(s)
	for k, v, ok := m.next(); ok; k, v, ok = m.next() {
		switch k {
		case "text":
			text = v
		case "usage":
			usageRaw = v
		case "duration":
			duration = v
		case "error":
			errRaw = v
		}
	}
	var t TextBuffer
	t.WriteJSONString(text)
	res := Result{Text: t.Bytes(), StreamedTextBytes: t.Total()}
	u, hasUsage, uerr := audioUsage(usageRaw)
	ms, hasDuration := secondsToMillis(duration)
	switch {
	case hasUsage:
		res.Usage, res.Err = u, uerr
	case hasDuration:
		res.Usage.SetUnit(usage.AudioMillis, ms)
		res.Usage.Raw = append(res.Usage.Raw, usage.Field{Name: "duration_ms", Value: ms})
	case mediaErrorCode(errRaw) != "":
		res.Err = fmt.Errorf("%s: provider error %q: %w", openAIAudioName, mediaErrorCode(errRaw), reason.ProviderError)
	case isObject(usageRaw):
		res.Err = fmt.Errorf("%s: usage has no counts: %w", openAIAudioName, reason.UnexpectedShape)
	default:
		res.Err = fmt.Errorf("%s: response has no usage: %w", openAIAudioName, reason.NoUsage)
	}
	return res
}

// audioText counts a plain-text transcript (response_format text, srt or
// vtt), which carries no usage, for the exchange's estimate. Subtitle
// formats count their cue timings too: an estimate, not a bill.
type audioText struct{ text TextBuffer }

func (d *audioText) Feed(chunk []byte) error {
	d.text.WriteString(bstr(chunk))
	return nil
}

func (d *audioText) Finish(bool) Result {
	return Result{Text: d.text.Bytes(), StreamedTextBytes: d.text.Total(),
		Err: fmt.Errorf("%s: a plain-text transcript carries no usage: %w", openAIAudioName, reason.NoUsage)}
}

// audioSSE decodes a streamed transcription.
type audioSSE struct {
	mediaStream
	text     TextBuffer
	usage    usage.Usage
	usageErr error
	hasUsage bool
	done     bool // transcript.text.done was seen
}

func (d *audioSSE) onEvent(ev framing.Event) error {
	obj, typ, ok := d.object(ev)
	if !ok {
		return nil
	}
	switch typ {
	case "transcript.text.delta":
		d.text.WriteJSONString(mediaMember(obj, "delta"))
	case "transcript.text.done":
		d.done = true
		if raw := mediaMember(obj, "usage"); isObject(raw) {
			if u, has, err := audioUsage(raw); has {
				d.usage, d.usageErr, d.hasUsage = u, err, true
			} else {
				d.badShape++
			}
		}
	}
	return nil
}

// Finish reports the usage when the done event brought it; otherwise why
// not, as mediaStream.missing orders the reasons. The stream counts as cut
// when neither the done event nor [DONE] came and either the body did not
// complete or it ended mid-event.
func (d *audioSSE) Finish(complete bool) Result {
	res := Result{Text: d.text.Bytes(), StreamedTextBytes: d.text.Total()}
	if d.hasUsage {
		res.Usage, res.Err = d.usage, d.usageErr
		return res
	}
	cut := !d.done && !d.sawDone && (!complete || d.sse.Pending())
	res.Err = d.missing(cut)
	return res
}
