package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
)

// walker decodes a YAML tree by hand so that every problem is reported with
// its line, its dotted key and its value, and unknown keys are rejected.
type walker struct {
	file  string
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

func (w *walker) keepItem(list, key string) {
	if w.itemKeys == nil {
		w.itemKeys = map[string][]string{}
	}
	w.itemKeys[list] = append(w.itemKeys[list], key)
}

func (w *walker) fail(n *yaml.Node, key, reason string) {
	w.errs.Add(cfgerr.At(w.file, n, key, reason))
}

// failKey reports a problem found after the walk, at the line of key.
func (w *walker) failKey(key, value, reason string) {
	w.errs.Add(&cfgerr.Error{File: w.file, Line: w.lines[key], Key: key, Value: value, Reason: reason})
}

func (w *walker) remember(key string, n *yaml.Node) {
	if w.lines == nil {
		w.lines = map[string]int{}
	}
	w.lines[key] = n.Line
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping calls fields[k] for each key k of n; keys without a handler are
// reported as unknown, naming the accepted ones.
func (w *walker) mapping(n *yaml.Node, path string, fields map[string]func(v *yaml.Node, key string)) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "want a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		w.remember(key, k)
		if seen[k.Value] {
			w.fail(k, key, "key given twice")
			continue
		}
		seen[k.Value] = true
		f, ok := fields[k.Value]
		if !ok {
			w.fail(k, key, "unknown key; accepted: "+known(fields))
			continue
		}
		f(v, key)
	}
}

// known lists accepted keys, sorted so messages are stable.
func known(fields map[string]func(*yaml.Node, string)) string {
	return strings.Join(slices.Sorted(maps.Keys(fields)), ", ")
}

// pairs walks a mapping whose keys are free-form (a budget's match).
func (w *walker) pairs(n *yaml.Node, path string, each func(k string, v *yaml.Node, key string)) {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "want a mapping")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		w.remember(join(path, k), n.Content[i])
		each(k, n.Content[i+1], join(path, k))
	}
}

func (w *walker) scalar(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		w.fail(n, key, "want a single value")
		return "", false
	}
	return n.Value, true
}

func (w *walker) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		if v, ok := w.scalar(n, key); ok {
			*dst = v
		}
	}
}

func (w *walker) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		v, ok := w.scalar(n, key)
		if !ok {
			return
		}
		switch v {
		case "true":
			*dst = true
		case "false":
			*dst = false
		default:
			w.fail(n, key, "want true or false")
		}
	}
}

// integer reads a whole number in [lo, hi].
func (w *walker) integer(dst *int64, lo, hi int64) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		v, ok := w.scalar(n, key)
		if !ok {
			return
		}
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil || i < lo || i > hi {
			w.fail(n, key, fmt.Sprintf("want a whole number from %d to %d", lo, hi))
			return
		}
		*dst = i
	}
}

// duration reads a Go duration such as "5s" (0 allowed, negative not).
func (w *walker) duration(dst *time.Duration) func(*yaml.Node, string) {
	return func(n *yaml.Node, key string) {
		v, ok := w.scalar(n, key)
		if !ok {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			w.fail(n, key, `want a duration such as "5s" or "0" to disable`)
			return
		}
		*dst = d
	}
}

func (w *walker) sequence(n *yaml.Node, key string, each func(item *yaml.Node, key string)) {
	if n.Kind != yaml.SequenceNode {
		w.fail(n, key, "want a list")
		return
	}
	for i, item := range n.Content {
		each(item, fmt.Sprintf("%s[%d]", key, i))
	}
}
