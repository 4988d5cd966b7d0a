// Package attribution turns a request's trusted headers into Dimensions: the
// ordered key/value pairs (project, team, user, ...) that cost is charged to.
//
// Clients can send any header, so these headers must be set or stripped by
// Envoy before the ext_proc filter (see the README, "Attribution you can
// trust"); this package only guards against values that would poison metrics
// and storage keys.
package attribution

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Values substituted for a missing or unusable header.
const (
	Unknown = "unknown" // the header was absent or empty
	Invalid = "invalid" // the value was too long or held control characters
)

// MaxValueBytes is the longest accepted value; longer ones become Invalid, so
// one client cannot mint unbounded label or key sizes.
const MaxValueBytes = 128

// Dimension names one attribution key and the header it is read from.
type Dimension struct {
	Name   string // e.g. "project"; a Prometheus label name
	Header string // lower-case header name, e.g. "x-tokenmeter-project"
}

// DefaultDimensions are used when the config names none.
func DefaultDimensions() []Dimension {
	return []Dimension{
		{Name: "project", Header: "x-tokenmeter-project"},
		{Name: "team", Header: "x-tokenmeter-team"},
		{Name: "user", Header: "x-tokenmeter-user"},
	}
}

// Validate checks a dimension list: names must be usable as Prometheus label
// names and not collide with labels tokenmeter already uses.
func Validate(dims []Dimension) error {
	seen := map[string]bool{}
	for _, d := range dims {
		if !labelName(d.Name) {
			return fmt.Errorf("dimension name %q: want [a-z_][a-z0-9_]*", d.Name)
		}
		if reserved[d.Name] {
			return fmt.Errorf("dimension name %q: reserved for a built-in label", d.Name)
		}
		if seen[d.Name] {
			return fmt.Errorf("dimension name %q: listed twice", d.Name)
		}
		seen[d.Name] = true
		if d.Header == "" || strings.ToLower(d.Header) != d.Header {
			return fmt.Errorf("dimension %q header %q: want a non-empty lower-case header name", d.Name, d.Header)
		}
	}
	return nil
}

var reserved = map[string]bool{
	"provider": true, "model": true, "class": true, "currency": true, "outcome": true,
	"budget": true, "key": true, "window": true, "phase": true, "reason": true, "dialect": true,
}

func labelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || (c >= 'a' && c <= 'z'):
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

// Dimensions are the attribution of one request, in configured order.
type Dimensions struct {
	Names  []string // shared, read-only: the configured names
	Values []string
}

// Get returns the value for name, or "" when name is not a dimension.
func (d Dimensions) Get(name string) string {
	for i, n := range d.Names {
		if n == name {
			return d.Values[i]
		}
	}
	return ""
}

// Extractor reads Dimensions from headers. It is immutable and safe for
// concurrent use.
type Extractor struct {
	dims  []Dimension
	names []string
}

// NewExtractor builds an extractor for dims (already validated).
func NewExtractor(dims []Dimension) *Extractor {
	names := make([]string, len(dims))
	for i, d := range dims {
		names[i] = d.Name
	}
	return &Extractor{dims: dims, names: names}
}

// Names returns the configured dimension names in order.
func (e *Extractor) Names() []string { return e.names }

// Headers returns the header names read, in dimension order.
func (e *Extractor) Headers() []string {
	h := make([]string, len(e.dims))
	for i, d := range e.dims {
		h[i] = d.Header
	}
	return h
}

// Extract reads each dimension through header (which returns "" when the
// header is absent). invalid counts values replaced by Invalid.
func (e *Extractor) Extract(header func(name string) string) (d Dimensions, invalid []string) {
	d = Dimensions{Names: e.names, Values: make([]string, len(e.dims))}
	for i, dim := range e.dims {
		v, ok := Clean(header(dim.Header))
		if !ok {
			invalid = append(invalid, dim.Name)
		}
		d.Values[i] = v
	}
	return d, invalid
}

// Clean maps a raw header value to a dimension value. ok is false when the
// value had to be replaced by Invalid. Invalid UTF-8 is refused too: label
// values and proto strings must be valid UTF-8, and a client must not be able
// to make either fail.
func Clean(v string) (clean string, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return Unknown, true
	}
	if len(v) > MaxValueBytes || !utf8.ValidString(v) {
		return Invalid, false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return Invalid, false
		}
	}
	return v, true
}
