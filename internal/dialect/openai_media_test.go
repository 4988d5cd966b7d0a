package dialect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// This file holds what the audio, speech and images tests share: the
// elider's tests, and a fixture runner whose outcome also compares the
// non-token units and the image size and quality.

func elide(keep int, chunks ...[]byte) string {
	e := stringElider{keep: keep}
	var out []byte
	for _, c := range chunks {
		for len(c) > 0 {
			var k []byte
			k, c = e.next(c)
			out = append(out, k...)
		}
	}
	return string(out)
}

func TestStringElider(t *testing.T) {
	tests := []struct {
		name string
		keep int
		in   string
		want string
	}{
		{"short strings pass", 4, `{"type":"a","n":[1,"bc"]}`, `{"type":"a","n":[1,"bc"]}`},
		{"long string cut", 4, `{"b64_json":"iVBORw0KGgo=","x":1}`, `{"b64_":"iVBO","x":1}`},
		{"no keep", 0, `["abc",""]`, `["",""]`},
		{"escape kept whole", 3, `"ab\u00e9cd"`, `"ab\u00e9"`},
		{"escaped quote dropped", 2, `"ab\"c\\"`, `"ab"`},
		{"escaped quote kept", 3, `"a\"bc"`, `"a\""`},
		{"drop starts at a backslash", 2, `"ab\"\\\"c","d"`, `"ab","d"`},
		{"line end ends a string", 2, "data: {\"a\":\"xyz\ndata: \"pq\"\n\n", "data: {\"a\":\"xy\ndata: \"pq\"\n\n"},
		{"CR ends a dropped run", 1, "\"abc\r\"", "\"a\r\""},
		{"backslash then line end", 1, "\"ab\\\nx\"", "\"a\nx\""},
		{"no strings", 1, "[1, 2, true, null]\r\n", "[1, 2, true, null]\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if got := elide(tt.keep, in); got != tt.want {
				t.Fatalf("whole: got %q, want %q", got, tt.want)
			}
			for i := range in {
				if got := elide(tt.keep, in[:i], in[i:]); got != tt.want {
					t.Fatalf("split at %d: got %q, want %q", i, got, tt.want)
				}
			}
			var ones [][]byte
			for i := range in {
				ones = append(ones, in[i:i+1])
			}
			if got := elide(tt.keep, ones...); got != tt.want {
				t.Fatalf("byte by byte: got %q, want %q", got, tt.want)
			}
		})
	}
}

// sameShape reports whether out is in with its strings cut: the same
// types, array lengths, member counts and scalars, and each string (key or
// value) a prefix of the original, compared raw.
func sameShape(in, out gjson.Result) bool {
	if in.Type != out.Type {
		return false
	}
	switch in.Type {
	case gjson.String:
		return strings.HasPrefix(in.Raw, strings.TrimSuffix(out.Raw, `"`))
	case gjson.JSON:
		var a, b []gjson.Result
		collect := func(dst *[]gjson.Result) func(k, v gjson.Result) bool {
			return func(k, v gjson.Result) bool {
				*dst = append(*dst, k, v)
				return true
			}
		}
		in.ForEach(collect(&a))
		out.ForEach(collect(&b))
		if len(a) != len(b) || in.IsArray() != out.IsArray() {
			return false
		}
		for i := range a {
			if a[i].Type != gjson.Null || b[i].Type != gjson.Null { // array keys are absent
				if !sameShape(a[i], b[i]) {
					return false
				}
			}
		}
		return true
	}
	return in.Raw == out.Raw
}

func FuzzStringElider(f *testing.F) {
	f.Add([]byte(`{"data":[{"b64_json":"iVBORw0KGgoAAAANSUhEUgAA"}],"usage":{"input_tokens":5}}`), uint8(4), uint(9))
	f.Add([]byte(`["a\u00e9\ud83d\ude00b\"\\c", {"k\u0065y":"v"}]`), uint8(3), uint(5))
	f.Add([]byte("data: {\"x\":\"abc\\\ndata: \"\r\n\r\n"), uint8(1), uint(12))
	f.Fuzz(func(t *testing.T, in []byte, keep uint8, split uint) {
		k := int(keep % 16)
		at := int(split % uint(len(in)+1))
		whole := elide(k, in)
		if parts := elide(k, in[:at], in[at:]); parts != whole {
			t.Fatalf("split at %d: %q, whole %q", at, parts, whole)
		}
		if len(whole) > len(in) {
			t.Fatalf("output longer than input")
		}
		if !gjson.ValidBytes(in) {
			return
		}
		if !gjson.Valid(whole) {
			t.Fatalf("keep %d: valid %q elided to invalid %q", k, in, whole)
		}
		if !sameShape(gjson.ParseBytes(in), gjson.Parse(whole)) {
			t.Fatalf("keep %d: %q elided to %q", k, in, whole)
		}
	})
}

// mediaFixture is one recorded response under testdata/<dialect>/<case>,
// as fixture_test.go lays them out.
type mediaFixture struct {
	name     string
	response []byte
	meta     struct {
		Status          int    `json:"status"`
		ContentType     string `json:"content_type"`
		ContentEncoding string `json:"content_encoding"`
		Complete        *bool  `json:"complete"` // default true
	}
	want mediaOutcome
}

// mediaOutcome is a Result reduced to what can be compared and written
// down; maps hold the reported classes and units, and unreported non-zero
// ones under "unreported_<name>".
type mediaOutcome struct {
	Model             string           `json:"model,omitempty"`
	Reason            reason.Reason    `json:"reason"`
	StreamedTextBytes int64            `json:"streamed_text_bytes"`
	Text              string           `json:"text,omitempty"`
	Tokens            map[string]int64 `json:"tokens"`
	Units             map[string]int64 `json:"units"`
	ImageSize         string           `json:"image_size,omitempty"`
	ImageQuality      string           `json:"image_quality,omitempty"`
	Raw               map[string]int64 `json:"raw"`
}

func mediaOutcomeOf(r Result) mediaOutcome {
	o := mediaOutcome{Model: r.Model, Reason: reason.Of(r.Err), StreamedTextBytes: r.StreamedTextBytes, Text: string(r.Text),
		Tokens: map[string]int64{}, Units: map[string]int64{}, Raw: map[string]int64{},
		ImageSize: r.Usage.ImageSize, ImageQuality: r.Usage.ImageQuality}
	put := func(m map[string]int64, name string, c usage.Count) {
		switch {
		case c.Reported:
			m[name] = c.N
		case c.N != 0:
			m["unreported_"+name] = c.N
		}
	}
	for c, n := range r.Usage.Tokens {
		put(o.Tokens, usage.Class(c).String(), n)
	}
	for k, n := range r.Usage.Units {
		put(o.Units, usage.Unit(k).String(), n)
	}
	for _, f := range r.Usage.Raw {
		o.Raw[f.Name] = f.Value
	}
	if r.Err != nil && o.Reason == "" {
		o.Reason = reason.Reason("no reason in: " + r.Err.Error())
	}
	return o
}

func loadMediaFixtures(t *testing.T, name string) []mediaFixture {
	t.Helper()
	dirs := caseDirs(t, name)
	if len(dirs) == 0 {
		t.Fatalf("no fixtures for %s", name)
	}
	read := func(dir, file string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var fs []mediaFixture
	for _, dir := range dirs {
		f := mediaFixture{name: filepath.Base(dir), response: read(dir, "response")}
		if err := json.Unmarshal(read(dir, "meta.json"), &f.meta); err != nil {
			t.Fatalf("%s: meta.json: %v", f.name, err)
		}
		dec := json.NewDecoder(bytes.NewReader(read(dir, "expected.json")))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f.want); err != nil {
			t.Fatalf("%s: expected.json: %v", f.name, err)
		}
		fs = append(fs, f)
	}
	return fs
}

// mediaFixtureBuffer is the decoders' maxBuffer in fixture runs: small, so
// the fixtures with images or audio in them show that payload is not
// buffered.
const mediaFixtureBuffer = 16 << 10

func (f *mediaFixture) decode(d Dialect, chunks [][]byte) mediaOutcome {
	resp := Response{Status: f.meta.Status, ContentType: f.meta.ContentType, ContentEncoding: f.meta.ContentEncoding,
		Header: func(string) string { return "" }}
	dec := d.NewDecoder(resp, mediaFixtureBuffer)
	for _, c := range chunks {
		_ = dec.Feed(c)
	}
	return mediaOutcomeOf(dec.Finish(f.meta.Complete == nil || *f.meta.Complete))
}

// runMediaFixtures decodes every fixture of d whole, split in two at every
// offset (every few offsets past 8 KiB, which keeps the large fixtures to
// seconds), and in random chunks; each way must give the expected outcome.
func runMediaFixtures(t *testing.T, d Dialect) {
	t.Helper()
	for _, f := range loadMediaFixtures(t, d.Name()) {
		t.Run(f.name, func(t *testing.T) {
			check := func(how string, got mediaOutcome) {
				t.Helper()
				if !reflect.DeepEqual(got, f.want) {
					t.Fatalf("%s:\ngot  %+v\nwant %+v", how, got, f.want)
				}
			}
			check("whole", f.decode(d, [][]byte{f.response}))
			step := max(1, len(f.response)/8192)
			for i := 0; i <= len(f.response); i += step {
				check(fmt.Sprintf("split at %d", i), f.decode(d, [][]byte{f.response[:i], f.response[i:]}))
			}
			r := rand.New(rand.NewPCG(1, uint64(len(f.response))))
			for i := range 100 {
				check(fmt.Sprintf("random chunks %d", i), f.decode(d, mediaChunks(f.response, 1+i%64, r)))
			}
		})
	}
}

// mediaChunks cuts b into pieces of 1 to maxSize bytes.
func mediaChunks(b []byte, maxSize int, r *rand.Rand) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := min(len(b), 1+r.IntN(maxSize))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func TestSplitMedia(t *testing.T) {
	tests := []struct {
		name                      string
		total, media, text        int64
		hasTotal, hasMed, hasText bool
		byDefault                 bool
		want                      mediaSplit
	}{
		{"both details", 10, 7, 3, true, true, true, true, mediaSplit{3, 7, true, true, true}},
		{"details disagree", 10, 7, 4, true, true, true, true, mediaSplit{3, 7, true, true, false}},
		{"media only", 10, 7, 0, true, true, false, false, mediaSplit{3, 7, true, true, true}},
		{"text only", 10, 0, 4, true, false, true, true, mediaSplit{4, 6, true, true, true}},
		{"media over total", 10, 12, 0, true, true, false, true, mediaSplit{0, 10, true, true, false}},
		{"no details, media by default", 10, 0, 0, true, false, false, true, mediaSplit{0, 10, false, true, true}},
		{"no details, text by default", 10, 0, 0, true, false, false, false, mediaSplit{10, 0, true, false, true}},
		{"negative total", -1, 0, 0, true, false, false, false, mediaSplit{0, 0, true, false, false}},
		{"no total", 0, 5, 2, false, true, true, false, mediaSplit{2, 5, true, true, true}},
	}
	for _, tt := range tests {
		got := splitMedia(tt.total, tt.media, tt.text, tt.hasTotal, tt.hasMed, tt.hasText, tt.byDefault)
		if got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestJSONTextPrompt(t *testing.T) {
	long := strings.Repeat("é", MaxEstimateText/2+1) // one byte over, in two-byte runes
	tests := []struct {
		raw    string
		prompt string
		bytes  int64
	}{
		{`"a fox"`, "a fox", 5},
		{`"caf\u00e9 \"x\""`, `café "x"`, 9},
		{`42`, "", 0},
		{`"` + long + `"`, long[:MaxEstimateText], int64(len(long))},
		{`"x` + long + `"`, "x" + long[:MaxEstimateText-2], int64(len(long)) + 1},
	}
	for _, tt := range tests {
		p, n := jsonTextPrompt(tt.raw)
		if p != tt.prompt || n != tt.bytes {
			t.Errorf("%.20q: got %.20q (%d bytes) %d, want %.20q %d", tt.raw, p, len(p), n, tt.prompt, tt.bytes)
		}
	}
}

func TestRegistryOpenAIMedia(t *testing.T) {
	r := DefaultRegistry()
	for path, want := range map[string]string{
		"/v1/audio/transcriptions":                           "openai_audio",
		"/v1/audio/translations?model=x":                     "openai_audio",
		"/v1/audio/speech":                                   "openai_speech",
		"/gateway/openai/v1/audio/speech":                    "openai_speech",
		"/v1/images/generations":                             "openai_images",
		"/v1/images/edits":                                   "openai_images",
		"/v1/images/variations":                              "openai_images",
		"/v1/audio/voices":                                   "",
		"/v1/images/generations/extra":                       "",
		"/openai/deployments/whisper/audio/transcriptions":   "", // Azure's: not OpenAI's to bill
		"/openai/deployments/dalle/images/generations?api=1": "",
	} {
		got := ""
		if d, ok := r.ForPath(path); ok {
			got = d.Name()
		}
		if got != want {
			t.Errorf("ForPath(%q) = %q, want %q", path, got, want)
		}
	}
	for _, name := range []string{"openai_audio", "openai_speech", "openai_images"} {
		if d, ok := r.ByName(name); !ok || d.Provider() != "openai" {
			t.Errorf("ByName(%q) = %v, %v", name, d, ok)
		}
	}
}
