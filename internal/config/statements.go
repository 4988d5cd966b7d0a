package config

import (
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/statement"
)

// Statements is the statements section: what the monthly statement document
// says beyond the ledger's numbers (docs/statements.md).
type Statements struct {
	// Issuer heads each document; optional.
	Issuer string
	// Chromium is the browser that prints PDFs; empty finds "chromium" on
	// the PATH when a PDF is asked for.
	Chromium string
	// Tax lists the tax rules in file order: for each tax name the first
	// rule matching a request's dimensions on its day applies.
	Tax []statement.TaxRule
}

// StatementSettings are the settings a statement document is built with:
// the statements section, the exchange rates and the reporting currency.
func (c *Config) StatementSettings() statement.Settings {
	return statement.Settings{Issuer: c.Statements.Issuer, Chromium: c.Statements.Chromium, Tax: c.Statements.Tax,
		FX: c.FX, Currency: c.Reporting}
}

// statementsSection reads:
//
//	statements:
//	  issuer: Example SA                  # printed at the top of each document
//	  chromium: /usr/bin/chromium         # prints the PDF; default: chromium on the PATH
//	  tax:
//	    - name: VAT
//	      rate: "21"                      # percent, exact
//	      match: {entity: be}             # dimensions, as a budget's; default: every request
//	      from: 2026-01-01                # first day it applies (statement's time zone); default: always
//	      until: 2026-12-31               # last day it applies, included; default: no end
func (w *walker) statementsSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"issuer":   w.str(&c.Statements.Issuer),
			"chromium": w.str(&c.Statements.Chromium),
			"tax": func(n *yaml.Node, k string) {
				w.Sequence(n, k, "a list of tax rules", func(item *yaml.Node, k string) {
					if r, ok := w.taxRule(item, k); ok {
						c.Statements.Tax = append(c.Statements.Tax, r)
						w.keepItem("statements.tax", k)
					}
				})
			},
		})
	}
}

const ratePercentWhat = `a percentage from 0 to 100 with at most 7 decimal places, such as "21" or "5.5"`

func (w *walker) taxRule(n *yaml.Node, key string) (statement.TaxRule, bool) {
	before := len(w.errs)
	var r statement.TaxRule
	var rateNode, fromNode, untilNode *yaml.Node
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"name":  w.str(&r.Name),
		"match": w.match(&r.Match),
		"rate": func(n *yaml.Node, k string) {
			rateNode = n
			w.value(n, k, ratePercentWhat, func(v string) bool {
				p, err := money.Parse(v)
				// percent/100 must stay exact at nine decimals: at most
				// seven in the percentage.
				if err != nil || p < 0 || p > 100*money.Scale || p%100 != 0 {
					return false
				}
				r.Percent = p
				return true
			})
		},
		"from":  w.taxDay(&r.From, &fromNode),
		"until": w.taxDay(&r.Until, &untilNode),
	})
	if r.Name == "" {
		w.Missing(n, join(key, "name"), `the tax's name, e.g. "VAT"`)
	}
	if rateNode == nil {
		w.Missing(n, join(key, "rate"), ratePercentWhat)
	}
	if r.From != "" && r.Until != "" && r.Until < r.From {
		w.Fail(untilNode, join(key, "until"), "before from ("+r.From+"): the rule would never apply")
	}
	return r, len(w.errs) == before
}

// taxDay reads a YYYY-MM-DD day.
func (w *walker) taxDay(dst *string, node **yaml.Node) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		*node = n
		w.value(n, k, "a day as YYYY-MM-DD, such as 2026-01-01", func(v string) bool {
			d, err := time.Parse(time.DateOnly, v)
			if err != nil || d.Format(time.DateOnly) != v {
				return false
			}
			*dst = v
			return true
		})
	}
}

// checkStatements checks what spans sections: a tax rule matches
// configured dimensions only.
func (w *walker) checkStatements(c *Config, dims map[string]bool) {
	for i, r := range c.Statements.Tax {
		key := w.itemKeys["statements.tax"][i]
		for _, m := range r.Match {
			if !dims[m.Dimension] {
				w.failKey(key+".match."+m.Dimension, m.Dimension,
					"not a configured dimension; configured: "+strings.Join(slices.Sorted(maps.Keys(dims)), ", "))
			}
		}
	}
}
