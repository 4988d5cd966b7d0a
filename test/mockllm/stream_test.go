package mockllm_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

var streamCases = []struct {
	name         string
	extra        string // extra request fields besides "stream":true
	headers      map[string]string
	includeUsage bool
	withChoices  bool
	words        int
	want         usage
}{
	{name: "no usage", words: 8},
	{name: "include_usage false", extra: `"stream_options":{"include_usage":false}`, words: 8},
	{name: "include_usage", extra: `"stream_options":{"include_usage":true}`, includeUsage: true, words: 8, want: mkUsage(defaultPrompt, 8, 0, 0)},
	{
		name: "usage with choices", extra: `"stream_options":{"include_usage":true}`,
		headers:      map[string]string{"X-Mock-Usage-With-Choices": "true"},
		includeUsage: true, withChoices: true, words: 8, want: mkUsage(defaultPrompt, 8, 0, 0),
	},
	{
		name: "usage with choices but usage not asked", headers: map[string]string{"X-Mock-Usage-With-Choices": "true"},
		words: 8,
	},
	{
		name: "overrides", extra: `"stream_options":{"include_usage":true}`,
		headers: map[string]string{
			"X-Mock-Prompt-Tokens": "1234", "X-Mock-Cached-Tokens": "1000",
			"X-Mock-Completion-Tokens": "3", "X-Mock-Reasoning-Tokens": "7",
		},
		includeUsage: true, words: 3, want: mkUsage(1234, 10, 1000, 7),
	},
	{
		name: "zero words", extra: `"stream_options":{"include_usage":true}`,
		headers:      map[string]string{"X-Mock-Completion-Tokens": "0"},
		includeUsage: true, words: 0, want: mkUsage(defaultPrompt, 0, 0, 0),
	},
	{
		name: "truncated by max_tokens", extra: `"stream_options":{"include_usage":true},"max_tokens":2`,
		includeUsage: true, words: 2, want: mkUsage(defaultPrompt, 2, 0, 0),
	},
}

func TestStream(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			extra := `"stream":true`
			if tc.extra != "" {
				extra += "," + tc.extra
			}
			r := post(t, base, chatBody(extra), tc.headers)
			if r.status != http.StatusOK || r.readErr != nil {
				t.Fatalf("status %d, read error %v", r.status, r.readErr)
			}
			if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type %q", ct)
			}
			events := sseData(t, r.body)
			wantEvents := 1 + tc.words + 1 + 1 // role, words, finish, [DONE]
			if tc.includeUsage && !tc.withChoices {
				wantEvents++
			}
			if len(events) != wantEvents {
				t.Fatalf("%d events, want %d:\n%s", len(events), wantEvents, r.body)
			}
			if events[len(events)-1] != "[DONE]" {
				t.Errorf("last event %q, want [DONE]", events[len(events)-1])
			}
			content, gotUsage := checkChunks(t, events[:len(events)-1], tc.includeUsage, tc.withChoices)
			if tc.includeUsage && (gotUsage == nil || *gotUsage != tc.want) {
				t.Errorf("usage %+v, want %+v", gotUsage, tc.want)
			}

			// The stream must tell the same story as the whole response.
			plain := post(t, base, chatBody(tc.extra), tc.headers)
			c := decode[completion](t, plain.body)
			if content != c.Choices[0].Message.Content {
				t.Errorf("stream content %q, non-stream %q", content, c.Choices[0].Message.Content)
			}
		})
	}
}

// checkChunks checks every JSON chunk's shape and returns the concatenated
// content and the usage seen, if any.
func checkChunks(t *testing.T, events []string, includeUsage, withChoices bool) (string, *usage) {
	t.Helper()
	var content strings.Builder
	var got *usage
	var id string
	for i, ev := range events {
		var keys map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev), &keys); err != nil {
			t.Fatalf("event %d %q: %v", i, ev, err)
		}
		raw, hasUsage := keys["usage"]
		if hasUsage != includeUsage {
			t.Errorf("event %d: usage key present=%v, want %v", i, hasUsage, includeUsage)
		}
		c := decode[chunk](t, []byte(ev))
		if i == 0 {
			id = c.ID
		}
		if c.ID != id || c.Object != "chat.completion.chunk" || c.Model != "gpt-4o-mini" {
			t.Errorf("event %d envelope %+v", i, c)
		}
		checkChunkShape(t, kindOf(i, len(events), includeUsage, withChoices), ev, keys, c)
		if len(c.Choices) == 1 && c.Choices[0].Delta.Content != nil {
			content.WriteString(*c.Choices[0].Delta.Content)
		}
		wantUsageHere := includeUsage && i == len(events)-1
		if wantUsageHere != (c.Usage != nil) {
			t.Errorf("event %d: usage %s, want object=%v", i, raw, wantUsageHere)
		}
		if c.Usage != nil {
			got = c.Usage
		}
	}
	return content.String(), got
}

// chunkKind is a chunk's place in a stream.
type chunkKind int

const (
	roleChunk    chunkKind = iota // the first: the assistant role, empty content
	contentChunk                  // one word
	finishChunk                   // the finish reason, no content
	usageChunk                    // the separate usage chunk, no choices
)

// kindOf places event i of n: the finish chunk is the last, or the one
// before the separate usage chunk that include_usage adds unless usage
// rides with the choices.
func kindOf(i, n int, includeUsage, withChoices bool) chunkKind {
	last := i == n-1
	switch {
	case i == 0:
		return roleChunk
	case last && withChoices || !includeUsage && last || includeUsage && !withChoices && i == n-2:
		return finishChunk
	case last:
		return usageChunk
	}
	return contentChunk
}

// checkChunkShape checks the choices of chunk c (event ev, its top-level
// keys) for its kind.
func checkChunkShape(t *testing.T, kind chunkKind, ev string, keys map[string]json.RawMessage, c chunk) {
	t.Helper()
	switch kind {
	case roleChunk:
		if len(c.Choices) != 1 || c.Choices[0].Delta.Role != "assistant" || c.Choices[0].Delta.Content == nil || *c.Choices[0].Delta.Content != "" {
			t.Errorf("first chunk %s", ev)
		}
	case finishChunk:
		if len(c.Choices) != 1 || c.Choices[0].FinishReason == nil || c.Choices[0].Delta.Content != nil {
			t.Errorf("finish chunk %s", ev)
		}
	case usageChunk:
		if string(keys["choices"]) != "[]" {
			t.Errorf("usage chunk choices %s, want []", keys["choices"])
		}
	case contentChunk:
		if len(c.Choices) != 1 || c.Choices[0].Delta.Content == nil || c.Choices[0].FinishReason != nil {
			t.Errorf("content chunk %s", ev)
		}
	}
}

func TestStreamExactBytes(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	r := post(t, base, body, map[string]string{"X-Mock-Completion-Tokens": "2", "X-Mock-Model": "gpt-4o-2024-08-06"})
	head := `{"id":"chatcmpl-` + sha12(body) + `","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06",`
	want := "data: " + head + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
		"data: " + head + `"choices":[{"index":0,"delta":{"content":"lorem"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
		"data: " + head + `"choices":[{"index":0,"delta":{"content":" ipsum"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
		"data: " + head + `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n" +
		"data: " + head + `"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":2,"total_tokens":10,` +
		`"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}` + "\n\n" +
		"data: [DONE]\n\n"
	if string(r.body) != want {
		t.Errorf("body\n got %s\nwant %s", r.body, want)
	}
	wantHeader := http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	if !equalHeader(r.header, wantHeader) {
		t.Errorf("header %v, want %v", r.header, wantHeader)
	}
}

func TestDeterminism(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	streamUsage := chatBody(`"stream":true,"stream_options":{"include_usage":true}`)
	tests := []struct {
		name    string
		body    string
		headers map[string]string
	}{
		{"completion", chatBody(""), nil},
		{"stream", streamUsage, nil},
		{"gzip completion", chatBody(""), map[string]string{"X-Mock-Gzip": "true"}},
		{"gzip stream", streamUsage, map[string]string{"X-Mock-Gzip": "true"}},
		{"error with usage", chatBody(""), map[string]string{"X-Mock-Status": "502", "X-Mock-Status-Usage": "true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, base, tc.body, tc.headers)
			b := post(t, base, tc.body, tc.headers)
			if a.status != b.status || !equalHeader(a.header, b.header) || !bytes.Equal(a.body, b.body) {
				t.Errorf("responses differ:\n%d %v %q\n%d %v %q", a.status, a.header, a.body, b.status, b.header, b.body)
			}
		})
	}
	t.Run("ids follow the body", func(t *testing.T) {
		a := decode[completion](t, post(t, base, chatBody(""), nil).body)
		b := decode[completion](t, post(t, base, chatBody(`"user":"x"`), nil).body)
		if a.ID == b.ID {
			t.Errorf("different bodies share id %s", a.ID)
		}
	})
}

func TestGzip(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	tests := []struct {
		name    string
		body    string
		headers map[string]string
	}{
		{"completion", chatBody(""), nil},
		{"stream", chatBody(`"stream":true,"stream_options":{"include_usage":true}`), nil},
		{"error", chatBody(""), map[string]string{"X-Mock-Status": "500", "X-Mock-Status-Usage": "true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plain := post(t, base, tc.body, tc.headers)
			zh := map[string]string{"X-Mock-Gzip": "true"}
			for k, v := range tc.headers {
				zh[k] = v
			}
			zipped := post(t, base, tc.body, zh)
			if zipped.status != plain.status || zipped.header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("status %d, header %v", zipped.status, zipped.header)
			}
			if cl := zipped.header.Get("Content-Length"); cl != "" && cl != itoa(len(zipped.body)) {
				t.Errorf("Content-Length %s for %d bytes", cl, len(zipped.body))
			}
			got, err := gunzip(t, zipped.body)
			if err != nil {
				t.Fatalf("gunzip: %v", err)
			}
			if !bytes.Equal(got, plain.body) {
				t.Errorf("gunzipped\n%s\nplain\n%s", got, plain.body)
			}
		})
	}
}

// TestStreamFlushesEachEvent reads the first event while the server is still
// waiting to send the second, which only works if every event is flushed
// (through gzip too). Cancelling then must end the handler's wait.
func TestStreamFlushesEachEvent(t *testing.T) {
	_, base := newServer(t, mockllm.Options{ChunkDelay: time.Minute})
	for _, gz := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "gzip"}[gz], func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/v1/chat/completions", strings.NewReader(chatBody(`"stream":true`)))
			if gz {
				req.Header.Set("X-Mock-Gzip", "true")
			}
			resp, err := rawClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body io.Reader = resp.Body
			if gz {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			}
			line, err := bufio.NewReader(body).ReadString('\n')
			if err != nil || !strings.Contains(line, `"role":"assistant"`) {
				t.Fatalf("first line %q, %v", line, err)
			}
		})
	}
}

func TestChunkDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	_, base := newServer(t, mockllm.Options{ChunkDelay: delay})
	body := chatBody(`"stream":true`)
	three := map[string]string{"X-Mock-Completion-Tokens": "3"}
	// role + 3 words + finish + [DONE] = 6 events, so 5 gaps.
	tests := []struct {
		name    string
		headers map[string]string
		min     time.Duration
	}{
		{"option", three, 5 * delay},
		{"header overrides option", map[string]string{"X-Mock-Completion-Tokens": "3", "X-Mock-Chunk-Delay-Ms": "40"}, 10 * delay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := post(t, base, body, tc.headers)
			if took := time.Since(start); took < tc.min || r.readErr != nil {
				t.Errorf("took %v, want at least %v (read error %v)", took, tc.min, r.readErr)
			}
		})
	}
	t.Run("header zero disables it", func(t *testing.T) {
		start := time.Now()
		post(t, base, body, map[string]string{"X-Mock-Completion-Tokens": "200", "X-Mock-Chunk-Delay-Ms": "0"})
		if took := time.Since(start); took > 200*delay {
			t.Errorf("took %v with delay disabled", took)
		}
	})
}

func TestStopAfter(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body := chatBody(`"stream":true,"stream_options":{"include_usage":true}`)
	tests := []struct {
		name      string
		headers   map[string]string
		wantWords int
	}{
		{"mid stream", map[string]string{"X-Mock-Stop-After": "2"}, 2},
		{"before any word", map[string]string{"X-Mock-Stop-After": "0"}, 0},
		{"after all words", map[string]string{"X-Mock-Stop-After": "50", "X-Mock-Completion-Tokens": "3"}, 3},
		{"gzip", map[string]string{"X-Mock-Stop-After": "4", "X-Mock-Gzip": "true"}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, base, body, tc.headers)
			if r.readErr == nil {
				t.Fatalf("stream ended cleanly; want a cut connection")
			}
			got := r.body
			if tc.headers["X-Mock-Gzip"] != "" {
				var err error
				if got, err = gunzip(t, r.body); !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("gunzip error %v, want unexpected EOF", err)
				}
			}
			events := sseData(t, got)
			if len(events) != 1+tc.wantWords {
				t.Fatalf("%d events, want %d:\n%s", len(events), 1+tc.wantWords, got)
			}
			if s := string(got); strings.Contains(s, "[DONE]") || strings.Contains(s, `"usage":{`) || strings.Contains(s, "finish_reason\":\"") {
				t.Errorf("cut stream carries an ending:\n%s", s)
			}
		})
	}
	t.Run("ignored without stream", func(t *testing.T) {
		r := post(t, base, chatBody(""), map[string]string{"X-Mock-Stop-After": "2"})
		if r.status != 200 || r.readErr != nil {
			t.Errorf("status %d, read error %v", r.status, r.readErr)
		}
	})
}
