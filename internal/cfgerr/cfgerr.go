// Package cfgerr is the one shape of a configuration error: the file, the
// line, the key, the value and why. Every loader (config, price catalogs,
// budgets) reports through it, so `tokenmeter check` prints one format.
package cfgerr

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in one file.
type Error struct {
	File   string // path as given by the user
	Line   int    // 1-based; 0 when unknown
	Key    string // dotted path such as "budgets[2].window"; empty for the whole file
	Value  string // the offending value as written; may be empty
	Reason string // why it is wrong, and what is accepted
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": ")
		b.WriteString(e.Key)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, ": %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// At builds an Error located at a YAML node (node may be nil).
func At(file string, node *yaml.Node, key, reason string) *Error {
	e := &Error{File: file, Key: key, Reason: reason}
	if node != nil {
		e.Line = node.Line
		if node.Kind == yaml.ScalarNode {
			e.Value = node.Value
		}
	}
	return e
}

// List collects every problem in a load, so one `check` run shows them all.
type List []*Error

// Add appends e.
func (l *List) Add(e *Error) { *l = append(*l, e) }

// Err returns nil when the list is empty, else the list itself as an error.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l List) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As find each *Error.
func (l List) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Is reports whether err holds at least one configuration error.
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
