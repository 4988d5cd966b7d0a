package metrics

import (
	"strings"
	"sync"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Label values that stand for many. Other is where values past a label's cap
// go; Unpriced is the model label of every request the catalog does not price
// (fallback-priced ones included), so a client cannot mint a series per
// model name it invents; NoModel is the model label of a request that named
// none.
const (
	Other    = "other"
	Unpriced = "unpriced"
	NoModel  = "unknown"
)

// Defaults for the zero Options fields.
const (
	// DefaultMaxValues caps the distinct values of one attribution label.
	DefaultMaxValues = 100
	// DefaultMaxLabelSets caps the distinct (provider, model, attribution
	// values) combinations. Per-label caps alone would let a client that
	// knows 100 projects and 100 teams mint their 10,000 products.
	DefaultMaxLabelSets = 1000
	// DefaultMaxBudgetKeys caps the keys per budget the budget gauges show
	// (a budget on user: "*" has one key per user).
	DefaultMaxBudgetKeys = 50
)

// Overflow label values beyond the dimensions' names: LabelSetLabel for a
// combination folded by MaxLabelSets, ResponseModelLabel for a response
// model folded by its cap (only exporters that carry the response model
// ask for it: OTLP's gen_ai.response.model).
const (
	LabelSetLabel      = "label_set"
	ResponseModelLabel = "response_model"
)

// Options bound what the metrics export. Every label whose values a client
// controls is capped: values are admitted first come, first served, up to
// the cap, and later ones are exported as Other and counted in
// tokenmeter_metric_label_overflow_total. Changing them needs a restart.
type Options struct {
	// Dimensions are the attribution dimensions, in the configured order
	// (the order of a record's Dimensions.Values).
	Dimensions []Dimension
	// MaxLabelSets caps the distinct (provider, model, attribution values)
	// combinations of the per-request series; past it, a new combination
	// is exported with every attribution label Other. 0: DefaultMaxLabelSets.
	MaxLabelSets int
	// MaxBudgetKeys caps the keys of each budget in the budget gauges; the
	// rest are summed under key="other". 0: DefaultMaxBudgetKeys.
	MaxBudgetKeys int
}

// Dimension is how one attribution dimension is exported.
type Dimension struct {
	Name string
	// Disabled drops the label from every series (the ledger still has
	// it): for dimensions such as user whose values are unbounded.
	Disabled bool
	// MaxValues caps the label's distinct values; 0: DefaultMaxValues.
	MaxValues int
}

// DimensionNames is Options for names, each exported with the default cap.
func DimensionNames(names ...string) Options {
	o := Options{}
	for _, n := range names {
		o.Dimensions = append(o.Dimensions, Dimension{Name: n})
	}
	return o
}

// valueCap admits up to max distinct values, first come, first served.
// Memory is bounded by max; an admitted value stays admitted, so a series
// never changes label from one sample to the next.
type valueCap struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
}

func newValueCap(max, def int) *valueCap {
	if max <= 0 {
		max = def
	}
	return &valueCap{max: max, seen: make(map[string]struct{})}
}

// admit reports whether v may be exported as itself.
func (c *valueCap) admit(v string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[v]; ok {
		return true
	}
	if len(c.seen) >= c.max {
		return false
	}
	c.seen[v] = struct{}{}
	return true
}

// Labeler turns a record into bounded label values. It is the one bounding
// of what a client controls, shared by every exporter: the Prometheus
// metrics hold one, and so does the OTLP exporter (internal/otelmetrics),
// each with its own admitted values and its own overflow count.
type Labeler struct {
	names     []string    // the exported dimension labels, in order
	index     []int       // index[i]: position of names[i] in a record's Dimensions.Values
	caps      []*valueCap // caps[i] bounds names[i]
	sets      *valueCap
	responses *valueCap
	// overflow is told the label (a dimension, LabelSetLabel or
	// ResponseModelLabel) of every value folded to Other.
	overflow func(label string)
}

// NewLabeler bounds labels as o says; overflow is called once per record
// and label folded.
func NewLabeler(o Options, overflow func(label string)) *Labeler {
	l := &Labeler{sets: newValueCap(o.MaxLabelSets, DefaultMaxLabelSets),
		responses: newValueCap(0, DefaultMaxValues), overflow: overflow}
	for i, d := range o.Dimensions {
		if d.Disabled {
			continue
		}
		l.names = append(l.names, d.Name)
		l.index = append(l.index, i)
		l.caps = append(l.caps, newValueCap(d.MaxValues, DefaultMaxValues))
	}
	return l
}

// Names are the exported dimension labels, in the order Dims appends their
// values. The caller must not change them.
func (l *Labeler) Names() []string { return l.names }

// ModelLabel is the record's model label: a catalog entry's name when the
// catalog priced it, never a string only the client chose.
func ModelLabel(r *ledger.Record) string {
	switch {
	case catalogPriced(r):
		return r.PricedModel
	case r.Model == "" && r.ResponseModel == "":
		return NoModel
	}
	return Unpriced
}

// catalogPriced: a catalog entry priced the record (not the fallback).
func catalogPriced(r *ledger.Record) bool { return r.Priced && !r.Fallback && r.PricedModel != "" }

// ResponseModel is the model the response named, for a record the catalog
// priced (an unpriced one has no label of its own, see ModelLabel), capped
// at DefaultMaxValues distinct values, then Other; "" when there is none.
func (l *Labeler) ResponseModel(r *ledger.Record) string {
	if r.ResponseModel == "" || !catalogPriced(r) {
		return ""
	}
	if !l.responses.admit(r.ResponseModel) {
		l.overflow(ResponseModelLabel)
		return Other
	}
	return r.ResponseModel
}

// Spends reports whether a record puts anything on the per-request series
// that carry attribution (tokens, units, cost). Only such a record may
// call Dims: one that spends nothing (a request refused at the gate) takes
// no slot, so callers that are refused cannot crowd out those that spend.
func Spends(r *ledger.Record) bool {
	_, _, charged := ChargedCost(r)
	return charged || HasUsage(&r.Usage)
}

// ChargedCost is the cost a record adds to the cost metrics, in the
// reporting currency so that one sum adds like with like; ok is false for a
// record that carries no charge or has no price (its cost is unknown, not
// zero). A units-only request (Whisper seconds, tts-1 characters, DALL·E
// images) has no tokens and is still money spent.
func ChargedCost(r *ledger.Record) (cur money.Currency, cost money.Amount, ok bool) {
	if !r.Priced || !r.Outcome.Charged() {
		return "", 0, false
	}
	if r.ReportingCurrency != "" {
		return r.ReportingCurrency, r.ReportingCost, true
	}
	return r.Currency, r.Cost, true
}

// HasUsage reports whether u counts any token or unit.
func HasUsage(u *usage.Usage) bool {
	for _, c := range u.Tokens {
		if c.N > 0 {
			return true
		}
	}
	for _, c := range u.Units {
		if c.N > 0 {
			return true
		}
	}
	return false
}

// Dims appends the record's exported attribution values to dst, each
// capped, and the combination capped with provider and model.
func (l *Labeler) Dims(dst []string, r *ledger.Record, provider, model string) []string {
	start := len(dst)
	for i, at := range l.index {
		v := attribution.Unknown
		if at < len(r.Dimensions.Values) {
			v = r.Dimensions.Values[at]
		}
		if !builtinValue(v) && !l.caps[i].admit(v) {
			v = Other
			l.overflow(l.names[i])
		}
		dst = append(dst, v)
	}
	vals := dst[start:]
	if len(vals) == 0 || allBuiltin(vals) {
		return dst
	}
	if !l.sets.admit(provider + "\xff" + model + "\xff" + strings.Join(vals, "\xff")) {
		for i := range vals {
			vals[i] = Other
		}
		l.overflow(LabelSetLabel)
	}
	return dst
}

// builtinValue: values tokenmeter itself substitutes take no slot of a cap.
func builtinValue(v string) bool {
	return v == attribution.Unknown || v == attribution.Invalid || v == Other
}

func allBuiltin(vs []string) bool {
	for _, v := range vs {
		if !builtinValue(v) {
			return false
		}
	}
	return true
}
