package attribution

import (
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	long := strings.Repeat("a", MaxValueBytes+1)
	edge := strings.Repeat("b", MaxValueBytes)
	tests := []struct {
		name        string
		headers     map[string]string
		want        []string
		wantInvalid []string
	}{
		{"all present", map[string]string{"x-tokenmeter-project": "demo", "x-tokenmeter-team": "ml", "x-tokenmeter-user": "ann"}, []string{"demo", "ml", "ann"}, nil},
		{"absent is unknown", map[string]string{"x-tokenmeter-project": "demo"}, []string{"demo", Unknown, Unknown}, nil},
		{"blank is unknown", map[string]string{"x-tokenmeter-project": "  "}, []string{Unknown, Unknown, Unknown}, nil},
		{"128 bytes is kept", map[string]string{"x-tokenmeter-project": edge}, []string{edge, Unknown, Unknown}, nil},
		{"129 bytes is invalid", map[string]string{"x-tokenmeter-project": long}, []string{Invalid, Unknown, Unknown}, []string{"project"}},
		{"control char is invalid", map[string]string{"x-tokenmeter-team": "a\x01b", "x-tokenmeter-user": "x\x7f"}, []string{Unknown, Invalid, Invalid}, []string{"team", "user"}},
		{"invalid utf-8 is invalid", map[string]string{"x-tokenmeter-project": "a\xffb"}, []string{Invalid, Unknown, Unknown}, []string{"project"}},
		{"unicode is kept", map[string]string{"x-tokenmeter-user": "zoë"}, []string{Unknown, Unknown, "zoë"}, nil},
	}
	e := NewExtractor(DefaultDimensions())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, invalid := e.Extract(Headers(func(h string) string { return tt.headers[h] }))
			if strings.Join(d.Values, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("values = %q, want %q", d.Values, tt.want)
			}
			if strings.Join(invalid, ",") != strings.Join(tt.wantInvalid, ",") {
				t.Fatalf("invalid = %q, want %q", invalid, tt.wantInvalid)
			}
			if d.Get("project") != tt.want[0] {
				t.Fatalf("Get(project) = %q", d.Get("project"))
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		dims []Dimension
		err  string
	}{
		{"defaults", DefaultDimensions(), ""},
		{"bad label", []Dimension{{Name: "Cost-Centre", Header: "x-cc"}}, `dimension name "Cost-Centre": want [a-z_][a-z0-9_]*`},
		{"reserved", []Dimension{{Name: "model", Header: "x-m"}}, `dimension name "model": reserved for a built-in label`},
		{"twice", []Dimension{{Name: "a", Header: "x-a"}, {Name: "a", Header: "x-b"}}, `dimension name "a": listed twice`},
		{"upper header", []Dimension{{Name: "a", Header: "X-A"}}, `dimension "a" header "X-A": want a non-empty lower-case header name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.dims)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Fatalf("got %q, want %q", got, tt.err)
			}
		})
	}
}

// fakeRequest answers from maps; metadata is keyed "namespace:a.b".
type fakeRequest struct{ headers, metadata, attributes, key map[string]string }

func (f fakeRequest) Header(n string) string { return f.headers[n] }
func (f fakeRequest) Metadata(ns string, path []string) string {
	return f.metadata[ns+":"+strings.Join(path, ".")]
}
func (f fakeRequest) Attribute(n string) string  { return f.attributes[n] }
func (f fakeRequest) APIKey(field string) string { return f.key[field] }

func TestExtractSources(t *testing.T) {
	const jwt = "envoy.filters.http.jwt_authn"
	dims := []Dimension{
		{Name: "user", From: []Source{{Namespace: jwt, Path: []string{"jwt_payload", "sub"}}, {Header: "x-tokenmeter-user"}}},
		{Name: "team", From: []Source{{Attribute: "connection.uri_san_peer_certificate"}}},
		{Name: "project", From: []Source{{APIKey: "project"}, {Header: "x-tokenmeter-project"}}},
		{Name: "api_key", From: []Source{{APIKey: "id"}}},
	}
	if err := Validate(dims); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		req         fakeRequest
		want        string
		wantInvalid string
	}{
		{"claim wins over header", fakeRequest{
			headers:  map[string]string{"x-tokenmeter-user": "mallory", "x-tokenmeter-project": "p"},
			metadata: map[string]string{jwt + ":jwt_payload.sub": "alice"},
		}, "alice|unknown|p|unknown", ""},
		{"no claim falls back to header", fakeRequest{headers: map[string]string{"x-tokenmeter-user": "bob"}}, "bob|unknown|unknown|unknown", ""},
		{"blank claim falls back", fakeRequest{
			headers:  map[string]string{"x-tokenmeter-user": "bob"},
			metadata: map[string]string{jwt + ":jwt_payload.sub": "  "},
		}, "bob|unknown|unknown|unknown", ""},
		{"invalid claim is invalid, not the header", fakeRequest{
			headers:  map[string]string{"x-tokenmeter-user": "mallory"},
			metadata: map[string]string{jwt + ":jwt_payload.sub": "a\x01b"},
		}, "invalid|unknown|unknown|unknown", "user"},
		{"attribute", fakeRequest{attributes: map[string]string{"connection.uri_san_peer_certificate": "spiffe://cluster.local/ns/a/sa/b"}},
			"unknown|spiffe://cluster.local/ns/a/sa/b|unknown|unknown", ""},
		{"team header is not a source", fakeRequest{headers: map[string]string{"x-tokenmeter-team": "t"}}, "unknown|unknown|unknown|unknown", ""},
		{"key wins over header", fakeRequest{
			headers: map[string]string{"x-tokenmeter-project": "victim"},
			key:     map[string]string{"project": "p1", "id": "key_1"},
		}, "unknown|unknown|p1|key_1", ""},
		{"key without the field falls back", fakeRequest{
			headers: map[string]string{"x-tokenmeter-project": "p"},
			key:     map[string]string{"id": "key_2"},
		}, "unknown|unknown|p|key_2", ""},
	}
	e := NewExtractor(dims)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, invalid := e.Extract(tt.req)
			if got := strings.Join(d.Values, "|"); got != tt.want {
				t.Fatalf("values = %q, want %q", got, tt.want)
			}
			if got := strings.Join(invalid, ","); got != tt.wantInvalid {
				t.Fatalf("invalid = %q, want %q", got, tt.wantInvalid)
			}
		})
	}
}

func TestValidateSources(t *testing.T) {
	tests := []struct {
		name string
		d    Dimension
		err  string
	}{
		{"header and from", Dimension{Name: "a", Header: "x-a", From: []Source{{Header: "x-b"}}}, `dimension "a": header and from: want one of them`},
		{"empty source", Dimension{Name: "a", From: []Source{{}}}, `dimension "a" from[0]: want exactly one of header, metadata, attribute, api_key`},
		{"two kinds", Dimension{Name: "a", From: []Source{{Header: "x-a", Attribute: "connection.uri_san_peer_certificate"}}}, `dimension "a" from[0]: want exactly one of header, metadata, attribute, api_key`},
		{"no path", Dimension{Name: "a", From: []Source{{Namespace: "ns"}}}, `dimension "a" from[0]: metadata "ns": want a non-empty path of non-empty keys`},
		{"empty key", Dimension{Name: "a", From: []Source{{Namespace: "ns", Path: []string{"x", ""}}}}, `dimension "a" from[0]: metadata "ns": want a non-empty path of non-empty keys`},
		{"upper header", Dimension{Name: "a", From: []Source{{Attribute: "connection.uri_san_peer_certificate"}, {Header: "X-A"}}}, `dimension "a" from[1]: header "X-A": want a lower-case header name`},
		{"not an Envoy attribute", Dimension{Name: "a", From: []Source{{Attribute: "source.principal"}}}, `dimension "a" from[0]: attribute "source.principal": want one of ` + strings.Join(Attributes, ", ")},
		{"client's attribute", Dimension{Name: "a", From: []Source{{Attribute: "request.host"}}}, `dimension "a" from[0]: attribute "request.host": want one of ` + strings.Join(Attributes, ", ")},
		{"bad key field", Dimension{Name: "a", From: []Source{{APIKey: "Team"}}}, `dimension "a" from[0]: api_key "Team": want id, name or a dimension name ([a-z_][a-z0-9_]*)`},
		{"ok", Dimension{Name: "a", From: []Source{{Namespace: "ns", Path: []string{"p"}}, {Attribute: "connection.uri_san_peer_certificate"}, {APIKey: "a"}, {Header: "x-a"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := Validate([]Dimension{tt.d}); err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Fatalf("got %q, want %q", got, tt.err)
			}
		})
	}
}
