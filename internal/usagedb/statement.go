package usagedb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Statement is what one dimension value (a project, a team) was charged in
// one calendar month, in one currency, with lines by provider and model.
// Its Total is the exact sum of the charged cost of the month's records;
// Requests count the records whose outcome carries a charge
// (ledger.Outcome.Charged): a denied or failed request is on no statement.
type Statement struct {
	Month            time.Time // the first instant of the month, in the statement's location
	Dimension, Value string
	Currency         money.Currency
	Lines            []StatementLine // sorted by provider, then model
	Requests         int64
	Total, ListTotal money.Amount
}

// StatementLine is one provider and model of a Statement.
type StatementLine struct {
	Provider, Model string
	Requests        int64
	Tokens          [usage.NumClasses]int64
	Units           [usage.NumUnits]int64
	Cost, ListCost  money.Amount
}

// Statements returns the statements of the calendar month holding month (in
// loc; nil is UTC) for the records whose dimension dim is value: one per
// reporting currency, sorted by currency; none when no record was charged.
// A provider and model without a charged record has no line.
func Statements(ctx context.Context, db Reader, month time.Time, dim, value string, loc *time.Location) ([]Statement, error) {
	if dims := db.Dimensions(); !slices.Contains(dims, dim) {
		return nil, badQuery("statement dimension %q: not a configured dimension; want one of %s", dim, strings.Join(dims, ", "))
	}
	if loc == nil {
		loc = time.UTC
	}
	start := bucketStart(Month, month, loc)
	q := Query{
		From: start, To: nextBucket(Month, start, loc), Location: loc,
		GroupBy: []string{KeyProvider, KeyModel}, Filter: map[string]string{dim: value},
	}
	rows, err := db.Report(ctx, q)
	if err != nil {
		return nil, err
	}
	// Rows come sorted by group then currency; statements by currency.
	slices.SortStableFunc(rows, func(a, b Row) int { return cmp.Compare(a.Currency, b.Currency) })
	var out []Statement
	for _, r := range rows {
		if r.Charged == 0 {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Currency != r.Currency {
			out = append(out, Statement{Month: start, Dimension: dim, Value: value, Currency: r.Currency})
		}
		s := &out[len(out)-1]
		s.Lines = append(s.Lines, StatementLine{
			Provider: r.Group[0], Model: r.Group[1], Requests: r.Charged,
			Tokens: r.Tokens, Units: r.Units, Cost: r.Cost, ListCost: r.ListCost,
		})
		var err error
		if s.Total, err = s.Total.Add(r.Cost); err != nil {
			return nil, fmt.Errorf("usagedb: statement total: %w", err)
		}
		if s.ListTotal, err = s.ListTotal.Add(r.ListCost); err != nil {
			return nil, fmt.Errorf("usagedb: statement list total: %w", err)
		}
		s.Requests += r.Charged
	}
	return out, nil
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
