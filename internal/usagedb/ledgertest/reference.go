package ledgertest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/ledger/ledgergen"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// Want computes q's rows from the records directly, without plans,
// rollups or aggregates: the reference every store's Report is held to.
// Rows are sorted as Report sorts them.
func Want(recs []*ledger.Record, q usagedb.Query, dims []string) []usagedb.Row {
	type gk struct {
		bucket int64
		group  string
		cur    money.Currency
	}
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	rows := map[gk]*usagedb.Row{}
	for _, r := range recs {
		if r.Start.Before(q.From) || !r.Start.Before(q.To) {
			continue
		}
		vals := map[string]string{usagedb.KeyProvider: r.Provider, usagedb.KeyModel: usagedb.ModelLabel(r),
			usagedb.KeyDialect: r.Dialect, usagedb.KeyOutcome: string(r.Outcome)}
		for _, d := range dims {
			vals[d] = dimValue(r, d)
		}
		cur, cost, list := ledgergen.ExpectedMoney(r)
		vals[usagedb.KeyCurrency] = string(cur)
		ok := true
		for k, v := range q.Filter {
			ok = ok && vals[k] == v
		}
		if !ok {
			continue
		}
		label := bucketLabel(q.Bucket, r.Start, loc)
		group := make([]string, len(q.GroupBy))
		for i, k := range q.GroupBy {
			group[i] = vals[k]
		}
		k := gk{label.UnixNano(), fmt.Sprintf("%q", group), cur}
		row := rows[k]
		if row == nil {
			row = &usagedb.Row{Bucket: label, Group: group, Currency: cur}
			rows[k] = row
		}
		add(row, r, cost, list)
	}
	out := make([]usagedb.Row, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	SortRows(out)
	return out
}

func add(row *usagedb.Row, r *ledger.Record, cost, list money.Amount) {
	row.Requests++
	if !r.Priced || r.Fallback {
		row.Unpriced++
	}
	row.Outcomes[slices.Index(ledger.Outcomes[:], r.Outcome)]++
	if !r.Outcome.Charged() {
		return
	}
	row.Charged++
	for c := range row.Tokens {
		row.Tokens[c] += r.Usage.Tokens[c].N
	}
	for u := range row.Units {
		row.Units[u] += r.Usage.Units[u].N
	}
	row.Cost += cost
	row.ListCost += list
}

// SortRows sorts rows as Report does: by bucket, group, currency.
func SortRows(rows []usagedb.Row) {
	slices.SortFunc(rows, func(a, b usagedb.Row) int {
		return cmp.Or(a.Bucket.Compare(b.Bucket), slices.Compare(a.Group, b.Group), cmp.Compare(a.Currency, b.Currency))
	})
}

// dimValue: the record's value for name, attribution.Unknown when it has
// none (another dimension list, or an empty value).
func dimValue(r *ledger.Record, name string) string {
	if i := slices.Index(r.Dimensions.Names, name); i >= 0 && i < len(r.Dimensions.Values) && r.Dimensions.Values[i] != "" {
		return r.Dimensions.Values[i]
	}
	return attribution.Unknown
}

// bucketLabel is the start, in loc, of the bucket holding t.
func bucketLabel(b usagedb.Bucket, t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	switch b {
	case usagedb.Hour: // minus the local minutes: Kolkata's hours start at :30 UTC
		return l.Add(-time.Duration(l.Minute())*time.Minute - time.Duration(l.Second())*time.Second - time.Duration(l.Nanosecond()))
	case usagedb.Day:
		return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	case usagedb.Week:
		return time.Date(l.Year(), l.Month(), l.Day()-(int(l.Weekday())+6)%7, 0, 0, 0, 0, loc)
	case usagedb.Month:
		return time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc)
	}
	return time.Time{}
}

// reference is a usagedb.Reader over records in memory, answered by Want:
// statements and daily costs built on it are what a store's must equal.
type reference struct {
	recs []*ledger.Record
	dims []string
}

func (r reference) Dimensions() []string { return r.dims }

func (r reference) Report(_ context.Context, q usagedb.Query) ([]usagedb.Row, error) {
	if err := q.Validate(r.dims); err != nil {
		return nil, err
	}
	return Want(r.recs, q, r.dims), nil
}
