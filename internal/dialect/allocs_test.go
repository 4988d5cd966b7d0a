package dialect

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// steadyAllocsPerChunk is allocsPerChunk over body split as the benchmarks
// split their streams: chunks of about 200 bytes.
func steadyAllocsPerChunk(tb testing.TB, d Dialect, resp Response, body []byte) float64 {
	tb.Helper()
	cs := randomChunks(body, 200, rand.New(rand.NewPCG(2, 2)))
	return allocsPerChunk(tb, func() Decoder { return d.NewDecoder(resp, 0) }, cs)
}

// allocsPerChunk measures the allocations of the Feed calls of a long
// stream in a server's steady state, which is what grows with a stream's
// length (issue 7: none). Steady state means past the decoder's warm-up, the
// first tenth of the stream (its first events, the framing buffers'
// growth), and with an earlier stream like it finished, so that the text
// pages it held are back in the pool, as in a server that has served
// before. The Feed calls of the decompressing goroutine, if any, count.
//
// Not testing.AllocsPerRun: its warm-up run would feed the stream twice,
// which a compressed stream does not survive, and it rounds the average
// down to a whole number per run, which hides a few allocations over
// thousands of chunks.
func allocsPerChunk(tb testing.TB, newDecoder func() Decoder, cs [][]byte) float64 {
	tb.Helper()
	// As AllocsPerRun does: other goroutines allocate less meanwhile.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// A pool keeps what it holds through one collection but not two;
	// collecting now makes the result independent of when the collector
	// runs, as the few allocations below do not start another cycle.
	runtime.GC()
	earlier := newDecoder()
	for _, c := range cs {
		_ = earlier.Feed(c)
	}
	want := earlier.Finish(true)

	d := newDecoder()
	warm := len(cs) / 10
	for _, c := range cs[:warm] {
		_ = d.Feed(c)
	}
	rest := cs[warm:]
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	feedMeasured(d, rest)
	runtime.ReadMemStats(&after)
	// The measured decoder must have read the whole stream, as the earlier one did.
	if got := d.Finish(true); got.StreamedTextBytes == 0 || got.StreamedTextBytes != want.StreamedTextBytes {
		tb.Fatalf("measured stream read %d bytes of text, the earlier one %d", got.StreamedTextBytes, want.StreamedTextBytes)
	}
	return float64(after.Mallocs-before.Mallocs) / float64(len(rest))
}

//go:noinline
func feedMeasured(d Decoder, rest [][]byte) {
	for _, c := range rest {
		_ = d.Feed(c)
	}
}
