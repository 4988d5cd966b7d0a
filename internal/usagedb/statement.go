package usagedb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Statement is what one dimension value (a project, a team) used in one
// calendar month, in one currency, with lines by provider and model.
// Its Total is the exact sum of the charged cost of the month's records;
// Requests count the records whose outcome carries a charge
// (ledger.Outcome.Charged, "served"): a denied or failed request is never
// billed, and is counted apart (Denied, Failed).
type Statement struct {
	Month            time.Time // the first instant of the month, in the statement's location
	Dimension, Value string
	Currency         money.Currency
	Lines            []StatementLine // sorted by provider, then model
	// Requests, Unpriced, Denied and Failed sum the lines'.
	Requests, Unpriced, Denied, Failed int64
	Total, ListTotal                   money.Amount
}

// StatementLine is one provider and model of a Statement. A line exists
// for every provider and model with a record in the month, so a line of
// denied requests alone appears, with no money.
type StatementLine struct {
	Provider, Model string
	// Requests counts the served records: those whose outcome carries a
	// charge. Tokens, Units, Cost and ListCost sum them.
	Requests int64
	// Unpriced counts the served records without a catalog price of their
	// own (Row.Unpriced: no price at all, whose Cost is 0 and unknown, or
	// the configured fallback model's price). It is part of Requests.
	Unpriced int64
	// Denied counts the records tokenmeter refused (ledger.Denied); Failed
	// those the provider never served (upstream_error, gate_timeout,
	// unmetered). Neither carries a charge.
	Denied, Failed int64
	Tokens         [usage.NumClasses]int64
	Units          [usage.NumUnits]int64
	Cost, ListCost money.Amount
	// Parts split Cost by StatementQuery.SplitBy's values and by day, when
	// asked (for taxes chosen by dimension value and date); sorted by day,
	// then values. Their costs sum to Cost.
	Parts []StatementPart
}

// StatementPart is the charged cost of one line on one day (zero without
// StatementQuery.Daily) for one combination of the split dimensions.
type StatementPart struct {
	Day    time.Time // the local midnight that starts the day; zero when not daily
	Values []string  // StatementQuery.SplitBy's values, in its order
	Cost   money.Amount
}

// StatementQuery selects statements: the calendar month holding Month (in
// Location; nil is UTC) for the records whose dimension Dimension is Value.
type StatementQuery struct {
	Month            time.Time
	Dimension, Value string
	Location         *time.Location
	// SplitBy names dimensions whose values split each line's Parts;
	// Daily splits them by day as well. Without either a line has no Parts.
	SplitBy []string
	Daily   bool
	// Currency is the statement that takes the records carrying no
	// currency at all (a denied request, an unpriced one): they carry no
	// money. Empty: the first statement's currency.
	Currency money.Currency
}

// Statements returns the statements of the calendar month holding month (in
// loc; nil is UTC) for the records whose dimension dim is value: one per
// reporting currency, sorted by currency; none when the month has no
// record of value.
func Statements(ctx context.Context, db Reader, month time.Time, dim, value string, loc *time.Location) ([]Statement, error) {
	return StatementsOf(ctx, db, StatementQuery{Month: month, Dimension: dim, Value: value, Location: loc})
}

// StatementsOf returns the statements sq selects (see Statements), with
// lines split into parts as sq asks.
func StatementsOf(ctx context.Context, db Reader, sq StatementQuery) ([]Statement, error) {
	dims := db.Dimensions()
	if !slices.Contains(dims, sq.Dimension) {
		return nil, badQuery("statement dimension %q: not a configured dimension; want one of %s", sq.Dimension, strings.Join(dims, ", "))
	}
	for _, d := range sq.SplitBy {
		if !slices.Contains(dims, d) {
			return nil, badQuery("statement split %q: not a configured dimension; want one of %s", d, strings.Join(dims, ", "))
		}
	}
	loc := sq.Location
	if loc == nil {
		loc = time.UTC
	}
	start := bucketStart(Month, sq.Month, loc)
	q := Query{
		From: start, To: nextBucket(Month, start, loc), Location: loc,
		// The outcome tells served from denied, and a served row's
		// Unpriced from a refused unpriced model's.
		GroupBy: append([]string{KeyProvider, KeyModel, KeyOutcome}, sq.SplitBy...),
		Filter:  map[string]string{sq.Dimension: sq.Value},
	}
	if sq.Daily {
		q.Bucket = Day
	}
	rows, err := db.Report(ctx, q)
	if err != nil {
		return nil, err
	}
	b := statementBuilder{sq: sq, start: start, byCur: map[money.Currency]*Statement{}}
	for i := range rows {
		if err := b.add(&rows[i]); err != nil {
			return nil, fmt.Errorf("usagedb: statement: %w", err)
		}
	}
	out, err := b.finish()
	if err != nil {
		return nil, fmt.Errorf("usagedb: statement total: %w", err)
	}
	return out, nil
}

type statementBuilder struct {
	sq    StatementQuery
	start time.Time
	byCur map[money.Currency]*Statement
	// lines[currency][provider\x00model]
	lines     map[money.Currency]map[string]*StatementLine
	moneyless []*Row
}

func (b *statementBuilder) add(r *Row) error {
	if r.Currency == "" {
		b.moneyless = append(b.moneyless, r)
		return nil
	}
	return b.addTo(r.Currency, r)
}

func (b *statementBuilder) addTo(cur money.Currency, r *Row) error {
	s := b.byCur[cur]
	if s == nil {
		s = &Statement{Month: b.start, Dimension: b.sq.Dimension, Value: b.sq.Value, Currency: cur}
		b.byCur[cur] = s
	}
	if b.lines == nil {
		b.lines = map[money.Currency]map[string]*StatementLine{}
	}
	if b.lines[cur] == nil {
		b.lines[cur] = map[string]*StatementLine{}
	}
	key := r.Group[0] + "\x00" + r.Group[1]
	l := b.lines[cur][key]
	if l == nil {
		l = &StatementLine{Provider: r.Group[0], Model: r.Group[1]}
		b.lines[cur][key] = l
	}
	var a adder
	o := ledger.Outcome(r.Group[2])
	switch {
	case o.Charged():
		a.add(&l.Requests, r.Charged)
		a.add(&l.Unpriced, r.Unpriced)
		for i := range l.Tokens {
			a.add(&l.Tokens[i], r.Tokens[i])
		}
		for i := range l.Units {
			a.add(&l.Units[i], r.Units[i])
		}
		a.addAmount(&l.Cost, r.Cost)
		a.addAmount(&l.ListCost, r.ListCost)
		if r.Cost != 0 && (b.sq.Daily || len(b.sq.SplitBy) > 0) {
			l.Parts = append(l.Parts, StatementPart{Day: r.Bucket, Values: r.Group[3:], Cost: r.Cost})
		}
	case o == ledger.Denied:
		a.add(&l.Denied, r.Requests)
	default:
		a.add(&l.Failed, r.Requests)
	}
	return a.err()
}

// finish places the moneyless rows, totals each statement and sorts.
func (b *statementBuilder) finish() ([]Statement, error) {
	if len(b.moneyless) > 0 {
		cur := b.sq.Currency
		if keys := mapKeysOf(b.byCur); cur == "" && len(keys) > 0 {
			cur = slices.Min(keys)
		}
		for _, r := range b.moneyless {
			if err := b.addTo(cur, r); err != nil {
				return nil, err
			}
		}
	}
	out := make([]Statement, 0, len(b.byCur))
	for cur, s := range b.byCur {
		for _, l := range b.lines[cur] {
			mergeParts(l)
			s.Lines = append(s.Lines, *l)
			s.Requests += l.Requests
			s.Unpriced += l.Unpriced
			s.Denied += l.Denied
			s.Failed += l.Failed
			var err error
			if s.Total, err = s.Total.Add(l.Cost); err != nil {
				return nil, err
			}
			if s.ListTotal, err = s.ListTotal.Add(l.ListCost); err != nil {
				return nil, err
			}
		}
		slices.SortFunc(s.Lines, func(x, y StatementLine) int {
			return cmp.Or(cmp.Compare(x.Provider, y.Provider), cmp.Compare(x.Model, y.Model))
		})
		out = append(out, *s)
	}
	slices.SortFunc(out, func(x, y Statement) int { return cmp.Compare(x.Currency, y.Currency) })
	return out, nil
}

// mergeParts sums the parts of one day and values that several outcomes
// gave, and sorts them.
func mergeParts(l *StatementLine) {
	if len(l.Parts) == 0 {
		return
	}
	key := func(p StatementPart) string { return fmt.Sprintf("%d\x00%q", p.Day.UnixNano(), p.Values) }
	slices.SortStableFunc(l.Parts, func(x, y StatementPart) int {
		return cmp.Or(x.Day.Compare(y.Day), slices.Compare(x.Values, y.Values))
	})
	out := l.Parts[:1]
	for _, p := range l.Parts[1:] {
		if last := &out[len(out)-1]; key(*last) == key(p) {
			last.Cost += p.Cost
			continue
		}
		out = append(out, p)
	}
	l.Parts = out
}

func mapKeysOf[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ErrMixedCurrencies is returned by DailyCost when the records selected are
// in more than one reporting currency.
var ErrMixedCurrencies = errors.New("usagedb: costs in more than one currency")

// DailyCost returns the charged cost of each day of [from, to) in loc (nil
// is UTC), zero for days without records, for forecasts and anomaly
// detection: one amount per day from the day holding from to the day
// holding the last instant before to (the first and last may be partial
// days when from or to is not a midnight). filter is as in Query. The
// records must share one reporting currency, which is returned; else the
// error wraps ErrMixedCurrencies and names them (add a "currency" filter).
func DailyCost(ctx context.Context, db Reader, filter map[string]string, from, to time.Time, loc *time.Location) ([]money.Amount, money.Currency, error) {
	q := Query{From: from, To: to, Bucket: Day, Location: loc, Filter: filter}
	rows, err := db.Report(ctx, q)
	if err != nil {
		return nil, "", err
	}
	p := makePlan(q)
	costs := make([]money.Amount, len(p.labels))
	var cur money.Currency
	for _, r := range rows {
		if cur != "" && r.Currency != cur {
			return nil, "", fmt.Errorf("%w: %s and %s; filter by currency", ErrMixedCurrencies, cur, r.Currency)
		}
		cur = r.Currency
		i := p.bucketOf(max(r.Bucket.UnixNano(), from.UnixNano()))
		if costs[i], err = costs[i].Add(r.Cost); err != nil {
			return nil, "", fmt.Errorf("usagedb: daily cost: %w", err)
		}
	}
	return costs, cur, nil
}
