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
`, nil, `a.yaml:6: attribution.dimensions[0].from[0]: want exactly one of header, metadata, attribute, api_key`},
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
`, nil, `a.yaml:6: attribution.dimensions[0].from[0].cookie: unknown key; want one of api_key, attribute, header, metadata`},
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

func TestAPIKeys(t *testing.T) {
	t.Setenv("TM_TEST_KEY_SECRET", strings.Repeat("s", 32))
	t.Setenv("TM_TEST_SHORT_SECRET", "short")
	const digest = "hmac-sha256:" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	const dims = `
  dimensions:
    - name: project
      from: [{api_key: project}, {header: x-tokenmeter-project}]
    - name: api_key
      from: [{api_key: id}]
`
	tests := []struct {
		name string
		yaml string
		err  string
	}{
		{"ok", `
attribution:
  api_keys:
    secret_env: TM_TEST_KEY_SECRET
    unknown: unknown
    keys:
      - {id: ci, name: CI, hash: "` + digest + `", dimensions: {project: ci}}
` + dims, ""},
		{"no secret_env", `
attribution:
  api_keys: {unknown: deny}
` + dims, `a.yaml:3: attribution.api_keys: want one of secret_env and secret_file: the environment variable or the file holding the secret keys are hashed with`},
		{"secret unset", `
attribution:
  api_keys: {secret_env: TM_TEST_UNSET_SECRET}
` + dims, `a.yaml:3: attribution.api_keys.secret_env: "TM_TEST_UNSET_SECRET": this environment variable is empty or unset`},
		{"secret short", `
attribution:
  api_keys: {secret_env: TM_TEST_SHORT_SECRET}
` + dims, `a.yaml:3: attribution.api_keys.secret_env: "TM_TEST_SHORT_SECRET": this environment variable holds 5 bytes; want at least 32 (e.g. openssl rand -hex 32)`},
		{"secret file missing", `
attribution:
  api_keys: {secret_file: testdata/no-such-secret}
` + dims, `a.yaml:3: attribution.api_keys.secret_file: "testdata/no-such-secret": cannot read it: no such file or directory`},
		{"both secrets", `
attribution:
  api_keys: {secret_env: TM_TEST_KEY_SECRET, secret_file: x}
` + dims, `a.yaml:3: attribution.api_keys.secret_file: "x": cannot read it: no such file or directory
a.yaml:3: attribution.api_keys: want one of secret_env and secret_file: the environment variable or the file holding the secret keys are hashed with`},
		{"bad policy", `
attribution:
  api_keys: {secret_env: TM_TEST_KEY_SECRET, missing: allow}
` + dims, `a.yaml:3: attribution.api_keys.missing: "allow": want deny or unknown`},
		{"bad hash", `
attribution:
  api_keys:
    secret_env: TM_TEST_KEY_SECRET
    keys: [{id: ci, hash: "sha256:00"}]
` + dims, `a.yaml:5: attribution.api_keys.keys[0].hash: "sha256:00": want "hmac-sha256:" and 64 hex digits (tokenmeter keys hash makes one)`},
		{"no hash", `
attribution:
  api_keys:
    secret_env: TM_TEST_KEY_SECRET
    keys: [{id: ci}]
` + dims, `a.yaml:5: attribution.api_keys.keys[0]: want hash: the key's digest (tokenmeter keys hash makes one)`},
		{"dimension nobody reads", `
attribution:
  api_keys:
    secret_env: TM_TEST_KEY_SECRET
    keys:
      - {id: ci, hash: "` + digest + `", dimensions: {team: x}}
` + dims, `a.yaml:6: attribution.api_keys.keys[0].dimensions: dimension "team": no dimension reads it (add {api_key: team} to a dimension's from)`},
		{"same digest twice", `
attribution:
  api_keys:
    secret_env: TM_TEST_KEY_SECRET
    keys:
      - {id: a, hash: "` + digest + `"}
      - {id: b, hash: "` + digest + `"}
` + dims, `a.yaml:5: attribution.api_keys.keys: duplicate key: key "b" has a digest another key has`},
		{"key source without api_keys", `
attribution:` + dims, `a.yaml:3: attribution.dimensions: "id": a dimension reads {api_key: id} but attribution.api_keys is not set`},
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
			k := c.APIKeys
			if k.Unknown != "unknown" || k.Missing != "deny" || len(k.Keys) != 1 || k.Keys[0].Dimensions["project"] != "ci" || k.Keys[0].Secrets[0].Digest.String() != digest {
				t.Fatalf("api_keys = %+v", k)
			}
		})
	}
}
