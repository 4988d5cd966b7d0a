package metrics

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

var (
	budgetSpent = prometheus.NewDesc("tokenmeter_budget_spent",
		"Settled spend of a budget key in its current window (currency units for money budgets, else a count).",
		[]string{"budget", "key", "window"}, nil)
	budgetReserved = prometheus.NewDesc("tokenmeter_budget_reserved",
		"Amount held by requests in flight on a budget key.", []string{"budget", "key", "window"}, nil)
	budgetLimit = prometheus.NewDesc("tokenmeter_budget_limit",
		"Limit of a budget key in its window.", []string{"budget", "key", "window"}, nil)
	budgetRemaining = prometheus.NewDesc("tokenmeter_budget_remaining",
		"What a budget key has left in its window: limit − spent − reserved, never below 0.", []string{"budget", "key", "window"}, nil)
	budgetResets = prometheus.NewDesc("tokenmeter_budget_reset_timestamp_seconds",
		"When a budget key's window resets (a rolling window: when its oldest bucket leaves), Unix seconds.", []string{"budget", "key", "window"}, nil)
	budgetFolded = prometheus.NewDesc("tokenmeter_budget_keys_folded",
		`Keys of a budget past the metrics' key cap, summed in the gauges under key="other" at the last scrape.`,
		[]string{"budget"}, nil)
	budgetProjected = prometheus.NewDesc("tokenmeter_budget_projected",
		"A budget key's spend projected to the end of its window from the last 7 days' run rate (currency units for money budgets).",
		[]string{"budget", "key"}, nil)
)

// budgetKeys admits up to max keys per budget, first come, first served, for
// the budget and forecast gauges alike: a budget on user: "*" would otherwise
// export five series per user. Memory is bounded by budgets × max.
type budgetKeys struct {
	mu   sync.Mutex
	max  int
	caps map[string]*valueCap
}

func newBudgetKeys(max int) *budgetKeys {
	if max <= 0 {
		max = DefaultMaxBudgetKeys
	}
	return &budgetKeys{max: max, caps: map[string]*valueCap{}}
}

func (b *budgetKeys) admit(budget, key string) bool {
	b.mu.Lock()
	c, ok := b.caps[budget]
	if !ok {
		c = newValueCap(b.max, b.max)
		b.caps[budget] = c
	}
	b.mu.Unlock()
	return c.admit(key)
}

type budgetCollector struct {
	status BudgetStatus
	keys   *budgetKeys
	log    *slog.Logger
}

func (b *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- budgetSpent
	ch <- budgetReserved
	ch <- budgetLimit
	ch <- budgetRemaining
	ch <- budgetResets
	ch <- budgetFolded
}

// keyGauges are one key's gauges, or the sum of the folded keys' (the
// earliest reset of them).
type keyGauges struct {
	budget   *ratelimit.Budget
	spent    int64
	reserved int64
	limit    int64
	left     int64
	resets   time.Time
}

func (g *keyGauges) add(s *ratelimit.Status) {
	left := max(s.Limit-s.Counter.Spent-s.Counter.Reserved, 0)
	g.spent = satAdd(g.spent, s.Counter.Spent)
	g.reserved = satAdd(g.reserved, s.Counter.Reserved)
	g.limit = satAdd(g.limit, s.Limit)
	g.left = satAdd(g.left, left)
	if g.resets.IsZero() || s.Resets.Before(g.resets) {
		g.resets = s.Resets
	}
}

func (g *keyGauges) emit(ch chan<- prometheus.Metric, key string) {
	conv := func(v int64) float64 {
		if g.budget.Unit == ratelimit.Money {
			return money.Amount(v).Units()
		}
		return float64(v)
	}
	labels := []string{g.budget.Name, key, g.budget.Period()}
	ch <- prometheus.MustNewConstMetric(budgetSpent, prometheus.GaugeValue, conv(g.spent), labels...)
	ch <- prometheus.MustNewConstMetric(budgetReserved, prometheus.GaugeValue, conv(g.reserved), labels...)
	ch <- prometheus.MustNewConstMetric(budgetLimit, prometheus.GaugeValue, conv(g.limit), labels...)
	ch <- prometheus.MustNewConstMetric(budgetRemaining, prometheus.GaugeValue, conv(g.left), labels...)
	ch <- prometheus.MustNewConstMetric(budgetResets, prometheus.GaugeValue, float64(g.resets.Unix()), labels...)
}

func (b *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	if b.status == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := b.status(ctx)
	if err != nil {
		b.log.Warn("budget status for metrics", "err", err)
		return
	}
	// One "other" per budget and window: a runtime budget replaced under
	// the same name may briefly list two windows.
	type bw struct{ budget, window string }
	other := map[bw]*keyGauges{}
	folded := map[string]int{}
	for i := range st {
		s := &st[i]
		name := s.Budget.Name
		if _, ok := folded[name]; !ok {
			folded[name] = 0
		}
		if b.keys.admit(name, s.Key) {
			g := keyGauges{budget: s.Budget}
			g.add(s)
			g.emit(ch, s.Key)
			continue
		}
		folded[name]++
		k := bw{name, s.Budget.Period()}
		if other[k] == nil {
			other[k] = &keyGauges{budget: s.Budget}
		}
		other[k].add(s)
	}
	for _, g := range other {
		g.emit(ch, Other)
	}
	for name, n := range folded {
		ch <- prometheus.MustNewConstMetric(budgetFolded, prometheus.GaugeValue, float64(n), name)
	}
}

type forecastCollector struct {
	forecasts func() []alerting.Forecast
	keys      *budgetKeys
}

func (f forecastCollector) Describe(ch chan<- *prometheus.Desc) { ch <- budgetProjected }

func (f forecastCollector) Collect(ch chan<- prometheus.Metric) {
	type sum struct {
		v     int64
		money bool
	}
	other := map[string]*sum{}
	units := func(v int64, isMoney bool) float64 {
		if isMoney {
			return money.Amount(v).Units()
		}
		return float64(v)
	}
	for _, fc := range f.forecasts() {
		if f.keys.admit(fc.Budget, fc.Key) {
			ch <- prometheus.MustNewConstMetric(budgetProjected, prometheus.GaugeValue, units(fc.Projected, fc.Money), fc.Budget, fc.Key)
			continue
		}
		if other[fc.Budget] == nil {
			other[fc.Budget] = &sum{money: fc.Money}
		}
		other[fc.Budget].v = satAdd(other[fc.Budget].v, fc.Projected)
	}
	for name, s := range other {
		ch <- prometheus.MustNewConstMetric(budgetProjected, prometheus.GaugeValue, units(s.v, s.money), name, Other)
	}
}

// satAdd adds without wrapping: a shadow budget's limit is unlimited
// (math.MaxInt64), and a sum of them must not turn negative.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}
