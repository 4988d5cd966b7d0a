package framing

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// ndjsonResult is what a decoder made of a body.
type ndjsonResult struct {
	lines    []string
	tooLarge int // Feed calls that returned ErrLineTooLarge
	pending  bool
}

// collectNDJSON feeds chunks to a fresh decoder, then flushes it.
func collectNDJSON(t testing.TB, max int, chunks ...[]byte) ndjsonResult {
	t.Helper()
	var r ndjsonResult
	d := NewNDJSON(max)
	emit := func(line []byte) error {
		r.lines = append(r.lines, string(line))
		return nil
	}
	for _, c := range chunks {
		err := d.Feed(c, emit)
		if errors.Is(err, ErrLineTooLarge) {
			r.tooLarge++
		} else if err != nil {
			t.Fatalf("Feed: %v", err)
		}
		if len(d.line) > d.limit() {
			t.Fatalf("buffered %d bytes, cap %d", len(d.line), d.limit())
		}
	}
	r.pending = d.Pending()
	if err := d.Flush(emit); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if d.Pending() {
		t.Fatal("Pending after Flush")
	}
	return r
}

// ndjsonReference is the specification in a few lines: split at LF, drop a
// CR before the LF, skip blank lines and lines over max bytes.
func ndjsonReference(in []byte, max int) []string {
	var out []string
	for _, piece := range strings.Split(string(in), "\n") {
		if len(piece) > max {
			continue
		}
		piece = strings.TrimSuffix(piece, "\r")
		if strings.Trim(piece, " \t\r") != "" {
			out = append(out, piece)
		}
	}
	return out
}

func TestNDJSONSpec(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		pending bool // before Flush
	}{
		{"lf", "{\"a\":1}\n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}, false},
		{"crlf", "{\"a\":1}\r\n{\"b\":2}\r\n", []string{`{"a":1}`, `{"b":2}`}, false},
		{"last line without lf", "{\"a\":1}\n{\"b\":2}", []string{`{"a":1}`, `{"b":2}`}, true},
		{"last line crlf cut after cr", "{\"a\":1}\r", []string{`{"a":1}`}, true},
		{"blank lines", "\n\r\n  \t\n{\"a\":1}\n\n\n", []string{`{"a":1}`}, false},
		{"trailing whitespace only", "{\"a\":1}\n \r", []string{`{"a":1}`}, false},
		{"lone cr is not a line end", "{\"a\":\r1}\n", []string{"{\"a\":\r1}"}, false},
		{"only one cr dropped", "x\r\r\n", []string{"x\r"}, false},
		{"inner spaces kept", "  {\"a\": 1}  \n", []string{`  {"a": 1}  `}, false},
		{"empty", "", nil, false},
		{"nul passes", "a\x00b\n", []string{"a\x00b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			for _, chunks := range splits(in) {
				got := collectNDJSON(t, 0, chunks...)
				if !reflect.DeepEqual(got.lines, tt.want) || got.tooLarge != 0 || got.pending != tt.pending {
					t.Fatalf("chunks %q: got %q pending %v tooLarge %d; want %q pending %v",
						chunks, got.lines, got.pending, got.tooLarge, tt.want, tt.pending)
				}
			}
		})
	}
}

func TestNDJSONTooLarge(t *testing.T) {
	big := strings.Repeat("x", 21)
	in := []byte("ok\n" + big + "\n" + "after\r\n" + big + "\r\n" + strings.Repeat("y", 20) + "\n" + big)
	want := []string{"ok", "after", strings.Repeat("y", 20)}
	for _, chunks := range splits(in) {
		got := collectNDJSON(t, 20, chunks...)
		if !reflect.DeepEqual(got.lines, want) {
			t.Fatalf("chunks %q: got %q, want %q", chunks, got.lines, want)
		}
		if got.tooLarge == 0 || !got.pending {
			t.Fatalf("chunks %q: tooLarge %d pending %v", chunks, got.tooLarge, got.pending)
		}
	}
	d := NewNDJSON(20)
	_ = d.Feed(in, func([]byte) error { return nil })
	if d.Dropped() != 3 {
		t.Fatalf("Dropped %d, want 3", d.Dropped())
	}
}

func TestNDJSONCapCountsCR(t *testing.T) {
	// 20 bytes and a CR: over a cap of 20 however the CRLF is split.
	in := []byte(strings.Repeat("z", 20) + "\r\nok\n")
	for _, chunks := range splits(in) {
		if got := collectNDJSON(t, 20, chunks...); !reflect.DeepEqual(got.lines, []string{"ok"}) {
			t.Fatalf("chunks %q: got %q", chunks, got.lines)
		}
	}
}

func TestNDJSONEmitError(t *testing.T) {
	stop := errors.New("stop")
	d := NewNDJSON(0)
	var n int
	err := d.Feed([]byte("a\nb\nc"), func([]byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 2 {
		t.Fatalf("err %v after %d lines; want the first emit error, every line still emitted", err, n)
	}
	if err := d.Flush(func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Flush: %v", err)
	}
}

func TestNDJSONZeroValue(t *testing.T) {
	var d NDJSON
	var got []string
	_ = d.Feed([]byte("a\nb"), func(l []byte) error { got = append(got, string(l)); return nil })
	_ = d.Flush(func(l []byte) error { got = append(got, string(l)); return nil })
	if !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("got %q", got)
	}
}

func FuzzNDJSON(f *testing.F) {
	f.Add([]byte("{\"a\":1}\r\n\r\n{\"b\":\"x\\ny\"}\n  \n{\"c\""), uint16(9), uint16(0))
	f.Add([]byte("\r\r\n\n"+strings.Repeat("q", 40)+"\nz"), uint16(3), uint16(10))
	f.Add([]byte("abc\r"), uint16(3), uint16(2))
	f.Fuzz(func(t *testing.T, in []byte, split, max uint16) {
		at := int(split) % (len(in) + 1)
		limit := int(max)%64 + 1
		whole := collectNDJSON(t, limit, in)
		parts := collectNDJSON(t, limit, in[:at], in[at:])
		if !reflect.DeepEqual(whole.lines, parts.lines) || whole.pending != parts.pending {
			t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, whole, parts)
		}
		if ref := ndjsonReference(in, limit); !reflect.DeepEqual(whole.lines, ref) {
			t.Fatalf("differs from the reference:\ngot  %q\nwant %q", whole.lines, ref)
		}
		if (whole.tooLarge > 0) != (parts.tooLarge > 0) {
			t.Fatalf("too-large reported whole %d, split %d", whole.tooLarge, parts.tooLarge)
		}
		unlimited := collectNDJSON(t, len(in)+1, in)
		if ref := ndjsonReference(in, len(in)+1); !reflect.DeepEqual(unlimited.lines, ref) {
			t.Fatalf("differs from the reference:\ngot  %q\nwant %q", unlimited.lines, ref)
		}
	})
}

// ndjsonBenchStream is a realistic Ollama /api/chat stream of n lines.
func ndjsonBenchStream(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "{\"model\":\"llama3.2\",\"created_at\":\"2024-07-22T20:47:51.147561Z\","+
			"\"message\":{\"role\":\"assistant\",\"content\":\" word%d\"},\"done\":false}\n", i)
	}
	b.WriteString(`{"model":"llama3.2","created_at":"2024-07-22T20:47:52.1Z","message":{"role":"assistant","content":""},` +
		`"done_reason":"stop","done":true,"total_duration":1,"prompt_eval_count":26,"eval_count":` + fmt.Sprint(n) + "}\n")
	return b.Bytes()
}

func BenchmarkNDJSON(b *testing.B) {
	body := ndjsonBenchStream(200)
	chunks := chunked(body, 100, 1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	d := NewNDJSON(0)
	var n int
	emit := func(line []byte) error { n += len(line); return nil }
	for b.Loop() {
		for _, c := range chunks {
			_ = d.Feed(c, emit)
		}
		_ = d.Flush(emit)
	}
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	rest := chunked(ndjsonBenchStream(2000), 100, 2)
	allocs := testing.AllocsPerRun(1, func() {
		for _, c := range rest {
			_ = d.Feed(c, emit)
		}
	})
	b.ReportMetric(allocs/float64(len(rest)), "allocs/chunk")
}

func ExampleNDJSON() {
	d := NewNDJSON(1 << 16)
	show := func(line []byte) error {
		fmt.Printf("%s\n", line)
		return nil
	}
	// A body arrives split anywhere, even inside a CRLF; its last line has
	// no line feed, so Flush emits it.
	for _, chunk := range []string{"{\"response\":\"Hel", "lo\",\"done\":false}\r", "\n\r\n{\"done\":tr", "ue,\"eval_count\":2}"} {
		if err := d.Feed([]byte(chunk), show); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("pending:", d.Pending())
	_ = d.Flush(show)
	// Output:
	// {"response":"Hello","done":false}
	// pending: true
	// {"done":true,"eval_count":2}
}
