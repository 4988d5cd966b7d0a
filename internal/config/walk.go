package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/yamlwalk"
)

// walker reads the config file's node tree into typed sections, one reader
// per section. The strict walking itself (unknown, repeated and non-scalar
// keys, aliases, missing values, key paths, the words of each problem) is
// yamlwalk's, shared with the catalogs and the FX files; what is here is the
// config's own: handlers by key, the value types the config uses, and what
// the checks across sections need after the walk.
type walker struct {
	yamlwalk.Walker
	errs  cfgerr.List
	lines map[string]int // key path → line of its key, for checks that run after the walk
	// itemKeys[list][i] is the key path ("budgets[3]") of the i-th valid item
	// of a list: cross-section checks name the item as written, not its
	// position among the valid ones.
	itemKeys map[string][]string
	// budgetUnpriced is the unpriced override of the budget being read.
	budgetUnpriced UnpricedPolicy
	currencyNodes  *currencyNodes
}

func newWalker(file string) *walker {
	w := &walker{}
	w.Walker = yamlwalk.Walker{File: file, Errs: &w.errs}
	return w
}

func (w *walker) keepItem(list, key string) {
	if w.itemKeys == nil {
		w.itemKeys = map[string][]string{}
	}
	w.itemKeys[list] = append(w.itemKeys[list], key)
}

// failKey reports a problem found after the walk, at the line of key.
func (w *walker) failKey(key, value, reason string) {
	w.errs.Add(&cfgerr.Error{File: w.File, Line: w.lines[key], Key: key, Value: value, Reason: reason})
}

func (w *walker) remember(key string, n *yaml.Node) {
	if w.lines == nil {
		w.lines = map[string]int{}
	}
	w.lines[key] = n.Line
}

func join(path, key string) string { return yamlwalk.Join(path, key) }

// mapping calls fields[k] for each key k of n, in the order written; the
// keys it accepts are those of fields, named in messages in sorted order.
func (w *walker) mapping(n *yaml.Node, path string, fields map[string]func(v *yaml.Node, key string)) {
	w.Mapping(n, path, slices.Sorted(maps.Keys(fields)), func(k, v *yaml.Node, key string) {
		w.remember(key, k)
		fields[k.Value](v, key)
	})
}

// pairs walks a mapping whose keys are free-form (a budget's match); what
// describes it.
func (w *walker) pairs(n *yaml.Node, path, what string, each func(k string, v *yaml.Node, key string)) {
	w.Pairs(n, path, what, func(k, v *yaml.Node, key string) {
		w.remember(key, k)
		each(k.Value, v, key)
	})
}

// value hands the text of n to accept; a value accept refuses is reported as
// not the what wanted, in the same words as a value that is not text at all.
func (w *walker) value(n *yaml.Node, key, what string, accept func(v string) bool) {
	if v, ok := w.Scalar(n, key, what); ok && !accept(v) {
		w.Fail(n, key, "want "+what)
	}
}

func (w *walker) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if v, ok := w.Scalar(n, key, "a single value"); ok {
			*dst = v
		}
	}
}

func (w *walker) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		w.value(n, key, "true or false", func(v string) bool {
			if v != "true" && v != "false" {
				return false
			}
			*dst = v == "true"
			return true
		})
	}
}

// integer reads a whole number in [lo, hi].
func (w *walker) integer(dst *int64, lo, hi int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		w.value(n, key, fmt.Sprintf("a whole number from %d to %d", lo, hi), func(v string) bool {
			i, err := strconv.ParseInt(v, 10, 64)
			if err != nil || i < lo || i > hi {
				return false
			}
			*dst = i
			return true
		})
	}
}

// duration reads a Go duration such as "5s" (0 allowed, negative not).
func (w *walker) duration(dst *time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		w.value(n, key, `a duration such as "5s" or "0" to disable`, func(v string) bool {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return false
			}
			*dst = d
			return true
		})
	}
}

// scalars reads a list of single values; what describes the list.
func (w *walker) scalars(what string, each func(v string, item *yaml.Node, key string)) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.Sequence(n, k, what, func(item *yaml.Node, k string) {
			if v, ok := w.Scalar(item, k, "a single value"); ok {
				each(v, item, k)
			}
		})
	}
}
