package dialect

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"flag"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// A flag name of its own, so it cannot clash with another file's -update.
var updateCompressed = flag.Bool("update-compressed", false,
	"rewrite the compressed fixtures under testdata/openai_chat from their plain sources")

// encCoding is one way a server compresses a body.
type encCoding struct {
	name      string // test name
	header    string // Content-Encoding
	newWriter func(io.Writer) encWriter
}

type encWriter interface {
	io.WriteCloser
	Flush() error
}

var encCodings = []encCoding{
	{"gzip", "gzip", func(w io.Writer) encWriter { return gzip.NewWriter(w) }},
	{"deflate-zlib", "deflate", func(w io.Writer) encWriter { return zlib.NewWriter(w) }},
	{"deflate-raw", "deflate", func(w io.Writer) encWriter {
		fw, _ := flate.NewWriter(w, flate.DefaultCompression)
		return fw
	}},
	{"br", "br", func(w io.Writer) encWriter { return brotli.NewWriter(w) }},
}

// compressBody compresses body as c. With perEvent it flushes after each
// SSE event, as a streaming server must for the client to see each event
// when it is sent, and returns the compressed length after each flush.
func compressBody(t testing.TB, c encCoding, body []byte, perEvent bool) ([]byte, []int) {
	t.Helper()
	var buf bytes.Buffer
	w := c.newWriter(&buf)
	var flushes []int
	parts := [][]byte{body}
	if perEvent {
		parts = bytes.SplitAfter(body, []byte("\n\n"))
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			t.Fatal(err)
		}
		if perEvent {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			flushes = append(flushes, buf.Len())
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), flushes
}

// openAIFixture returns the named openai_chat fixture.
func openAIFixture(t *testing.T, name string) fixture {
	t.Helper()
	for _, f := range loadFixtures(t) {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no fixture %s", name)
	return fixture{}
}

// checkEncodedSplits decodes f whole, split at every offset and in random
// chunks; each must give f.want.
func checkEncodedSplits(t *testing.T, f fixture) {
	t.Helper()
	check := func(how string, got outcome) {
		t.Helper()
		if !reflect.DeepEqual(got, f.want) {
			t.Fatalf("%s:\ngot  %+v\nwant %+v", how, got, f.want)
		}
	}
	check("whole", f.decode([][]byte{f.response}))
	for i := 0; i <= len(f.response); i++ {
		check(fmt.Sprintf("split at %d", i), f.decode([][]byte{f.response[:i], f.response[i:]}))
	}
	r := rand.New(rand.NewPCG(2, uint64(len(f.response))))
	for i := range 100 {
		check(fmt.Sprintf("random chunks %d", i), f.decode(randomChunks(f.response, 1+i%64, r)))
	}
}

func TestWithEncodingMatchesPlain(t *testing.T) {
	for _, c := range encCodings {
		for _, name := range []string{"sse_basic", "json_basic"} {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				f := openAIFixture(t, name)
				f.response, _ = compressBody(t, c, f.response, strings.HasPrefix(name, "sse"))
				f.meta.ContentEncoding = c.header
				checkEncodedSplits(t, f)
			})
		}
	}
}

// encRecorder is an inner decoder that keeps what it is fed.
type encRecorder struct {
	got       []byte
	maxPiece  int
	feedErr   error // returned by every Feed
	finishes  int
	complete  bool
	result    Result
	feedCalls int
}

func (r *encRecorder) Feed(b []byte) error {
	r.got = append(r.got, b...)
	r.maxPiece = max(r.maxPiece, len(b))
	r.feedCalls++
	return r.feedErr
}

func (r *encRecorder) Finish(complete bool) Result {
	r.finishes++
	r.complete = complete
	return r.result
}

// Each Feed returns only once the plaintext its chunk completes has reached
// the inner decoder: metering sees an event when the client does.
func TestWithEncodingFeedsAsItGoes(t *testing.T) {
	plain := readFile(t, filepath.Join("testdata", "openai_chat", "sse_basic"), "response")
	events := bytes.SplitAfter(plain, []byte("\n\n"))
	for _, c := range encCodings {
		t.Run(c.name, func(t *testing.T) {
			z, flushes := compressBody(t, c, plain, true)
			rec := &encRecorder{}
			d := WithEncoding(c.header, rec, 0)
			at, want := 0, 0
			for i, end := range flushes {
				_ = d.Feed(z[at:end])
				at, want = end, want+len(events[i])
				if len(rec.got) != want {
					t.Fatalf("after event %d: inner has %d bytes, want %d", i, len(rec.got), want)
				}
			}
			_ = d.Feed(z[at:])
			if res := d.Finish(true); res.Err != nil || !rec.complete || !bytes.Equal(rec.got, plain) {
				t.Fatalf("Finish: err %v, inner complete %v, plaintext equal %v", res.Err, rec.complete, bytes.Equal(rec.got, plain))
			}
		})
	}
}

func TestWithEncodingHeader(t *testing.T) {
	tests := []struct {
		header string
		want   string // "identity", "decode" or a reason.Reason
	}{
		{"", "identity"},
		{"identity", "identity"},
		{" IDENTITY ", "identity"},
		{"identity, identity", "identity"},
		{"gzip", "decode"},
		{"GZip", "decode"},
		{"x-gzip", "decode"},
		{"deflate", "decode"},
		{"br", "decode"},
		{"gzip, identity", "decode"},
		{"identity,br", "decode"},
		{"gzip,", "decode"},
		{"zstd", string(reason.UnsupportedEncoding)},
		{"gzip, br", string(reason.UnsupportedEncoding)},
		{"gzip, gzip", string(reason.UnsupportedEncoding)},
		{"compress", string(reason.UnsupportedEncoding)},
		{"gzip;q=1", string(reason.UnsupportedEncoding)},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			rec := &encRecorder{result: Result{Model: "m"}}
			d := WithEncoding(tt.header, rec, 0)
			switch tt.want {
			case "identity":
				if d != Decoder(rec) {
					t.Fatalf("got %T, want inner itself", d)
				}
			case "decode":
				if _, ok := d.(*encodedDecoder); !ok {
					t.Fatalf("got %T, want a decompressing decoder", d)
				}
			default:
				_ = d.Feed([]byte("(\xb5/\xfd"))
				if got := reason.Of(d.Finish(true).Err); string(got) != tt.want {
					t.Fatalf("reason %q, want %q", got, tt.want)
				}
			}
		})
	}
}

// gzipSSE is sse_basic gzip-compressed, flushed per event, with the
// compressed length after each event.
func gzipSSE(t testing.TB) ([]byte, []int) {
	plain, err := os.ReadFile(filepath.Join("testdata", "openai_chat", "sse_basic", "response"))
	if err != nil {
		t.Fatal(err)
	}
	return compressBody(t, encCodings[0], plain, true)
}

func decodeGzip(contentType string, body []byte, complete bool) Result {
	d := OpenAIChat().NewDecoder(Response{Status: 200, ContentType: contentType, ContentEncoding: "gzip"}, 0)
	_ = d.Feed(body)
	return d.Finish(complete)
}

func TestWithEncodingTruncated(t *testing.T) {
	z, flushes := gzipSSE(t)
	usageEnd := flushes[len(flushes)-3] // the usage event; then [DONE], then an empty part
	zj, _ := compressBody(t, encCodings[0], []byte(`{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":2}}`), false)
	tests := []struct {
		name     string
		body     []byte
		ct       string
		complete bool
		want     reason.Reason
		usage    bool
	}{
		{"cut mid-stream", z[:len(z)/2], "text/event-stream", false, reason.Truncated, false},
		{"cut mid-stream, body complete", z[:len(z)/2], "text/event-stream", true, reason.Truncated, false},
		{"cut in the header", z[:5], "text/event-stream", false, reason.Truncated, false},
		{"cut after usage", z[:usageEnd], "text/event-stream", false, "", true},
		{"cut before the trailer", z[:len(z)-8], "text/event-stream", true, "", true},
		{"json cut", zj[:len(zj)/2], "application/json", true, reason.Truncated, false},
		{"json cut before the trailer", zj[:len(zj)-4], "application/json", true, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeGzip(tt.ct, tt.body, tt.complete)
			if reason.Of(res.Err) != tt.want || res.Usage.Reported() != tt.usage {
				t.Fatalf("got reason %q (%v), usage %v; want %q, usage %v", reason.Of(res.Err), res.Err, res.Usage.Reported(), tt.want, tt.usage)
			}
		})
	}
	if res := decodeGzip("text/event-stream", z[:len(z)/2], false); res.StreamedTextBytes == 0 || res.Model == "" {
		t.Fatalf("a cut stream lost what was decoded before the cut: %+v", res)
	}
}

func TestWithEncodingCorrupt(t *testing.T) {
	z, _ := gzipSSE(t)
	badCRC := bytes.Clone(z)
	badCRC[len(badCRC)-6] ^= 0xff
	tests := []struct {
		name     string
		encoding string
		body     []byte
		want     reason.Reason
		usage    bool
		msg      string
	}{
		{"not gzip", "gzip", []byte("data: {\"usage\":{}}\n\n"), reason.UnexpectedShape, false, "corrupt gzip data"},
		{"not zlib or deflate", "deflate", []byte{0xff, 0xff, 0xff, 0xff}, reason.UnexpectedShape, false, "corrupt deflate data"},
		{"not brotli", "br", []byte("plain text, not brotli at all"), reason.UnexpectedShape, false, "corrupt br data"},
		// The checksum is checked after the plaintext was decoded: usage
		// read from it is the provider's own, and stands.
		{"bad checksum", "gzip", badCRC, "", true, ""},
		{"trailing garbage", "gzip", append(bytes.Clone(z), "garbage"...), "", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := OpenAIChat().NewDecoder(Response{Status: 200, ContentType: "text/event-stream", ContentEncoding: tt.encoding}, 0)
			_ = d.Feed(tt.body)
			res := d.Finish(true)
			if reason.Of(res.Err) != tt.want || res.Usage.Reported() != tt.usage ||
				(res.Err != nil && !strings.Contains(res.Err.Error(), tt.msg)) {
				t.Fatalf("got %v, usage %v; want %q %q, usage %v", res.Err, res.Usage.Reported(), tt.want, tt.msg, tt.usage)
			}
		})
	}
	// Any damaged byte: no panic, and either usage or a reason.
	for _, c := range encCodings {
		plain := readFile(t, filepath.Join("testdata", "openai_chat", "sse_basic"), "response")
		zc, _ := compressBody(t, c, plain, true)
		for i := range zc {
			bad := bytes.Clone(zc)
			bad[i] ^= 0x5a
			d := OpenAIChat().NewDecoder(Response{Status: 200, ContentType: "text/event-stream", ContentEncoding: c.header}, 0)
			_ = d.Feed(bad[:i/2])
			_ = d.Feed(bad[i/2:])
			if res := d.Finish(true); res.Err == nil && !res.Usage.Reported() {
				t.Fatalf("%s: byte %d damaged: no usage and no reason", c.name, i)
			}
		}
	}
}

// gzipZeros is n zero bytes gzip-compressed: about n/1000 bytes.
func gzipZeros(t testing.TB, n int) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWithEncodingPlaintextCap(t *testing.T) {
	bomb := gzipZeros(t, 10<<20)
	const maxBuffer = 4 << 10 // plaintext cap 256 KiB
	t.Run("no usage", func(t *testing.T) {
		rec := &encRecorder{result: Result{Err: reason.NoUsage}}
		d := WithEncoding("gzip", rec, maxBuffer)
		var feedErrs []error
		for _, c := range randomChunks(bomb, 500, rand.New(rand.NewPCG(3, 3))) {
			if err := d.Feed(c); err != nil {
				feedErrs = append(feedErrs, err)
			}
		}
		res := d.Finish(true)
		switch {
		case len(rec.got) != 64*maxBuffer:
			t.Fatalf("inner got %d bytes, want the cap %d", len(rec.got), 64*maxBuffer)
		case rec.maxPiece > decodeBufSize:
			t.Fatalf("inner got a %d-byte piece; pieces are at most %d", rec.maxPiece, decodeBufSize)
		case len(feedErrs) != 1 || !errors.Is(feedErrs[0], reason.TooLarge):
			t.Fatalf("Feed errors %v, want one too_large", feedErrs)
		case !errors.Is(res.Err, reason.TooLarge) || rec.complete:
			t.Fatalf("Finish: %v, inner complete %v; want too_large, not complete", res.Err, rec.complete)
		}
	})
	t.Run("usage stands", func(t *testing.T) {
		rec := &encRecorder{}
		rec.result.Usage.Set(usage.Output, 7)
		d := WithEncoding("gzip", rec, maxBuffer)
		_ = d.Feed(bomb)
		if res := d.Finish(true); res.Err != nil || res.Usage.Get(usage.Output) != 7 {
			t.Fatalf("Finish: %+v", res)
		}
	})
}

func TestWithEncodingLifecycle(t *testing.T) {
	z, _ := gzipSSE(t)
	t.Run("finish without feed", func(t *testing.T) {
		rec := &encRecorder{result: Result{Err: reason.NoUsage}}
		d := WithEncoding("gzip", rec, 0)
		_ = d.Feed(nil)
		_ = d.Feed([]byte{})
		// An empty body, as in a 204 or a HEAD response, is an empty
		// plaintext, not a truncated gzip stream.
		if res := d.Finish(false); !errors.Is(res.Err, reason.NoUsage) || rec.finishes != 1 || rec.complete {
			t.Fatalf("Finish: %v; inner finished %d times, complete %v", res.Err, rec.finishes, rec.complete)
		}
		if d.(*encodedDecoder).started {
			t.Fatal("a decoder fed nothing started a goroutine")
		}
	})
	t.Run("feed after finish, finish twice", func(t *testing.T) {
		rec := &encRecorder{}
		rec.result.Usage.Set(usage.Input, 1)
		d := WithEncoding("gzip", rec, 0)
		_ = d.Feed(z[:10])
		first := d.Finish(false)
		if err := d.Feed(z[10:]); err != nil {
			t.Fatalf("Feed after Finish: %v", err)
		}
		if second := d.Finish(true); !reflect.DeepEqual(first, second) || rec.finishes != 1 {
			t.Fatalf("second Finish %+v differs from the first %+v, or inner finished %d times", second, first, rec.finishes)
		}
	})
	t.Run("inner feed error", func(t *testing.T) {
		rec := &encRecorder{feedErr: reason.TooLarge}
		d := WithEncoding("gzip", rec, 0)
		if err := d.Feed(z); !errors.Is(err, reason.TooLarge) {
			t.Fatalf("Feed: %v, want inner's error", err)
		}
		d.Finish(true)
	})
}

// waitForGoroutines waits until at most want goroutines run: a goroutine
// lingers for a moment after its last act.
func waitForGoroutines(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWithEncodingNoGoroutineLeak(t *testing.T) {
	z, _ := gzipSSE(t)
	bomb := gzipZeros(t, 1<<20)
	before := runtime.NumGoroutine()
	newDec := func() Decoder {
		return OpenAIChat().NewDecoder(Response{Status: 200, ContentType: "text/event-stream", ContentEncoding: "gzip"}, 1024)
	}
	uses := map[string]func(d Decoder){
		"never fed":      func(d Decoder) { d.Finish(true) },
		"whole":          func(d Decoder) { _ = d.Feed(z); d.Finish(true) },
		"cut":            func(d Decoder) { _ = d.Feed(z[:len(z)/2]); d.Finish(false) },
		"corrupt":        func(d Decoder) { _ = d.Feed([]byte("not gzip")); _ = d.Feed(z); d.Finish(true) },
		"over the cap":   func(d Decoder) { _ = d.Feed(bomb); d.Finish(true) },
		"feed after end": func(d Decoder) { _ = d.Feed(z); d.Finish(true); _ = d.Feed(z); d.Finish(true) },
	}
	for range 50 {
		for _, use := range uses {
			use(newDec())
		}
	}
	waitForGoroutines(t, before)
}

// A decoder dropped without Finish ends its goroutine once collected.
func TestWithEncodingAbandoned(t *testing.T) {
	z, _ := gzipSSE(t)
	before := runtime.NumGoroutine()
	ds := make([]Decoder, 20)
	for i := range ds {
		ds[i] = WithEncoding("gzip", &encRecorder{}, 0)
		_ = ds[i].Feed(z[:len(z)/2])
	}
	for _, d := range ds {
		select {
		case <-d.(*encodedDecoder).p.exited:
			t.Fatal("a decoder cut mid-stream ended its goroutine before Finish")
		default:
		}
	}
	runtime.KeepAlive(ds) // and from here on, drop them
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	waitForGoroutines(t, before)
}

// The committed gzip fixtures are derived from sse_basic; run with
// -update-compressed to rewrite them, e.g. after editing sse_basic.
func TestCompressedFixtures(t *testing.T) {
	dir := filepath.Join("testdata", "openai_chat")
	plain := readFile(t, filepath.Join(dir, "sse_basic"), "response")
	z, flushes := gzipSSE(t)
	cut := z[:flushes[5]+(flushes[6]-flushes[5])/2] // within the seventh event
	if *updateCompressed {
		for name, b := range map[string][]byte{"sse_gzip": z, "sse_gzip_truncated": cut} {
			if err := os.WriteFile(filepath.Join(dir, name, "response"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"sse_gzip", "sse_gzip_truncated"} {
		zr, err := gzip.NewReader(bytes.NewReader(readFile(t, filepath.Join(dir, name), "response")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(zr)
		if (name == "sse_gzip") != (err == nil) || !bytes.HasPrefix(plain, got) || (err == nil && !bytes.Equal(got, plain)) {
			t.Fatalf("%s does not decompress to sse_basic (or a prefix when truncated): %v", name, err)
		}
	}
}

// fuzzSSE is a small stream for fuzz seeds: the fuzzer minimizes every
// new input, which is slow on large ones.
var fuzzSSE = []byte("data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n")

// fuzzEncoded decodes body whole and split at split: neither may panic or
// hang, both must agree, and no goroutine may outlive Finish.
func fuzzEncoded(t *testing.T, encoding string, body []byte, split uint) {
	before := runtime.NumGoroutine()
	at := int(split % uint(len(body)+1))
	decode := func(chunks ...[]byte) outcome {
		// A small cap, so that bombs end quickly.
		d := OpenAIChat().NewDecoder(Response{Status: 200, ContentType: "text/event-stream", ContentEncoding: encoding}, 1024)
		for _, c := range chunks {
			_ = d.Feed(c)
		}
		return outcomeOf(d.Finish(true))
	}
	whole := decode(body)
	parts := decode(body[:at], body[at:])
	// The brotli decoder drops the output it holds when it meets corrupt
	// input, and how much it holds depends on where the input was split;
	// so for a corrupt br body only "no panic, no hang, no leak" holds.
	corruptBr := encoding == "br" && (whole.Reason == reason.UnexpectedShape || parts.Reason == reason.UnexpectedShape)
	if !corruptBr && !reflect.DeepEqual(whole, parts) {
		t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, whole, parts)
	}
	waitForGoroutines(t, before)
}

func FuzzGzipDecoder(f *testing.F) {
	z, _ := compressBody(f, encCodings[0], fuzzSSE, true)
	f.Add(z, uint(len(z)/2))
	f.Add(z[:len(z)/2], uint(3))
	f.Add(append(bytes.Clone(z), z...), uint(len(z)))
	f.Add(gzipZeros(f, 300<<10), uint(100))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, uint(1))
	f.Add([]byte{}, uint(0))
	f.Fuzz(func(t *testing.T, body []byte, split uint) {
		fuzzEncoded(t, "gzip", body, split)
	})
}

// FuzzDeflateBrotliDecoder covers the other codings: br is a port of the
// C decoder, and deflate chooses zlib or raw by sniffing.
func FuzzDeflateBrotliDecoder(f *testing.F) {
	for i, c := range encCodings[1:] {
		z, _ := compressBody(f, c, fuzzSSE, true)
		f.Add(z, uint(len(z)/2), c.header == "br")
		f.Add(z[:len(z)/2], uint(i), c.header == "br")
	}
	f.Add([]byte{0x78}, uint(1), false)
	f.Fuzz(func(t *testing.T, body []byte, split uint, br bool) {
		fuzzEncoded(t, map[bool]string{false: "deflate", true: "br"}[br], body, split)
	})
}

// BenchmarkGzipSSE is BenchmarkOpenAIChatSSE's stream gzip-compressed and
// flushed per event; their difference is the cost of decompression.
func BenchmarkGzipSSE(b *testing.B) {
	z, _ := compressBody(b, encCodings[0], chatStream(200, true), true)
	chunks := randomChunks(z, 200, rand.New(rand.NewPCG(1, 1))) // about 100 bytes each
	dialect := OpenAIChat()
	resp := Response{Status: 200, ContentType: "text/event-stream", ContentEncoding: "gzip"}
	b.SetBytes(int64(len(z)))
	b.ReportAllocs()
	var res Result
	for b.Loop() {
		d := dialect.NewDecoder(resp, 0)
		for _, c := range chunks {
			_ = d.Feed(c)
		}
		res = d.Finish(true)
	}
	if res.Err != nil || res.Usage.Get(usage.Output) == 0 {
		b.Fatalf("bad result: %+v", res)
	}
	// The decompressing goroutine's allocations count too.
	long, _ := compressBody(b, encCodings[0], chatStream(2000, false), true)
	b.ReportMetric(steadyAllocsPerChunk(b, dialect, resp, long), "allocs/chunk")
	b.ReportMetric(float64(len(chunks)), "chunks/op")
}
