package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/yamlwalk"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// currencyNodes remembers where the currency section named things, so that
// problems found after the catalog and the rates are loaded point at the line.
type currencyNodes struct {
	reporting *yaml.Node
	budgets   map[string]*yaml.Node // budget name → its limit.currency node
	keys      map[string]string     // budget name → its limit.currency key path
}

// currency reads the currency section:
//
//	currency:
//	  reporting: EUR           # statements and cost metrics; default: the catalog's currency
//	  rates_files: [fx.yaml]   # exchange rates (package fx's format), relative to this file
func (w *walker) currency(c *Config, nodes *currencyNodes) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"reporting": func(n *yaml.Node, k string) {
				nodes.reporting = n
				if cur, ok := w.currencyCode(n, k); ok {
					c.Reporting = cur
				}
			},
			"rates_files": w.scalars("a list of exchange rates files", func(v string, _ *yaml.Node, _ string) {
				c.RatesFiles = append(c.RatesFiles, resolve(c.File, v))
			}),
		})
	}
}

func (w *walker) currencyCode(n *yaml.Node, k string) (money.Currency, bool) {
	var cur money.Currency
	ok := false
	w.value(n, k, "an active ISO 4217 currency code such as USD or EUR", func(v string) bool {
		var err error
		cur, err = money.ParseCurrency(v)
		ok = err == nil
		return ok
	})
	return cur, ok
}

// loadRates reads every rates file into one table. A file's problems are
// reported with the file's own name and lines.
func loadRates(paths []string) (*fx.Table, error) {
	var all []fx.Rate
	var errs cfgerr.List
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read exchange rates: %w", err)
		}
		// A syntax error or a second document is worded as in every other
		// file; an empty one (nil root) is fx's to report.
		root, ok := (&yamlwalk.Walker{File: p, Errs: &errs}).Document(data)
		if !ok {
			continue
		}
		rates, err := fx.ParseRates(p, root)
		var list cfgerr.List
		if errors.As(err, &list) {
			errs = append(errs, list...)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("exchange rates %s: %w", p, err)
		}
		all = append(all, rates...)
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	t, err := fx.NewTable(all)
	if err != nil {
		return nil, fmt.Errorf("exchange rates %s: %w", strings.Join(paths, ", "), err)
	}
	return t, nil
}

// checkCurrencies makes sure every conversion the config needs has a rate in
// force now: catalog → reporting currency, and catalog → each money budget's
// currency. A missing rate at load time is a config error, not a surprise at
// the first request. (A rate table that ends, or starts later, cannot leave a
// gap: a rate applies until the next one of its pair.)
func (c *Config) checkCurrencies(nodes *currencyNodes, now time.Time) error {
	var errs cfgerr.List
	base := c.Catalog.Currency()
	if c.Reporting == "" {
		c.Reporting = base
	}
	need := func(to money.Currency, node *yaml.Node, key string) {
		if to == base {
			return
		}
		if _, _, err := c.FX.Convert(1, base, to, now); err != nil {
			e := &cfgerr.Error{File: c.File, Key: key, Value: string(to),
				Reason: fmt.Sprintf("the catalog is in %s and no %s→%s (or %s→%s) rate is in force now; add one to currency.rates_files",
					base, base, to, to, base)}
			if node != nil {
				e.Line = node.Line
			}
			errs = append(errs, e)
		}
	}
	need(c.Reporting, nodes.reporting, "currency.reporting")
	for i := range c.Budgets {
		b := &c.Budgets[i]
		if b.Unit != ratelimit.Money {
			continue
		}
		if b.Currency == "" {
			b.Currency = c.Reporting
		}
		need(b.Currency, nodes.budgets[b.Name], nodes.keys[b.Name])
	}
	return errs.Err()
}
