package alerting

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// History answers the ledger questions forecasts and anomaly checks ask.
type History interface {
	// Daily returns what the requests matching filter (dimension → value)
	// spent on each day of [from, to), days aligned in loc: money in
	// nano-units of the reporting currency, or tokens, or requests.
	Daily(ctx context.Context, filter map[string]string, unit ratelimit.Unit, from, to time.Time, loc *time.Location) ([]int64, error)
	// DailyByGroup returns the money each group spent on each day of
	// [from, to), by group key: "dim=value" terms of groupBy, joined by ","
	// and escaped as counter keys are (ratelimit.Budget.Key).
	DailyByGroup(ctx context.Context, groupBy []string, from, to time.Time, loc *time.Location) (map[string][]int64, error)
}

// Anomaly configures spike detection: a group whose spend today passes
// Factor × the median of its previous BaselineDays days, and at least
// MinSpend, raises an alert.
type Anomaly struct {
	GroupBy      []string
	Factor       money.Amount // a decimal factor, e.g. 3 (stored as nano-units: 3e9)
	BaselineDays int
	MinSpend     money.Amount
}

// RunRateDays is how many full days the run rate of a forecast averages.
const RunRateDays = 7

// Forecast is a budget key's projection to the end of its window.
type Forecast struct {
	Budget    string
	Key       string
	Spent     int64
	Projected int64 // spent + run rate × what is left of the window
	Limit     int64
	Money     bool // the amounts are nano-units of money
	WindowEnd time.Time
	At        time.Time
}

// Forecaster projects budgets to the end of their windows from the recent
// daily run rate, raises projected_overrun alerts, and detects anomalies. It
// runs every few minutes, not on every check: projections move slowly and
// each asks the ledger for a week of history.
type Forecaster struct {
	w       *Watcher
	history History
	anomaly *Anomaly
	base    money.Currency // the reporting currency: money forecasts only for budgets in it

	mu        sync.Mutex
	forecasts []Forecast
}

// NewForecaster builds a Forecaster over w's limiter, sender and claims.
// anomaly may be nil.
func NewForecaster(w *Watcher, history History, anomaly *Anomaly, reporting money.Currency) *Forecaster {
	return &Forecaster{w: w, history: history, anomaly: anomaly, base: reporting}
}

// Forecasts returns the latest projections.
func (f *Forecaster) Forecasts() []Forecast {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.forecasts)
}

// Run forecasts every interval until ctx ends.
func (f *Forecaster) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := f.Check(ctx); err != nil {
			f.w.o.Log.Warn("budget forecasts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check computes every forecast, alerts on projected overruns, and looks for
// anomalies.
func (f *Forecaster) Check(ctx context.Context) error {
	l := f.w.o.Limiter()
	if l == nil {
		return nil
	}
	st, err := l.Status(ctx)
	if err != nil {
		return err
	}
	now := f.w.o.Now()
	var out []Forecast
	for _, s := range st {
		b := s.Budget
		if b.Shadow || b.Rolling > 0 || b.Unit == ratelimit.Concurrent || b.Window == ratelimit.Total ||
			(b.Unit == ratelimit.Money && b.Currency != "" && b.Currency != f.base) {
			continue // no window end to project to, or history in another currency
		}
		fc, err := f.forecast(ctx, b, s, now)
		if err != nil {
			return err
		}
		out = append(out, fc)
		if fc.Projected > fc.Limit {
			start, _ := b.Window.Bounds(now, b.Location)
			key := fmt.Sprintf("forecast|%s|%s|%d", b.Name, s.Key, start.Unix())
			ok, err := f.w.claim(ctx, key, s.Resets)
			if err != nil {
				return err
			}
			if ok {
				f.w.o.Sender.Send(f.overrun(b, s, fc, key, start))
			}
		}
	}
	f.mu.Lock()
	f.forecasts = out
	f.mu.Unlock()
	if f.anomaly != nil {
		return f.anomalies(ctx, now)
	}
	return nil
}

// forecast projects one key: spent + the average of the last RunRateDays
// full days (fewer when the ledger is younger; the window's own average when
// there is no full day yet) × the days left in the window.
func (f *Forecaster) forecast(ctx context.Context, b *ratelimit.Budget, s ratelimit.Status, now time.Time) (Forecast, error) {
	loc := b.Location
	if loc == nil {
		loc = time.UTC
	}
	today, _ := ratelimit.Day.Bounds(now, loc)
	from := today.In(loc).AddDate(0, 0, -RunRateDays)
	days, err := f.history.Daily(ctx, filterOf(s.Key), b.Unit, from, today, loc)
	if err != nil {
		return Forecast{}, fmt.Errorf("forecast %s %s: %w", b.Name, s.Key, err)
	}
	// Days before the first one with any spend are days before the key
	// existed: they do not dilute its rate.
	for len(days) > 0 && days[0] == 0 {
		days = days[1:]
	}
	var sum big.Int
	for _, d := range days {
		sum.Add(&sum, big.NewInt(d))
	}
	start, end := b.Window.Bounds(now, b.Location)
	left := end.Sub(now)
	var projected big.Int
	if len(days) > 0 {
		// sum/len(days) per day × left/24h, as one fraction, truncated once.
		projected.Mul(&sum, big.NewInt(int64(left)))
		projected.Quo(&projected, big.NewInt(int64(len(days))*int64(24*time.Hour)))
	} else if elapsed := now.Sub(start); elapsed > 0 {
		projected.Mul(big.NewInt(s.Counter.Spent), big.NewInt(int64(left)))
		projected.Quo(&projected, big.NewInt(int64(elapsed)))
	}
	projected.Add(&projected, big.NewInt(s.Counter.Spent))
	p := int64(1<<63 - 1)
	if projected.IsInt64() {
		p = projected.Int64()
	}
	return Forecast{Budget: b.Name, Key: s.Key, Spent: s.Counter.Spent, Projected: p, Limit: s.Limit, Money: b.Unit == ratelimit.Money, WindowEnd: end, At: now}, nil
}

// filterOf turns a counter key ("project=a,user=b", or "all") into a ledger
// filter.
func filterOf(key string) map[string]string { return ratelimit.KeyTerms(key) }

func (f *Forecaster) overrun(b *ratelimit.Budget, s ratelimit.Status, fc Forecast, key string, start time.Time) webhook.Alert {
	a := webhook.Alert{
		Kind: webhook.KindProjectedOverrun, Key: key, Budget: b.Name, CounterKey: s.Key,
		Unit: b.Unit.String(), Spent: b.Format(fc.Spent), Limit: b.Format(fc.Limit),
		WindowStart: start, WindowEnd: s.Resets, At: fc.At,
	}
	if b.Unit == ratelimit.Money {
		a.Currency = string(f.base)
	}
	a.Message = fmt.Sprintf("Budget %s for %s is projected to reach %s by the end of its %s (limit %s), at the run rate of the last %d days.",
		b.Name, s.Key, b.Format(fc.Projected), b.Window, b.Format(fc.Limit), RunRateDays)
	return a
}

// anomalies compares each group's spend today with the median of its
// previous days.
func (f *Forecaster) anomalies(ctx context.Context, now time.Time) error {
	an := f.anomaly
	today, tomorrow := ratelimit.Day.Bounds(now, nil)
	from := today.AddDate(0, 0, -an.BaselineDays)
	groups, err := f.history.DailyByGroup(ctx, an.GroupBy, from, tomorrow, nil)
	if err != nil {
		return fmt.Errorf("anomalies: %w", err)
	}
	for g, days := range groups {
		if len(days) != an.BaselineDays+1 {
			continue
		}
		spent := days[an.BaselineDays]
		median := medianOf(days[:an.BaselineDays])
		if spent < int64(an.MinSpend) || !exceeds(spent, median, an.Factor) {
			continue
		}
		key := fmt.Sprintf("anomaly|%s|%d", g, today.Unix())
		ok, err := f.w.claim(ctx, key, tomorrow)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		f.w.o.Sender.Send(webhook.Alert{
			Kind: webhook.KindAnomaly, Key: key, CounterKey: g, Unit: "money",
			Spent: money.Amount(spent).String(), Limit: money.Amount(median).String(), Currency: string(f.base),
			WindowStart: today, WindowEnd: tomorrow, At: now,
			Message: fmt.Sprintf("%s spent %s %s today, more than %s× the median of its previous %d days (%s).",
				g, money.Amount(spent), f.base, an.Factor, an.BaselineDays, money.Amount(median)),
		})
	}
	return nil
}

// medianOf is the median; of an even count, the lower of the middle two
// (an upper median would make spikes on quiet keys harder to see).
func medianOf(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// exceeds reports spent > factor × median exactly: spent × 10⁹ > median ×
// factor in nano-units.
func exceeds(spent, median int64, factor money.Amount) bool {
	var a, b big.Int
	a.Mul(big.NewInt(spent), big.NewInt(1e9))
	b.Mul(big.NewInt(median), big.NewInt(int64(factor)))
	return a.Cmp(&b) > 0
}
