// Package webhook sends alerts (budget thresholds, projected overruns,
// anomalies) to HTTP webhooks, off the request path.
//
// Send only enqueues: it never blocks and never does I/O, so a budget check
// can call it while a request waits. Run delivers, with one goroutine and one
// queue per target, so a slow or dead target delays only its own alerts.
//
// # Bodies
//
// Every request is a POST with Content-Type application/json and User-Agent
// tokenmeter-webhook. FormatJSON sends this object (testdata/alert.json);
// every field is always present:
//
//	version            1; bumped only for an incompatible change
//	kind               "budget_threshold", "projected_overrun", "anomaly", ...
//	key                the deduplication key
//	budget             budget name
//	counter_key        the budget's counter key, e.g. "project=demo"
//	threshold_percent  integer percent, or null when not a threshold alert
//	spent, limit       exact decimal strings, never JSON numbers
//	unit               "money", "tokens" or "requests"
//	currency           ISO 4217 code for money, else ""
//	window_start       RFC 3339 UTC, or null
//	window_end         RFC 3339 UTC, or null
//	at                 RFC 3339 UTC
//	message            one human sentence
//
// FormatSlack sends {"text": "..."} with one readable line
// (testdata/slack.json), escaped for Slack's mrkdwn.
//
// # Delivery
//
// Network errors, 429 and 5xx are retried up to MaxAttempts with exponential
// backoff (Backoff, doubling, capped at MaxBackoff); a Retry-After on 429 or
// 503 replaces the backoff, capped the same way. Any other status is final.
// Redirects are not followed: a webhook that moved is a config error, and
// following one would re-send the body (and headers) somewhere unconfigured.
//
// # Deduplication
//
// An alert whose Key was queued before is not sent again until the key
// expires: at the alert's WindowEnd (the next window's crossing is a new
// alert), or DefaultDedupTTL after Send when there is no future WindowEnd.
// Memory is bounded by expiry and by a cap on the keys held.
//
// # Secrets
//
// Webhook URLs (Slack's carry the credential in the path) and header values
// are never logged: logs name the target and its scheme://host only, and
// transport errors are stripped of the URL net/http puts in them.
package webhook

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for Options.
const (
	DefaultQueueSize    = 1024
	DefaultMaxAttempts  = 5
	DefaultBackoff      = time.Second
	DefaultTimeout      = 5 * time.Second
	DefaultDrainTimeout = 5 * time.Second
	// MaxBackoff caps every wait between attempts, Retry-After included: a
	// receiver asking for an hour would otherwise hold its queue for an hour.
	MaxBackoff = time.Minute
)

// Options configure a Sender. Zero values take the defaults.
type Options struct {
	// Targets receive every alert. Invalid ones (see Target.Validate) are
	// logged and skipped.
	Targets []Target
	// QueueSize is the number of alerts each target can hold waiting.
	// Default DefaultQueueSize.
	QueueSize int
	// MaxAttempts bounds deliveries of one alert to one target, the first
	// included. Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait before the first retry; it doubles after each
	// attempt, up to MaxBackoff. Default DefaultBackoff.
	Backoff time.Duration
	// Timeout bounds one attempt, reading the response included. Default
	// DefaultTimeout.
	Timeout time.Duration
	// DrainTimeout bounds how long Run keeps delivering queued alerts (one
	// attempt each) after its context ends. Default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Client sends the requests. Default: a client that does not follow
	// redirects. Per-attempt timeouts come from Timeout, not Client.Timeout.
	Client *http.Client
	// Logger gets delivery failures (warn) and retries and successes (debug).
	// Default slog.Default().
	Logger *slog.Logger
	// Sleep waits d or until ctx ends, returning ctx's error then. Tests
	// inject one that records d and returns at once. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for key expiry and Retry-After dates. Default time.Now.
	Now func() time.Time
}

// Stats are the sender's counters since New, for metrics. Sent, Failed and
// Dropped count deliveries (one alert to one target); Deduplicated counts
// alerts.
type Stats struct {
	Sent         uint64 // accepted by the target (2xx)
	Failed       uint64 // given up: attempts exhausted, a final status, or unencodable
	Dropped      uint64 // never delivered: queue full, Send after Run ended, or still queued when the drain ended
	Deduplicated uint64 // Send refused because the Key was already sent
}

// Sender queues alerts and delivers them to its targets. Create it with New,
// start delivery with Run; Send is safe from any goroutine.
type Sender struct {
	targets      []*target
	maxAttempts  int
	backoff      time.Duration
	timeout      time.Duration
	drainTimeout time.Duration
	client       *http.Client
	log          *slog.Logger
	sleep        func(context.Context, time.Duration) error
	now          func() time.Time

	mu      sync.Mutex // guards seen and closed, and orders Send's enqueue before Run's final drain
	seen    *seenKeys
	closed  bool
	closing chan struct{} // closed with closed = true
	running atomic.Bool

	sent, failed, dropped, deduplicated atomic.Uint64
}

// target is a Target with its queue and what may be logged of it.
type target struct {
	Target
	host  string // scheme://host, the only part of the URL ever logged
	queue chan Alert
}

// New builds a Sender. Nothing is delivered until Run.
func New(o Options) *Sender {
	s := &Sender{
		maxAttempts: o.MaxAttempts, backoff: o.Backoff, timeout: o.Timeout, drainTimeout: o.DrainTimeout,
		client: o.Client, log: o.Logger, sleep: o.Sleep, now: o.Now,
		seen: newSeenKeys(defaultMaxKeys), closing: make(chan struct{}),
	}
	if s.maxAttempts <= 0 {
		s.maxAttempts = DefaultMaxAttempts
	}
	if s.backoff <= 0 {
		s.backoff = DefaultBackoff
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.drainTimeout <= 0 {
		s.drainTimeout = DefaultDrainTimeout
	}
	if s.client == nil {
		s.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	if s.now == nil {
		s.now = time.Now
	}
	queueSize := o.QueueSize
	if queueSize <= 0 {
		queueSize = DefaultQueueSize
	}
	for _, t := range o.Targets {
		host := redactURL(t.URL)
		if t.Name == "" {
			t.Name = host
		}
		if err := t.Validate(); err != nil {
			s.log.Error("webhook target skipped", "target", t.Name, "host", host, "error", err)
			continue
		}
		s.targets = append(s.targets, &target{Target: t, host: host, queue: make(chan Alert, queueSize)})
	}
	return s
}

// Send queues a for every target without blocking. It returns false when
// nothing new was queued for some target: a's Key was already sent
// (Stats.Deduplicated), a target's queue is full or Run has ended
// (Stats.Dropped, per target), or there are no targets. The Key is
// remembered once a is queued for at least one target.
func (s *Sender) Send(a Alert) bool {
	if len(s.targets) == 0 {
		return false
	}
	now := s.now()
	if a.At.IsZero() {
		a.At = now
	}
	var full []*target
	s.mu.Lock()
	if a.Key != "" && s.seen.seen(a.Key, now) {
		s.mu.Unlock()
		s.deduplicated.Add(1)
		return false
	}
	if s.closed {
		full = s.targets
	} else {
		for _, t := range s.targets {
			select {
			case t.queue <- a:
			default:
				full = append(full, t)
			}
		}
	}
	if a.Key != "" && len(full) < len(s.targets) {
		expires := a.WindowEnd
		if !expires.After(now) {
			expires = now.Add(DefaultDedupTTL)
		}
		s.seen.add(a.Key, expires)
	}
	closed := s.closed
	s.mu.Unlock()

	reason := "queue full"
	if closed {
		reason = "sender stopped"
	}
	for _, t := range full {
		s.dropped.Add(1)
		s.log.Warn("webhook alert dropped", "target", t.Name, "host", t.host, "kind", a.Kind, "key", a.Key,
			"reason", reason)
	}
	return len(full) == 0
}

// Stats returns the counters.
func (s *Sender) Stats() Stats {
	return Stats{
		Sent:         s.sent.Load(),
		Failed:       s.failed.Load(),
		Dropped:      s.dropped.Load(),
		Deduplicated: s.deduplicated.Load(),
	}
}

// Run delivers queued alerts until ctx ends, then gives what is still queued
// one attempt each within DrainTimeout, and returns. Alerts sent after that
// are dropped. Run is meant to be called once; a second call returns at once.
func (s *Sender) Run(ctx context.Context) {
	if !s.running.CompareAndSwap(false, true) {
		s.log.Error("webhook sender Run called twice; the second call does nothing")
		return
	}
	var wg sync.WaitGroup
	for _, t := range s.targets {
		wg.Go(func() { s.work(ctx, t) })
	}
	<-ctx.Done()
	// After this, no Send can enqueue, so each worker's drain sees the
	// last alert ever queued for it.
	s.mu.Lock()
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	wg.Wait()
}

// work is one target's delivery loop.
func (s *Sender) work(ctx context.Context, t *target) {
	for {
		select {
		case <-ctx.Done():
			s.drain(ctx, t, nil)
			return
		case a := <-t.queue:
			if s.deliver(ctx, t, a, s.maxAttempts) == interrupted {
				s.drain(ctx, t, &a)
				return
			}
		}
	}
}

// drain runs once ctx has ended: the interrupted alert, if any, and every
// queued one get one attempt, on a fresh context that ends after
// drainTimeout; whatever that leaves is dropped.
func (s *Sender) drain(ctx context.Context, t *target, interruptedAlert *Alert) {
	<-s.closing
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.drainTimeout)
	defer cancel()
	var dropped uint64
	try := func(a Alert) {
		if dctx.Err() != nil || s.deliver(dctx, t, a, 1) == interrupted {
			dropped++
		}
	}
	if interruptedAlert != nil {
		try(*interruptedAlert)
	}
	for {
		select {
		case a := <-t.queue:
			try(a)
		default:
			if dropped > 0 {
				s.dropped.Add(dropped)
				s.log.Warn("webhook alerts dropped at shutdown", "target", t.Name, "host", t.host, "count", dropped)
			}
			return
		}
	}
}

// sleepCtx is the default Options.Sleep.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
