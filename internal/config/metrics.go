package config

import (
	"maps"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MetricsOffByDefault are the attribution dimensions that are not metric
// labels unless the metrics section turns them on: their values are as many
// as the callers (a series per user is what made /metrics grow without
// bound, issue 12). The ledger keeps them either way.
var MetricsOffByDefault = []string{"user"}

// Metrics is the metrics section: how many distinct values the Prometheus
// labels may take. A zero count means the metrics package's default
// (metrics.DefaultMaxValues, DefaultMaxLabelSets, DefaultMaxBudgetKeys).
// Changing it needs a restart: labels are fixed when the metrics register.
type Metrics struct {
	// MaxLabelValues caps the distinct values of each attribution label that
	// does not set its own; later values are exported as "other".
	MaxLabelValues int64
	// MaxLabelSets caps the distinct (provider, model, attribution values)
	// combinations.
	MaxLabelSets int64
	// MaxBudgetKeys caps the keys per budget in the budget gauges.
	MaxBudgetKeys int64
	// Dimensions has one entry per attribution dimension, in their order,
	// resolved: whether it is a label, and its cap.
	Dimensions []MetricDimension
	// OTLP is metrics.otlp: the same records exported over OTLP beside
	// Prometheus; off while its Endpoint is empty.
	OTLP OTLP

	// given holds the metrics.dimensions entries as written, until they are
	// checked against the attribution dimensions after the walk.
	given []givenDimension
}

// MetricDimension is how one attribution dimension is exported.
type MetricDimension struct {
	Name      string
	Enabled   bool
	MaxValues int64 // 0: the metrics default
}

type givenDimension struct {
	MetricDimension
	enabledSet bool
	key        string
}

// metrics reads:
//
//	metrics:
//	  max_label_values: 100   # per attribution label (default 100)
//	  max_label_sets: 1000    # (provider, model, attribution values) combinations (default 1000)
//	  max_budget_keys: 50     # keys per budget in the budget gauges (default 50)
//	  dimensions:
//	    project: {max_values: 200}
//	    user: {enabled: true, max_values: 20}   # user is off by default
//	  otlp: {endpoint: http://collector:4317}    # see otlp
func (w *walker) metrics(m *Metrics) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"max_label_values": w.integer(&m.MaxLabelValues, 1, 100_000),
			"max_label_sets":   w.integer(&m.MaxLabelSets, 1, 1_000_000),
			"max_budget_keys":  w.integer(&m.MaxBudgetKeys, 1, 100_000),
			"otlp":             w.otlp(&m.OTLP),
			"dimensions": func(n *yaml.Node, k string) {
				w.pairs(n, k, "a mapping of dimension name to its settings", func(name string, v *yaml.Node, key string) {
					g := givenDimension{MetricDimension: MetricDimension{Name: name}, key: key}
					w.mapping(v, key, map[string]func(*yaml.Node, string){
						"enabled": func(n *yaml.Node, k string) {
							g.enabledSet = true
							w.boolean(&g.Enabled)(n, k)
						},
						"max_values": w.integer(&g.MaxValues, 1, 100_000),
					})
					m.given = append(m.given, g)
				})
			},
		})
	}
}

// checkMetrics resolves the metrics section against the attribution
// dimensions (known only after the walk): every entry must name one, and
// each dimension gets its label setting.
func (w *walker) checkMetrics(c *Config) {
	m := &c.Metrics
	given := map[string]givenDimension{}
	for _, g := range m.given {
		given[g.Name] = g
	}
	for _, d := range c.Dimensions {
		md := MetricDimension{Name: d.Name, Enabled: !slices.Contains(MetricsOffByDefault, d.Name), MaxValues: m.MaxLabelValues}
		if g, ok := given[d.Name]; ok {
			if g.enabledSet {
				md.Enabled = g.Enabled
			}
			if g.MaxValues != 0 {
				md.MaxValues = g.MaxValues
			}
			delete(given, d.Name)
		}
		m.Dimensions = append(m.Dimensions, md)
	}
	names := make([]string, len(c.Dimensions))
	for i, d := range c.Dimensions {
		names[i] = d.Name
	}
	for _, name := range slices.Sorted(maps.Keys(given)) {
		g := given[name]
		w.failKey(g.key, name, "not a configured dimension; configured: "+strings.Join(slices.Sorted(slices.Values(names)), ", "))
	}
	m.given = nil // read; a reload compares what it resolved to
}
