package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Adjustment is a markup or discount on list prices: an internal chargeback
// (+10%) or a negotiated rate (−20%). The first adjustment that matches a
// request applies; the record keeps the list cost beside the charged one.
type Adjustment struct {
	Name     string
	Match    []ratelimit.Match // dimension selector, as budgets have; empty matches all
	Provider string            // empty matches every provider
	// Factor is 1 + percent/100 as an exact decimal (nano-units of 1): the
	// charged cost is the list cost × Factor, rounded once to a nano-unit.
	Factor money.Amount
}

// Applies reports whether a request with dims to provider is adjusted.
func (a *Adjustment) Applies(d attribution.Dimensions, provider string) bool {
	if a.Provider != "" && a.Provider != provider {
		return false
	}
	for _, m := range a.Match {
		if m.Value != ratelimit.Wildcard && d.Get(m.Dimension) != m.Value {
			return false
		}
	}
	return true
}

func (w *walker) adjustment(n *yaml.Node, key string) (Adjustment, bool) {
	before := len(w.errs)
	var a Adjustment
	const percentWhat = `a decimal percentage with at most 7 decimal places, such as "10" or "-12.5"`
	var percent string
	var pctNode *yaml.Node
	pctOK := false
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"name":     w.str(&a.Name),
		"provider": w.str(&a.Provider),
		"match":    w.match(&a.Match),
		"percent":  func(n *yaml.Node, k string) { pctNode = n; percent, pctOK = w.Scalar(n, k, percentWhat) },
	})
	if a.Name == "" {
		w.Missing(n, join(key, "name"), "the adjustment's name")
	}
	pct, err := money.Parse(percent)
	// percent/100 must stay exact at nine decimals: at most seven in percent.
	switch {
	case pctNode == nil:
		w.Missing(n, join(key, "percent"), `a markup such as "10" or a discount such as "-20"`)
	case !pctOK:
	case err != nil || pct%100 != 0:
		w.Fail(pctNode, join(key, "percent"), "want "+percentWhat)
	case pct <= -100*money.Scale:
		w.Fail(pctNode, join(key, "percent"), "a discount must be less than 100%")
	default:
		a.Factor = money.Scale + pct/100
	}
	return a, len(w.errs) == before
}

// checkAdjustments validates what spans sections: selector dimensions exist,
// names are unique.
func (w *walker) checkAdjustments(c *Config, dims map[string]bool) {
	names := map[string]bool{}
	for i, a := range c.Adjustments {
		key := w.itemKeys["adjustments"][i]
		if names[a.Name] {
			w.failKey(key+".name", a.Name, "adjustment name used twice")
		}
		names[a.Name] = true
		for _, m := range a.Match {
			if !dims[m.Dimension] {
				w.failKey(key+".match."+m.Dimension, m.Dimension, "not a configured dimension")
			}
		}
	}
}
