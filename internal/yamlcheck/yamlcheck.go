// Package yamlcheck walks a YAML node tree strictly, for the files people
// write by hand (price catalogs, FX rates): every value is read from its
// node's text, unknown and repeated keys are errors, aliases are refused so
// that each value is read where it is written, and every problem is
// collected with its file, line, key and value so that one run reports them
// all.
package yamlcheck

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
)

// Checker collects the problems of one file.
type Checker struct {
	File string
	Errs *cfgerr.List
}

// Fail records a problem at n (which may be nil).
func (c *Checker) Fail(n *yaml.Node, key, reason string) {
	c.Errs.Add(cfgerr.At(c.File, n, key, reason))
}

// Want reports whether n is of kind, and records a problem when it is not.
func (c *Checker) Want(n *yaml.Node, kind yaml.Kind, key, what string) bool {
	switch {
	case n.Kind == kind:
		return true
	case n.Kind == yaml.AliasNode:
		c.Fail(n, key, "YAML aliases are not supported; write the value out")
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		c.Fail(n, key, "missing value; want "+what)
	default:
		c.Fail(n, key, "want "+what)
	}
	return false
}

// Fields returns the values of mapping n by key, after recording unknown and
// repeated keys. ok is false when n is not a mapping.
func (c *Checker) Fields(n *yaml.Node, path string, known []string) (fs map[string]*yaml.Node, ok bool) {
	if n.Kind != yaml.MappingNode {
		c.Want(n, yaml.MappingNode, path, "a mapping with keys "+strings.Join(known, ", "))
		return nil, false
	}
	fs = make(map[string]*yaml.Node, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			c.Fail(k, path, "want a plain key")
			continue
		}
		key := Join(path, k.Value)
		switch first, dup := lines[k.Value]; {
		case !slices.Contains(known, k.Value):
			c.Errs.Add(&cfgerr.Error{File: c.File, Line: k.Line, Key: key,
				Reason: "unknown key; want one of " + strings.Join(known, ", ")})
		case dup:
			c.Errs.Add(&cfgerr.Error{File: c.File, Line: k.Line, Key: key,
				Reason: fmt.Sprintf("repeated key; first at line %d", first)})
		default:
			fs[k.Value], lines[k.Value] = v, k.Line
		}
	}
	return fs, true
}

// Scalar returns the text of scalar n. A nil n (a missing key, reported by
// the caller) yields false without a second report.
func (c *Checker) Scalar(n *yaml.Node, key, what string) (string, bool) {
	if n == nil || !c.Want(n, yaml.ScalarNode, key, what) {
		return "", false
	}
	if n.Tag == "!!null" {
		c.Fail(n, key, "missing value; want "+what)
		return "", false
	}
	return n.Value, true
}

// Join appends key to a dotted path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
