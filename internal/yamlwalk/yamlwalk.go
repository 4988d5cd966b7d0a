// Package yamlwalk walks a YAML node tree strictly, for every file people
// write by hand: the config file, price catalogs and FX rates. Every value is
// read from its node's text, unknown and repeated keys are errors, aliases are
// refused so that each value is read where it is written, and every problem is
// collected with its file, line, key and value so that one run reports them
// all. It is the one place that words these problems, so `tokenmeter check`
// says the same thing about the same mistake in any of those files.
package yamlwalk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
)

// Walker collects the problems of one file.
type Walker struct {
	File string
	Errs *cfgerr.List
}

// Fail records a problem at n (which may be nil).
func (w *Walker) Fail(n *yaml.Node, key, reason string) {
	w.Errs.Add(cfgerr.At(w.File, n, key, reason))
}

// failKeyNode records a problem with the key node k itself: the key path
// already spells it, so the value is not repeated.
func (w *Walker) failKeyNode(k *yaml.Node, key, reason string) {
	w.Errs.Add(&cfgerr.Error{File: w.File, Line: k.Line, Key: key, Reason: reason})
}

// Missing records that key is absent from mapping n (or given empty, for a
// caller that cannot tell the two apart).
func (w *Walker) Missing(n *yaml.Node, key, what string) {
	w.Fail(n, key, "missing; want "+what)
}

// Want reports whether n is of kind, and records a problem when it is not.
func (w *Walker) Want(n *yaml.Node, kind yaml.Kind, key, what string) bool {
	switch {
	case n.Kind == kind:
		return true
	case n.Kind == yaml.AliasNode:
		w.Fail(n, key, "YAML aliases are not supported; write the value out")
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		w.Fail(n, key, "missing value; want "+what)
	default:
		w.Fail(n, key, "want "+what)
	}
	return false
}

// Mapping calls each for the keys of mapping n that are in known, in the
// order they are written, after recording unknown, repeated and non-scalar
// keys (a repeated key is read once, where it is first written). known is
// listed in messages in the order given. ok is false when n is not a mapping.
func (w *Walker) Mapping(n *yaml.Node, path string, known []string, each func(k, v *yaml.Node, key string)) (ok bool) {
	if !w.Want(n, yaml.MappingNode, path, "a mapping with keys "+strings.Join(known, ", ")) {
		return false
	}
	w.pairs(n, path, func(k *yaml.Node, key string) bool {
		if !slices.Contains(known, k.Value) {
			w.failKeyNode(k, key, "unknown key; want one of "+strings.Join(known, ", "))
			return false
		}
		return true
	}, each)
	return true
}

// Fields returns the values of mapping n by key, after recording unknown and
// repeated keys as Mapping does. ok is false when n is not a mapping.
func (w *Walker) Fields(n *yaml.Node, path string, known []string) (fs map[string]*yaml.Node, ok bool) {
	fs = make(map[string]*yaml.Node, len(n.Content)/2)
	ok = w.Mapping(n, path, known, func(k, v *yaml.Node, _ string) { fs[k.Value] = v })
	return fs, ok
}

// Pairs calls each for the keys of mapping n, whose names are free-form (a
// budget's match, HTTP headers), in the order they are written, after
// recording repeated and non-scalar keys. what describes the mapping, for
// the message when n is not one.
func (w *Walker) Pairs(n *yaml.Node, path, what string, each func(k, v *yaml.Node, key string)) (ok bool) {
	if !w.Want(n, yaml.MappingNode, path, what) {
		return false
	}
	w.pairs(n, path, nil, each)
	return true
}

// pairs walks mapping n; accept, when set, vets each key before the check
// for repeats (and records why it refuses one).
func (w *Walker) pairs(n *yaml.Node, path string, accept func(k *yaml.Node, key string) bool, each func(k, v *yaml.Node, key string)) {
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.Fail(k, path, "want a plain key")
			continue
		}
		key := Join(path, k.Value)
		if accept != nil && !accept(k, key) {
			continue
		}
		if first, dup := lines[k.Value]; dup {
			w.failKeyNode(k, key, fmt.Sprintf("repeated key; first at line %d", first))
			continue
		}
		lines[k.Value] = k.Line
		each(k, v, key)
	}
}

// Sequence calls each for the items of list n, with their key paths
// ("budgets[3]"). what describes the list, for the message when n is not one.
func (w *Walker) Sequence(n *yaml.Node, path, what string, each func(item *yaml.Node, key string)) (ok bool) {
	if !w.Want(n, yaml.SequenceNode, path, what) {
		return false
	}
	for i, item := range n.Content {
		each(item, Index(path, i))
	}
	return true
}

// Scalar returns the text of scalar n; what describes the value wanted, for
// the message when n is not one. A nil n (a missing key, reported by the
// caller) yields false without a second report.
func (w *Walker) Scalar(n *yaml.Node, key, what string) (string, bool) {
	if n == nil || !w.Want(n, yaml.ScalarNode, key, what) {
		return "", false
	}
	if n.Tag == "!!null" {
		w.Fail(n, key, "missing value; want "+what)
		return "", false
	}
	return n.Value, true
}

// Document returns the root node of data's single YAML document. ok is false
// after a syntax error is recorded. A nil root with ok true is an empty
// document (nothing, or a lone null), which each kind of file reports in its
// own words. A second document is recorded as a problem: a plain Unmarshal
// would ignore it, and every setting or price it holds with it.
func (w *Walker) Document(data []byte) (root *yaml.Node, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) || (err == nil && isEmpty(&doc)) {
		return nil, true
	}
	if err != nil {
		w.Errs.Add(w.syntaxError(err))
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		w.Errs.Add(w.syntaxError(err))
	default:
		w.Errs.Add(&cfgerr.Error{File: w.File, Line: next.Line,
			Reason: "a second YAML document; a file holds one, split others into their own files"})
	}
	return doc.Content[0], true
}

func isEmpty(doc *yaml.Node) bool {
	return len(doc.Content) == 0 || (doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null")
}

// syntaxError turns "yaml: line 3: did not find ..." into an error located
// at line 3, like every other problem, rather than a line inside the reason.
func (w *Walker) syntaxError(err error) *cfgerr.Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &cfgerr.Error{File: w.File, Reason: "not valid YAML: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, text, found := strings.Cut(rest, ": ")
		if n, err := strconv.Atoi(num); found && err == nil {
			e.Line, e.Reason = n, "not valid YAML: "+text
		}
	}
	return e
}

// Join appends key to a dotted path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Index is the path of item i of the list at path.
func Index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
