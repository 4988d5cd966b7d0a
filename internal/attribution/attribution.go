// Package attribution turns what is known about a request into Dimensions:
// the ordered key/value pairs (project, team, user, ...) that cost is
// charged to. A dimension is read from an ordered list of sources: a
// header, a value Envoy's filters left in dynamic metadata (a verified JWT's
// claims), a request attribute (the peer's workload identity), or a field of
// the API key the request carries (package apikey).
//
// Clients can send any header, so the shipped Envoy configs remove a
// client's x-tokenmeter-* headers before any filter, and a header source is
// only as good as whatever in Envoy sets it after that (docs/security.md,
// "The trust boundary"); metadata and attributes are written by Envoy
// itself, and a key's fields need the key, so a client cannot forge them.
// This package only guards against values that would poison metrics and
// storage keys.
package attribution

import (
	"fmt"
	"slices"
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

// Dimension names one attribution key and where it is read from: From, or
// when From is empty, the one header Header (the short form).
type Dimension struct {
	Name   string   // e.g. "project"; a Prometheus label name
	Header string   // lower-case header name, e.g. "x-tokenmeter-project"
	From   []Source // tried in order; the first that yields a value wins
}

// Sources returns where the dimension is read from, in order.
func (d Dimension) Sources() []Source {
	if len(d.From) > 0 {
		return d.From
	}
	return []Source{{Header: d.Header}}
}

// Source is one place a value is read from; exactly one of Header,
// Namespace (with Path), Attribute or APIKey is set.
type Source struct {
	Header    string   // a lower-case request header name
	Namespace string   // a dynamic metadata namespace, e.g. envoy.filters.http.jwt_authn
	Path      []string // the keys under Namespace, e.g. [jwt_payload, sub]
	Attribute string   // an Envoy request attribute, e.g. connection.uri_san_peer_certificate
	// APIKey is a field of the key the request carries (package apikey):
	// "id", "name", or one of the key's dimensions.
	APIKey string
}

// String is how the source is named in errors and docs.
func (s Source) String() string {
	switch {
	case s.Namespace != "":
		return "metadata " + s.Namespace + ":" + strings.Join(s.Path, ".")
	case s.Attribute != "":
		return "attribute " + s.Attribute
	case s.APIKey != "":
		return "api_key " + s.APIKey
	}
	return "header " + s.Header
}

// Validate checks that exactly one kind of source is given, and well.
func (s Source) Validate() error {
	set := 0
	for _, v := range []string{s.Header, s.Namespace, s.Attribute, s.APIKey} {
		if v != "" {
			set++
		}
	}
	switch {
	case set != 1:
		return fmt.Errorf("want exactly one of header, metadata, attribute, api_key")
	case s.Namespace != "" && (len(s.Path) == 0 || slices.Contains(s.Path, "")):
		return fmt.Errorf("metadata %q: want a non-empty path of non-empty keys", s.Namespace)
	case s.Namespace == "" && len(s.Path) > 0:
		return fmt.Errorf("a path without a metadata namespace")
	case s.Header != "" && strings.ToLower(s.Header) != s.Header:
		return fmt.Errorf("header %q: want a lower-case header name", s.Header)
	case s.Attribute != "" && !slices.Contains(Attributes, s.Attribute):
		return fmt.Errorf("attribute %q: want one of %s", s.Attribute, strings.Join(Attributes, ", "))
	case s.APIKey != "" && !labelName(s.APIKey):
		return fmt.Errorf("api_key %q: want id, name or a dimension name ([a-z_][a-z0-9_]*)", s.APIKey)
	}
	return nil
}

// Attributes are the request attributes a dimension may be read from: the
// string-valued ones Envoy sets from the connection (the peer's verified
// certificate) and from its own config, which no client can choose. Envoy
// sends nothing, silently, for a name it does not know (Istio's
// source.principal is not an Envoy attribute), so a name outside this list
// is refused rather than left to never match; so are request.* attributes,
// which the client writes.
var Attributes = []string{
	"connection.uri_san_peer_certificate", // a SPIFFE ID in a mesh
	"connection.dns_san_peer_certificate",
	"connection.subject_peer_certificate",
	"connection.sha256_peer_certificate_digest",
	"xds.cluster_name",
	"xds.route_name",
}

// Request is what a dimension is read from. Each method returns "" for a
// miss, so the next source is tried. It keeps this package free of Envoy's
// types: extproc adapts the ext_proc message to it.
type Request interface {
	Header(name string) string
	// Metadata returns the string at path under namespace; a value that is
	// not a string (a number, a list, a struct) is a miss, not an error, so
	// a claim of an unexpected type falls through to the next source
	// rather than charging a made-up string form.
	Metadata(namespace string, path []string) string
	Attribute(name string) string
	// APIKey returns field of the key the request carries (a valid one);
	// "" when it carries none, or the key does not set field.
	APIKey(field string) string
}

// Headers adapts a header lookup to a Request that has no metadata and no
// attributes.
type Headers func(name string) string

// Header returns the header's value.
func (h Headers) Header(name string) string { return h(name) }

// Metadata is always a miss.
func (Headers) Metadata(string, []string) string { return "" }

// Attribute is always a miss.
func (Headers) Attribute(string) string { return "" }

// APIKey is always a miss.
func (Headers) APIKey(string) string { return "" }

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
		if len(d.From) > 0 && d.Header != "" {
			return fmt.Errorf("dimension %q: header and from: want one of them", d.Name)
		}
		if len(d.From) == 0 && (d.Header == "" || strings.ToLower(d.Header) != d.Header) {
			return fmt.Errorf("dimension %q header %q: want a non-empty lower-case header name", d.Name, d.Header)
		}
		for i, s := range d.From {
			if err := s.Validate(); err != nil {
				return fmt.Errorf("dimension %q from[%d]: %w", d.Name, i, err)
			}
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

// Extractor reads Dimensions from a Request. It is immutable and safe for
// concurrent use.
type Extractor struct {
	dims  []Dimension
	names []string
}

// KeyFields returns the fields of an API key the dimensions read
// ({api_key: field}), "id" and "name" included when read.
func KeyFields(dims []Dimension) map[string]bool {
	out := map[string]bool{}
	for _, d := range dims {
		for _, s := range d.From {
			if s.APIKey != "" {
				out[s.APIKey] = true
			}
		}
	}
	return out
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

// Extract reads each dimension from r: the first of its sources with a
// non-blank value wins. That value is then cleaned, and one that is
// unusable becomes Invalid rather than falling through: a later source is
// often a client's header, which must not win because a trusted source
// held junk. invalid lists the dimensions replaced by Invalid.
func (e *Extractor) Extract(r Request) (d Dimensions, invalid []string) {
	d = Dimensions{Names: e.names, Values: make([]string, len(e.dims))}
	for i, dim := range e.dims {
		v, ok := Clean(first(r, dim.Sources()))
		if !ok {
			invalid = append(invalid, dim.Name)
		}
		d.Values[i] = v
	}
	return d, invalid
}

func first(r Request, srcs []Source) string {
	for _, s := range srcs {
		var v string
		switch {
		case s.Namespace != "":
			v = r.Metadata(s.Namespace, s.Path)
		case s.Attribute != "":
			v = r.Attribute(s.Attribute)
		case s.APIKey != "":
			v = r.APIKey(s.APIKey)
		default:
			v = r.Header(s.Header)
		}
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
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
