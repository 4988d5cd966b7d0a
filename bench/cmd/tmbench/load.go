package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// headerID names a stream request so that its upstream flush times can be
// found (see flushes).
const headerID = "X-Bench-Id"

// maxInFlight bounds the open-loop generator: past it a slot is dropped and
// counted as an error, so an overloaded step fails instead of piling up
// goroutines. Envoy's default circuit breakers (1,024 requests per cluster)
// refuse sooner anyway.
const maxInFlight = 2000

var errDropped = errors.New("dropped: too many requests in flight")

// result is one request.
type result struct {
	side    int
	latency time.Duration // from the scheduled start to the last byte
	// Streams only.
	ttfe   time.Duration   // scheduled start to the first event
	first  time.Duration   // the first event's transit from the mock to the client
	chunks []time.Duration // the transit of each later event
	gaps   []time.Duration // between the mock's flushes
	err    error
}

// driver sends a scenario's request to either side.
type driver struct {
	sc      *scenario
	url     [2]string
	client  [2]*http.Client
	flushes *flushes
	ids     atomic.Int64
	noop    bool // the with side is the floor's no-op server, which names no budget
}

func newDriver(sc *scenario, bareURL, withURL string, f *flushes) *driver {
	d := &driver{sc: sc, url: [2]string{bareURL, withURL}, flushes: f}
	for i := range d.client {
		// One pool per side, big enough that an open-loop burst never
		// queues for a connection inside the client.
		d.client[i] = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: maxInFlight,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		}}
	}
	return d
}

func (d *driver) close() {
	for _, c := range d.client {
		c.CloseIdleConnections()
	}
}

// do sends one request to side, as if it started at at, and checks the
// answer. It never panics: load goroutines must not take the program down
// before its cleanups run.
func (d *driver) do(side int, at time.Time, timeout time.Duration) (res result) {
	res.side = side
	defer func() {
		if v := recover(); v != nil {
			res.err = fmt.Errorf("panic: %v", v)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", d.url[side]+d.sc.Path, bytes.NewReader(d.sc.Body))
	if err != nil {
		res.err = err
		return res
	}
	req.Header = d.sc.Header.Clone()
	var id string
	if d.sc.Events > 0 {
		id = strconv.FormatInt(d.ids.Add(1), 10)
		req.Header.Set(headerID, id)
	}
	resp, err := d.client[side].Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode != d.sc.Want[side] {
		res.err = fmt.Errorf("%s: status %d, want %d: %.200s", sideName[side], resp.StatusCode, d.sc.Want[side], readAtMost(resp.Body, 200))
		return res
	}
	// Every answer through tokenmeter names a budget; none through the
	// bare Envoy does: proof that each side did what it is said to do.
	if metered := resp.Header.Get("x-tokenmeter-budget") != ""; metered != (side == with && !d.noop) {
		res.err = fmt.Errorf("%s: x-tokenmeter-budget %q", sideName[side], resp.Header.Get("x-tokenmeter-budget"))
		return res
	}
	if d.sc.Events == 0 {
		body, err := io.ReadAll(resp.Body)
		res.latency = time.Since(at)
		if err == nil {
			err = d.sc.Check(side, body)
		}
		res.err = err
		return res
	}
	arrivals, tail, err := readEvents(resp.Body, d.sc.Events)
	res.latency = time.Since(at)
	if err != nil {
		res.err = fmt.Errorf("%s: reading the stream: %w", sideName[side], err)
		return res
	}
	res.err = d.streamTimes(&res, id, at, arrivals, tail)
	return res
}

func (d *driver) streamTimes(res *result, id string, at time.Time, arrivals []time.Time, tail []byte) error {
	if len(arrivals) != d.sc.Events || !bytes.HasSuffix(tail, []byte("data: [DONE]\n\n")) {
		return fmt.Errorf("%s: %d events ending %q, want %d ending with [DONE]", sideName[res.side], len(arrivals), tail, d.sc.Events)
	}
	sent := d.flushes.take(id)
	if len(sent) != len(arrivals) {
		return fmt.Errorf("%s: the mock flushed %d events, the client saw %d", sideName[res.side], len(sent), len(arrivals))
	}
	res.ttfe = arrivals[0].Sub(at)
	res.first = arrivals[0].Sub(sent[0])
	res.chunks = make([]time.Duration, len(arrivals)-1)
	res.gaps = make([]time.Duration, len(arrivals)-1)
	for k := 1; k < len(arrivals); k++ {
		res.chunks[k-1] = arrivals[k].Sub(sent[k])
		res.gaps[k-1] = sent[k].Sub(sent[k-1])
	}
	return nil
}

// readEvents reads an SSE body and returns when each event (ended by a
// blank line) arrived, and the body's last bytes.
func readEvents(r io.Reader, expect int) ([]time.Time, []byte, error) {
	buf := make([]byte, 32<<10)
	at := make([]time.Time, 0, expect)
	var tail []byte
	prevNL := false
	for {
		n, err := r.Read(buf)
		if n > 0 {
			now := time.Now()
			for _, c := range buf[:n] {
				switch {
				case c != '\n':
					prevNL = false
				case prevNL:
					at = append(at, now)
					prevNL = false
				default:
					prevNL = true
				}
			}
			tail = append(tail, buf[:n]...)
			if len(tail) > 64 {
				tail = append(tail[:0], tail[len(tail)-64:]...)
			}
		}
		if err == io.EOF {
			return at, tail, nil
		}
		if err != nil {
			return at, tail, err
		}
	}
}

// closedLoop is one client: pairs of requests, one to each side, the order
// swapped every pair so that neither always follows the other.
func (d *driver) closedLoop(pairs int) []result {
	out := make([]result, 0, 2*pairs)
	for i := range pairs {
		order := [2]int{bare, with}
		if i%2 == 1 {
			order = [2]int{with, bare}
		}
		for _, side := range order {
			out = append(out, d.do(side, time.Now(), time.Minute))
		}
	}
	return out
}

// openLoop sends each of sides rate requests per second for dur, on a fixed
// schedule whatever the answers: slot i starts at t0 + i/(rate·len(sides)),
// the sides taking turns (their order swapped every round). Latency counts
// from the slot's scheduled time, not from when a goroutine got to send
// it, so a stall of the system under test (or of this generator) shows up
// in the percentiles instead of thinning the sample: no coordinated
// omission.
func (d *driver) openLoop(sides []int, rate float64, dur, timeout time.Duration) []result {
	n := int(rate*dur.Seconds()) * len(sides)
	interval := time.Duration(float64(time.Second) / (rate * float64(len(sides))))
	out := make([]result, n)
	var wg sync.WaitGroup
	var inFlight atomic.Int64
	t0 := time.Now().Add(5 * time.Millisecond)
	for i := range n {
		at := t0.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		round, turn := i/len(sides), i%len(sides)
		side := sides[(turn+round)%len(sides)]
		if inFlight.Load() >= maxInFlight {
			out[i] = result{side: side, err: errDropped}
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			out[i] = d.do(side, at, timeout)
		}()
	}
	wg.Wait()
	return out
}

// flushes timestamps, in the mock, each flush of a stream request's
// response: the mock flushes once per SSE event, so event k left the mock at
// the k-th time. The mock runs in this process, on the same monotonic clock
// as the client, so arrival minus flush is each event's transit through
// Envoy (and tokenmeter), free of the mock's pacing.
type flushes struct {
	mu sync.Mutex
	m  map[string][]time.Time
}

func newFlushes() *flushes { return &flushes{m: map[string][]time.Time{}} }

func (f *flushes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(headerID)
		if id == "" {
			h.ServeHTTP(w, r)
			return
		}
		fw := &flushWriter{ResponseWriter: w, rc: http.NewResponseController(w), at: make([]time.Time, 0, 256)}
		// Published when the handler returns, which is before the server
		// ends the chunked body, so before the client can see its end.
		defer func() {
			f.mu.Lock()
			f.m[id] = fw.at
			f.mu.Unlock()
		}()
		h.ServeHTTP(fw, r)
	})
}

func (f *flushes) take(id string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	at := f.m[id]
	delete(f.m, id)
	return at
}

type flushWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	at []time.Time
}

func (w *flushWriter) FlushError() error {
	err := w.rc.Flush()
	w.at = append(w.at, time.Now())
	return err
}

func (w *flushWriter) Flush() { _ = w.FlushError() }

func (w *flushWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
