package dialect

import (
	"bytes"
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"reflect"
	"strings"
	"testing"
)

// formPartOut is a formPart reduced for comparison.
type formPartOut struct {
	Name  string
	File  bool
	Value string
}

func readForm(body []byte) ([]formPartOut, error) {
	r, err := newFormReader(body)
	if err != nil {
		return nil, err
	}
	var out []formPartOut
	for p, ok := r.next(); ok; p, ok = r.next() {
		out = append(out, formPartOut{p.name, p.file, string(p.value)})
	}
	return out, r.Err()
}

// crlfLines joins lines with CRLF, as every multipart writer does.
func crlfLines(lines ...string) string { return strings.Join(lines, "\r\n") }

func TestFormReader(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []formPartOut
	}{
		{"fields and a file", crlfLines(
			"--XyZ",
			`Content-Disposition: form-data; name="model"`,
			"",
			"gpt-4o-transcribe",
			"--XyZ",
			`Content-Disposition: form-data; name="file"; filename="a.mp3"`,
			"Content-Type: audio/mpeg",
			"",
			"ID3\x00\r\n--XyZa\r\n--XyZ-not-a-delimiter\r\n\x00\xff",
			"--XyZ",
			`Content-Disposition: form-data; name="stream"`,
			"",
			"true",
			"--XyZ--",
			""),
			[]formPartOut{{"model", false, "gpt-4o-transcribe"}, {"file", true, "ID3\x00\r\n--XyZa\r\n--XyZ-not-a-delimiter\r\n\x00\xff"}, {"stream", false, "true"}}},
		{"token name, odd case and spacing", crlfLines(
			"--b",
			"content-DISPOSITION:form-data;name=response_format ;  FileName*=UTF-8''x.wav",
			"",
			"text",
			"--b--"),
			[]formPartOut{{"response_format", true, "text"}}},
		{"escaped quoted name", crlfLines(
			"--b",
			`Content-Disposition: form-data; name="a\"b\\c"; filename="f;x=\"y\""`,
			"",
			"v",
			"--b--"),
			[]formPartOut{{`a"b\c`, true, "v"}}},
		{"semicolon inside a quoted name", crlfLines(
			"--b",
			`Content-Disposition: form-data; name="x; filename=y"`,
			"",
			"v",
			"--b--"),
			[]formPartOut{{"x; filename=y", false, "v"}}},
		{"empty value and value with CRLF", crlfLines(
			"--b",
			`Content-Disposition: form-data; name="prompt"`,
			"",
			"",
			"--b",
			`Content-Disposition: form-data; name="x"`,
			"",
			"line1\r\nline2\r\n",
			"--b--"),
			[]formPartOut{{"prompt", false, ""}, {"x", false, "line1\r\nline2\r\n"}}},
		{"part without headers", crlfLines("--b", "", "orphan", "--b--"), []formPartOut{{"", false, "orphan"}}},
		{"no disposition", crlfLines("--b", "Content-Type: text/plain", "", "v", "--b--"), []formPartOut{{"", false, "v"}}},
		{"transport padding and epilogue", "--b \t\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n2\r\n--b\t\r\n" +
			"Content-Disposition: form-data; name=\"m\"\r\n\r\ndall-e-2\r\n--b--\r\nepilogue --b\r\n",
			[]formPartOut{{"n", false, "2"}, {"m", false, "dall-e-2"}}},
		{"boundary of RFC 2046 specials", crlfLines(
			"--'()+_,-./:=? 1",
			`Content-Disposition: form-data; name="model"`,
			"",
			"whisper-1",
			"--'()+_,-./:=? 1--"),
			[]formPartOut{{"model", false, "whisper-1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readForm([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestFormReaderErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []formPartOut // read before the error
	}{
		{"empty", "", nil},
		{"json", `{"model":"m"}`, nil},
		{"preamble", "preamble\r\n--b\r\n\r\nv\r\n--b--", nil},
		{"LF only", "--b\nContent-Disposition: form-data; name=\"m\"\n\nv\n--b--\n", nil},
		{"boundary too long", "--" + strings.Repeat("b", formMaxBoundary+1) + "\r\n\r\nv\r\n--b--", nil},
		{"no close delimiter", crlfLines("--b", `Content-Disposition: form-data; name="model"`, "", "m", "--b",
			`Content-Disposition: form-data; name="stream"`, "", "true"), []formPartOut{{"model", false, "m"}}},
		{"headers never end", "--b\r\nContent-Disposition: form-data; name=\"m\"\r\nv", nil},
		{"cut in a delimiter", "--b\r\n\r\nv\r\n--", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readForm([]byte(tt.body))
			if !errors.Is(err, reason.UnexpectedShape) {
				t.Fatalf("err %v, want unexpected_shape", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestFormReaderHugeFile reads the fields around a 25 MB upload of random
// bytes, which hold many near-delimiters, without copying the upload.
func TestFormReaderHugeFile(t *testing.T) {
	body, boundary := bigForm(t, 25<<20)
	var model, stream string
	var file []byte
	r, err := newFormReader(body)
	if err != nil {
		t.Fatal(err)
	}
	for p, ok := r.next(); ok; p, ok = r.next() {
		switch p.name {
		case "model":
			model = string(p.value)
		case "stream":
			stream = string(p.value)
		case "file":
			file = p.value
		}
	}
	if r.Err() != nil || model != "gpt-4o-transcribe" || stream != "true" || len(file) != 25<<20 {
		t.Fatalf("err %v model %q stream %q file %d bytes (boundary %q)", r.Err(), model, stream, len(file), boundary)
	}
	if &file[0] != &body[bytes.Index(body, file[:64])] {
		t.Fatal("the file part was copied")
	}
}

// bigForm writes a form with Go's writer: model, a file of n random bytes
// sprinkled with CRLF-- sequences, and stream after it.
func bigForm(tb testing.TB, n int) ([]byte, string) {
	tb.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	file := make([]byte, n)
	for i := range file {
		file[i] = byte(r.Uint32())
	}
	for i := 0; i+4 < n; i += 4096 {
		copy(file[i:], "\r\n--")
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.WriteField("model", "gpt-4o-transcribe")
	fw, _ := w.CreateFormFile("file", "speech.mp3")
	_, _ = fw.Write(file)
	_ = w.WriteField("stream", "true")
	_ = w.Close()
	return buf.Bytes(), w.Boundary()
}

func FuzzMultipart(f *testing.F) {
	f.Add([]byte(crlfLines("--b", `Content-Disposition: form-data; name="m"`, "", "v", "--b--")), "model", []byte("whisper-1"), "b0undary")
	f.Add([]byte("--x\r\n\r\n\r\n--x\r\n\r\n--x--"), `a"b\c`, []byte("\r\n--b0undary"), "'()+_,-./:=?")
	f.Add([]byte("--"), "", []byte{}, " ")
	f.Fuzz(func(t *testing.T, body []byte, name string, value []byte, boundary string) {
		// Any body: no panic, parts are views of it, and they come in order.
		r, err := newFormReader(body)
		if err == nil {
			prev := 0
			for p, ok := r.next(); ok; p, ok = r.next() {
				start := cap(body) - cap(p.value) // p.value is body[start:...]
				if len(p.value) > 0 && (start < prev || start+len(p.value) > len(body)) {
					t.Fatalf("part value at %d..%d outside the body or out of order", start, start+len(p.value))
				}
				prev = start + len(p.value)
			}
		}
		// A form Go's writer makes: the field and the file come back exactly,
		// as Go's reader sees them.
		if strings.ContainsAny(name, "\r\n") {
			return
		}
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		if w.SetBoundary(boundary) != nil {
			return
		}
		delim := []byte("\r\n--" + boundary)
		if bytes.Contains(append([]byte("\r\n"), value...), delim) || bytes.Contains(append([]byte("\r\n"), body...), delim) {
			return // a value holding the delimiter makes an ambiguous form
		}
		_ = w.WriteField(name, string(value))
		fw, _ := w.CreateFormFile("file", "f.bin")
		_, _ = fw.Write(body)
		_ = w.Close()
		got, err := readForm(buf.Bytes())
		want := []formPartOut{{name, false, string(value)}, {"file", true, string(body)}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("boundary %q: got %+v, %v\nwant %+v", boundary, got, err, want)
		}
		// Go's reader refuses some headers its writer makes (a control
		// character in the name); where it reads the form, it must agree.
		gr := multipart.NewReader(bytes.NewReader(buf.Bytes()), boundary)
		p, err := gr.NextPart()
		if err != nil {
			return
		}
		v, _ := io.ReadAll(p)
		// Go's reader gives no name where mime.ParseMediaType refuses the
		// header (control characters, say); the value must still agree.
		if (p.FormName() != "" && p.FormName() != name) || !bytes.Equal(v, value) {
			t.Fatalf("Go's reader disagrees: %q %q", p.FormName(), v)
		}
	})
}

// BenchmarkFormFields reads the fields of a 25 MB upload: the cost is the
// search for delimiters through the file.
func BenchmarkFormFields(b *testing.B) {
	body, _ := bigForm(b, 25<<20)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, _, err := OpenAIAudio().ParseRequest(body, RequestOptions{})
		if err != nil || req.Model != "gpt-4o-transcribe" || !req.Stream {
			b.Fatalf("%+v %v", req, err)
		}
	}
}

// BenchmarkFormFieldsSmall reads a form of fields only (an images edit
// with a small mask), where per-part overhead dominates.
func BenchmarkFormFieldsSmall(b *testing.B) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, kv := range [][2]string{{"model", "gpt-image-1"}, {"prompt", "a red fox in the snow"}, {"n", "2"},
		{"size", "1024x1024"}, {"quality", "high"}} {
		_ = w.WriteField(kv[0], kv[1])
	}
	fw, _ := w.CreateFormFile("image[]", "fox.png")
	_, _ = fw.Write(bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 256))
	_ = w.Close()
	body := buf.Bytes()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, _, err := OpenAIImages().ParseRequest(body, RequestOptions{})
		if err != nil || req.ImageQuality != "high" {
			b.Fatalf("%+v %v", req, err)
		}
	}
}
