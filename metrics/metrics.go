// Package metrics exports tokenmeter's Prometheus metrics. It is a
// ledger.Sink: every record updates the counters, so metrics and the ledger
// can never disagree on what was metered.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenmeter/tokenmeter/alerting"
	"github.com/tokenmeter/tokenmeter/ledger"
	"github.com/tokenmeter/tokenmeter/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/usage"
	"github.com/tokenmeter/tokenmeter/usagedb"
	"github.com/tokenmeter/tokenmeter/webhook"
)

// BudgetStatus reports the current budget counters; it is called at scrape time.
type BudgetStatus func(ctx context.Context) ([]ratelimit.Status, error)

// Metrics holds every collector. Create it once per process.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	cost        *exactCounter
	denied      *prometheus.CounterVec
	unpriced    *prometheus.CounterVec
	parseErrors *prometheus.CounterVec
	invalid     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	storeErrors *prometheus.CounterVec
	shadow      *prometheus.CounterVec
	unavailable *prometheus.CounterVec
	overloaded  prometheus.Counter
	reloads     prometheus.Counter
	reloadErrs  prometheus.Counter

	dims []string
}

// New registers every metric. dims are the attribution dimension names,
// which become labels; changing them needs a restart.
func New(dims []string, budgets BudgetStatus, log *slog.Logger) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), dims: dims}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_requests_total", Help: "Requests seen, by how metering ended.",
	}, []string{"provider", "model", "outcome"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_tokens_total", Help: "Billed tokens by disjoint class (input is uncached input; output excludes reasoning).",
	}, append([]string{"provider", "model", "class"}, dims...))
	m.cost = newExactCounter(prometheus.NewDesc("tokenmeter_cost_total",
		"Cost charged, in currency units. Summed exactly in nano-units; converted to float only for export.",
		append([]string{"currency", "provider", "model"}, dims...), nil))
	m.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_denied_total", Help: "Requests refused before the upstream call, by the budget that refused them.",
	}, []string{"budget"})
	m.unpriced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_unpriced_requests_total", Help: "Requests for a model the price catalog does not cover. Their cost is unknown, not zero.",
	}, []string{"model"})
	m.parseErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_parse_errors_total", Help: "Bodies that could not be fully read; the traffic passed unchanged.",
	}, []string{"dialect", "reason"})
	m.invalid = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_invalid_attribution_total", Help: "Attribution header values replaced by \"invalid\" (too long or control characters).",
	}, []string{"dimension"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tokenmeter_extproc_duration_seconds", Help: "Time tokenmeter spends on one ext_proc message, by phase.",
		Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3},
	}, []string{"phase"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_store_errors_total", Help: "Budget store operations that failed.",
	}, []string{"op"})
	m.shadow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_budget_shadow_denials_total", Help: "Requests a shadow budget would have denied; they went ahead.",
	}, []string{"budget"})
	m.overloaded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenmeter_gate_overloaded_total",
		Help: "Requests refused with 503 because their budget decision came past extproc.gate_deadline (Envoy would have stopped waiting).",
	})
	m.unavailable = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_budget_store_unavailable_total",
		Help: "Requests a budget could not check because its store failed, by what was done: allowed (fail open) or denied (fail closed).",
	}, []string{"budget", "action"})
	m.reloads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenmeter_config_reloads_total", Help: "Config or catalog changes applied without a restart.",
	})
	m.reloadErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tokenmeter_config_reload_errors_total", Help: "Config or catalog changes refused; the running config was kept (see the log for file, key and reason).",
	})
	m.reg.MustRegister(m.reloads, m.reloadErrs)
	m.reg.MustRegister(m.requests, m.tokens, m.cost, m.denied, m.unpriced, m.parseErrors, m.invalid,
		m.duration, m.storeErrors, m.shadow, m.unavailable, m.overloaded, &budgetCollector{status: budgets, log: log},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Append implements ledger.Sink.
func (m *Metrics) Append(r *ledger.Record) {
	model := r.PricedModel
	if model == "" {
		model = r.ResponseModel
	}
	if model == "" {
		model = r.Model
	}
	if model == "" {
		model = "unknown"
	}
	m.requests.WithLabelValues(r.Provider, model, string(r.Outcome)).Inc()
	if r.Outcome == ledger.Denied {
		m.denied.WithLabelValues(r.Budget).Inc()
	}
	if (!r.Priced || r.Fallback) && r.Model != "" {
		m.unpriced.WithLabelValues(model).Inc()
	}
	labels := make([]string, 0, 3+len(m.dims))
	labels = append(labels, r.Provider, model, "")
	labels = append(labels, r.Dimensions.Values...)
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		if n := r.Usage.Tokens[c].N; n > 0 {
			labels[2] = c.String()
			m.tokens.WithLabelValues(labels...).Add(float64(n))
		}
	}
	if r.Priced && r.Usage.Total() > 0 {
		// Cost is exported in the reporting currency, so one PromQL sum
		// adds like with like.
		cur, cost := r.Currency, r.Cost
		if r.ReportingCurrency != "" {
			cur, cost = r.ReportingCurrency, r.ReportingCost
		}
		labels[0], labels[1], labels[2] = string(cur), r.Provider, model
		m.cost.add(labels, cost)
	}
}

// ObservePhase records the time one ext_proc message took.
func (m *Metrics) ObservePhase(phase string, d time.Duration) {
	m.duration.WithLabelValues(phase).Observe(d.Seconds())
}

// ParseError counts a body that could not be fully read.
func (m *Metrics) ParseError(dialect, reason string) {
	m.parseErrors.WithLabelValues(dialect, reason).Inc()
}

// InvalidAttribution counts a header value replaced by "invalid".
func (m *Metrics) InvalidAttribution(dimension string) {
	m.invalid.WithLabelValues(dimension).Inc()
}

// Reloaded counts an applied config change; ReloadFailed a refused one.
func (m *Metrics) Reloaded()     { m.reloads.Inc() }
func (m *Metrics) ReloadFailed() { m.reloadErrs.Inc() }

// WatchLedger exports the stored ledger's queue counters.
func (m *Metrics) WatchLedger(stats func() usagedb.Stats) {
	m.reg.MustRegister(ledgerCollector(stats))
}

var (
	ledgerWritten = prometheus.NewDesc("tokenmeter_ledger_records_written_total", "Records written to the stored ledger.", nil, nil)
	ledgerDropped = prometheus.NewDesc("tokenmeter_ledger_records_dropped_total",
		"Records dropped because the ledger's queue was full (also logged): never silent, but lost from statements.", nil, nil)
	ledgerErrors = prometheus.NewDesc("tokenmeter_ledger_write_errors_total", "Failed writes to the stored ledger.", nil, nil)
	ledgerQueued = prometheus.NewDesc("tokenmeter_ledger_queue_length", "Records waiting to be written.", nil, nil)
)

type ledgerCollector func() usagedb.Stats

func (l ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ledgerWritten
	ch <- ledgerDropped
	ch <- ledgerErrors
	ch <- ledgerQueued
}

func (l ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	s := l()
	ch <- prometheus.MustNewConstMetric(ledgerWritten, prometheus.CounterValue, float64(s.Written))
	ch <- prometheus.MustNewConstMetric(ledgerDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(ledgerErrors, prometheus.CounterValue, float64(s.WriteErrors))
	ch <- prometheus.MustNewConstMetric(ledgerQueued, prometheus.GaugeValue, float64(s.Queued))
}

// WatchForecasts exports each budget key's month-end (window-end)
// projection.
func (m *Metrics) WatchForecasts(f func() []alerting.Forecast) {
	m.reg.MustRegister(forecastCollector(f))
}

var budgetProjected = prometheus.NewDesc("tokenmeter_budget_projected",
	"A budget key's spend projected to the end of its window from the last 7 days' run rate (currency units for money budgets).",
	[]string{"budget", "key"}, nil)

type forecastCollector func() []alerting.Forecast

func (f forecastCollector) Describe(ch chan<- *prometheus.Desc) { ch <- budgetProjected }
func (f forecastCollector) Collect(ch chan<- prometheus.Metric) {
	for _, fc := range f() {
		v := float64(fc.Projected)
		if fc.Money {
			v = money.Amount(fc.Projected).Units()
		}
		ch <- prometheus.MustNewConstMetric(budgetProjected, prometheus.GaugeValue, v, fc.Budget, fc.Key)
	}
}

// WatchAlerts exports the alert sender's counters.
func (m *Metrics) WatchAlerts(stats func() webhook.Stats) {
	m.reg.MustRegister(alertCollector(stats))
}

var alertsDesc = prometheus.NewDesc("tokenmeter_alerts_total",
	"Alerts by what became of them: sent (a target accepted it), failed (gave up), dropped (queue full), deduplicated (already sent this window).",
	[]string{"result"}, nil)

type alertCollector func() webhook.Stats

func (a alertCollector) Describe(ch chan<- *prometheus.Desc) { ch <- alertsDesc }
func (a alertCollector) Collect(ch chan<- prometheus.Metric) {
	s := a()
	for _, r := range []struct {
		name string
		v    uint64
	}{{"sent", s.Sent}, {"failed", s.Failed}, {"dropped", s.Dropped}, {"deduplicated", s.Deduplicated}} {
		ch <- prometheus.MustNewConstMetric(alertsDesc, prometheus.CounterValue, float64(r.v), r.name)
	}
}

// ShadowDenied counts a request a shadow budget would have denied.
func (m *Metrics) ShadowDenied(budget string) { m.shadow.WithLabelValues(budget).Inc() }

// StoreUnavailable counts a budget check skipped (allowed) or failed closed.
func (m *Metrics) StoreUnavailable(budget string, denied bool) {
	action := "allowed"
	if denied {
		action = "denied"
	}
	m.unavailable.WithLabelValues(budget, action).Inc()
}

// Overloaded counts a request refused past the gate deadline.
func (m *Metrics) Overloaded() { m.overloaded.Inc() }

// StoreError counts a failed budget store operation.
func (m *Metrics) StoreError(op string) {
	m.storeErrors.WithLabelValues(op).Inc()
}

// exactCounter sums money exactly per label set and converts to float64 only
// when scraped, so the exported total is the exact sum, rounded once, rather
// than the drift of a million float additions.
type exactCounter struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	sums map[string]*exactSum
}

type exactSum struct {
	labels []string
	total  money.Amount
}

func newExactCounter(desc *prometheus.Desc) *exactCounter {
	return &exactCounter{desc: desc, sums: map[string]*exactSum{}}
}

func (e *exactCounter) add(labels []string, a money.Amount) {
	key := strings.Join(labels, "\xff")
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.sums[key]
	if !ok {
		s = &exactSum{labels: append([]string(nil), labels...)}
		e.sums[key] = s
	}
	s.total += a
}

func (e *exactCounter) Describe(ch chan<- *prometheus.Desc) { ch <- e.desc }

func (e *exactCounter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sums {
		ch <- prometheus.MustNewConstMetric(e.desc, prometheus.CounterValue, s.total.Units(), s.labels...)
	}
}

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
)

type budgetCollector struct {
	status BudgetStatus
	log    *slog.Logger
}

func (b *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- budgetSpent
	ch <- budgetReserved
	ch <- budgetLimit
	ch <- budgetRemaining
	ch <- budgetResets
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
	for _, s := range st {
		conv := func(v int64) float64 {
			if s.Budget.Unit == ratelimit.Money {
				return money.Amount(v).Units()
			}
			return float64(v)
		}
		labels := []string{s.Budget.Name, s.Key, s.Budget.Period()}
		left := s.Limit - s.Counter.Spent - s.Counter.Reserved
		if left < 0 {
			left = 0
		}
		ch <- prometheus.MustNewConstMetric(budgetSpent, prometheus.GaugeValue, conv(s.Counter.Spent), labels...)
		ch <- prometheus.MustNewConstMetric(budgetReserved, prometheus.GaugeValue, conv(s.Counter.Reserved), labels...)
		ch <- prometheus.MustNewConstMetric(budgetLimit, prometheus.GaugeValue, conv(s.Limit), labels...)
		ch <- prometheus.MustNewConstMetric(budgetRemaining, prometheus.GaugeValue, conv(left), labels...)
		ch <- prometheus.MustNewConstMetric(budgetResets, prometheus.GaugeValue, float64(s.Resets.Unix()), labels...)
	}
}
