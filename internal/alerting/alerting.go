// Package alerting watches budgets and raises alerts through the webhook
// sender: a soft threshold crossed (50%, 80%, 100% of a limit), once per key
// and window.
//
// It polls budget status instead of hooking the request path: a request
// pays nothing for alerting, and an alert follows its crossing within one
// interval. Each alert is claimed before it is sent, in the budget store when
// the store can (so replicas sharing Redis send it once between them, and a
// restart does not send it again), else in memory.
package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// DefaultInterval is how often budgets are checked.
const DefaultInterval = 10 * time.Second

// Claimer records that an alert was sent, so it is sent once: Claim returns
// true the first time it is asked for key (until the claim expires at
// until), false after.
type Claimer interface {
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}

// Sender is where alerts go: *webhook.Sender.
type Sender interface {
	Send(a webhook.Alert) bool
}

// Options configure a Watcher.
type Options struct {
	// Limiter returns the current limiter (it changes on reload).
	Limiter func() *ratelimit.Limiter
	Sender  Sender
	Claimer Claimer // nil: claims are kept in memory
	// Currency names money budgets' unit when a budget has none.
	Currency money.Currency
	Interval time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

// Watcher checks budgets against their thresholds.
type Watcher struct {
	o Options
	// decided remembers the keys the Claimer has answered, until they
	// expire: a threshold stays crossed for the rest of its window, and
	// asking the store again on every check would cost a round trip each.
	decided *memoryClaims
}

// New builds a Watcher.
func New(o Options) *Watcher {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Claimer == nil {
		o.Claimer = newMemoryClaims(o.Now)
	}
	return &Watcher{o: o, decided: newMemoryClaims(o.Now)}
}

// claim asks the Claimer for key once: after any answer, the key is not
// asked again until it expires.
func (w *Watcher) claim(ctx context.Context, key string, until time.Time) (bool, error) {
	if w.decided.has(key) {
		return false, nil
	}
	ok, err := w.o.Claimer.Claim(ctx, key, until)
	if err != nil {
		return false, fmt.Errorf("claim alert %s: %w", key, err)
	}
	w.decided.Claim(ctx, key, until)
	return ok, nil
}

func thresholdKey(b *ratelimit.Budget, key string, start time.Time, pct int) string {
	return fmt.Sprintf("threshold|%s|%s|%d|%d", b.Name, key, start.Unix(), pct)
}

// Run checks every interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.Check(ctx); err != nil {
				w.o.Log.Warn("budget alerts", "err", err)
			}
		}
	}
}

// Check compares every budget counter of the current windows with its
// thresholds, and sends one alert per newly crossed threshold: the highest,
// when a counter jumped over several since the last check (the lower ones are
// claimed with it, so they never arrive late and out of order).
func (w *Watcher) Check(ctx context.Context) error {
	l := w.o.Limiter()
	if l == nil {
		return nil
	}
	st, err := l.Status(ctx)
	if err != nil {
		return err
	}
	now := w.o.Now()
	for _, s := range st {
		b := s.Budget
		if len(b.AlertAt) == 0 || b.Shadow || b.Rolling > 0 || b.Unit == ratelimit.Concurrent {
			continue
		}
		start, _ := b.Window.Bounds(now, b.Location)
		crossed := -1
		for _, pct := range b.AlertAt {
			if !Reached(s.Counter.Spent, s.Limit, pct) {
				break
			}
			ok, err := w.claim(ctx, thresholdKey(b, s.Key, start, pct), s.Resets)
			if err != nil {
				return err
			}
			if ok {
				crossed = pct
			}
		}
		if crossed < 0 {
			continue
		}
		w.o.Sender.Send(w.alert(b, s, crossed, start, now))
	}
	return nil
}

// Reached reports spent ≥ pct% of limit, exactly: spent × 100 ≥ limit × pct,
// in big integers (nano-units times 100 overflow int64 near 92 billion).
// The admin API shows the thresholds crossed by this same rule.
func Reached(spent, limit int64, pct int) bool {
	var a, b big.Int
	a.Mul(big.NewInt(spent), big.NewInt(100))
	b.Mul(big.NewInt(limit), big.NewInt(int64(pct)))
	return a.Cmp(&b) >= 0
}

func (w *Watcher) alert(b *ratelimit.Budget, s ratelimit.Status, pct int, start, now time.Time) webhook.Alert {
	a := webhook.Alert{
		Kind:        webhook.KindBudgetThreshold,
		Key:         thresholdKey(b, s.Key, start, pct),
		Budget:      b.Name,
		CounterKey:  s.Key,
		Threshold:   pct,
		Unit:        b.Unit.String(),
		Spent:       b.Format(s.Counter.Spent),
		Limit:       b.Format(s.Limit),
		WindowStart: start,
		WindowEnd:   s.Resets,
		At:          now,
	}
	if b.Unit == ratelimit.Money {
		a.Currency = string(b.Currency)
		if a.Currency == "" {
			a.Currency = string(w.o.Currency)
		}
	}
	a.Message = fmt.Sprintf("Budget %s has used %d%% of its %s limit for %s this %s.", b.Name, pct, b.Unit, s.Key, b.Window)
	return a
}

// memoryClaims keeps claims in this process: enough for a single replica
// whose store cannot hold them, and the Watcher's memory of answered keys.
type memoryClaims struct {
	mu    sync.Mutex
	until map[string]time.Time
	now   func() time.Time
}

func newMemoryClaims(now func() time.Time) *memoryClaims {
	return &memoryClaims{until: map[string]time.Time{}, now: now}
}

// has reports whether key is claimed and not yet expired.
func (m *memoryClaims) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.until[key]
	return ok && u.After(m.now())
}

func (m *memoryClaims) Claim(_ context.Context, key string, until time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for k, u := range m.until {
		if !u.After(now) {
			delete(m.until, k)
		}
	}
	if _, ok := m.until[key]; ok {
		return false, nil
	}
	m.until[key] = until
	return true, nil
}
