// Package metrics exports tokenmeter's Prometheus metrics. It is a
// ledger.Sink: every record updates the counters, so metrics and the ledger
// can never disagree on what was metered.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// BudgetStatus reports the current budget counters; it is called at scrape time.
type BudgetStatus func(ctx context.Context) ([]ratelimit.Status, error)

// Metrics holds every collector. Create it once per process.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	units       *prometheus.CounterVec
	cost        *exactCounter
	denied      *prometheus.CounterVec
	keyRefusals *prometheus.CounterVec
	unpriced    *prometheus.CounterVec
	parseErrors *prometheus.CounterVec
	invalid     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	storeErrors *prometheus.CounterVec
	shadow      *prometheus.CounterVec
	unavailable *prometheus.CounterVec
	overloaded  prometheus.Counter
	overflow    *prometheus.CounterVec
	reloads     prometheus.Counter
	reloadErrs  prometheus.Counter

	labels *Labeler
	keys   *budgetKeys
}

// New registers every metric. o names the attribution dimensions, which
// become labels, and bounds their values (see Options); changing them needs
// a restart.
func New(o Options, budgets BudgetStatus, log *slog.Logger) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), keys: newBudgetKeys(o.MaxBudgetKeys)}
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_metric_label_overflow_total",
		Help: `Label values exported as "other" because their label reached its cap of distinct values (label_set: the cap on combinations); one per record and label folded.`,
	}, []string{"label"})
	m.labels = NewLabeler(o, func(label string) { m.overflow.WithLabelValues(label).Inc() })
	for _, n := range append(slices.Clone(m.labels.names), LabelSetLabel) {
		m.overflow.WithLabelValues(n) // exported at 0, so "never folded" is visible
	}
	dims := m.labels.names
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_requests_total", Help: "Requests seen, by how metering ended.",
	}, []string{"provider", "model", "outcome"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_tokens_total", Help: "Billed tokens by disjoint class (input is uncached input; output excludes reasoning).",
	}, append([]string{"provider", "model", "class"}, dims...))
	m.units = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_units_total", Help: "Billed units that are not tokens: images, audio_ms (audio milliseconds), characters.",
	}, append([]string{"provider", "model", "unit"}, dims...))
	m.cost = newExactCounter(prometheus.NewDesc("tokenmeter_cost_total",
		"Cost charged, in currency units. Summed exactly in nano-units; converted to float only for export.",
		append([]string{"currency", "provider", "model"}, dims...), nil))
	m.denied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_denied_total", Help: "Requests refused before the upstream call, by the budget that refused them.",
	}, []string{"budget"})
	m.keyRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_api_key_refusals_total",
		Help: "Requests refused (401) for their API key, by why: missing, unknown or revoked (attribution.api_keys). A rise of unknown is someone guessing.",
	}, []string{"reason"})
	m.unpriced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenmeter_unpriced_requests_total",
		Help: "Requests for a model the price catalog does not cover, by how they ended. Their cost is unknown, not zero; the ledger names the model.",
	}, []string{"provider", "outcome"})
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
	m.reg.MustRegister(m.requests, m.tokens, m.units, m.cost, m.denied, m.keyRefusals, m.unpriced, m.parseErrors, m.invalid,
		m.duration, m.storeErrors, m.shadow, m.unavailable, m.overloaded, m.overflow,
		&budgetCollector{status: budgets, keys: m.keys, log: log},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Append implements ledger.Sink. Every label value it exports is bounded:
// the model is a catalog name or Unpriced, attribution values are capped
// (Options), so a client cannot grow the series count.
func (m *Metrics) Append(r *ledger.Record) {
	model := ModelLabel(r)
	m.requests.WithLabelValues(r.Provider, model, string(r.Outcome)).Inc()
	if r.Outcome == ledger.Denied {
		m.denied.WithLabelValues(r.Budget).Inc()
		switch r.Reason {
		case reason.KeyMissing, reason.KeyUnknown, reason.KeyRevoked:
			m.keyRefusals.WithLabelValues(strings.TrimPrefix(string(r.Reason), "api_key_")).Inc()
		}
	}
	if (!r.Priced || r.Fallback) && r.Model != "" {
		m.unpriced.WithLabelValues(r.Provider, string(r.Outcome)).Inc()
	}
	if !Spends(r) {
		return
	}
	labels := make([]string, 3, 3+len(m.labels.names))
	labels[0], labels[1] = r.Provider, model
	labels = m.labels.Dims(labels, r, r.Provider, model)
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		if n := r.Usage.Tokens[c].N; n > 0 {
			labels[2] = c.String()
			m.tokens.WithLabelValues(labels...).Add(float64(n))
		}
	}
	for u := usage.Unit(0); u < usage.NumUnits; u++ {
		if n := r.Usage.Units[u].N; n > 0 {
			labels[2] = u.String()
			m.units.WithLabelValues(labels...).Add(float64(n))
		}
	}
	if cur, cost, ok := ChargedCost(r); ok {
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
	spoolRecords = prometheus.NewDesc("tokenmeter_ledger_spool_records", "Records waiting in the on-disk spool for the ledger's database (Postgres) to return.", nil, nil)
	spoolBytes   = prometheus.NewDesc("tokenmeter_ledger_spool_bytes", "Bytes of the ledger's on-disk spool.", nil, nil)
	spoolAge     = prometheus.NewDesc("tokenmeter_ledger_spool_oldest_age_seconds", "How long the oldest spooled batch has waited; 0 when the spool is empty.", nil, nil)
)

type ledgerCollector func() usagedb.Stats

func (l ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ledgerWritten
	ch <- ledgerDropped
	ch <- ledgerErrors
	ch <- ledgerQueued
	ch <- spoolRecords
	ch <- spoolBytes
	ch <- spoolAge
}

func (l ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	s := l()
	ch <- prometheus.MustNewConstMetric(ledgerWritten, prometheus.CounterValue, float64(s.Written))
	ch <- prometheus.MustNewConstMetric(ledgerDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(ledgerErrors, prometheus.CounterValue, float64(s.WriteErrors))
	ch <- prometheus.MustNewConstMetric(ledgerQueued, prometheus.GaugeValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(spoolRecords, prometheus.GaugeValue, float64(s.Spooled))
	ch <- prometheus.MustNewConstMetric(spoolBytes, prometheus.GaugeValue, float64(s.SpoolBytes))
	var age float64
	if !s.SpoolOldest.IsZero() {
		age = time.Since(s.SpoolOldest).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(spoolAge, prometheus.GaugeValue, age)
}

// WatchForecasts exports each budget key's month-end (window-end)
// projection.
func (m *Metrics) WatchForecasts(f func() []alerting.Forecast) {
	m.reg.MustRegister(forecastCollector{forecasts: f, keys: m.keys})
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
