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
			d, invalid := e.Extract(func(h string) string { return tt.headers[h] })
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
