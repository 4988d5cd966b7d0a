package statement

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// Settings are what the configuration says about statements.
type Settings struct {
	// Issuer heads the document (who issues it); optional.
	Issuer string
	// Tax lists the tax rules, in configuration order.
	Tax []TaxRule
	// FX is the configuration's exchange-rate table: the document lists its
	// rates in force during the month (nil: none).
	FX *fx.Table
	// Currency is the reporting currency: the statement that takes the
	// requests that carry no currency (denied, unpriced).
	Currency money.Currency
	// Chromium is the browser PDF renders with; empty finds "chromium" on
	// the PATH.
	Chromium string
}

// Request names a statement: the calendar month holding Month in Location
// (nil is UTC), for the records whose Dimension is Value.
type Request struct {
	Month            time.Time
	Dimension, Value string
	Location         *time.Location
}

// Document is one statement, ready to render: one per currency the month's
// records were reported in.
type Document struct {
	Number           string
	Issuer           string
	Dimension, Value string
	Currency         money.Currency
	// MinorUnits is how many decimals the currency's minor unit has (2 for
	// EUR), which taxes and the amount due are rounded to.
	MinorUnits int
	// Month is YYYY-MM; First and Last are its first and last days
	// (YYYY-MM-DD) in TimeZone.
	Month, First, Last, TimeZone string
	Lines                        []Line
	// Served, Unpriced, Denied and Failed sum the lines'.
	Served, Unpriced, Denied, Failed int64
	// Subtotal is the exact sum of the lines' amounts; Untaxed the part of it
	// no tax rule applies to.
	Subtotal, Untaxed money.Amount
	Taxes             []Tax
	// Total is Subtotal plus the taxes, exact; Due is Total rounded once to
	// the minor unit.
	Total, Due money.Amount
	// Rates are the exchange rates into or out of Currency in force during
	// the month, each with its source.
	Rates []fx.Rate
	// Generated is when the document was made (UTC).
	Generated time.Time
}

// Line is one provider and model.
type Line struct {
	Provider, Model string
	// Served counts requests the provider served (their outcome carries a
	// charge); Unpriced those of them with no catalog price of their own;
	// Denied and Failed requests carry no charge.
	Served, Unpriced, Denied, Failed int64
	Tokens                           int64 // every token class
	// Amount is the charged amount of the served requests, exact; an
	// unpriced request adds nothing to it (its cost is unknown).
	Amount money.Amount
	// HasMoney is false when the line served nothing, or only unpriced
	// requests: such a line shows no amount.
	HasMoney bool
}

// Build reads the statements req names from r and makes their documents, in
// currency order; none when the month has no record of the value. now
// stamps Generated.
func Build(ctx context.Context, r usagedb.Reader, req Request, set Settings, now time.Time) ([]Document, error) {
	loc := req.Location
	if loc == nil {
		loc = time.UTC
	}
	split := splitDims(set.Tax)
	sts, err := usagedb.StatementsOf(ctx, r, usagedb.StatementQuery{
		Month: req.Month, Dimension: req.Dimension, Value: req.Value, Location: loc,
		SplitBy: split, Daily: len(set.Tax) > 0, Currency: set.Currency,
	})
	if err != nil {
		return nil, err
	}
	docs := make([]Document, 0, len(sts))
	for i := range sts {
		d, err := document(&sts[i], split, loc, set, now)
		if err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// splitDims are the dimensions the tax rules match on, in order of first
// use: a statement's parts are split by them.
func splitDims(rules []TaxRule) []string {
	var out []string
	for _, r := range rules {
		for _, m := range r.Match {
			if !slices.Contains(out, m.Dimension) {
				out = append(out, m.Dimension)
			}
		}
	}
	return out
}

func document(st *usagedb.Statement, split []string, loc *time.Location, set Settings, now time.Time) (Document, error) {
	start := st.Month
	end := start.AddDate(0, 1, 0)
	d := Document{
		Issuer: set.Issuer, Dimension: st.Dimension, Value: st.Value, Currency: st.Currency,
		MinorUnits: st.Currency.MinorUnits(), Month: start.Format("2006-01"),
		First: start.Format(time.DateOnly), Last: end.AddDate(0, 0, -1).Format(time.DateOnly), TimeZone: loc.String(),
		Served: st.Requests, Unpriced: st.Unpriced, Denied: st.Denied, Failed: st.Failed,
		Subtotal: st.Total, Rates: set.FX.InForce(st.Currency, start, end), Generated: now.UTC(),
	}
	d.Number = Number(d.Month, d.TimeZone, d.Dimension, d.Value, d.Currency)
	for _, l := range st.Lines {
		var tokens int64
		for c := usage.Class(0); c < usage.NumClasses; c++ {
			tokens += l.Tokens[c]
		}
		d.Lines = append(d.Lines, Line{
			Provider: l.Provider, Model: l.Model, Served: l.Requests, Unpriced: l.Unpriced, Denied: l.Denied,
			Failed: l.Failed, Tokens: tokens, Amount: l.Cost, HasMoney: l.Requests > l.Unpriced || l.Cost != 0,
		})
	}
	if err := d.tax(st, split, loc, set.Tax); err != nil {
		return Document{}, err
	}
	return d, nil
}

// tax fills Taxes, Untaxed, Total and Due from the lines' parts.
func (d *Document) tax(st *usagedb.Statement, split []string, loc *time.Location, rules []TaxRule) error {
	type key struct {
		name    string
		percent money.Amount
	}
	bases := map[key]money.Amount{}
	first := map[key]int{} // the first rule giving the key: taxes print in rule order
	var order []key
	vals := map[string]string{d.Dimension: d.Value}
	var err error
	add := func(dst *money.Amount, a money.Amount) {
		if err == nil {
			*dst, err = dst.Add(a)
		}
	}
	for _, l := range st.Lines {
		for _, p := range l.Parts {
			for i, name := range split {
				vals[name] = p.Values[i]
			}
			day := p.Day.In(loc).Format(time.DateOnly)
			taxed := false
			for i := range rules {
				r := &rules[i]
				if !r.applies(day, vals) || firstOfName(rules[:i], r.Name, day, vals) {
					continue
				}
				k := key{r.Name, r.Percent}
				if _, ok := bases[k]; !ok {
					order, first[k] = append(order, k), i
				}
				b := bases[k]
				add(&b, p.Cost)
				bases[k], taxed = b, true
			}
			if !taxed {
				add(&d.Untaxed, p.Cost)
			}
		}
	}
	if len(rules) == 0 {
		d.Untaxed = d.Subtotal
	}
	d.Total = d.Subtotal
	slices.SortFunc(order, func(a, b key) int { return first[a] - first[b] })
	for _, k := range order {
		t := Tax{Name: k.name, Percent: k.percent, Base: bases[k]}
		if err == nil {
			t.Amount, err = taxOf(t.Base, t.Percent, d.MinorUnits)
		}
		add(&d.Total, t.Amount)
		d.Taxes = append(d.Taxes, t)
	}
	if err == nil {
		d.Due, err = roundMinor(d.Total, 1, 1, d.MinorUnits)
	}
	if err != nil {
		return fmt.Errorf("statement %s: %w", d.Number, err)
	}
	return nil
}

// firstOfName reports whether an earlier rule of the same name already
// applies: only the first rule of a name taxes a part.
func firstOfName(earlier []TaxRule, name, day string, vals map[string]string) bool {
	for i := range earlier {
		if earlier[i].Name == name && earlier[i].applies(day, vals) {
			return true
		}
	}
	return false
}

// Number is a statement's number: TM-YYYYMM- and ten characters of the
// SHA-256 of month, time zone, dimension, value and currency in base32.
// It is deterministic, so every replica, a re-run and an offline read give
// the same number for the same statement without a counter to keep (a
// sequence would need one shared store and would number a re-issue
// anew); 50 bits make a collision within a month's statements negligible.
func Number(month, tz, dim, value string, cur money.Currency) string {
	h := sha256.Sum256([]byte(strings.Join([]string{month, tz, dim, value, string(cur)}, "\x00")))
	return "TM-" + strings.ReplaceAll(month, "-", "") + "-" + base32.StdEncoding.EncodeToString(h[:])[:10]
}
