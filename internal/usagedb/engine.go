package usagedb

import (
	"fmt"
	"slices"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// This file is what another store (pgstore) needs to give the same rows as
// DB: the stored record encoding, a record's contribution to its rollups,
// the plan of which rollups and records answer a query, and the
// accumulator that turns them into rows. Sharing them, rather than
// re-deriving them in SQL, is what makes the stores agree to the nano-unit
// on bucket edges, time zones, currencies and the charged rule.

// EncodeRecord appends r's compact binary encoding (the one DB stores, with
// the dimension names inline; the start is not in it).
func EncodeRecord(b []byte, r *ledger.Record) []byte { return encodeRecord(b, r, 0) }

// DecodeRecord decodes what EncodeRecord wrote, for a record that started at
// start (given in unix nanoseconds; the record's Start is UTC).
func DecodeRecord(start int64, val []byte) (*ledger.Record, error) {
	r := &ledger.Record{Start: time.Unix(0, start).UTC()}
	if err := decodeRecordValue(val, r, noNames{}); err != nil {
		return nil, fmt.Errorf("usagedb: record at %d: corrupt value: %w", start, err)
	}
	return r, nil
}

type noNames struct{}

func (noNames) names(uint64) ([]string, bool) { return nil, false }

// Sums are exact sums over the records of one rollup group: what DB's
// aggregates hold, and what another store's rollup rows must hold.
type Sums struct {
	Requests, Unpriced int64
	Tokens             [usage.NumClasses]int64
	Units              [usage.NumUnits]int64
	Cost, ListCost     money.Amount
}

func (s *Sums) val() aggVal {
	return aggVal{requests: s.Requests, unpriced: s.Unpriced, tokens: s.Tokens, units: s.Units, cost: s.Cost, list: s.ListCost}
}

// RollupKey is the group a record is rolled up under; Dimensions are the
// values of the configured dimensions, in order (attribution.Unknown for a
// dimension the record lacks).
type RollupKey struct {
	Currency                          money.Currency
	Dimensions                        []string
	Provider, Model, Dialect, Outcome string
}

// Converter works out records' contributions; it caches exchange-rate
// tables, so each writer keeps one. The zero value is ready.
type Converter struct{ c converter }

// Contribution returns the rollup key of r under dims and its one-record
// sums, exactly as DB aggregates it (see the package doc, Reports).
func (c *Converter) Contribution(r *ledger.Record, dims []string) (RollupKey, Sums) {
	cur, v := c.c.contribution(r)
	k := RollupKey{Currency: cur, Dimensions: make([]string, len(dims)), Provider: r.Provider,
		Model: ModelLabel(r), Dialect: r.Dialect, Outcome: string(r.Outcome)}
	for i, n := range dims {
		k.Dimensions[i] = dimValue(r, n)
	}
	return k, Sums{Requests: v.requests, Unpriced: v.unpriced, Tokens: v.tokens, Units: v.units, Cost: v.cost, ListCost: v.list}
}

// Rollup periods, in unix nanoseconds.
const (
	NanosPerHour = nanosPerHour
	NanosPerDay  = nanosPerDay
)

// Span is a half-open range [From, To) of record starts, in unix
// nanoseconds.
type Span struct{ From, To int64 }

// RollupSpan is a range of hour (or day, Day) rollups, by their periods'
// starts in unix nanoseconds, counted in bucket Bucket, subtracted when Neg.
type RollupSpan struct {
	Day    bool
	From   int64
	To     int64
	Bucket int
	Neg    bool
}

// Plan is how a store answers a query: which rollups and which records,
// each counted in which bucket. Together they count every record of
// [From, To) once, in its own bucket.
type Plan struct{ p plan }

// NewPlan plans q, which must be valid (Query.Validate).
func NewPlan(q Query) *Plan { return &Plan{makePlan(q)} }

// Records are the ranges read from records: partial hours.
func (p *Plan) Records() []Span {
	out := make([]Span, len(p.p.raw))
	for i, s := range p.p.raw {
		out[i] = Span{s.from, s.to}
	}
	return out
}

// Rollups are the ranges read from hour and day rollups.
func (p *Plan) Rollups() []RollupSpan {
	out := make([]RollupSpan, len(p.p.aggs))
	for i, a := range p.p.aggs {
		out[i] = RollupSpan{Day: a.prefix == prefixDay, From: a.from, To: a.to, Bucket: a.bucket, Neg: a.neg}
	}
	return out
}

// Starts are the buckets' starts in unix nanoseconds, then the query's To:
// bucket i holds the records that started in [Starts[i], Starts[i+1]).
func (p *Plan) Starts() []int64 { return slices.Clone(p.p.starts) }

// Accumulator sums rollups and records into a report's rows, as DB's
// report does. It is not safe for concurrent use.
type Accumulator struct {
	rp      *reporter // fields laid out as currency, outcome, then GroupBy
	dims    []string
	nfields int
	filter  []filterField // by full aggregate-key field
	group   []int         // full aggregate-key fields of GroupBy
	outcome int
	compact [][]byte
}

// NewAccumulator returns an accumulator for q (valid for dims) planned as p.
func NewAccumulator(q Query, dims []string, p *Plan) *Accumulator {
	a := &Accumulator{dims: dims, nfields: 1 + len(dims) + fieldsAfterDims, outcome: fieldIndex(dims, KeyOutcome)}
	a.rp = &reporter{plan: &p.p, outcome: 1, groups: map[string]*bucketRow{}}
	for i, k := range q.GroupBy {
		a.rp.group = append(a.rp.group, 2+i)
		a.group = append(a.group, fieldIndex(dims, k))
	}
	for _, k := range slices.Sorted(mapKeys(q.Filter)) {
		a.filter = append(a.filter, filterField{fieldIndex(dims, k), q.Filter[k]})
	}
	return a
}

// AddRow adds r, sums of rollup rows already split by the charged rule
// (Requests, Unpriced and Outcomes over every outcome; Charged, Tokens,
// Units and the costs over the charged outcomes only, as Row documents), to
// the row of bucket with cur and group (the values of Query.GroupBy).
// Neg subtracts.
func (a *Accumulator) AddRow(bucket int, cur money.Currency, group []string, r *Row, neg bool) error {
	if bucket < 0 || bucket >= len(a.rp.plan.labels) {
		return fmt.Errorf("usagedb: bucket %d outside the plan's %d", bucket, len(a.rp.plan.labels))
	}
	f := append(a.compact[:0], []byte(cur), nil)
	for _, g := range group {
		f = append(f, []byte(g))
	}
	a.compact = f
	row, err := a.rp.lookup(bucket, f)
	if err != nil {
		return err
	}
	o := *r
	if neg {
		o.negate()
	}
	return row.merge(&o)
}

// ChargedOutcomes are the outcomes whose records carry a charge
// (ledger.Outcome.Charged), for a store that applies the rule in SQL.
func ChargedOutcomes() []string {
	var out []string
	for _, o := range ledger.Outcomes {
		if o.Charged() {
			out = append(out, string(o))
		}
	}
	return out
}

// AddRecord adds a record of one of the plan's Records spans, if it passes
// the query's filter, to the bucket of its start.
func (a *Accumulator) AddRecord(r *ledger.Record) error {
	cur, c := a.rp.conv.contribution(r)
	a.rp.rk = appendAggKey(a.rp.rk[:0], prefixHour, 0, cur, r, a.dims)
	_, fields, err := parseAggKey(a.rp.rk, a.nfields, a.rp.fields)
	if err != nil {
		return err
	}
	a.rp.fields = fields
	for _, f := range a.filter {
		if string(fields[f.idx]) != f.val {
			return nil
		}
	}
	idx := a.rp.plan.bucketOf(r.Start.UnixNano())
	if idx < 0 {
		return fmt.Errorf("usagedb: record %s at %d outside the query", r.RequestID, r.Start.UnixNano())
	}
	f := append(a.compact[:0], fields[fieldCurrency], fields[a.outcome])
	for _, g := range a.group {
		f = append(f, fields[g])
	}
	a.compact = f
	return a.rp.add(idx, f, &c)
}

// Rows returns the rows, sorted as DB's Report sorts them.
func (a *Accumulator) Rows() []Row { return a.rp.rows() }

// negate makes r subtract what it added (stored sums are far from
// math.MinInt64).
func (r *Row) negate() {
	r.Requests, r.Charged, r.Unpriced, r.Cost, r.ListCost = -r.Requests, -r.Charged, -r.Unpriced, -r.Cost, -r.ListCost
	for i := range r.Outcomes {
		r.Outcomes[i] = -r.Outcomes[i]
	}
	for i := range r.Tokens {
		r.Tokens[i] = -r.Tokens[i]
	}
	for i := range r.Units {
		r.Units[i] = -r.Units[i]
	}
}

// Add adds o to s exactly; on overflow it fails and leaves s unchanged.
func (s *Sums) Add(o *Sums) error {
	v, w := s.val(), o.val()
	if err := v.merge(&w); err != nil {
		return err
	}
	*s = Sums{Requests: v.requests, Unpriced: v.unpriced, Tokens: v.tokens, Units: v.units, Cost: v.cost, ListCost: v.list}
	return nil
}
