package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

// DefaultLeaseTTL is how long a reservation is held when its request never
// settles. It must outlast the longest request: a lease that expires while
// its request still streams releases the estimate early (the request is
// still charged in full when it ends).
const DefaultLeaseTTL = 15 * time.Minute

// Options configure a Limiter.
type Options struct {
	// Now is the clock: time.Now in production, a fake in tests (windows are
	// never tested with sleeps). Default time.Now.
	Now func() time.Time
	// LeaseTTL bounds how long a reservation outlives a request that never
	// settles. Default DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Currency is the currency of Amounts.Money (the catalog's). A money
	// budget in another currency is charged the amount converted with FX at
	// the instant the request was admitted, for the reservation and the
	// settlement alike, so one request never straddles two rates.
	Currency money.Currency
	FX       *fx.Table
}

// Limiter applies a set of budgets to requests. It is immutable: a config
// reload builds a new Limiter over the same Store, so counters carry over.
type Limiter struct {
	budgets  []*Budget
	byName   map[string]*Budget
	store    Store
	now      func() time.Time
	leaseTTL time.Duration
	currency money.Currency
	fx       *fx.Table
}

// leaseIDs makes lease ids unique across processes sharing a store (a random
// prefix per process) without a syscall per request (a counter).
var leaseIDs = struct {
	prefix string
	n      atomic.Uint64
}{prefix: randomPrefix()}

func randomPrefix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

func newLeaseID() string {
	return leaseIDs.prefix + "-" + strconv.FormatUint(leaseIDs.n.Add(1), 36)
}

// New builds a Limiter over store.
func New(budgets []Budget, store Store, o Options) *Limiter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	l := &Limiter{store: store, now: o.Now, leaseTTL: o.LeaseTTL, currency: o.Currency, fx: o.FX,
		byName: make(map[string]*Budget, len(budgets))}
	for i := range budgets {
		b := budgets[i]
		l.budgets = append(l.budgets, &b)
		l.byName[b.Name] = &b
	}
	return l
}

// Budgets returns the configured budgets.
func (l *Limiter) Budgets() []*Budget { return l.budgets }

// Denial says why a request may not go ahead.
type Denial struct {
	Budget     *Budget
	Key        string
	Limit      int64 // the key's limit
	Spent      int64
	Reserved   int64
	Asked      int64
	RetryAfter time.Duration // until the window resets
}

func (d *Denial) Error() string {
	return fmt.Sprintf("budget %q (%s) exhausted: spent %d + reserved %d + asked %d > limit %d %s",
		d.Budget.Name, d.Key, d.Spent, d.Reserved, d.Asked, d.Limit, d.Budget.Unit)
}

// Reservation is what Reserve held; pass it to Settle exactly once.
type Reservation struct {
	lease   Lease
	holds   []Hold
	budgets []*Budget
	// counters are the held counters just after the reservation.
	counters []Counter
	at       time.Time // admission: the instant of every currency conversion
	// Shadowed lists what the shadow budgets would have denied; the request
	// went ahead and is counted on them all the same.
	Shadowed []*Denial
}

// Matching returns the budgets that apply to d.
func (l *Limiter) Matching(d attribution.Dimensions) []*Budget {
	var out []*Budget
	for _, b := range l.budgets {
		if _, ok := b.Key(d); ok {
			out = append(out, b)
		}
	}
	return out
}

func (l *Limiter) holds(d attribution.Dimensions, est Amounts, now time.Time) ([]Hold, []*Budget, error) {
	var holds []Hold
	var budgets []*Budget
	for _, b := range l.budgets {
		key, ok := b.Key(d)
		if !ok {
			continue
		}
		amount, err := l.amount(b, est, now)
		if err != nil {
			return nil, nil, err
		}
		start, since, end := b.Span(now)
		limit := b.LimitFor(key)
		if b.Shadow {
			// A shadow budget never refuses; Reserve compares its counters
			// with the real limit afterwards.
			limit = math.MaxInt64
		}
		holds = append(holds, Hold{
			ID:     CounterID{Budget: b.Name, Key: key, Start: start},
			Since:  since,
			Limit:  limit,
			Amount: amount,
			End:    end,
		})
		budgets = append(budgets, b)
	}
	return holds, budgets, nil
}

// amount is what a counts on b, in b's currency for a money budget.
func (l *Limiter) amount(b *Budget, a Amounts, at time.Time) (int64, error) {
	if b.Unit != Money || b.Currency == "" || b.Currency == l.currency || a.Money == 0 {
		return a.Of(b.Unit), nil
	}
	v, _, err := l.fx.Convert(a.Money, l.currency, b.Currency, at)
	if err != nil {
		return 0, fmt.Errorf("budget %q: %w", b.Name, err)
	}
	return int64(v), nil
}

// Precheck denies a request whose budgets are already used up, before its
// body is read: the cheap early answer. It holds nothing.
func (l *Limiter) Precheck(ctx context.Context, d attribution.Dimensions) (*Denial, error) {
	holds, budgets, err := l.holds(d, Amounts{}, l.now())
	if err != nil {
		return nil, err
	}
	for i, h := range holds {
		if budgets[i].Shadow {
			continue
		}
		c, err := l.store.Get(ctx, h)
		if err != nil {
			return nil, fmt.Errorf("precheck budget %q: %w", h.ID.Budget, err)
		}
		if c.Spent+c.Reserved >= h.Limit {
			return l.denial(budgets[i], h, c, 0), nil
		}
	}
	return nil, nil
}

// Reserve holds est on every matching budget, all or none. It returns a
// Denial, and holds nothing, when any budget cannot afford est.
func (l *Limiter) Reserve(ctx context.Context, d attribution.Dimensions, est Amounts) (*Reservation, *Denial, error) {
	now := l.now()
	holds, budgets, err := l.holds(d, est, now)
	if err != nil {
		return nil, nil, fmt.Errorf("reserve: %w", err)
	}
	if len(holds) == 0 {
		return &Reservation{}, nil, nil
	}
	lease := Lease{ID: newLeaseID(), Expires: now.Add(l.leaseTTL)}
	res, err := l.store.Reserve(ctx, lease, holds)
	if err != nil {
		return nil, nil, fmt.Errorf("reserve: %w", err)
	}
	if i := res.Refused; i >= 0 {
		return nil, l.denial(budgets[i], holds[i], res.Counters[i], holds[i].Amount), nil
	}
	r := &Reservation{lease: lease, holds: holds, budgets: budgets, counters: res.Counters, at: now}
	for i, b := range budgets {
		// The counters are as they stand after this reservation, so the
		// request overshoots exactly when they exceed the limit.
		if c := res.Counters[i]; b.Shadow && c.Spent+c.Reserved > b.LimitFor(holds[i].ID.Key) {
			r.Shadowed = append(r.Shadowed, l.denial(b, holds[i], Counter{Spent: c.Spent, Reserved: c.Reserved - holds[i].Amount}, holds[i].Amount))
		}
	}
	return r, nil, nil
}

func (l *Limiter) denial(b *Budget, h Hold, c Counter, asked int64) *Denial {
	now := l.now()
	retry := b.Resets(now).Sub(now)
	if retry < time.Second {
		retry = time.Second
	}
	return &Denial{Budget: b, Key: h.ID.Key, Limit: b.LimitFor(h.ID.Key), Spent: c.Spent, Reserved: c.Reserved, Asked: asked, RetryAfter: retry}
}

// Remaining is what one budget has left after a reservation, for the
// x-tokenmeter-budget-remaining and x-ratelimit-* headers.
type Remaining struct {
	Budget    *Budget
	Key       string
	Limit     int64 // the key's limit
	Remaining int64 // limit − spent − reserved, never below 0
	Resets    time.Time
}

// Remaining lists, for each non-shadow budget r holds, what is left.
func (l *Limiter) Remaining(r *Reservation) []Remaining {
	if r == nil {
		return nil
	}
	out := make([]Remaining, 0, len(r.budgets))
	for i, b := range r.budgets {
		if b.Shadow {
			continue
		}
		c, key := r.counters[i], r.holds[i].ID.Key
		limit := b.LimitFor(key)
		left := limit - c.Spent - c.Reserved
		if left < 0 {
			left = 0
		}
		out = append(out, Remaining{Budget: b, Key: key, Limit: limit, Remaining: left, Resets: b.Resets(r.at)})
	}
	return out
}

// Settle charges actual to every budget r held, releasing the estimate. The
// charge lands in the window the reservation was made in, so a request that
// straddles a window boundary is charged where it was admitted.
func (l *Limiter) Settle(ctx context.Context, r *Reservation, actual Amounts) error {
	if r == nil || len(r.holds) == 0 {
		return nil
	}
	amounts := make([]int64, len(r.holds))
	for i, b := range r.budgets {
		if b.Unit == Concurrent {
			continue // it held 1 while in flight; it charges nothing
		}
		a, err := l.amount(b, actual, r.at)
		if err != nil {
			// Still release the holds: a stuck reservation would deny
			// requests the budget can afford.
			_ = l.store.Settle(ctx, r.lease, r.holds, nil)
			return fmt.Errorf("settle: %w", err)
		}
		amounts[i] = a
	}
	if err := l.store.Settle(ctx, r.lease, r.holds, amounts); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	return nil
}

// Release drops r's holds without charging anything.
func (l *Limiter) Release(ctx context.Context, r *Reservation) error {
	if r == nil || len(r.holds) == 0 {
		return nil
	}
	if err := l.store.Settle(ctx, r.lease, r.holds, nil); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	return nil
}

// Status is one counter of one configured budget in its current window.
type Status struct {
	Budget  *Budget
	Key     string
	Limit   int64 // the key's limit
	Counter Counter
	Resets  time.Time
}

// Status lists the current window's counters of every configured budget;
// a rolling window's buckets are summed per key.
func (l *Limiter) Status(ctx context.Context) ([]Status, error) {
	now := l.now()
	states, err := l.store.List(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("budget status: %w", err)
	}
	type id struct{ budget, key string }
	index := map[id]int{}
	var out []Status
	for _, s := range states {
		b, ok := l.byName[s.ID.Budget]
		if !ok {
			continue
		}
		start, since, _ := b.Span(now)
		if since.IsZero() {
			since = start
		}
		if s.ID.Start.Before(since) || s.ID.Start.After(start) {
			continue
		}
		k := id{b.Name, s.ID.Key}
		if i, ok := index[k]; ok {
			out[i].Counter.Spent += s.Spent
			out[i].Counter.Reserved += s.Reserved
			continue
		}
		index[k] = len(out)
		out = append(out, Status{Budget: b, Key: s.ID.Key, Limit: b.LimitFor(s.ID.Key), Counter: s.Counter, Resets: b.Resets(now)})
	}
	return out, nil
}
