package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	d := newDist(ds)
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := d.pct(tt.q); got != tt.want {
			t.Errorf("pct(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := dist(nil).p99(); got != 0 {
		t.Errorf("empty p99 = %v", got)
	}
}

// The ladder doubles until a failure, then bisects to within 12.5%.
func TestLadder(t *testing.T) {
	const capacity = 1000
	l := &ladder{start: 100, max: 20}
	var tried []float64
	for {
		r, ok := l.next()
		if !ok {
			break
		}
		tried = append(tried, r)
		l.record(r, r <= capacity)
	}
	want := []float64{100, 200, 400, 800, 1600, 1200, 1000, 1100}
	if !slices.Equal(tried, want) {
		t.Fatalf("tried %v, want %v", tried, want)
	}
	if l.lo != 1000 {
		t.Fatalf("best %v, want 1000", l.lo)
	}
}

func TestLadderStartFails(t *testing.T) {
	l := &ladder{start: 100, max: 3}
	var tried []float64
	for {
		r, ok := l.next()
		if !ok {
			break
		}
		tried = append(tried, r)
		l.record(r, false)
	}
	if !slices.Equal(tried, []float64{100, 50, 25}) || l.lo != 0 {
		t.Fatalf("tried %v, best %v", tried, l.lo)
	}
}

// Events are counted wherever the reads split the body, blank lines
// included.
func TestReadEvents(t *testing.T) {
	body := "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"
	for _, r := range []io.Reader{strings.NewReader(body), iotest.OneByteReader(strings.NewReader(body))} {
		at, tail, err := readEvents(r, 3)
		if err != nil || len(at) != 3 || !strings.HasSuffix(string(tail), "data: [DONE]\n\n") {
			t.Fatalf("%d events, tail %q, err %v", len(at), tail, err)
		}
	}
	_, _, err := readEvents(iotest.ErrReader(errors.New("cut")), 1)
	if err == nil {
		t.Fatal("no error from a failing body")
	}
}

func TestParseBench(t *testing.T) {
	out := []byte(`goos: linux
pkg: github.com/tokenmeter/tokenmeter/framing
BenchmarkSSE-2   	   48733	     24627 ns/op	1969.57 MB/s	       486.0 chunks/op	       3 B/op	       0 allocs/op
pkg: github.com/tokenmeter/tokenmeter/dialect
BenchmarkOpenAIChatSSE-2   	  200	    248067 ns/op	 230.63 MB/s	         0.0006017 allocs/chunk	       572.0 chunks/op	    4144 B/op	      13 allocs/op
BenchmarkOpenAIChatJSON-2  	  200	      6220 ns/op	 142.28 MB/s	    1496 B/op	      11 allocs/op
PASS
`)
	got := sseAllocs(parseBench(out))
	want := []sseAlloc{
		{"dialect.BenchmarkOpenAIChatSSE", 0.0006017, "allocs/chunk after warm-up"},
		{"framing.BenchmarkSSE", 0, "allocs/op ÷ chunks/op"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// Cleanups run newest first when their scope ends, and a Fatal inside the
// scope becomes its error without ending the program.
func TestRunnerScope(t *testing.T) {
	r, err := newRunner(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer r.cleanupTo(0)
	var order []int
	err = r.scope(func() {
		r.Cleanup(func() { order = append(order, 1) })
		r.Cleanup(func() { order = append(order, 2) })
		r.Fatalf("stop %d", 7)
		order = append(order, 99)
	})
	if err == nil || err.Error() != "stop 7" || !slices.Equal(order, []int{2, 1}) {
		t.Fatalf("err %v, order %v", err, order)
	}
	if r.mark() != 1 { // the runner's own temp dir
		t.Fatalf("%d cleanups left", r.mark())
	}
}

func TestChatBodySize(t *testing.T) {
	for _, n := range []int{200, 1024, 1 << 20} {
		if got := len(chatBody(n, n == 200)); got != n {
			t.Errorf("chatBody(%d) is %d bytes", n, got)
		}
	}
}
