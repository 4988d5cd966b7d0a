package config

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// RuntimeBudget is a budget created through the admin API rather than the
// config file. Def is its definition as given (JSON, which is YAML), kept so
// that it can be shown and stored as written.
type RuntimeBudget struct {
	Budget   ratelimit.Budget
	Unpriced UnpricedPolicy // "" inherits
	Def      []byte
}

// ParseBudget reads one budget definition, in the config file's budget
// schema written as JSON (or YAML), and checks it against c exactly as a
// budget in the file is checked: dimensions, currencies and rates, windows.
// source names the definition in errors ("PUT /v1/budgets/x").
func (c *Config) ParseBudget(source string, data []byte) (RuntimeBudget, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return RuntimeBudget{}, cfgerr.List{{File: source, Reason: "not valid JSON: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return RuntimeBudget{}, cfgerr.List{{File: source, Reason: "empty; want a budget object"}}
	}
	cur := &currencyNodes{budgets: map[string]*yaml.Node{}, keys: map[string]string{}}
	w := newWalker(source)
	w.currencyNodes = cur
	b, ok := w.budget(root.Content[0], "")
	if err := w.errs.Err(); err != nil || !ok {
		return RuntimeBudget{}, err
	}
	dims := map[string]bool{}
	for _, d := range c.Dimensions {
		dims[d.Name] = true
	}
	for _, m := range b.Match {
		if !dims[m.Dimension] {
			w.failKey("match."+m.Dimension, m.Dimension,
				"not a configured dimension; configured: "+strings.Join(slices.Sorted(maps.Keys(dims)), ", "))
		}
	}
	if err := w.errs.Err(); err != nil {
		return RuntimeBudget{}, err
	}
	// The currency check works on a Config holding just this budget.
	probe := *c
	probe.Budgets, probe.File = []ratelimit.Budget{b}, source
	if err := probe.checkCurrencies(cur, time.Now()); err != nil {
		return RuntimeBudget{}, err
	}
	return RuntimeBudget{Budget: probe.Budgets[0], Unpriced: w.budgetUnpriced, Def: data}, nil
}

// WithRuntime returns a copy of c whose budgets are the file's followed by
// the runtime ones. A runtime budget named like a file budget is skipped:
// the file wins, and the admin API refuses such a name in the first place.
func (c *Config) WithRuntime(rt []RuntimeBudget) *Config {
	if len(rt) == 0 {
		return c
	}
	n := *c
	n.Budgets = slices.Clone(c.Budgets)
	n.BudgetUnpriced = maps.Clone(c.BudgetUnpriced)
	for _, r := range rt {
		if c.HasFileBudget(r.Budget.Name) {
			continue
		}
		n.Budgets = append(n.Budgets, r.Budget)
		if r.Unpriced != "" {
			if n.BudgetUnpriced == nil {
				n.BudgetUnpriced = map[string]UnpricedPolicy{}
			}
			n.BudgetUnpriced[r.Budget.Name] = r.Unpriced
		}
	}
	return &n
}

// HasFileBudget reports whether the config file defines a budget named name.
func (c *Config) HasFileBudget(name string) bool {
	return slices.ContainsFunc(c.Budgets, func(b ratelimit.Budget) bool { return b.Name == name })
}

// ErrBudgetName is returned for a runtime budget whose name the file uses.
var ErrBudgetName = errors.New("a budget of that name is defined in the config file; change it there")
