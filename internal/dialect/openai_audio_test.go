package dialect

import (
	"bytes"
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/big"
	"mime/multipart"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func TestOpenAIAudioFixtures(t *testing.T) { runMediaFixtures(t, OpenAIAudio()) }

// audioForm writes a form as the OpenAI SDKs do: fields, then the file.
func audioForm(t testing.TB, fields ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	fw, _ := w.CreateFormFile("file", "speech.mp3")
	_, _ = fw.Write([]byte("ID3\x04\x00\x00\x00\x00\r\n--\r\n"))
	_ = w.Close()
	return buf.Bytes()
}

func TestOpenAIAudioParseRequest(t *testing.T) {
	long := strings.Repeat("word ", MaxEstimateText/5+1)
	tests := []struct {
		name string
		body []byte
		want Request
	}{
		{"whisper", audioForm(t, "model", "whisper-1", "response_format", "verbose_json"), Request{Model: "whisper-1"}},
		{"stream", audioForm(t, "model", "gpt-4o-transcribe", "stream", "true", "response_format", "json"),
			Request{Model: "gpt-4o-transcribe", Stream: true, IncludeUsage: true}},
		{"stream False", audioForm(t, "model", "m", "stream", " False "), Request{Model: "m"}},
		{"prompt", audioForm(t, "model", "m", "prompt", "Café names: ZyntriQix."),
			Request{Model: "m", Prompt: "Café names: ZyntriQix.", PromptBytes: 23}},
		{"long prompt", audioForm(t, "model", "m", "prompt", long),
			Request{Model: "m", Prompt: long[:MaxEstimateText], PromptBytes: int64(len(long))}},
		{"last field wins", audioForm(t, "model", "a", "stream", "true", "model", "b", "stream", "false"), Request{Model: "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, newBody, err := OpenAIAudio().ParseRequest(tt.body, RequestOptions{InjectStreamUsage: true})
			if err != nil || newBody != nil {
				t.Fatalf("err %v, new body %d bytes", err, len(newBody))
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOpenAIAudioParseRequestErrors(t *testing.T) {
	whole := audioForm(t, "model", "whisper-1", "stream", "true")
	cut := whole[:bytes.Index(whole, []byte(`name="stream"`))+20]
	req, _, err := OpenAIAudio().ParseRequest(cut, RequestOptions{})
	if !errors.Is(err, reason.UnexpectedShape) || req.Model != "whisper-1" || req.Stream {
		t.Fatalf("cut form: %+v %v; want the model read and unexpected_shape", req, err)
	}
	for _, body := range []string{"", `{"model":"whisper-1"}`, "--\r\n"} {
		if _, _, err := OpenAIAudio().ParseRequest([]byte(body), RequestOptions{}); !errors.Is(err, reason.UnexpectedShape) {
			t.Errorf("%q: %v, want unexpected_shape", body, err)
		}
	}
}

func TestSecondsToMillis(t *testing.T) {
	tests := []struct {
		raw  string
		want int64
		ok   bool
	}{
		{"9", 9000, true},
		{"0", 0, true},
		{"-0.0", 0, true},
		{"0.001", 1, true},
		{"0.0001", 1, true},
		{"1.0001", 1001, true},
		{"12.3450", 12345, true},
		{"8.470000267028809", 8471, true},
		{"1e3", 1000000, true},
		{"1.5E-3", 2, true},
		{"25E-1", 2500, true},
		{"1e-999999999", 1, true},
		{"0e999999999", 0, true},
		{"9223372036854775.807", 9223372036854775807, true},
		{"9223372036854775.8071", 0, false},
		{"9223372036854776", 0, false},
		{"1e999999999", 0, false},
		{"-1", 0, false},
		{"", 0, false},
		{"01", 0, false},
		{"1.", 0, false},
		{".5", 0, false},
		{"1e", 0, false},
		{"1e+", 0, false},
		{`"9"`, 0, false},
		{"null", 0, false},
		{"1 ", 0, false},
	}
	for _, tt := range tests {
		got, ok := secondsToMillis(tt.raw)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%q: got %d %v, want %d %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzSecondsToMillis(f *testing.F) {
	for _, s := range []string{"9", "8.470000267028809", "1.5E-3", "-0", "9223372036854775.807", "1e18", "0.000e5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := secondsToMillis(raw)
		r := gjson.Parse(raw)
		valid := gjson.Valid(raw) && r.Type == gjson.Number && r.Raw == raw
		if ok && !valid {
			t.Fatalf("%q accepted but is not a JSON number", raw)
		}
		if i := strings.IndexAny(raw, "eE"); !valid || i >= 0 && len(strings.TrimLeft(raw[i+1:], "+-")) > 4 {
			return // big.Rat would spend its time and memory on the exponent
		}
		want, ok2 := new(big.Rat).SetString(raw)
		if !ok2 {
			t.Fatalf("big.Rat refuses %q", raw)
		}
		ms := new(big.Rat).Mul(want, big.NewRat(1000, 1))
		q, m := new(big.Int).QuoRem(ms.Num(), ms.Denom(), new(big.Int))
		if m.Sign() > 0 {
			q.Add(q, big.NewInt(1))
		}
		switch {
		case want.Sign() < 0:
			if ok {
				t.Fatalf("%q: negative accepted as %d", raw, got)
			}
		case !q.IsInt64():
			if ok {
				t.Fatalf("%q: overflow accepted as %d", raw, got)
			}
		case !ok || got != q.Int64():
			t.Fatalf("%q: got %d %v, want %s", raw, got, ok, q)
		}
	})
}

func TestOpenAIAudioReasons(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		complete                bool
		want                    reason.Reason
	}{
		{"json array", "application/json", `[]`, true, reason.UnexpectedShape},
		{"json malformed", "application/json", `{"text":`, true, reason.MalformedJSON},
		{"usage without counts", "application/json", `{"text":"x","usage":{"type":"tokens"}}`, true, reason.UnexpectedShape},
		{"negative seconds", "application/json", `{"text":"x","usage":{"type":"duration","seconds":-1}}`, true, reason.UnexpectedShape},
		{"usage beats error", "application/json", `{"error":{"code":"x"},"usage":{"seconds":1}}`, true, ""},
		{"sse done without usage", "text/event-stream", "data: {\"type\":\"transcript.text.done\",\"text\":\"x\"}\n\n", false, reason.NoUsage},
		{"sse done with empty usage", "text/event-stream", "data: {\"type\":\"transcript.text.done\",\"usage\":{}}\n\n", true, reason.UnexpectedShape},
		{"sse malformed", "text/event-stream", "data: nope\n\n", true, reason.MalformedJSON},
		{"sse [DONE] only, cancelled", "text/event-stream", "data: [DONE]\n\n", false, reason.NoUsage},
		{"sse empty, cancelled", "text/event-stream", "", false, reason.Truncated},
		{"named error event", "text/event-stream", "event: error\ndata: {\"message\":\"x\"}\n\n", true, reason.ProviderError},
		{"vtt", "text/vtt", "WEBVTT\n", true, reason.NoUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := OpenAIAudio().NewDecoder(Response{Status: 200, ContentType: tt.contentType}, 0)
			_ = d.Feed([]byte(tt.body))
			if got := reason.Of(d.Finish(tt.complete).Err); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

// TestOpenAIAudioStreamDoneEventTooLarge shows the done event's transcript,
// however long, does not cost the usage beside it.
func TestOpenAIAudioStreamDoneEventTooLarge(t *testing.T) {
	text := strings.Repeat("word ", 40000) // 200 KB
	body := "data: {\"type\":\"transcript.text.delta\",\"delta\":\"" + text + "\"}\n\n" +
		"data: {\"type\":\"transcript.text.done\",\"text\":\"" + text + "\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":9,\"output_tokens\":7}}\n\n"
	d := OpenAIAudio().NewDecoder(Response{Status: 200, ContentType: "text/event-stream"}, 128<<10)
	_ = d.Feed([]byte(body))
	r := d.Finish(true)
	if r.Err != nil || r.Usage.Get(usage.AudioInput) != 9 || r.StreamedTextBytes != audioStreamKeep {
		t.Fatalf("got %+v", mediaOutcomeOf(r))
	}
}

func FuzzOpenAIAudioSSE(f *testing.F) {
	f.Add([]byte("data: {\"type\":\"transcript.text.delta\",\"delta\":\"a\\n\"}\n\n"+
		"data: {\"type\":\"transcript.text.done\",\"text\":\"a\\n\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":14,"+
		"\"input_token_details\":{\"text_tokens\":0,\"audio_tokens\":14},\"output_tokens\":8,\"total_tokens\":22}}\n\n"), uint(40))
	f.Add([]byte("data: {\"type\":\"transcript.text.done\",\"usage\":{\"type\":\"duration\",\"seconds\":1.0005}}\r\n\r\n"), uint(3))
	f.Add([]byte("event: error\ndata: {\"error\":{\"code\":\"x\"}}\n\ndata: {\"ty"), uint(20))
	f.Add([]byte("data: {\"type\":\"transcript.text.done\",\"usage\":{\"input_tokens\":1e3,\"output_tokens\":-1,"+
		"\"input_token_details\":{\"audio_tokens\":2000}}}\r\rdata: [DONE]\r"), uint(7))
	f.Fuzz(func(t *testing.T, body []byte, split uint) {
		at := int(split % uint(len(body)+1))
		decode := func(chunks ...[]byte) mediaOutcome {
			d := OpenAIAudio().NewDecoder(Response{Status: 200, ContentType: "text/event-stream"}, 1<<10)
			for _, c := range chunks {
				_ = d.Feed(c)
			}
			return mediaOutcomeOf(d.Finish(true))
		}
		whole := decode(body)
		if parts := decode(body[:at], body[at:]); !reflect.DeepEqual(whole, parts) {
			t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, whole, parts)
		}
		for c, n := range whole.Tokens {
			if n < 0 {
				t.Fatalf("negative %s: %d", c, n)
			}
		}
		for u, n := range whole.Units {
			if n < 0 {
				t.Fatalf("negative %s: %d", u, n)
			}
		}
	})
}

func BenchmarkOpenAIAudioSSE(b *testing.B) {
	var body []byte
	for range 500 {
		body = append(body, "data: {\"type\":\"transcript.text.delta\",\"delta\":\" word\",\"logprobs\":[]}\n\n"...)
	}
	body = append(body, "data: {\"type\":\"transcript.text.done\",\"text\":\"...\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":14,"+
		"\"input_token_details\":{\"text_tokens\":0,\"audio_tokens\":14},\"output_tokens\":500,\"total_tokens\":514}}\n\n"...)
	chunks := mediaChunks(body, 200, newBenchRand())
	resp := Response{Status: 200, ContentType: "text/event-stream"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d := OpenAIAudio().NewDecoder(resp, 0)
		for _, c := range chunks {
			_ = d.Feed(c)
		}
		if r := d.Finish(true); r.Err != nil || r.StreamedTextBytes != 2500 {
			b.Fatalf("%+v", mediaOutcomeOf(r))
		}
	}
}
