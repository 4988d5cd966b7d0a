package envoy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/config"
)

func parsed(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// upstreamChain is the filter chain of the provider cluster.
func upstreamChain(t *testing.T, cfg map[string]any) []any {
	t.Helper()
	chain, _ := node(t, cfg, "static_resources", "clusters", "name="+UpstreamCluster,
		"typed_extension_protocol_options", protocolOptionsKey, "http_filters").([]any)
	return chain
}

func names(filters []any) []string {
	var out []string
	for _, f := range filters {
		out = append(out, fmt.Sprint(f.(map[string]any)["name"]))
	}
	return out
}

// Upstream moves the gate and the observer into the provider cluster's
// chain, in order, before the header removal and the codec; the virtual
// host stops removing the attribution headers the chain removes; the rest
// of envoy.yaml stays.
func TestUpstream(t *testing.T) {
	_, base := shippedConfig(t)
	out, err := Upstream(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg := parsed(t, out)
	h := hcm(t, cfg)
	if got := names(node(t, h, "http_filters").([]any)); !slices.Equal(got, []string{"envoy.filters.http.router"}) {
		t.Errorf("connection manager filters %q, want the router alone", got)
	}
	want := []string{GateFilter, ObserverFilter, AttributionFilter, UpstreamCodec}
	if got := names(upstreamChain(t, cfg)); !slices.Equal(got, want) {
		t.Errorf("upstream chain %q, want %q", got, want)
	}
	for _, host := range node(t, h, "route_config", "virtual_hosts").([]any) {
		if v := node(t, host, "request_headers_to_remove"); v != nil {
			t.Errorf("virtual host still removes %v before the upstream gate reads them", v)
		}
		if node(t, host, "response_headers_to_add") == nil || node(t, host, "routes") == nil {
			t.Errorf("virtual host lost its feedback headers or routes: %v", host)
		}
	}
	if node(t, h, "local_reply_config") == nil || node(t, h, "access_log") == nil {
		t.Error("the connection manager lost its local replies or access log")
	}

	if _, err := Upstream(out); err == nil {
		t.Error("a config whose gate is already upstream must be an error")
	}
	bare, err := WithoutExtProc(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(upstreamChain(t, parsed(t, bare))); !slices.Equal(got, []string{AttributionFilter, UpstreamCodec}) {
		t.Errorf("baseline upstream chain %q", got)
	}
}

// The upstream gate and observer are envoy.yaml's, setting for setting:
// what the tests and the docs say of split mode holds for them.
func TestUpstreamFiltersAreSplitModes(t *testing.T) {
	cfg, _ := shippedConfig(t)
	raw, err := os.ReadFile(filepath.Join(Dir(), "upstream-filter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := node(t, parsed(t, raw), protocolOptionsKey, "http_filters").([]any)
	for _, name := range []string{GateFilter, ObserverFilter} {
		split := node(t, hcm(t, cfg), "http_filters", "name="+name, "typed_config")
		upstream := node(t, chain, "name="+name, "typed_config")
		if split == nil || !reflect.DeepEqual(split, upstream) {
			t.Errorf("%s differs:\nenvoy.yaml          %v\nupstream-filter.yaml %v", name, split, upstream)
		}
	}
}

// The upstream chain removes every attribution header tokenmeter reads by
// default and in the demo config, after the gate.
func TestUpstreamRemovesAttributionHeaders(t *testing.T) {
	options, err := upstreamOptions()
	if err != nil {
		t.Fatal(err)
	}
	demo, err := config.Load(filepath.Join(Dir(), "..", "demo", "tokenmeter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	removed := strippedHeaders(options)
	for _, d := range append(attribution.DefaultDimensions(), demo.Dimensions...) {
		for _, s := range d.Sources() {
			if s.Header != "" && !slices.Contains(removed, s.Header) {
				t.Errorf("%s does not remove attribution header %s (removes %q)", AttributionFilter, s.Header, removed)
			}
		}
	}
}

// The test helpers put a filter first in the cluster's chain (made when
// missing) or in the connection manager's.
func TestWithFilters(t *testing.T) {
	const lua = "name: stand-in\ntyped_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}\n"
	_, base := shippedConfig(t)
	up, err := Upstream(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		config []byte
		want   []string
	}{
		{"a cluster without a chain gets one", base, []string{"stand-in", UpstreamCodec}},
		{"first in an existing chain", up, []string{"stand-in", GateFilter, ObserverFilter, AttributionFilter, UpstreamCodec}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := WithUpstreamFilter(tt.config, []byte(lua))
			if err != nil {
				t.Fatal(err)
			}
			if got := names(upstreamChain(t, parsed(t, out))); !slices.Equal(got, tt.want) {
				t.Errorf("chain %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := WithUpstreamFilter(base, []byte("- a list\n")); err == nil {
		t.Error("a list is not one filter")
	}

	// A downstream filter goes first in the connection manager's chain.
	out, err := WithDownstreamFilter(up, []byte(lua))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(node(t, hcm(t, parsed(t, out)), "http_filters").([]any)); !slices.Equal(got, []string{"stand-in", "envoy.filters.http.router"}) {
		t.Errorf("connection manager chain %q", got)
	}
}
