package mockllm_test

import (
	"bytes"
	"encoding/json"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"mime/multipart"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	tmusage "github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

// mediaFile is a file part of a form: its field name and size in bytes.
type mediaFile struct {
	field string
	size  int
}

// mediaForm writes a multipart form: fields (name, value pairs), then the
// files, each of size bytes.
func mediaForm(t *testing.T, files []mediaFile, fields ...string) (body, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		fw, err := w.CreateFormFile(f.field, f.field+".bin")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write(bytes.Repeat([]byte{0xff, '\r', '\n', '-'}, f.size/4))
		_, _ = fw.Write(make([]byte, f.size%4))
	}
	_ = w.Close()
	return buf.String(), w.FormDataContentType()
}

// mediaMeter parses the request and decodes the response with d, as the
// exchange would.
func mediaMeter(t *testing.T, d dialect.Dialect, reqBody string, r result) (dialect.Request, dialect.Result) {
	t.Helper()
	req, _, err := d.ParseRequest([]byte(reqBody), dialect.RequestOptions{})
	if err != nil {
		t.Fatalf("%s: ParseRequest: %v", d.Name(), err)
	}
	dec := d.NewDecoder(dialect.Response{Status: r.status, ContentType: r.header.Get("Content-Type"),
		ContentEncoding: r.header.Get("Content-Encoding"), Header: func(string) string { return "" }}, 0)
	_ = dec.Feed(r.body)
	return req, dec.Finish(true)
}

func wantCounts(t *testing.T, u tmusage.Usage, tokens map[tmusage.Class]int64, units map[tmusage.Unit]int64) {
	t.Helper()
	for c := range tmusage.NumClasses {
		if n, ok := tokens[c]; ok != u.Tokens[c].Reported || n != u.Tokens[c].N {
			t.Errorf("%s: got %+v, want %d (reported %v)", c, u.Tokens[c], n, ok)
		}
	}
	for k := range tmusage.NumUnits {
		if n, ok := units[k]; ok != u.Units[k].Reported || n != u.Units[k].N {
			t.Errorf("%s: got %+v, want %d (reported %v)", k, u.Units[k], n, ok)
		}
	}
}

func TestTranscriptionUsage(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	file := []mediaFile{{"file", 12345}}
	tests := []struct {
		name, path string
		fields     []string
		headers    map[string]string
		tokens     map[tmusage.Class]int64
		units      map[tmusage.Unit]int64
		text       string
	}{
		{"whisper json", "/v1/audio/transcriptions", []string{"model", "whisper-1"}, nil,
			nil, map[tmusage.Unit]int64{tmusage.AudioMillis: 12345}, mockllm.ReplyText(8)},
		{"whisper verbose_json, stream ignored", "/v1/audio/transcriptions",
			[]string{"model", "whisper-1", "response_format", "verbose_json", "stream", "true"}, nil,
			nil, map[tmusage.Unit]int64{tmusage.AudioMillis: 12345}, mockllm.ReplyText(8)},
		{"tokens with prompt", "/v1/audio/transcriptions", []string{"model", "gpt-4o-transcribe", "prompt", "ZyntriQix, Digique"},
			map[string]string{mockllm.HeaderCompletionTokens: "3"},
			map[tmusage.Class]int64{tmusage.Input: 5, tmusage.AudioInput: 124, tmusage.Output: 3}, nil, mockllm.ReplyText(3)},
		{"tokens streamed", "/v1/audio/transcriptions", []string{"model", "gpt-4o-mini-transcribe", "stream", "true"},
			map[string]string{mockllm.HeaderGzip: "true"},
			map[tmusage.Class]int64{tmusage.Input: 0, tmusage.AudioInput: 124, tmusage.Output: 8}, nil, mockllm.ReplyText(8)},
		{"translation verbose_json: duration only", "/v1/audio/translations", []string{"model", "whisper-1", "response_format", "verbose_json"}, nil,
			nil, map[tmusage.Unit]int64{tmusage.AudioMillis: 12345}, mockllm.ReplyText(8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := mediaForm(t, file, tt.fields...)
			h := map[string]string{"Content-Type": ct}
			for k, v := range tt.headers {
				h[k] = v
			}
			r := do(t, http.MethodPost, base+tt.path, body, h)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			req, res := mediaMeter(t, dialect.OpenAIAudio(), body, r)
			if req.Model != tt.fields[1] || res.Err != nil || string(res.Text) != tt.text {
				t.Fatalf("request %+v, result %+v", req, res)
			}
			wantCounts(t, res.Usage, tt.tokens, tt.units)
		})
	}
}

func TestTranscriptionFormats(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	text := mockllm.ReplyText(8)
	for format, want := range map[string]string{
		"text": text + "\n",
		"srt":  "1\n00:00:00,000 --> 01:01:01,001\n" + text + "\n\n",
		"vtt":  "WEBVTT\n\n00:00:00.000 --> 01:01:01.001\n" + text + "\n\n",
	} {
		body, ct := mediaForm(t, []mediaFile{{"file", 3661001}}, "model", "whisper-1", "response_format", format)
		r := do(t, http.MethodPost, base+"/v1/audio/transcriptions", body, map[string]string{"Content-Type": ct})
		if r.status != http.StatusOK || string(r.body) != want || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("%s: %d %q %q", format, r.status, r.body, r.header.Get("Content-Type"))
		}
		if _, res := mediaMeter(t, dialect.OpenAIAudio(), body, r); reason.Of(res.Err) != reason.NoUsage ||
			res.StreamedTextBytes != int64(len(want)) {
			t.Fatalf("%s: %+v", format, res)
		}
	}
	// The duration is exact: 1500 bytes are 1.5 s, not 1.500000001.
	body, ct := mediaForm(t, []mediaFile{{"file", 1500}}, "model", "whisper-1", "response_format", "verbose_json")
	r := do(t, http.MethodPost, base+"/v1/audio/transcriptions", body, map[string]string{"Content-Type": ct})
	if !bytes.Contains(r.body, []byte(`"duration":1.5,`)) || !bytes.Contains(r.body, []byte(`"seconds":1.5}`)) {
		t.Fatalf("%s", r.body)
	}
}

func TestTranscriptionErrors(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	noModel, ct := mediaForm(t, []mediaFile{{"file", 10}}, "prompt", "x")
	noFile, ct2 := mediaForm(t, nil, "model", "whisper-1")
	badFormat, ct3 := mediaForm(t, []mediaFile{{"file", 10}}, "model", "whisper-1", "response_format", "xml")
	ok, ct4 := mediaForm(t, []mediaFile{{"file", 10}}, "model", "whisper-1")
	tests := []struct {
		name, body string
		headers    map[string]string
		status     int
	}{
		{"no model", noModel, map[string]string{"Content-Type": ct}, 400},
		{"no file", noFile, map[string]string{"Content-Type": ct2}, 400},
		{"bad format", badFormat, map[string]string{"Content-Type": ct3}, 400},
		{"not multipart", `{"model":"whisper-1"}`, map[string]string{"Content-Type": "application/json"}, 400},
		{"mock status", ok, map[string]string{"Content-Type": ct4, mockllm.HeaderStatus: "429"}, 429},
	}
	for _, tt := range tests {
		r := do(t, http.MethodPost, base+"/v1/audio/transcriptions", tt.body, tt.headers)
		_, res := mediaMeter(t, dialect.OpenAIAudio(), ok, r)
		if r.status != tt.status || reason.Of(res.Err) != reason.ProviderError {
			t.Errorf("%s: status %d, reason %v: %s", tt.name, r.status, res.Err, r.body)
		}
	}
}

func TestSpeech(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	post := func(body string) result {
		return do(t, http.MethodPost, base+"/v1/audio/speech", body, map[string]string{"Content-Type": "application/json"})
	}
	for format, ct := range map[string]string{"": "audio/mpeg", "mp3": "audio/mpeg", "opus": "audio/ogg", "wav": "audio/wav"} {
		body := `{"model":"tts-1","input":"Grüße!","voice":"alloy","response_format":"` + format + `"}`
		r := post(body)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != ct || !bytes.Equal(r.body, mockllm.FakeAudio) {
			t.Fatalf("%q: %d %q %q", format, r.status, r.header.Get("Content-Type"), r.body)
		}
		req, res := mediaMeter(t, dialect.OpenAISpeech(), body, r)
		if req.InputCharacters != 6 || res.Err != nil || res.Usage.Reported() {
			t.Fatalf("%q: %+v %+v", format, req, res)
		}
	}
	body := `{"model":"gpt-4o-mini-tts","input":"Grüße!","instructions":"Cheerful.","voice":"coral","stream_format":"sse"}`
	r := post(body)
	req, res := mediaMeter(t, dialect.OpenAISpeech(), body, r)
	if r.status != http.StatusOK || !req.Stream || res.Err != nil {
		t.Fatalf("%d %+v %+v: %s", r.status, req, res, r.body)
	}
	// input: ceil((8 bytes of input + 9 of instructions) / 4); output: 2 × 6 code points.
	wantCounts(t, res.Usage, map[tmusage.Class]int64{tmusage.Input: 5, tmusage.AudioOutput: 12}, nil)

	for _, bad := range []string{`{"model":"tts-1","input":"x","voice":"a","stream_format":"sse"}`, `{"model":"tts-1","voice":"a"}`,
		`{"model":"tts-1","input":"x","voice":"a","response_format":"ogg"}`, `{`} {
		if r := post(bad); r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d", bad, r.status)
		}
	}
}

// TestMediaDeterministic: the same request gets the same bytes.
func TestMediaDeterministic(t *testing.T) {
	_, base := newServer(t, mockllm.Options{})
	body, ct := mediaForm(t, []mediaFile{{"file", 999}}, "model", "gpt-4o-transcribe", "stream", "true")
	a := do(t, http.MethodPost, base+"/v1/audio/transcriptions", body, map[string]string{"Content-Type": ct})
	b := do(t, http.MethodPost, base+"/v1/audio/transcriptions", body, map[string]string{"Content-Type": ct})
	if !bytes.Equal(a.body, b.body) || !reflect.DeepEqual(a.header, b.header) {
		t.Fatalf("responses differ:\n%s\n%s", a.body, b.body)
	}
	var done struct{ Usage json.RawMessage }
	last := strings.TrimSpace(string(a.body[bytes.LastIndex(a.body, []byte("data: "))+6:]))
	if err := json.Unmarshal([]byte(last), &done); err != nil || len(done.Usage) == 0 {
		t.Fatalf("last event %q: %v", last, err)
	}
}
