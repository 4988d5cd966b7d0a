package envoy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/config"
)

func TestRewriteAndWithoutExtProc(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(Dir(), "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := Rewrite(base, Ports{Listener: 1, Admin: 2, Upstream: 3, ExtProc: 4})
	for _, want := range []string{"port_value: 1 }", "port_value: 2 }", "port_value: 3 }", "port_value: 4 }"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("rewritten config lacks %q", want)
		}
	}
	for _, old := range []string{"10000", "9901", "8081", "50051"} {
		if bytes.Contains(got, []byte("port_value: "+old)) {
			t.Errorf("port %s not rewritten", old)
		}
	}
	bare, err := WithoutExtProc(base)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bare, []byte("filters.http.ext_proc.v3")) || bytes.Contains(bare, []byte(GateFilter)) ||
		!bytes.Contains(bare, []byte("envoy.filters.http.router")) || !bytes.Contains(bare, []byte("/team-x/generate")) {
		t.Fatalf("baseline config:\n%s", bare)
	}
	if _, err := WithoutExtProc(bare); err == nil {
		t.Fatal("a config without ext_proc must be an error")
	}

	// Inline: one filter where the gate was, its per-route override renamed.
	inline, err := Inline(base)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(inline, []byte("name: "+GateFilter)) || bytes.Contains(inline, []byte("name: "+ObserverFilter)) ||
		bytes.Count(inline, []byte("name: "+InlineFilter)) != 1 || !bytes.Contains(inline, []byte(InlineFilter+":")) ||
		bytes.Contains(inline, []byte(GateFilter+":")) {
		t.Fatalf("inline config:\n%s", inline)
	}
	if _, err := Inline(bare); err == nil {
		t.Fatal("a config without the gate must be an error")
	}
}

// node walks a parsed YAML document by keys (maps) and "name=<v>" (the
// list entry whose name is v); nil when a step is missing.
func node(t *testing.T, n any, path ...string) any {
	t.Helper()
	for _, p := range path {
		switch v := n.(type) {
		case map[string]any:
			n = v[p]
		case []any:
			want, ok := strings.CutPrefix(p, "name=")
			if !ok {
				t.Fatalf("step %q into a list", p)
			}
			n = nil
			for _, e := range v {
				if m, _ := e.(map[string]any); m != nil && m["name"] == want {
					n = m
				}
			}
		default:
			return nil
		}
	}
	return n
}

func shippedConfig(t *testing.T) (map[string]any, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(Dir(), "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, raw
}

func hcm(t *testing.T, cfg map[string]any) any {
	t.Helper()
	listeners, _ := node(t, cfg, "static_resources", "listeners").([]any)
	if len(listeners) != 1 {
		t.Fatalf("%d listeners, want 1", len(listeners))
	}
	chains, _ := node(t, listeners[0], "filter_chains").([]any)
	if len(chains) != 1 {
		t.Fatalf("%d filter chains, want 1", len(chains))
	}
	return node(t, chains[0], "filters", "name=envoy.filters.network.http_connection_manager", "typed_config")
}

// TestAttributionHeadersRemoved holds the shipped virtual host's
// request_headers_to_remove to the attribution headers tokenmeter reads by
// default and in the demo config: the provider must not receive them.
func TestAttributionHeadersRemoved(t *testing.T) {
	cfg, _ := shippedConfig(t)
	hosts, _ := node(t, hcm(t, cfg), "route_config", "virtual_hosts").([]any)
	if len(hosts) == 0 {
		t.Fatal("no virtual hosts")
	}
	demo, err := config.Load(filepath.Join(Dir(), "..", "demo", "tokenmeter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, d := range append(attribution.DefaultDimensions(), demo.Dimensions...) {
		for _, s := range d.Sources() {
			if s.Header != "" {
				want[s.Header] = true
			}
		}
	}
	for _, h := range hosts {
		removed := map[string]bool{}
		list, _ := node(t, h, "request_headers_to_remove").([]any)
		for _, v := range list {
			removed[fmt.Sprint(v)] = true
		}
		for hdr := range want {
			if !removed[hdr] {
				t.Errorf("virtual host %v does not remove attribution header %s before the upstream", node(t, h, "name"), hdr)
			}
		}
	}
}

// TestFailClosedAnswersJSON holds the shipped failure modes: the gate (and
// the inline filter) fail closed with a 503, the observer open, and the
// local reply mappers match only Envoy's own ext_proc failures and answer
// them in JSON. e2e/envoy_edges_test.go proves what a client sees.
func TestFailClosedAnswersJSON(t *testing.T) {
	cfg, raw := shippedConfig(t)
	filters := node(t, hcm(t, cfg), "http_filters")
	gate := node(t, filters, "name="+GateFilter, "typed_config")
	if node(t, gate, "failure_mode_allow") != false || node(t, gate, "status_on_error", "code") != "ServiceUnavailable" {
		t.Errorf("gate: failure_mode_allow %v, status_on_error %v; want false and ServiceUnavailable",
			node(t, gate, "failure_mode_allow"), node(t, gate, "status_on_error"))
	}
	if v := node(t, filters, "name="+ObserverFilter, "typed_config", "failure_mode_allow"); v != true {
		t.Errorf("observer failure_mode_allow %v, want true: metering never breaks traffic", v)
	}
	inline, err := Inline(raw)
	if err != nil {
		t.Fatal(err)
	}
	var icfg map[string]any
	if err := yaml.Unmarshal(inline, &icfg); err != nil {
		t.Fatal(err)
	}
	if v := node(t, hcm(t, icfg), "http_filters", "name="+InlineFilter, "typed_config", "status_on_error", "code"); v != "ServiceUnavailable" {
		t.Errorf("inline status_on_error %v, want ServiceUnavailable", v)
	}

	mappers, _ := node(t, hcm(t, cfg), "local_reply_config", "mappers").([]any)
	codes := map[string]bool{}
	for i, m := range mappers {
		expr := fmt.Sprint(node(t, m, "filter", "extension_filter", "typed_config", "expression"))
		if !strings.HasPrefix(expr, "response.code_details") || !strings.Contains(expr, "'ext_proc_error") {
			t.Errorf("mapper %d matches %q: want only Envoy's ext_proc failures (response.code_details ext_proc_error...)", i, expr)
		}
		body := node(t, m, "body_format_override")
		if node(t, body, "content_type") != "application/json" || node(t, body, "json_format", "error", "type") != "tokenmeter_unavailable" ||
			node(t, body, "json_format", "error", "message") == nil {
			t.Errorf("mapper %d body %v: want a JSON error of type tokenmeter_unavailable", i, body)
		}
		codes[fmt.Sprint(node(t, body, "json_format", "error", "code"))] = true
	}
	if len(mappers) != 2 || !codes["gate_timeout"] || !codes["gate_unreachable"] {
		t.Errorf("mappers answer codes %v, want gate_timeout and gate_unreachable", codes)
	}
}

// Envoy reads a proto field under either JSON name; so does WithoutExtProc
// (Envoy Gateway's translated configs are protojson: httpFilters).
func TestWithoutExtProcReadsBothSpellings(t *testing.T) {
	const cfg = `{"httpFilters": [
  {"name": "envoy.filters.http.ext_proc/gate", "disabled": true,
   "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"}},
  {"name": "envoy.filters.http.router",
   "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
 "routes": [{"typedPerFilterConfig": {"envoy.filters.http.ext_proc/gate": {"config": {}}, "other": {}}}]}`
	bare, err := WithoutExtProc([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bare, []byte("ext_proc")) || !bytes.Contains(bare, []byte("router")) || !bytes.Contains(bare, []byte("other")) {
		t.Fatalf("baseline config:\n%s", bare)
	}
	for _, tt := range []struct {
		key, field string
		want       bool
	}{
		{"typed_config", "typed_config", true}, {"typedConfig", "typed_config", true},
		{"typed_per_filter_config", "typed_per_filter_config", true}, {"typedPerFilterConfig", "typed_per_filter_config", true},
		{"typedconfig", "typed_config", false}, {"Typed_config", "typed_config", false},
	} {
		if got := isField(tt.key, tt.field); got != tt.want {
			t.Errorf("isField(%q, %q) = %v", tt.key, tt.field, got)
		}
	}
}
