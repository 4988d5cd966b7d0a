// Package cloudevents sends every ledger record as a CloudEvent (CloudEvents
// 1.0, JSON format) to one HTTP endpoint: OpenMeter's POST /api/v1/events,
// or any receiver of the spec's HTTP binding. It is a ledger.Sink beside the
// stored ledger, for the metering and billing tools finance already runs.
//
// # Events
//
// One event per record (NewEvent): id the record's RequestID, source and
// type as configured, subject the value of one dimension (the customer),
// time the request's start, data the record (Data): model, provider, tokens
// by class, units, cost and list cost as exact decimal strings with their
// currency, outcome, reason, dimensions. Never an API key or a prompt.
//
// # Delivery
//
// Append only enqueues: it never blocks and never does I/O. A full queue
// drops the record, counts it (Stats.Dropped) and logs it, at most once a
// second. One goroutine takes up to BatchSize records, waiting at most
// FlushInterval after the first for more, and POSTs them in one request:
// batched mode (application/cloudevents-batch+json, a JSON array) when
// BatchSize is over 1, structured mode (application/cloudevents+json, one
// event) when it is 1. OpenMeter takes both, and matches the content type
// exactly, so no charset parameter is sent.
//
// Network errors, 429 and 5xx are retried up to MaxAttempts, the wait
// doubling from Backoff to MaxBackoff with jitter (a fleet of replicas does
// not come back in step), a Retry-After on 429 or 503 replacing it, capped
// the same way. Each retry re-sends the same ids: a receiver that
// deduplicates (OpenMeter does, by source and id) counts each event once.
// Any other status (400: the receiver refused an event) is final. Given-up
// events are counted (Stats.Failed) and logged; nothing is retried forever.
//
// Close stops taking records and gives what is queued up to DrainTimeout,
// retries included; what that leaves is dropped and counted.
//
// # Secrets
//
// Header values (an Authorization bearer) and the URL past its host are
// never logged; transport errors are stripped of the URL.
package cloudevents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/retryafter"
)

// Defaults for Options, and the config's.
const (
	DefaultSource        = "tokenmeter"
	DefaultType          = "tokenmeter.request"
	DefaultQueueSize     = 10_000
	DefaultBatchSize     = 100
	DefaultFlushInterval = time.Second
	DefaultTimeout       = 10 * time.Second
	DefaultMaxAttempts   = 8
	DefaultBackoff       = 500 * time.Millisecond
	// DefaultDrainTimeout bounds Close: with the OTLP exporter's flush (run
	// beside it) it fits the 5 s Kubernetes leaves after the shutdown's
	// drain and grace.
	DefaultDrainTimeout = 5 * time.Second
	// MaxBackoff caps every wait between attempts, Retry-After included.
	MaxBackoff = 30 * time.Second
)

// The content types of the CloudEvents HTTP binding's structured and
// batched modes (spec: http-protocol-binding.md, 3.2 and 3.3).
const (
	ContentTypeStructured = "application/cloudevents+json"
	ContentTypeBatch      = "application/cloudevents-batch+json"
)

const (
	userAgent        = "tokenmeter-cloudevents"
	maxResponseDrain = 64 << 10 // read of a response body so the connection is reused; nothing of it is used
)

// Options configure a Sender. Zero values take the defaults.
type Options struct {
	// URL receives the events: absolute http or https.
	URL string
	// Headers are sent with every request (OpenMeter's Authorization:
	// Bearer). Content-Type and User-Agent are the sender's.
	Headers map[string]string
	Meta
	QueueSize int // records waiting to be sent
	BatchSize int // events per request; 1 sends each alone, in structured mode
	// FlushInterval is the longest a record waits for its batch to fill.
	FlushInterval time.Duration
	Timeout       time.Duration // one request's bound, its response included
	MaxAttempts   int           // attempts of one batch, the first included
	Backoff       time.Duration // the first retry's wait; it doubles up to MaxBackoff
	DrainTimeout  time.Duration // Close's bound
	// Client sends the requests; default one that follows no redirect (a
	// moved endpoint would get the Authorization header unasked).
	Client *http.Client
	Logger *slog.Logger
	// Sleep waits d or until ctx ends (then returning its error); tests
	// inject one that does not wait.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time // for Retry-After dates
}

// Stats are the sender's counters, in events, for metrics.
type Stats struct {
	Sent    uint64 // accepted by the receiver (2xx)
	Failed  uint64 // given up: attempts exhausted, a final status, or not an event (no id)
	Dropped uint64 // never sent: the queue was full, Append after Close, or still queued when the drain ended
	Retries uint64 // requests repeated after a network error, 429 or 5xx
	Queued  int    // waiting now: queued, or in the batch being collected or sent
}

// Sender is a ledger.Sink that delivers records as CloudEvents. Create it
// with New; Close it once nothing appends any more.
type Sender struct {
	o     Options
	host  string // scheme://host, the only part of the URL ever logged
	queue chan *ledger.Record

	closeMu sync.RWMutex // Append holds it shared, so none is mid-enqueue once Close holds it
	closed  bool
	stop    chan struct{} // closed by Close
	done    chan struct{} // closed when the worker has returned
	cancel  context.CancelFunc

	sent, failed, dropped, retries atomic.Uint64
	pending                        atomic.Int64 // Queued
	lastDropLog                    atomic.Int64
	droppedAtLog                   atomic.Uint64
}

// New checks o and starts the sender's worker.
func New(o Options) (*Sender, error) {
	if err := Validate(o.URL, o.Headers); err != nil {
		return nil, err
	}
	o = withDefaults(o)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{o: o, host: redactURL(o.URL), queue: make(chan *ledger.Record, o.QueueSize),
		stop: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
	go s.run(ctx)
	return s, nil
}

func withDefaults(o Options) Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.QueueSize, DefaultQueueSize)
	def(&o.BatchSize, DefaultBatchSize)
	def(&o.MaxAttempts, DefaultMaxAttempts)
	defd(&o.FlushInterval, DefaultFlushInterval)
	defd(&o.Timeout, DefaultTimeout)
	defd(&o.Backoff, DefaultBackoff)
	defd(&o.DrainTimeout, DefaultDrainTimeout)
	if o.Source == "" {
		o.Source = DefaultSource
	}
	if o.Type == "" {
		o.Type = DefaultType
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate checks what can be checked before the first event: the URL is
// absolute http(s) with a host, and the headers can be sent. Its errors
// quote neither the URL nor a header value.
func Validate(rawURL string, headers map[string]string) error {
	u, err := url.Parse(rawURL)
	switch {
	case err != nil:
		return errors.New("the URL does not parse")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("the URL's scheme must be http or https")
	case u.Host == "":
		return errors.New("the URL must be absolute, with a host")
	}
	for name, v := range headers {
		if name == "" || strings.ContainsAny(name, " \t\r\n:()<>@,;\\\"/[]?={}") {
			return fmt.Errorf("header name %q is not an HTTP token", name)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("header %q: its value holds a line break or NUL", name)
		}
	}
	return nil
}

// Append implements ledger.Sink: it queues a copy of r, or drops and
// counts it when the queue is full.
func (s *Sender) Append(r *ledger.Record) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		s.drop("cloudevents sender closed; record dropped")
		return
	}
	select {
	case s.queue <- r.Clone():
		s.pending.Add(1)
	default:
		s.drop("cloudevents queue full; records dropped")
	}
}

// drop counts one dropped record and logs, at most once a second, how many
// were dropped since the last line.
func (s *Sender) drop(msg string) {
	n := s.dropped.Add(1)
	now := s.o.Now().UnixNano()
	last := s.lastDropLog.Load()
	if last != 0 && now-last < int64(time.Second) || !s.lastDropLog.CompareAndSwap(last, now) {
		return
	}
	s.o.Logger.Warn(msg, "dropped", n-s.droppedAtLog.Swap(n), "dropped_total", n, "queue_size", cap(s.queue), "host", s.host)
}

// Stats returns the counters.
func (s *Sender) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Failed: s.failed.Load(), Dropped: s.dropped.Load(),
		Retries: s.retries.Load(), Queued: int(s.pending.Load())}
}

// Close stops taking records and sends what is queued, giving up (and
// counting the rest dropped) after DrainTimeout. It returns once the worker
// has stopped; a second call returns at once.
func (s *Sender) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	close(s.stop)
	s.closeMu.Unlock()
	t := time.AfterFunc(s.o.DrainTimeout, s.cancel)
	defer t.Stop()
	<-s.done
	s.cancel()
	return nil
}

// run is the worker: batches until Close, then the queue's rest.
func (s *Sender) run(ctx context.Context) {
	defer close(s.done)
	for {
		batch := s.collect()
		if len(batch) == 0 {
			return // stopped, and nothing left
		}
		s.deliver(ctx, batch)
	}
}

// collect waits for a first record, then for up to BatchSize within
// FlushInterval. Once stopped it waits for nothing: it returns what is
// queued, and nothing only when the queue is empty.
func (s *Sender) collect() []*ledger.Record {
	var batch []*ledger.Record
	select {
	case r := <-s.queue:
		batch = append(batch, r)
	case <-s.stop:
		return s.take(batch)
	}
	timer := time.NewTimer(s.o.FlushInterval)
	defer timer.Stop()
	for len(batch) < s.o.BatchSize {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
		case <-timer.C:
			return batch
		case <-s.stop:
			return s.take(batch)
		}
	}
	return batch
}

// take adds what is queued, without waiting, up to BatchSize.
func (s *Sender) take(batch []*ledger.Record) []*ledger.Record {
	for len(batch) < s.o.BatchSize {
		select {
		case r := <-s.queue:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// deliver sends recs as one request, retrying as the package says. Each
// event ends counted once: sent, failed or dropped.
func (s *Sender) deliver(ctx context.Context, recs []*ledger.Record) {
	defer s.pending.Add(-int64(len(recs)))
	events := make([]event.Event, 0, len(recs))
	for _, r := range recs {
		e, err := NewEvent(s.o.Meta, r)
		if err != nil {
			s.failed.Add(1)
			s.o.Logger.Warn("cloudevents: record not sent", "request_id", r.RequestID, "err", err)
			continue
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return
	}
	n := uint64(len(events))
	body, ctype, err := encode(events, s.o.BatchSize > 1)
	if err != nil {
		s.failed.Add(n)
		s.o.Logger.Warn("cloudevents: events not encodable", "events", n, "err", err)
		return
	}
	log := s.o.Logger.With("host", s.host, "events", n)
	delay := s.o.Backoff
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			s.dropped.Add(n)
			log.Warn("cloudevents: events dropped at shutdown (drain timeout)")
			return
		}
		a := s.post(ctx, body, ctype)
		if a.err == nil && a.status/100 == 2 {
			s.sent.Add(n)
			log.Debug("cloudevents: delivered", "status", a.status, "attempts", attempt)
			return
		}
		attrs := []any{"status", a.status, "attempts", attempt}
		if a.err != nil {
			attrs = append(attrs, "err", a.err.Error())
		}
		if ctx.Err() == nil && (!a.retryable || attempt >= s.o.MaxAttempts) {
			s.failed.Add(n)
			log.Warn("cloudevents: delivery failed; events given up", append(attrs, "retryable", a.retryable)...)
			return
		}
		wait := jitter(delay)
		if a.retryAfter >= 0 {
			wait = a.retryAfter
		}
		log.Debug("cloudevents: retry", append(attrs, "wait", wait)...)
		if s.o.Sleep(ctx, wait) != nil {
			continue // counted dropped at the top
		}
		s.retries.Add(1)
		delay = min(2*delay, MaxBackoff)
	}
}

// encode is the request body: a JSON array in batched mode, the one event
// in structured mode.
func encode(events []event.Event, batch bool) ([]byte, string, error) {
	if batch {
		b, err := json.Marshal(events)
		return b, ContentTypeBatch, err
	}
	b, err := json.Marshal(events[0])
	return b, ContentTypeStructured, err
}

// attempt is one request's result.
type attempt struct {
	status     int   // 0 when no response
	err        error // transport error, without the URL
	retryable  bool
	retryAfter time.Duration // -1 when absent
}

// post makes one request, bounded by Timeout.
func (s *Sender) post(ctx context.Context, body []byte, ctype string) attempt {
	actx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.o.URL, bytes.NewReader(body))
	if err != nil {
		return attempt{err: errors.New("cannot build the request"), retryAfter: -1}
	}
	for k, v := range s.o.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error quotes the whole URL
		}
		return attempt{err: err, retryable: true, retryAfter: -1}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseDrain))
	_ = resp.Body.Close()
	a := attempt{status: resp.StatusCode, retryAfter: -1}
	a.retryable = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		a.retryAfter = retryafter.Parse(resp.Header.Get("Retry-After"), s.o.Now(), MaxBackoff)
	}
	return a
}

// jitter is d/2 plus a random part of d/2.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// redactURL is scheme://host of u, or "?" when it does not parse.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "?"
	}
	return p.Scheme + "://" + p.Host
}

// sleepCtx is the default Options.Sleep.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
