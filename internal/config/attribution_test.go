package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
)

func TestAttributionSources(t *testing.T) {
	const jwt = "envoy.filters.http.jwt_authn"
	tests := []struct {
		name string
		yaml string
		want []attribution.Dimension
		err  string
	}{
		{"sources and short form", `
attribution:
  dimensions:
    - name: user
      from:
        - {metadata: {namespace: envoy.filters.http.jwt_authn, path: [jwt_payload, sub]}}
        - {header: x-tokenmeter-user}
    - name: team
      from: [{attribute: connection.uri_san_peer_certificate}]
    - {name: project, header: x-tokenmeter-project}
`, []attribution.Dimension{
			{Name: "user", From: []attribution.Source{{Namespace: jwt, Path: []string{"jwt_payload", "sub"}}, {Header: "x-tokenmeter-user"}}},
			{Name: "team", From: []attribution.Source{{Attribute: "connection.uri_san_peer_certificate"}}},
			{Name: "project", Header: "x-tokenmeter-project"},
		}, ""},
		{"two kinds in one source", `
attribution:
  dimensions:
    - name: user
      from:
        - {header: x-u, attribute: connection.uri_san_peer_certificate}
`, nil, `a.yaml:6: attribution.dimensions[0].from[0]: want exactly one of header, metadata, attribute`},
		{"header and from", `
attribution:
  dimensions:
    - {name: user, header: x-u, from: [{header: x-v}]}
`, nil, `a.yaml:4: attribution.dimensions[0]: dimension "user": header and from: want one of them`},
		{"empty from", `
attribution:
  dimensions:
    - {name: user, from: []}
`, nil, `a.yaml:4: attribution.dimensions[0].from: want at least one source`},
		{"unknown source key", `
attribution:
  dimensions:
    - name: user
      from:
        - {cookie: x}
`, nil, `a.yaml:6: attribution.dimensions[0].from[0].cookie: unknown key; want one of attribute, header, metadata`},
		{"metadata without path", `
attribution:
  dimensions:
    - name: user
      from:
        - {metadata: {namespace: ns}}
`, nil, `a.yaml:6: attribution.dimensions[0].from[0]: metadata "ns": want a non-empty path of non-empty keys`},
		{"unknown attribute", `
attribution:
  dimensions:
    - name: team
      from:
        - {attribute: source.principal}
`, nil, `a.yaml:6: attribution.dimensions[0].from[0]: attribute "source.principal": want one of ` + strings.Join(attribution.Attributes, ", ")},
		{"path not a list", `
attribution:
  dimensions:
    - name: user
      from:
        - {metadata: {namespace: ns, path: sub}}
`, nil, `a.yaml:6: attribution.dimensions[0].from[0].metadata.path: "sub": want a list of keys, e.g. [jwt_payload, sub]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("a.yaml", []byte("catalog: {builtin: true}"+tt.yaml))
			if tt.err != "" {
				if fmt.Sprint(err) != tt.err {
					t.Fatalf("err = %v\nwant  %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Dimensions, tt.want) {
				t.Fatalf("dimensions = %+v, want %+v", c.Dimensions, tt.want)
			}
		})
	}
}
