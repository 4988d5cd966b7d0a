package usagedb

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// An aggregate key is the period prefix (see keys.go) followed by the group
// fields, each a uvarint length and bytes, in this order: reporting
// currency, each configured dimension's value, provider, model, dialect,
// outcome. fieldCurrency and the offsets below index a parsed key.
const fieldCurrency = 0

// fieldsAfterDims is the number of fields after the dimension values.
const fieldsAfterDims = 4

// Names of the built-in group keys, in aggregate-key order after the
// dimensions.
const (
	KeyProvider = "provider"
	KeyModel    = "model"
	KeyDialect  = "dialect"
	KeyOutcome  = "outcome"
	KeyCurrency = "currency"
)

// ModelLabel is the model a record is reported under: the catalog entry that
// priced it, else the model the response named, else the requested one,
// else "unknown". It is the rule package metrics uses for its model label,
// so a report and a Prometheus query agree.
func ModelLabel(r *ledger.Record) string {
	switch {
	case r.PricedModel != "":
		return r.PricedModel
	case r.ResponseModel != "":
		return r.ResponseModel
	case r.Model != "":
		return r.Model
	}
	return "unknown"
}

// dimValue is r's value for the configured dimension name. A record made
// under another dimension list (or with a value missing) reports
// attribution.Unknown, as an absent header would have.
func dimValue(r *ledger.Record, name string) string {
	d := &r.Dimensions
	for i, n := range d.Names {
		if n == name {
			if i < len(d.Values) && d.Values[i] != "" {
				return d.Values[i]
			}
			break
		}
	}
	return attribution.Unknown
}

// appendAggKey appends the aggregate key of r for the period that starts at
// unix second sec.
func appendAggKey(b []byte, prefix byte, sec int64, cur money.Currency, r *ledger.Record, dims []string) []byte {
	b = append(b, prefix)
	b = binary.BigEndian.AppendUint64(b, uint64(sec)^signBit)
	b = appendString(b, string(cur))
	for _, n := range dims {
		b = appendString(b, dimValue(r, n))
	}
	b = appendString(b, r.Provider)
	b = appendString(b, ModelLabel(r))
	b = appendString(b, r.Dialect)
	return appendString(b, string(r.Outcome))
}

// parseAggKey splits an aggregate key into its period and its n fields,
// reusing fields' storage. The fields alias k.
func parseAggKey(k []byte, n int, fields [][]byte) (sec int64, _ [][]byte, err error) {
	sec, ok := parsePeriod(k)
	if !ok {
		return 0, nil, errTruncated
	}
	fields = fields[:0]
	b := k[9:]
	for i := 0; i < n; i++ {
		// Field lengths are almost always one byte: skip the general
		// decoder, which a month's report would otherwise call millions
		// of times.
		var l uint64
		if len(b) > 0 && b[0] < 0x80 {
			l, b = uint64(b[0]), b[1:]
		} else {
			var m int
			if l, m = binary.Uvarint(b); m <= 0 {
				return 0, nil, fmt.Errorf("want %d fields: %w", n, errTruncated)
			}
			b = b[m:]
		}
		if l > uint64(len(b)) {
			return 0, nil, fmt.Errorf("want %d fields: field %d: %w", n, i, errTruncated)
		}
		fields = append(fields, b[:l:l])
		b = b[l:]
	}
	if len(b) != 0 {
		return 0, nil, fmt.Errorf("want %d fields: %d trailing bytes", n, len(b))
	}
	return sec, fields, nil
}

// aggVal is what an aggregate stores: exact sums over its records. Outcome
// counts are not stored: the outcome is part of the key.
type aggVal struct {
	requests, unpriced int64
	tokens             [usage.NumClasses]int64
	units              [usage.NumUnits]int64
	cost, list         money.Amount
}

var errOverflow = errors.New("sum overflows int64")

// adder adds int64s and remembers whether any sum overflowed, so that a
// long run of additions checks once at the end.
type adder struct{ overflow bool }

func (a *adder) add(dst *int64, v int64) {
	s := *dst + v // wraps on overflow, which the comparison detects
	if (v >= 0) != (s >= *dst) {
		a.overflow = true
	}
	*dst = s
}

func (a *adder) addAmount(dst *money.Amount, v money.Amount) {
	a.add((*int64)(dst), int64(v))
}

func (a *adder) err() error {
	if a.overflow {
		return errOverflow
	}
	return nil
}

// merge adds o into v exactly. On error v is partly summed and must be
// discarded, as every caller does.
func (v *aggVal) merge(o *aggVal) error {
	var a adder
	a.add(&v.requests, o.requests)
	a.add(&v.unpriced, o.unpriced)
	for i := range v.tokens {
		a.add(&v.tokens[i], o.tokens[i])
	}
	for i := range v.units {
		a.add(&v.units[i], o.units[i])
	}
	a.addAmount(&v.cost, o.cost)
	a.addAmount(&v.list, o.list)
	return a.err()
}

// negate makes v subtract what it added. Stored sums are far from
// math.MinInt64, whose negation would overflow.
func (v *aggVal) negate() {
	v.requests, v.unpriced, v.cost, v.list = -v.requests, -v.unpriced, -v.cost, -v.list
	for i := range v.tokens {
		v.tokens[i] = -v.tokens[i]
	}
	for i := range v.units {
		v.units[i] = -v.units[i]
	}
}

// aggFormat is the first byte of every aggregate value.
const aggFormat = 1

func encodeAgg(b []byte, v *aggVal) []byte {
	b = append(b, aggFormat)
	b = binary.AppendUvarint(b, uint64(v.requests))
	b = binary.AppendUvarint(b, uint64(v.unpriced))
	b = appendSums(b, v.tokens[:])
	b = appendSums(b, v.units[:])
	b = binary.AppendVarint(b, int64(v.cost))
	return binary.AppendVarint(b, int64(v.list))
}

func appendSums(b []byte, s []int64) []byte {
	var mask uint64
	for i, n := range s {
		if n != 0 {
			mask |= 1 << i
		}
	}
	b = binary.AppendUvarint(b, mask)
	for _, n := range s {
		if n != 0 {
			b = binary.AppendVarint(b, n)
		}
	}
	return b
}

func decodeAgg(val []byte, v *aggVal) error {
	d := reader{b: val}
	if f := d.byte(); d.err == nil && f != aggFormat {
		return fmt.Errorf("aggregate format %d, want %d", f, aggFormat)
	}
	v.requests, v.unpriced = int64(d.uvarint()), int64(d.uvarint())
	d.sums(v.tokens[:])
	d.sums(v.units[:])
	v.cost, v.list = money.Amount(d.varint()), money.Amount(d.varint())
	return d.done()
}

func (d *reader) sums(s []int64) {
	mask := d.uvarint()
	if mask>>len(s) != 0 {
		d.fail(fmt.Errorf("sum mask %#x has bits past %d", mask, len(s)))
		return
	}
	for i := range s {
		s[i] = 0
		if mask&(1<<i) != 0 {
			s[i] = d.varint()
		}
	}
}

// converter works out a record's contribution to its aggregates: its cost
// and list cost in the reporting currency. Each user owns one (it caches).
type converter struct {
	tables map[fx.Rate]*fx.Table
}

// maxRateTables bounds the converter's cache; rates change rarely, so a
// handful are ever in use at once.
const maxRateTables = 64

// contribution returns r's reporting currency and its one-record aggregate.
//
// Cost is Record.ReportingCost in Record.ReportingCurrency, or Cost in
// Currency when the record has no reporting currency. The record carries no
// reporting list cost, so ListCost is converted here with the record's own
// rate (Record.FX), at its start, rounded once as Cost was; a record whose
// rate cannot convert it is reported in its catalog currency instead, so a
// row never mixes currencies.
func (c *converter) contribution(r *ledger.Record) (money.Currency, aggVal) {
	v := aggVal{requests: 1}
	if !r.Priced || r.Fallback {
		v.unpriced = 1
	}
	for i, t := range r.Usage.Tokens {
		v.tokens[i] = t.N
	}
	for i, u := range r.Usage.Units {
		v.units[i] = u.N
	}
	cur := r.ReportingCurrency
	switch {
	case cur == "" || cur == r.Currency:
		v.cost, v.list = r.Cost, r.ListCost
		if cur == "" {
			cur = r.Currency
		} else {
			v.cost = r.ReportingCost
		}
	default:
		list, _, err := c.table(r.FX).Convert(r.ListCost, r.Currency, cur, r.Start)
		if err != nil || r.FX.Rate <= 0 {
			return r.Currency, aggVal{requests: 1, unpriced: v.unpriced, tokens: v.tokens, units: v.units, cost: r.Cost, list: r.ListCost}
		}
		v.cost, v.list = r.ReportingCost, list
	}
	return cur, v
}

func (c *converter) table(r fx.Rate) *fx.Table {
	if t, ok := c.tables[r]; ok {
		return t
	}
	if c.tables == nil || len(c.tables) >= maxRateTables {
		c.tables = make(map[fx.Rate]*fx.Table)
	}
	t, err := fx.NewTable([]fx.Rate{r})
	if err != nil {
		t = nil // converts a currency only to itself: the caller falls back
	}
	c.tables[r] = t
	return t
}
