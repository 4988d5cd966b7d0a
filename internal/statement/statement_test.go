package statement

import (
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

func TestRoundMinor(t *testing.T) {
	for _, c := range []struct {
		base, percent string
		minor         int
		want          string
	}{
		{"10", "20", 2, "2"},
		{"0.025", "100", 2, "0.03"},      // half away from zero
		{"-0.025", "100", 2, "-0.03"},    // and below zero
		{"0.049999999", "50", 2, "0.02"}, // 0.0249999995: never rounded twice (to nanos 0.025, then to 0.03)
		{"1.234567891", "21", 2, "0.26"},
		{"1.234567891", "21", 9, "0.259259257"},
		{"123", "17.5", 0, "22"}, // 21.525 JPY → 22
		{"0.1", "33.3333333", 2, "0.03"},
		{"0", "20", 2, "0"},
	} {
		got, err := taxOf(money.MustParse(c.base), money.MustParse(c.percent), c.minor)
		if err != nil || got != money.MustParse(c.want) {
			t.Errorf("%s × %s%% to %d places = %s, %v; want %s", c.base, c.percent, c.minor, got, err, c.want)
		}
	}
	if _, err := taxOf(money.Max, money.MustParse("200"), 2); err == nil {
		t.Error("an overflowing tax has no error")
	}
}

// want is a document computed straight from the ledger's records, by other
// means than Build's (big.Rat for the taxes), to compare it with.
type want struct {
	lines                            map[string]*Line
	served, unpriced, denied, failed int64
	subtotal, total, due             money.Amount
	taxes                            map[string][2]money.Amount // "VAT 21%" → base, tax
}

func expected(t testing.TB, recs []*ledger.Record, set Settings) want {
	w := want{lines: map[string]*Line{}, taxes: map[string][2]money.Amount{}}
	from, to := sampleMonth, sampleMonth.AddDate(0, 1, 0)
	bases := map[string]*big.Rat{}
	rates := map[string]money.Amount{}
	for _, r := range recs {
		if r.Start.Before(from) || !r.Start.Before(to) || r.Dimensions.Get("project") != "atlas" {
			continue
		}
		key := r.Provider + "/" + r.Model
		l := w.lines[key]
		if l == nil {
			l = &Line{Provider: r.Provider, Model: r.Model}
			w.lines[key] = l
		}
		switch {
		case r.Outcome == ledger.Denied:
			l.Denied++
			w.denied++
			continue
		case !r.Outcome.Charged():
			l.Failed++
			w.failed++
			continue
		}
		l.Served++
		w.served++
		l.Tokens += r.Usage.Total()
		if !r.Priced {
			l.Unpriced++
			w.unpriced++
			continue
		}
		l.Amount += r.ReportingCost
		l.HasMoney = true
		w.subtotal += r.ReportingCost
		day := r.Start.In(brussels).Format(time.DateOnly)
		for _, rule := range set.Tax {
			vals := map[string]string{"entity": r.Dimensions.Get("entity"), "project": "atlas"}
			if rule.applies(day, vals) {
				k := rule.Name + " " + rule.Percent.String() + "%"
				if bases[k] == nil {
					bases[k] = new(big.Rat)
				}
				bases[k].Add(bases[k], new(big.Rat).SetFrac64(int64(r.ReportingCost), money.Scale))
				rates[k] = rule.Percent
				break
			}
		}
	}
	total := new(big.Rat).SetFrac64(int64(w.subtotal), money.Scale)
	for k, b := range bases {
		tax := new(big.Rat).Mul(b, new(big.Rat).SetFrac64(int64(rates[k]), 100*money.Scale))
		cents := money.MustParse(tax.FloatString(2)) // FloatString rounds half away from zero
		w.taxes[k] = [2]money.Amount{money.MustParse(b.FloatString(9)), cents}
		total.Add(total, new(big.Rat).SetFrac64(int64(cents), money.Scale))
	}
	w.total = money.MustParse(total.FloatString(9))
	w.due = money.MustParse(total.FloatString(2))
	return w
}

// The sample statement equals the ledger: every line's counts, tokens and
// amount, the subtotal, each tax's base and amount, total and amount due.
func TestBuildSample(t *testing.T) {
	docs, recs := sampleDocuments(t)
	if len(docs) != 1 {
		t.Fatalf("%d documents, want one (EUR)", len(docs))
	}
	d := docs[0]
	w := expected(t, recs, sampleSettings(t))
	if d.Currency != "EUR" || d.First != "2026-11-01" || d.Last != "2026-11-30" || d.TimeZone != "Europe/Brussels" ||
		d.Number != Number("2026-11", "Europe/Brussels", "project", "atlas", "EUR") || !strings.HasPrefix(d.Number, "TM-202611-") {
		t.Errorf("header: %s %s %s..%s %s", d.Number, d.Currency, d.First, d.Last, d.TimeZone)
	}
	if len(d.Lines) != len(w.lines) {
		t.Errorf("%d lines, want %d", len(d.Lines), len(w.lines))
	}
	for _, l := range d.Lines {
		if wl := w.lines[l.Provider+"/"+l.Model]; wl == nil || *wl != l {
			t.Errorf("line %+v\n want %+v", l, wl)
		}
	}
	if d.Served != w.served || d.Unpriced != w.unpriced || d.Denied != w.denied || d.Failed != w.failed {
		t.Errorf("counts %d/%d/%d/%d, want %d/%d/%d/%d", d.Served, d.Unpriced, d.Denied, d.Failed, w.served, w.unpriced, w.denied, w.failed)
	}
	if d.Subtotal != w.subtotal || d.Total != w.total || d.Due != w.due || d.Untaxed != 0 {
		t.Errorf("subtotal %s total %s due %s untaxed %s; want %s %s %s 0", d.Subtotal, d.Total, d.Due, d.Untaxed, w.subtotal, w.total, w.due)
	}
	checkTaxes(t, d, w)
	if len(d.Rates) != 2 || d.Rates[0].Source != "ECB euro reference rate, 2026-09-30" || d.Rates[1].Source != "ECB euro reference rate, 2026-11-13" {
		t.Errorf("rates %+v: want the two in force in November", d.Rates)
	}
}

func checkTaxes(t *testing.T, d Document, w want) {
	t.Helper()
	if len(d.Taxes) != len(w.taxes) || len(d.Taxes) != 3 {
		t.Errorf("%d taxes, want %d (3)", len(d.Taxes), len(w.taxes))
	}
	for _, tx := range d.Taxes {
		k := fmt.Sprintf("%s %s%%", tx.Name, tx.Percent)
		if wt := w.taxes[k]; wt[0] != tx.Base || wt[1] != tx.Amount {
			t.Errorf("%s on %s = %s; want on %s = %s", k, tx.Base, tx.Amount, wt[0], wt[1])
		}
	}
}

// Without tax rules the whole subtotal is untaxed and the statement is not
// split by day; a value without records has no statement.
func TestBuildNoTax(t *testing.T) {
	set := sampleSettings(t)
	db, _ := sampleLedger(t, set)
	set.Tax = nil
	docs, err := Build(t.Context(), db, Request{Month: sampleMonth, Dimension: "project", Value: "atlas", Location: brussels}, set, sampleNow)
	if err != nil || len(docs) != 1 {
		t.Fatalf("%d docs, %v", len(docs), err)
	}
	if d := docs[0]; d.Untaxed != d.Subtotal || d.Total != d.Subtotal || len(d.Taxes) != 0 {
		t.Errorf("no tax: subtotal %s untaxed %s total %s taxes %v", d.Subtotal, d.Untaxed, d.Total, d.Taxes)
	}
	docs, err = Build(t.Context(), db, Request{Month: sampleMonth, Dimension: "project", Value: "nobody"}, set, sampleNow)
	if err != nil || len(docs) != 0 {
		t.Errorf("nobody: %d docs, %v", len(docs), err)
	}
	if _, err := Build(t.Context(), db, Request{Month: sampleMonth, Dimension: "team", Value: "x"}, set, sampleNow); err == nil {
		t.Error("an unknown dimension has no error")
	}
}

func TestNumber(t *testing.T) {
	a := Number("2026-11", "UTC", "project", "atlas", "EUR")
	if a != Number("2026-11", "UTC", "project", "atlas", "EUR") || len(a) != len("TM-202611-")+10 {
		t.Fatalf("number %q is not stable", a)
	}
	for _, b := range []string{
		Number("2026-12", "UTC", "project", "atlas", "EUR"), Number("2026-11", "Europe/Paris", "project", "atlas", "EUR"),
		Number("2026-11", "UTC", "team", "atlas", "EUR"), Number("2026-11", "UTC", "project", "atlas2", "EUR"),
		Number("2026-11", "UTC", "project", "atlas", "USD"),
	} {
		if a == b {
			t.Errorf("%q repeats for another statement", b)
		}
	}
}

func TestDisplay(t *testing.T) {
	for _, c := range []struct {
		a     string
		minor int
		want  string
	}{{"12.5", 2, "12.50"}, {"0.00108", 2, "0.00108"}, {"3", 2, "3.00"}, {"7", 0, "7"}, {"-1.5", 3, "-1.500"}} {
		if got := Display(money.MustParse(c.a), c.minor); got != c.want {
			t.Errorf("Display(%s, %d) = %s, want %s", c.a, c.minor, got, c.want)
		}
	}
}
