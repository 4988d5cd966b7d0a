package envoy

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// earlyMutations is every mutation of the connection manager's early
// header mutation extensions.
func earlyMutations(t *testing.T, cfg map[string]any) []any {
	t.Helper()
	var out []any
	exts, _ := node(t, hcm(t, cfg), "early_header_mutation_extensions").([]any)
	for _, e := range exts {
		if node(t, e, "name") != "envoy.http.early_header_mutation.header_mutation" ||
			!strings.HasSuffix(fmt.Sprint(node(t, e, "typed_config", "@type")), earlyMutationType) {
			t.Errorf("early extension %v: want Envoy's header_mutation", e)
		}
		m, _ := node(t, e, "typed_config", "mutations").([]any)
		out = append(out, m...)
	}
	return out
}

// Every shipped arrangement of envoy.yaml removes the client's
// x-tokenmeter-* headers, by prefix, before any filter: split mode as it
// ships, inline and upstream as the tests derive them (the upstream chain's
// tokenmeter.attribution and the route's list only keep the headers set
// later from the provider). test/e2e/spoof_test.go proves it through Envoy.
func TestShippedStripsClientHeadersEarly(t *testing.T) {
	_, base := shippedConfig(t)
	for _, tt := range []struct {
		name    string
		variant func([]byte) ([]byte, error)
	}{
		{"split", func(b []byte) ([]byte, error) { return b, nil }},
		{"inline", Inline},
		{"upstream", Upstream},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.variant(base)
			if err != nil {
				t.Fatal(err)
			}
			got := earlyMutations(t, parsed(t, out))
			want := []any{map[string]any{"remove_on_match": map[string]any{"key_matcher": map[string]any{"prefix": HeaderPrefix}}}}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("early mutations %v, want %v", got, want)
			}
		})
	}
}

// TrustClientHeaders drops the early strip and nothing else: from
// envoy.yaml every line but the strip's (and its comment) is kept byte for
// byte, so tests can edit the result as text; from Envoy Gateway's JSON
// the strip's extension goes and another one stays.
func TestTrustClientHeaders(t *testing.T) {
	_, base := shippedConfig(t)
	inline, err := Inline(base) // written again by the YAML encoder: 4-space indents
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := TrustClientHeaders(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(earlyMutations(t, parsed(t, trusted))) != 0 {
		t.Fatalf("the trusting variant still strips:\n%s", trusted)
	}
	if !isSubsequence(lines(trusted), lines(base)) || len(lines(base))-len(lines(trusted)) > 25 {
		t.Errorf("the trusting variant is not envoy.yaml less a few lines:\n%s", trusted)
	}
	if strings.Contains(string(trusted), "Attribution a client cannot forge") {
		t.Error("the strip's comment stayed behind")
	}
	if hosts := node(t, hcm(t, parsed(t, trusted)), "route_config", "virtual_hosts", "name=llm", "request_headers_to_remove"); hosts == nil {
		t.Error("the trusting variant lost the route's request_headers_to_remove: the provider would get the headers")
	}

	const ours = `{"name": "envoy.http.early_header_mutation.header_mutation", "typedConfig": {"@type": "type.googleapis.com/` +
		earlyMutationType + `", "mutations": [%s]}}`
	strip := fmt.Sprintf(ours, `{"removeOnMatch": {"keyMatcher": {"prefix": "x-tokenmeter-"}}}`)
	other := fmt.Sprintf(ours, `{"remove": "x-other"}`)
	for _, tt := range []struct {
		name, config string
		want         string // in the result; empty: an error is wanted
		wantErr      string
	}{
		{"inline, as the encoder writes it", string(inline), "tokenmeter.inline", ""},
		{"json, the only extension", `{"hcm": {"statPrefix": "x", "earlyHeaderMutationExtensions": [` + strip + `]}}`,
			"{\n  \"hcm\": {\n    \"statPrefix\": \"x\"\n  }\n}", ""},
		{"json, beside another", `{"earlyHeaderMutationExtensions": [` + other + `, ` + strip + `]}`, `"x-other"`, ""},
		{"names, not a prefix", "early_header_mutation_extensions:\n- " + fmt.Sprintf(ours, `{"remove": "x-tokenmeter-project"}, {"remove": "X-Tokenmeter-Team"}`) + "\nkept: 1\n",
			"kept: 1", ""},
		{"one entry of two in block style", "a:\n  early_header_mutation_extensions:\n  - " + other + "\n  - name: ours\n    typedConfig: {\"@type\": " +
			earlyMutationType + ", mutations: [{remove: x-tokenmeter-user}]}\n  b: 2\n", "x-other", ""},
		{"mixed with another mutation", `{"earlyHeaderMutationExtensions": [` + fmt.Sprintf(ours, `{"remove": "x-tokenmeter-user"}, {"remove": "x-other"}`) + `]}`,
			"", "and does more"},
		{"no strip", `{"earlyHeaderMutationExtensions": [` + other + `]}`, "", "no early header mutation"},
		{"flow style in YAML", "a: {early_header_mutation_extensions: [" + strip + "]}\n", "", "not in block style"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := TrustClientHeaders([]byte(tt.config))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q; got\n%s", err, tt.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			root, err := parseConfig(out)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tt.want) || len(earlyStrips(root)) > 0 {
				t.Fatalf("got\n%s\nwant %q in it and no strip", out, tt.want)
			}
			if strings.HasPrefix(tt.config, "{") && !json.Valid(out) {
				t.Fatalf("JSON in, not JSON out:\n%s", out)
			}
		})
	}
}

func lines(b []byte) []string { return strings.SplitAfter(string(b), "\n") }

// isSubsequence reports whether sub is seq with some elements left out.
func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub) && !slices.Equal(sub, seq)
}
