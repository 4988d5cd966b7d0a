package framing

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

type event struct{ Name, Data string }

// collect feeds chunks to a fresh decoder and returns copies of the events,
// how many Feed calls failed with ErrEventTooLarge, and the final Pending.
func collect(t testing.TB, max int, chunks ...[]byte) (evs []event, tooLarge int, pending bool) {
	d := NewSSE(max)
	for _, c := range chunks {
		err := d.Feed(c, func(e Event) error {
			evs = append(evs, event{string(e.Name), string(e.Data)})
			return nil
		})
		if errors.Is(err, ErrEventTooLarge) {
			tooLarge++
		} else if err != nil {
			t.Fatalf("Feed: %v", err)
		}
		if b := d.buffered(); b > d.limit() {
			t.Fatalf("buffered %d bytes, cap %d", b, d.limit())
		}
	}
	return evs, tooLarge, d.Pending()
}

// buffered is the bytes held for the unfinished event.
func (d *SSE) buffered() int { return len(d.line) + len(d.data) + len(d.name) }

func TestSSESpec(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []event
		pending bool
	}{
		{"lf", "data: a\n\n", []event{{"", "a"}}, false},
		{"crlf", "data: a\r\n\r\n", []event{{"", "a"}}, false},
		{"cr", "data: a\r\r", []event{{"", "a"}}, false},
		{"mixed ends", "data: a\r\ndata: b\rdata: c\n\r\n", []event{{"", "a\nb\nc"}}, false},
		{"joined with lf", "data: a\ndata:b\ndata\n\n", []event{{"", "a\nb\n"}}, false},
		{"one space stripped", "data:  two\n\n", []event{{"", " two"}}, false},
		{"no space", "data:x\n\n", []event{{"", "x"}}, false},
		{"empty data dispatches", "data:\n\n", []event{{"", ""}}, false},
		{"comment", ": keep-alive\n\n: x\ndata: a\n\n", []event{{"", "a"}}, false},
		{"event name", "event: ping\ndata: {}\n\n", []event{{"ping", "{}"}}, false},
		{"last name wins", "event: a\nevent: b\ndata: x\n\n", []event{{"b", "x"}}, false},
		{"name resets", "event: a\ndata: 1\n\ndata: 2\n\n", []event{{"a", "1"}, {"", "2"}}, false},
		{"no data no event", "event: a\n\nid: 1\nretry: 5\n\n", nil, false},
		{"name without data resets", "event: a\n\ndata: 2\n\n", []event{{"", "2"}}, false},
		{"unknown field", "foo: bar\ndata: a\nDATA: b\n\n", []event{{"", "a"}}, false},
		{"colon in value", "data: a:b: c\n\n", []event{{"", "a:b: c"}}, false},
		{"bom", "\xEF\xBB\xBFdata: a\n\n", []event{{"", "a"}}, false},
		{"bom only first", "data: a\n\n\xEF\xBB\xBFdata: b\n\n", []event{{"", "a"}}, false},
		{"unterminated event", "data: a\n\ndata: b\n", []event{{"", "a"}}, true},
		{"unterminated line", "data: a\n\ndata: b", []event{{"", "a"}}, true},
		{"trailing comment only", "data: a\n\n: x\n", []event{{"", "a"}}, false},
		{"done", "data: {\"x\":1}\n\ndata: [DONE]\n\n", []event{{"", `{"x":1}`}, {"", "[DONE]"}}, false},
		{"many blank lines", "\n\n\r\n\rdata: a\n\n\n\n", []event{{"", "a"}}, false},
		{"nul passes", "data: a\x00b\n\n", []event{{"", "a\x00b"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			for _, chunks := range splits(in) {
				got, tooLarge, pending := collect(t, 0, chunks...)
				if !reflect.DeepEqual(got, tt.want) || tooLarge != 0 || pending != tt.pending {
					t.Fatalf("chunks %q: got %q pending %v tooLarge %d; want %q pending %v",
						chunks, got, pending, tooLarge, tt.want, tt.pending)
				}
			}
		})
	}
}

// splits returns in whole, in every two-piece split, and in one-byte pieces.
func splits(in []byte) [][][]byte {
	out := [][][]byte{{in}}
	for i := 0; i <= len(in); i++ {
		out = append(out, [][]byte{in[:i], in[i:]})
	}
	var bytewise [][]byte
	for i := range in {
		bytewise = append(bytewise, in[i:i+1])
	}
	return append(out, bytewise)
}

func TestSSECRLFAcrossChunks(t *testing.T) {
	// The CR ends one chunk and the LF starts the next: one line end, so the
	// blank line after it still dispatches exactly once.
	got, _, _ := collect(t, 0, []byte("data: a\r"), []byte("\ndata: b\r"), []byte("\n\r"), []byte("\n"))
	want := []event{{"", "a\nb"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestSSETooLarge(t *testing.T) {
	big := "data: " + strings.Repeat("x", 40) + "\n"
	in := []byte("data: ok\n\n" + big + big + "\n" + "data: after\n\n" + big + "data: x\n\n" + "data: end\n\n")
	want := []event{{"", "ok"}, {"", "after"}, {"", "end"}}
	for _, chunks := range splits(in) {
		got, tooLarge, pending := collect(t, 50, chunks...)
		if !reflect.DeepEqual(got, want) || pending {
			t.Fatalf("chunks %q: got %q pending %v, want %q", chunks, got, pending, want)
		}
		if tooLarge == 0 {
			t.Fatalf("chunks %q: no ErrEventTooLarge", chunks)
		}
	}
	d := NewSSE(50)
	_ = d.Feed(in, func(Event) error { return nil })
	if d.Dropped() != 2 {
		t.Fatalf("Dropped = %d, want 2", d.Dropped())
	}
}

func TestSSEEventAtCap(t *testing.T) {
	line := "data: " + strings.Repeat("x", 10) // 16 bytes
	got, tooLarge, _ := collect(t, 16, []byte(line+"\n\n"))
	if len(got) != 1 || tooLarge != 0 {
		t.Fatalf("event of exactly the cap: got %q, tooLarge %d", got, tooLarge)
	}
	got, tooLarge, _ = collect(t, 15, []byte(line+"\n\n"))
	if len(got) != 0 || tooLarge != 1 {
		t.Fatalf("event over the cap: got %q, tooLarge %d", got, tooLarge)
	}
}

// TestSSEBuffersWithinCap: the room buffers get when they grow stays within
// the event cap, so an event at the cap, split anywhere, costs at most the
// cap per buffer.
func TestSSEBuffersWithinCap(t *testing.T) {
	const max = 64
	in := []byte("data: " + strings.Repeat("x", 52) + "\n\n" + // 58 bytes
		"event: " + strings.Repeat("n", 40) + "\ndata: " + strings.Repeat("y", 4) + "\ndata: z\n\n")
	for _, chunks := range splits(in) {
		d := NewSSE(max)
		for _, c := range chunks {
			_ = d.Feed(c, func(Event) error { return nil })
		}
		if cap(d.line) > max || cap(d.data) > max || cap(d.name) > max {
			t.Fatalf("chunks %q: buffers of %d, %d and %d bytes, over the cap of %d", chunks, cap(d.line), cap(d.data), cap(d.name), max)
		}
	}
}

func TestSSEEmitError(t *testing.T) {
	boom := errors.New("boom")
	var n int
	d := NewSSE(0)
	err := d.Feed([]byte("data: 1\n\ndata: 2\n\n"), func(Event) error { n++; return boom })
	if !errors.Is(err, boom) || n != 2 {
		t.Fatalf("err %v after %d events; want boom after 2 (Feed consumes the whole chunk)", err, n)
	}
}

func TestSSEZeroValue(t *testing.T) {
	var d SSE
	var got []string
	_ = d.Feed([]byte("data: a\n\n"), func(e Event) error { got = append(got, string(e.Data)); return nil })
	if len(got) != 1 || got[0] != "a" {
		t.Fatalf("got %q", got)
	}
}

func TestSSEDoesNotRetainChunk(t *testing.T) {
	d := NewSSE(0)
	chunk := []byte("data: abc\n")
	_ = d.Feed(chunk, func(Event) error { return nil })
	copy(chunk, "XXXXXXXXXX")
	var got string
	_ = d.Feed([]byte("\n"), func(e Event) error { got = string(e.Data); return nil })
	if got != "abc" {
		t.Fatalf("got %q: the decoder kept a reference to a chunk it was done with", got)
	}
}

// reference is a direct transcription of the spec's algorithm over a whole
// body, with no cap: the oracle the fuzz test compares against.
func reference(in []byte) []event {
	in = bytes.TrimPrefix(in, bom)
	var evs []event
	var data, name []byte
	hasData := false
	for {
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			return evs // an unterminated last line is never processed
		}
		line := in[:i]
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			i++
		}
		in = in[i+1:]
		switch {
		case len(line) == 0:
			if hasData {
				evs = append(evs, event{string(name), string(data[:len(data)-1])})
			}
			data, name, hasData = nil, nil, false
		case line[0] == ':':
		default:
			field, value, found := bytes.Cut(line, []byte(":"))
			if found {
				value = bytes.TrimPrefix(value, []byte(" "))
			}
			switch string(field) {
			case "data":
				data = append(append(data, value...), '\n')
				hasData = true
			case "event":
				name = append([]byte(nil), value...)
			}
		}
	}
}

func FuzzSSE(f *testing.F) {
	f.Add([]byte("data: a\r\n\r\nevent: x\ndata: b\ndata: c\r\r: c\n\ndata: [DONE]\n\n"), uint16(9), uint16(0))
	f.Add([]byte("\xEF\xBB\xBFdata:x\r"), uint16(3), uint16(4))
	f.Add([]byte("data: "+strings.Repeat("y", 100)+"\n\ndata: z\n\n"), uint16(50), uint16(20))
	f.Fuzz(func(t *testing.T, in []byte, split, max uint16) {
		at := int(split) % (len(in) + 1)
		limit := int(max)%512 + 1
		whole, wholeErrs, wholePending := collect(t, limit, in)
		parts, _, partsPending := collect(t, limit, in[:at], in[at:])
		if !reflect.DeepEqual(whole, parts) || wholePending != partsPending {
			t.Fatalf("split at %d changed the result:\nwhole %q pending %v\nsplit %q pending %v",
				at, whole, wholePending, parts, partsPending)
		}
		if wholeErrs == 0 {
			if ref := reference(in); !reflect.DeepEqual(whole, ref) {
				t.Fatalf("differs from the spec:\ngot  %q\nwant %q", whole, ref)
			}
		}
		unlimited, _, _ := collect(t, len(in)+1, in)
		if ref := reference(in); !reflect.DeepEqual(unlimited, ref) {
			t.Fatalf("differs from the spec:\ngot  %q\nwant %q", unlimited, ref)
		}
	})
}

// chatStream is a realistic OpenAI chat completion stream of n events.
func chatStream(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,"+
			"\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,"+
			"\"delta\":{\"content\":\" word%d\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n", i)
	}
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// chunked cuts body into pieces of about size bytes, as a network would.
func chunked(body []byte, size int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed))
	var out [][]byte
	for len(body) > 0 {
		n := min(len(body), size/2+r.IntN(size)+1)
		out = append(out, body[:n])
		body = body[n:]
	}
	return out
}

func BenchmarkSSE(b *testing.B) {
	body := chatStream(200)
	chunks := chunked(body, 100, 1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	d := NewSSE(0)
	var n int
	emit := func(e Event) error { n += len(e.Data); return nil }
	for b.Loop() {
		for _, c := range chunks {
			_ = d.Feed(c, emit)
		}
	}
	b.ReportMetric(float64(len(chunks)), "chunks/op")
	b.ReportMetric(sseAllocsPerChunk(chunked(chatStream(2000), 200, 2), emit), "allocs/chunk")
}

// sseAllocsPerChunk measures the allocations of a fresh decoder's Feed
// calls over a long stream past its warm-up (the first tenth: the buffers'
// growth), which is what grows with a stream's length (issue 7: none).
// Every chunk is fed once, and the average is not rounded down to a whole
// number per run, as testing.AllocsPerRun and allocs/op would.
func sseAllocsPerChunk(cs [][]byte, emit func(Event) error) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1)) // as AllocsPerRun does
	d := NewSSE(0)
	warm := len(cs) / 10
	for _, c := range cs[:warm] {
		_ = d.Feed(c, emit)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, c := range cs[warm:] {
		_ = d.Feed(c, emit)
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(len(cs)-warm)
}
