package framing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// arrayRun is what a JSONArray made of a body.
type arrayRun struct {
	elements []string
	tooLarge int
	syntax   bool
	done     bool
	pending  bool
}

func collectArray(t testing.TB, max int, chunks ...[]byte) arrayRun {
	t.Helper()
	d := NewJSONArray(max)
	var r arrayRun
	for _, c := range chunks {
		err := d.Feed(c, func(el []byte) error {
			r.elements = append(r.elements, string(el))
			return nil
		})
		switch {
		case err == nil:
		case errors.Is(err, ErrElementTooLarge):
		case errors.Is(err, ErrArraySyntax):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	r.tooLarge = d.Dropped()
	r.syntax = d.Err() != nil
	r.done, r.pending = d.Done(), d.Pending()
	if r.syntax && !errors.Is(d.Err(), ErrArraySyntax) {
		t.Fatalf("Err() = %v, not ErrArraySyntax", d.Err())
	}
	return r
}

func TestJSONArray(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want arrayRun
	}{
		{"gemini shape", "[{\n  \"a\": 1\n}\n,\r\n{\n  \"b\": [2]\n}\n]", arrayRun{elements: []string{"{\n  \"a\": 1\n}", "{\n  \"b\": [2]\n}"}, done: true}},
		{"empty", " [ ] ", arrayRun{done: true}},
		{"strings with brackets and escapes", `[{"t":"]}\"[{"},{"u":"\\"},"x\"]",{}]`,
			arrayRun{elements: []string{`{"t":"]}\"[{"}`, `{"u":"\\"}`, `"x\"]"`, `{}`}, done: true}},
		{"scalars and nesting", `[1,-2.5e3 ,true, null,[[]],{"a":{"b":[{}]}}]`,
			arrayRun{elements: []string{"1", "-2.5e3", "true", "null", "[[]]", `{"a":{"b":[{}]}}`}, done: true}},
		{"cut mid-element", `[{"a":1},{"b":`, arrayRun{elements: []string{`{"a":1}`}, pending: true}},
		{"cut between elements", `[{"a":1},`, arrayRun{elements: []string{`{"a":1}`}}},
		{"cut in a scalar", `[12`, arrayRun{pending: true}},
		{"nothing", "", arrayRun{}},
		{"not an array", `{"error":{}}`, arrayRun{syntax: true}},
		{"missing comma", `[{"a":1} {"b":2}]`, arrayRun{elements: []string{`{"a":1}`}, syntax: true}},
		{"trailing comma", `[{"a":1},]`, arrayRun{elements: []string{`{"a":1}`}, syntax: true}},
		{"leading comma", `[,{"a":1}]`, arrayRun{syntax: true}},
		{"data after the end", `[{"a":1}] [`, arrayRun{elements: []string{`{"a":1}`}, done: true, syntax: true}},
		{"nothing after an error counts", `[{"a":1}}{"b":2}]`, arrayRun{elements: []string{`{"a":1}`}, syntax: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunks := range splits([]byte(tt.in)) {
				if got := collectArray(t, 0, chunks...); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("chunks %q:\ngot  %+v\nwant %+v", chunks, got, tt.want)
				}
			}
		})
	}
}

func bytewise(in []byte) [][]byte {
	var out [][]byte
	for i := range in {
		out = append(out, in[i:i+1])
	}
	return out
}

// An element over the cap is dropped, whatever the chunking, and the
// decoder resumes exactly at the next one: depth is tracked without the
// bytes.
func TestJSONArrayTooLarge(t *testing.T) {
	big := `{"t":"` + strings.Repeat(`]}\"`, 10) + `"}`
	in := []byte(`[{"a":1},` + big + `,"` + strings.Repeat("x", 40) + `",{"b":2}]`)
	want := arrayRun{elements: []string{`{"a":1}`, `{"b":2}`}, tooLarge: 2, done: true}
	for _, chunks := range splits(in) {
		if got := collectArray(t, 20, chunks...); !reflect.DeepEqual(got, want) {
			t.Fatalf("chunks %q:\ngot  %+v\nwant %+v", chunks, got, want)
		}
	}
	// At the cap exactly, an element is kept.
	exact := `{"c":"` + strings.Repeat("y", 12) + `"}`
	if got := collectArray(t, len(exact), []byte("["+exact+"]")); len(got.elements) != 1 || got.tooLarge != 0 {
		t.Fatalf("element at the cap: %+v", got)
	}
}

func TestJSONArrayBufferBounded(t *testing.T) {
	d := NewJSONArray(64)
	_ = d.Feed([]byte(`[{"t":"`), func([]byte) error { return nil })
	for range 100 {
		_ = d.Feed([]byte(strings.Repeat("z", 10)), func([]byte) error { return nil })
		if cap(d.buf) > 64*2 {
			t.Fatalf("buffer grew to %d", cap(d.buf))
		}
	}
	if !d.Pending() || d.Dropped() != 1 {
		t.Fatalf("pending %v dropped %d", d.Pending(), d.Dropped())
	}
}

func TestJSONArrayEmitError(t *testing.T) {
	stop := errors.New("stop")
	d := NewJSONArray(0)
	n := 0
	err := d.Feed([]byte(`[{},{}]`), func([]byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 2 || !d.Done() {
		t.Fatalf("err %v, %d elements, done %v", err, n, d.Done())
	}
}

func TestJSONArrayZeroValue(t *testing.T) {
	var d JSONArray
	var got []string
	_ = d.Feed([]byte(`[{"a":"`+strings.Repeat("q", 2<<10)+`"}]`), func(el []byte) error { got = append(got, string(el)); return nil })
	if len(got) != 1 || !d.Done() {
		t.Fatalf("zero value: %d elements, done %v", len(got), d.Done())
	}
}

// The decoder copies what it keeps: the caller may reuse a chunk's memory.
func TestJSONArrayDoesNotRetainChunk(t *testing.T) {
	d := NewJSONArray(0)
	var got []string
	emit := func(el []byte) error { got = append(got, string(el)); return nil }
	chunk := []byte(`[{"a":"xy`)
	_ = d.Feed(chunk, emit)
	copy(chunk, "#########")
	_ = d.Feed([]byte(`z"}]`), emit)
	if want := []string{`{"a":"xyz"}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Elements that arrive whole in their chunk, as Gemini sends them, cost no
// allocation; nor do split ones once the buffer has grown.
func TestJSONArrayZeroAllocs(t *testing.T) {
	d := NewJSONArray(0)
	n := 0
	emit := func(el []byte) error { n += len(el); return nil }
	perElement := geminiArrayChunks(400)
	for _, c := range perElement[:10] {
		_ = d.Feed(c, emit)
	}
	if a := testing.AllocsPerRun(1, func() {
		for _, c := range perElement[10:200] {
			_ = d.Feed(c, emit)
		}
	}); a != 0 {
		t.Errorf("element per chunk: %v allocs", a)
	}
	// One chunk per run: AllocsPerRun's warm-up run must not feed a chunk
	// twice, which would no longer be an array.
	chunks := chunked(bytes.Join(perElement[200:], nil), 100, 3)
	k := 0
	if a := testing.AllocsPerRun(len(chunks)-1, func() {
		_ = d.Feed(chunks[k], emit)
		k++
	}); a != 0 {
		t.Errorf("split elements: %v allocs per chunk", a)
	}
	if !d.Done() {
		t.Fatal("array not done")
	}
}

// geminiArrayChunks is geminiArray(n) as Google writes it: one element per
// write, the separator leading ("[{...}\n", ",\r\n{...}\n", ..., "]").
func geminiArrayChunks(n int) [][]byte {
	body := geminiArray(n)
	parts := bytes.Split(body[:len(body)-1], []byte(",\r\n"))
	for i := 1; i < len(parts); i++ {
		parts[i] = append([]byte(",\r\n"), parts[i]...)
	}
	return append(parts, []byte("]"))
}

// referenceArray is what encoding/json makes of in, when it is an array.
func referenceArray(in []byte) ([]json.RawMessage, bool) {
	if t := bytes.TrimLeft(in, " \t\r\n"); len(t) == 0 || t[0] != '[' {
		return nil, false
	}
	var els []json.RawMessage
	if err := json.Unmarshal(in, &els); err != nil {
		return nil, false
	}
	return els, true
}

func FuzzJSONArray(f *testing.F) {
	f.Add([]byte("[{\n  \"a\": \"]\\\"\"\n}\n,\r\n{\n  \"b\": [1, {\"c\": null}]\n}\n]"), uint16(7), uint16(30))
	f.Add([]byte(`[1, "x", true, [], {}, -0.5e+2, null]`), uint16(3), uint16(2))
	f.Add([]byte(`[{"a":"\u00e9\\\\"},{"b":2}`), uint16(11), uint16(500))
	f.Add([]byte(`[{"a":1},]`), uint16(9), uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, split, max uint16) {
		at := int(split) % (len(in) + 1)
		limit := int(max)%512 + 1
		whole := collectArray(t, limit, in)
		if parts := collectArray(t, limit, in[:at], in[at:]); !reflect.DeepEqual(whole, parts) {
			t.Fatalf("split at %d changed the result:\nwhole %+v\nsplit %+v", at, whole, parts)
		}
		if len(in) < 256 {
			if bytes := collectArray(t, limit, bytewise(in)...); !reflect.DeepEqual(whole, bytes) {
				t.Fatalf("byte by byte changed the result:\nwhole %+v\nbytes %+v", whole, bytes)
			}
		}
		ref, ok := referenceArray(in)
		if !ok {
			return
		}
		want := arrayRun{done: true}
		for _, el := range ref {
			if len(el) > limit {
				want.tooLarge++
				continue
			}
			want.elements = append(want.elements, string(el))
		}
		if !reflect.DeepEqual(whole, want) {
			t.Fatalf("differs from encoding/json (cap %d):\ngot  %+v\nwant %+v", limit, whole, want)
		}
	})
}

// geminiArray is a streamGenerateContent body of n chunks, as Google
// formats it without alt=sse.
func geminiArray(n int) []byte {
	var b bytes.Buffer
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",\r\n")
		}
		fmt.Fprintf(&b, "{\n  \"candidates\": [\n    {\n      \"content\": {\n        \"parts\": [\n          {\n"+
			"            \"text\": \" word%d with \\\"quotes\\\" and [brackets]\"\n          }\n        ],\n"+
			"        \"role\": \"model\"\n      },\n      \"index\": 0\n    }\n  ],\n  \"usageMetadata\": {\n"+
			"    \"promptTokenCount\": 12,\n    \"candidatesTokenCount\": %d,\n    \"totalTokenCount\": %d\n  },\n"+
			"  \"modelVersion\": \"gemini-2.5-flash\",\n  \"responseId\": \"abc\"\n}\n", i, i+1, i+13)
	}
	b.WriteString("]")
	return b.Bytes()
}

func BenchmarkJSONArray(b *testing.B) {
	body := geminiArray(200)
	chunks := chunked(body, 100, 1)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var n int
	emit := func(el []byte) error { n += len(el); return nil }
	for b.Loop() {
		d := NewJSONArray(0)
		for _, c := range chunks {
			_ = d.Feed(c, emit)
		}
		if !d.Done() {
			b.Fatal("array not done")
		}
	}
	b.ReportMetric(float64(len(chunks)), "chunks/op")
}

func ExampleJSONArray() {
	d := NewJSONArray(1 << 16)
	show := func(el []byte) error {
		fmt.Printf("%s\n", el)
		return nil
	}
	// Google's streamGenerateContent body, split anywhere, even inside a
	// string that holds brackets and an escaped quote.
	for _, chunk := range []string{"[{\"text\": \"a ]\\\"", "}\"}\n,\r\n{\"te", "xt\": \"b\"}\n", "]"} {
		if err := d.Feed([]byte(chunk), show); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("done:", d.Done())
	// Output:
	// {"text": "a ]\"}"}
	// {"text": "b"}
	// done: true
}
