package cloudevents

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/cloudevents/cetest"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// noWait records the waits asked for and returns at once (unless ctx has
// ended), so retries are tested without sleeping.
type noWait struct {
	mu sync.Mutex
	d  []time.Duration
}

func (n *noWait) sleep(ctx context.Context, d time.Duration) error {
	n.mu.Lock()
	n.d = append(n.d, d)
	n.mu.Unlock()
	return ctx.Err()
}

// record i has i+1 input tokens and costs i+1 nano-units.
func record(i int) *ledger.Record {
	r := sample()
	r.RequestID = fmt.Sprintf("req-%03d", i)
	r.Usage = usage.Usage{}
	r.Usage.Set(usage.Input, int64(i+1))
	r.Cost, r.ListCost = money.Amount(i+1), money.Amount(i+1)
	return r
}

func newSender(t *testing.T, url string, o Options) *Sender {
	t.Helper()
	o.URL, o.Meta, o.Logger = url, meta, quiet
	if o.Sleep == nil {
		o.Sleep = (&noWait{}).sleep
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 10 * time.Millisecond
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// checkDelivered holds the receiver's events to records 0..n-1: each once,
// with its exact tokens and cost.
func checkDelivered(t *testing.T, rcv *cetest.Receiver, n int) {
	t.Helper()
	events := rcv.Events()
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.ID()] {
			t.Errorf("event %s accepted twice", e.ID())
		}
		seen[e.ID()] = true
		var d Data
		if err := e.DataAs(&d); err != nil {
			t.Fatal(err)
		}
		var i int
		if _, err := fmt.Sscanf(e.ID(), "req-%d", &i); err != nil {
			t.Fatalf("id %q", e.ID())
		}
		if d.Tokens["input"] != int64(i+1) || d.Cost != money.Amount(i+1).String() {
			t.Errorf("%s: input %d cost %s, want %d and %s", e.ID(), d.Tokens["input"], d.Cost, i+1, money.Amount(i+1))
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events accepted, want %d", len(seen), n)
	}
}

// 500, 502, 429 and 503 before success: every record arrives once (the
// batch is retried with the same ids), and the waits double, with jitter.
func TestDeliversThroughServerErrors(t *testing.T) {
	rcv := cetest.Start(t)
	statuses := []int{500, 502, 429, 503}
	rcv.Respond(func(n int) int {
		if n <= len(statuses) {
			return statuses[n-1]
		}
		return http.StatusNoContent
	})
	waits := &noWait{}
	s := newSender(t, rcv.URL, Options{BatchSize: 4, Backoff: time.Second, Sleep: waits.sleep})
	for i := range 10 {
		s.Append(record(i))
	}
	rcv.WaitEvents(t, 10, 5*time.Second)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, rcv, 10)
	st := s.Stats()
	if st.Sent != 10 || st.Failed != 0 || st.Dropped != 0 || st.Retries != 4 || st.Queued != 0 {
		t.Errorf("stats %+v, want 10 sent and 4 retries", st)
	}
	// The first batch's waits: 1s, 2s, 4s, 8s, each with jitter (from half
	// to whole).
	if len(waits.d) != 4 {
		t.Fatalf("waits %v, want 4", waits.d)
	}
	for i, d := range waits.d {
		if full := time.Second << i; d < full/2 || d > full {
			t.Errorf("wait %d = %v, want %v to %v", i, d, full/2, full)
		}
	}
	if p := rcv.Problems(); len(p) > 0 {
		t.Errorf("receiver could not read: %v", p)
	}
}

// A receiver that never takes the events: they are counted failed after
// MaxAttempts (a 5xx) or at once (a 4xx), never retried forever.
func TestPermanentFailure(t *testing.T) {
	for _, tc := range []struct {
		name          string
		status        int
		wantRequests  int
		wantRetries   uint64
		retryAfterHdr string
	}{
		{"5xx until the attempts run out", 500, 3, 2, ""},
		{"429 with a long Retry-After", 429, 3, 2, "3600"},
		{"400 is final", 400, 1, 0, ""},
		{"401 is final", 401, 1, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var requests int
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				requests++
				mu.Unlock()
				if tc.retryAfterHdr != "" {
					w.Header().Set("Retry-After", tc.retryAfterHdr)
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			waits := &noWait{}
			s := newSender(t, srv.URL, Options{BatchSize: 5, MaxAttempts: 3, Sleep: waits.sleep, FlushInterval: time.Hour})
			for i := range 5 {
				s.Append(record(i))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.Failed != 5 || st.Sent != 0 || st.Dropped != 0 || st.Retries != tc.wantRetries || requests != tc.wantRequests {
				t.Errorf("stats %+v after %d requests, want 5 failed, %d retries, %d requests", st, requests, tc.wantRetries, tc.wantRequests)
			}
			if tc.retryAfterHdr != "" && slices.ContainsFunc(waits.d, func(d time.Duration) bool { return d != MaxBackoff }) {
				t.Errorf("waits %v, want Retry-After capped at %v", waits.d, MaxBackoff)
			}
		})
	}
}

// While the receiver holds the one request in flight, the queue fills and
// the rest are dropped and counted; Append never blocks.
func TestFullQueueDrops(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 16)
	rcv := cetest.Start(t)
	hold := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		// Hand the request to the real receiver, which decodes it.
		req, _ := http.NewRequest(http.MethodPost, rcv.URL, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	defer hold.Close()
	s := newSender(t, hold.URL, Options{BatchSize: 1, QueueSize: 4})
	s.Append(record(0))
	<-arrived // the worker holds record 0; the queue is empty
	start := time.Now()
	for i := 1; i <= 7; i++ {
		s.Append(record(i))
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("7 appends took %v", d)
	}
	if st := s.Stats(); st.Dropped != 3 || st.Queued != 5 {
		t.Errorf("stats %+v, want 3 dropped and 5 waiting (4 queued, 1 in flight)", st)
	}
	close(release)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Sent != 5 || st.Dropped != 3 || st.Failed != 0 {
		t.Errorf("stats %+v, want 5 sent, 3 dropped", st)
	}
	checkDelivered(t, rcv, 5)
	// BatchSize 1: each event alone, in structured mode.
	for _, h := range rcv.Headers() {
		if ct := h.Get("Content-Type"); ct != ContentTypeStructured {
			t.Errorf("content type %q, want %q", ct, ContentTypeStructured)
		}
	}
}

// Close sends what is queued, at once (not after FlushInterval), in
// batches of BatchSize; an Append after it is dropped and counted.
func TestCloseDrains(t *testing.T) {
	rcv := cetest.Start(t)
	s := newSender(t, rcv.URL, Options{BatchSize: 3, FlushInterval: time.Hour,
		Headers: map[string]string{"Authorization": "Bearer om-secret"}})
	for i := range 7 {
		s.Append(record(i))
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	s.Append(record(99))
	checkDelivered(t, rcv, 7)
	if st := s.Stats(); st.Sent != 7 || st.Dropped != 1 {
		t.Errorf("stats %+v, want 7 sent and the late one dropped", st)
	}
	hs := rcv.Headers()
	if len(hs) != 3 {
		t.Errorf("%d requests, want 3 (batches of 3, 3, 1)", len(hs))
	}
	for _, h := range hs {
		if h.Get("Authorization") != "Bearer om-secret" || h.Get("Content-Type") != ContentTypeBatch {
			t.Errorf("headers %v", h)
		}
	}
}

// A receiver that is down at shutdown holds Close no longer than
// DrainTimeout (plus one request's timeout at most); what was not sent is
// dropped and counted, not failed.
func TestCloseBoundedWhenReceiverDown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	s := newSender(t, srv.URL, Options{BatchSize: 2, MaxAttempts: 1000, Backoff: 20 * time.Millisecond,
		DrainTimeout: 300 * time.Millisecond, Sleep: sleepCtx, FlushInterval: time.Hour})
	for i := range 6 {
		s.Append(record(i))
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("Close took %v, want about the 300ms drain timeout", d)
	}
	if st := s.Stats(); st.Dropped != 6 || st.Sent != 0 || st.Failed != 0 || st.Retries == 0 {
		t.Errorf("stats %+v, want 6 dropped after some retries", st)
	}
}

// A record without an id is not an event: failed, and its batch's others
// are still sent.
func TestRecordWithoutIDFails(t *testing.T) {
	rcv := cetest.Start(t)
	s := newSender(t, rcv.URL, Options{BatchSize: 3, FlushInterval: time.Hour})
	s.Append(record(0))
	bad := record(1)
	bad.RequestID = ""
	s.Append(bad)
	s.Append(record(2))
	rcv.WaitEvents(t, 2, 5*time.Second)
	_ = s.Close() // the counters are final
	if st := s.Stats(); st.Sent != 2 || st.Failed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		url     string
		headers map[string]string
		ok      bool
	}{
		{"https://openmeter.cloud/api/v1/events", map[string]string{"Authorization": "Bearer x"}, true},
		{"http://127.0.0.1:8888/api/v1/events", nil, true},
		{"ftp://x/y", nil, false},
		{"/api/v1/events", nil, false},
		{"https://x", map[string]string{"Bad Name": "v"}, false},
		{"https://x", map[string]string{"Authorization": "a\r\nb"}, false},
	} {
		if err := Validate(tc.url, tc.headers); (err == nil) != tc.ok {
			t.Errorf("Validate(%q, %v) = %v", tc.url, tc.headers, err)
		}
	}
}

// The receiver's decoder reads outside bytes (in tests, the sender's);
// whatever it is given, it errs or returns valid events, and never panics.
func FuzzDecode(f *testing.F) {
	e, _ := NewEvent(meta, sample())
	one, _ := e.MarshalJSON()
	f.Add(ContentTypeStructured, one)
	f.Add(ContentTypeBatch, append(append([]byte("["), one...), ']'))
	f.Add(ContentTypeBatch, []byte(`[{"specversion":"1.0"}]`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		events, err := cetest.Decode(ct, body)
		if err != nil {
			return
		}
		for _, e := range events {
			if e.Validate() != nil {
				t.Errorf("Decode returned an invalid event: %v", e)
			}
		}
	})
}
