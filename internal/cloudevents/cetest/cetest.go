// Package cetest is an in-process CloudEvents receiver for tests. It reads
// each request as the spec's HTTP binding says (structured mode,
// application/cloudevents+json, or batched mode,
// application/cloudevents-batch+json, matched exactly as OpenMeter does),
// decodes the events with the CloudEvents SDK, validates each, and answers
// with the status the test scripts.
package cetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// The HTTP binding's content types (http-protocol-binding.md, 3.2 and 3.3),
// written here rather than taken from the sender, so that a test holds the
// sender to the spec and not to itself.
const (
	structured = "application/cloudevents+json"
	batched    = "application/cloudevents-batch+json"
)

// Receiver records what it was sent.
type Receiver struct {
	URL string

	mu       sync.Mutex
	respond  func(n int) int
	requests int
	accepted []event.Event // events of requests answered 2xx
	headers  []http.Header // each request's
	problems []error       // requests it could not read as CloudEvents
	changed  chan struct{} // closed and replaced at each request
}

// Start serves a receiver that answers 204 (as OpenMeter does) until told
// otherwise, and stops it when the test ends.
func Start(t testing.TB) *Receiver {
	r := &Receiver{respond: func(int) int { return http.StatusNoContent }, changed: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL + "/api/v1/events"
	return r
}

// Respond sets the status of the n-th request (from 1) and after.
func (r *Receiver) Respond(f func(n int) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.respond = f
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	events, derr := Decode(req.Header.Get("Content-Type"), body)
	r.mu.Lock()
	defer func() {
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}()
	r.requests++
	r.headers = append(r.headers, req.Header.Clone())
	if err == nil {
		err = derr
	}
	if err != nil {
		r.problems = append(r.problems, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	status := r.respond(r.requests)
	if status/100 == 2 {
		r.accepted = append(r.accepted, events...)
	}
	w.WriteHeader(status)
}

// Decode reads a request body as the HTTP binding's structured or batched
// mode says, and validates each event.
func Decode(contentType string, body []byte) ([]event.Event, error) {
	var events []event.Event
	switch contentType {
	case batched:
		if err := json.Unmarshal(body, &events); err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
	case structured:
		var e event.Event
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, fmt.Errorf("structured: %w", err)
		}
		events = append(events, e)
	default:
		return nil, fmt.Errorf("content type %q is not a CloudEvents JSON mode", contentType)
	}
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return events, nil
}

// Events are the events of the requests answered 2xx, in arrival order.
func (r *Receiver) Events() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.accepted...)
}

// Requests is how many requests arrived.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Headers are each request's headers.
func (r *Receiver) Headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

// Problems are the requests it could not read.
func (r *Receiver) Problems() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.problems...)
}

// WaitEvents waits until n events were accepted, failing the test after
// timeout.
func (r *Receiver) WaitEvents(t testing.TB, n int, timeout time.Duration) []event.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got, changed := len(r.accepted), r.changed
		r.mu.Unlock()
		if got >= n {
			return r.Events()
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("cetest: %d events accepted in %v, want %d (problems: %v)", got, timeout, n, r.Problems())
			return nil
		}
	}
}
