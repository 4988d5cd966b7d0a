package dialect

import (
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestOpenAISpeechFixtures(t *testing.T) { runMediaFixtures(t, OpenAISpeech()) }

func newBenchRand() *rand.Rand { return rand.New(rand.NewPCG(1, 1)) }

func TestOpenAISpeechParseRequest(t *testing.T) {
	long := strings.Repeat("ü", MaxEstimateText) // twice the cap in bytes
	tests := []struct {
		name string
		body string
		want Request
	}{
		{"tts-1", `{"model":"tts-1","input":"The quick brown fox.","voice":"alloy"}`,
			Request{Model: "tts-1", Prompt: "The quick brown fox.", PromptBytes: 20, InputCharacters: 20}},
		{"code points, not bytes", `{"model":"tts-1","input":"Grüße, 世界 😀"}`,
			Request{Model: "tts-1", Prompt: "Grüße, 世界 😀", PromptBytes: 20, InputCharacters: 11}},
		{"escapes", `{"model":"tts-1","input":"a\nb \"c\" \u00e9 \ud83d\ude00 \ud800"}`,
			Request{Model: "tts-1", Prompt: "a\nb \"c\" é 😀 \uFFFD", PromptBytes: 19, InputCharacters: 13}},
		{"sse with instructions", `{"model":"gpt-4o-mini-tts","input":"Hi","instructions":"Speak warmly.","stream_format":"sse"}`,
			Request{Model: "gpt-4o-mini-tts", Stream: true, IncludeUsage: true, Prompt: "Hi", PromptBytes: 15, InputCharacters: 2}},
		{"audio stream format", `{"model":"gpt-4o-mini-tts","input":"Hi","stream_format":"audio"}`,
			Request{Model: "gpt-4o-mini-tts", Prompt: "Hi", PromptBytes: 2, InputCharacters: 2}},
		{"long input", `{"model":"tts-1","input":"` + long + `"}`,
			Request{Model: "tts-1", Prompt: long[:MaxEstimateText], PromptBytes: 2 * MaxEstimateText, InputCharacters: MaxEstimateText}},
		{"last key wins", `{"input":"a","model":"tts-1","input":"bc"}`,
			Request{Model: "tts-1", Prompt: "bc", PromptBytes: 2, InputCharacters: 2}},
		{"no input", `{"model":"tts-1","input":null}`, Request{Model: "tts-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, newBody, err := OpenAISpeech().ParseRequest([]byte(tt.body), RequestOptions{InjectStreamUsage: true})
			if err != nil || newBody != nil {
				t.Fatalf("err %v, new body %q", err, newBody)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	for body, want := range map[string]reason.Reason{``: reason.MalformedJSON, `{"input":`: reason.MalformedJSON, `["x"]`: reason.UnexpectedShape} {
		if _, _, err := OpenAISpeech().ParseRequest([]byte(body), RequestOptions{}); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", body, err, want)
		}
	}
}

// TestJSONStringRunes counts code points as Python's json and len() do:
// a surrogate pair is one, and a lone surrogate is one, whatever follows it.
func TestJSONStringRunes(t *testing.T) {
	tests := []struct {
		raw  string
		want int64
	}{
		{`""`, 0},
		{`"abc"`, 3},
		{`"\u00e9\n\t\\\"\/"`, 6},
		{`"\ud83d\ude00x"`, 2},
		{`"\ud83dx"`, 2},
		{`"\ude00\ud83d"`, 2},
		{`"\ud83d\u0041"`, 2},
		{"\"\xff\xfe\"", 2},
		{`"世界"`, 2},
		{`42`, 0},
	}
	for _, tt := range tests {
		if got := jsonStringRunes(tt.raw); got != tt.want {
			t.Errorf("%s: %d code points, want %d", tt.raw, got, tt.want)
		}
	}
}

// TestOpenAISpeechAudioNotBuffered feeds 25 MB of audio: the decoder keeps
// none of it and reports nothing, not even an error.
func TestOpenAISpeechAudioNotBuffered(t *testing.T) {
	chunk := make([]byte, 1<<20)
	d := OpenAISpeech().NewDecoder(Response{Status: 200, ContentType: "audio/mpeg", ContentEncoding: "gzip"}, 1<<10)
	allocs := testing.AllocsPerRun(1, func() {
		for range 25 {
			if err := d.Feed(chunk); err != nil {
				t.Fatal(err)
			}
		}
	})
	r := d.Finish(true)
	if allocs != 0 || r.Err != nil || r.Usage.Reported() || r.StreamedTextBytes != 0 {
		t.Fatalf("%v allocations, result %+v", allocs, r)
	}
}

func TestOpenAISpeechReasons(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		complete                bool
		want                    reason.Reason
	}{
		{"json without error", "application/json", `{"ok":true}`, true, reason.NoUsage},
		{"done without usage", "text/event-stream", "data: {\"type\":\"speech.audio.done\"}\n\n", false, reason.NoUsage},
		{"done with empty usage", "text/event-stream", "data: {\"type\":\"speech.audio.done\",\"usage\":{}}\n\n", true, reason.UnexpectedShape},
		{"negative", "text/event-stream", "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":-1,\"output_tokens\":3}}\n\n", true, reason.InconsistentUsage},
		{"deltas, complete", "text/event-stream", "data: {\"type\":\"speech.audio.delta\",\"audio\":\"AAAA\"}\n\n", true, reason.NoUsage},
		{"error type", "text/event-stream", "data: {\"type\":\"error\",\"error\":{\"code\":\"server_error\"}}\n\n", true, reason.ProviderError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := OpenAISpeech().NewDecoder(Response{Status: 200, ContentType: tt.contentType}, 0)
			_ = d.Feed([]byte(tt.body))
			if got := reason.Of(d.Finish(tt.complete).Err); got != tt.want {
				t.Fatalf("reason %q, want %q", got, tt.want)
			}
		})
	}
}

// BenchmarkOpenAISpeechSSE streams 2 MB of base64 audio deltas: the elider
// drops them as they pass, so the cost is the search for their ends.
func BenchmarkOpenAISpeechSSE(b *testing.B) {
	audio := strings.Repeat("SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjU4Ljc2LjEwMAAAAAAAAAAAAAAA", 128) // 7 KB
	var body []byte
	for range 300 {
		body = append(body, "data: {\"type\":\"speech.audio.delta\",\"audio\":\""+audio+"\"}\n\n"...)
	}
	body = append(body, "data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":14,\"output_tokens\":101,\"total_tokens\":115}}\n\n"...)
	chunks := mediaChunks(body, 32<<10, newBenchRand())
	resp := Response{Status: 200, ContentType: "text/event-stream"}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d := OpenAISpeech().NewDecoder(resp, 64<<10)
		for _, c := range chunks {
			_ = d.Feed(c)
		}
		if r := d.Finish(true); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}
