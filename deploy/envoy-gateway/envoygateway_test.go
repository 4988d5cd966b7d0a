package envoygateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/config"
)

func egctl(t *testing.T) string {
	t.Helper()
	bin, err := Egctl()
	if err != nil {
		t.Fatal(err) // a missing real part is never a silent skip
	}
	return bin
}

func translate(t *testing.T, docs []byte) (*Translation, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Translate(ctx, egctl(t), docs)
}

var shipped struct {
	sync.Once
	t   *Translation
	err error
}

// shippedTranslation translates the resources as a user applies them, once.
func shippedTranslation(t *testing.T) *Translation {
	t.Helper()
	shipped.Do(func() {
		docs, err := Shipped()
		if err != nil {
			shipped.err = err
			return
		}
		shipped.t, shipped.err = translate(t, docs)
	})
	if shipped.err != nil {
		t.Fatal(shipped.err)
	}
	return shipped.t
}

// at walks a decoded JSON tree: a key of an object, or name=X for the
// element of a list whose "name" is X.
func at(t *testing.T, v any, path ...string) any {
	t.Helper()
	for i, p := range path {
		switch n := v.(type) {
		case map[string]any:
			v = n[p]
		case []any:
			name, ok := strings.CutPrefix(p, "name=")
			if !ok {
				t.Fatalf("%s: a list, and %q is no name=", strings.Join(path[:i], "."), p)
			}
			v = nil
			for _, e := range n {
				if m, _ := e.(map[string]any); m["name"] == name {
					v = m
				}
			}
		default:
			t.Fatalf("%s: nothing at %q", strings.Join(path[:i], "."), p)
		}
	}
	return v
}

// parts takes a copy of the Gateway's config dump apart (split).
func parts(t *testing.T, tr *Translation) *dumpParts {
	t.Helper()
	raw, err := json.Marshal(tr.XDS[Gateway])
	if err != nil {
		t.Fatal(err)
	}
	var dump map[string]any // a copy: split edits it
	if err := json.Unmarshal(raw, &dump); err != nil {
		t.Fatal(err)
	}
	d, err := split(dump)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Envoy Gateway accepts every shipped object as written: no policy left
// unattached, no reference unresolved.
func TestShippedResourcesAreAccepted(t *testing.T) {
	tr := shippedTranslation(t)
	if bad := tr.NotAccepted(); len(bad) > 0 {
		t.Fatalf("not accepted:\n%s", strings.Join(bad, "\n"))
	}
	for _, kind := range []string{"envoyExtensionPolicies", "clientTrafficPolicies", "httpRoutes", "backends"} {
		if objs, _ := tr.Resources[kind].([]any); len(objs) == 0 {
			t.Errorf("no %s in the translation", kind)
		}
	}
}

// What docs/deploy.md and tokenmeter.yaml say of the Envoy that Envoy
// Gateway makes of the resources, held to egctl's translation.
func TestTranslationIsWhatTheDocsSay(t *testing.T) {
	d := parts(t, shippedTranslation(t))
	var listener map[string]any
	for _, l := range d.listeners {
		if str(l, "name") == Listener {
			listener = l
		}
	}
	hcm := at(t, listener, "defaultFilterChain", "filters", "name=envoy.filters.network.http_connection_manager", "typedConfig")
	var names []string
	for _, f := range at(t, hcm, "httpFilters").([]any) {
		names = append(names, str(f.(map[string]any), "name"))
	}
	if want := []string{GateFilter, ObserverFilter, "envoy.filters.http.router"}; !slices.Equal(names, want) {
		t.Fatalf("http filters %v, want %v (the gate first)", names, want)
	}
	gate := at(t, hcm, "httpFilters", "name="+GateFilter, "typedConfig")
	observer := at(t, hcm, "httpFilters", "name="+ObserverFilter, "typedConfig")
	route := at(t, d.routes[Listener], "virtualHosts", "name="+Listener+"/*", "routes", "name=httproute/llm/openai/rule/0/match/0/*")
	for _, tt := range []struct {
		what string
		v    any
		want any
	}{
		// The gate: headers, then the whole body; no response; fails closed.
		{"gate request headers", at(t, gate, "processingMode", "requestHeaderMode"), "SEND"},
		{"gate request body", at(t, gate, "processingMode", "requestBodyMode"), "BUFFERED"},
		{"gate response headers", at(t, gate, "processingMode", "responseHeaderMode"), "SKIP"},
		{"gate response body (none: tokenmeter's sign of a gate)", at(t, gate, "processingMode", "responseBodyMode"), nil},
		{"gate body without waiting (Envoy Gateway cannot set it)", at(t, gate, "sendBodyWithoutWaitingForHeaderResponse"), nil},
		{"gate fails closed", at(t, gate, "failureModeAllow"), nil},
		{"gate status on error", at(t, gate, "statusOnError", "code"), "ServiceUnavailable"},
		{"gate message timeout", at(t, gate, "messageTimeout"), "2s"},
		{"gate writes", at(t, gate, "metadataOptions", "receivingNamespaces", "untyped"), []any{"tokenmeter", "tokenmeter.handoff", "tokenmeter.feedback"}},
		{"gate stream metadata (none: Envoy Gateway cannot set it)", at(t, gate, "grpcService", "initialMetadata"), nil},
		// The observer: request headers, the response, never waited for.
		{"observer observability mode", at(t, observer, "observabilityMode"), true},
		{"observer fails open", at(t, observer, "failureModeAllow"), true},
		{"observer request headers", at(t, observer, "processingMode", "requestHeaderMode"), "SEND"},
		{"observer request body", at(t, observer, "processingMode", "requestBodyMode"), nil},
		{"observer response headers", at(t, observer, "processingMode", "responseHeaderMode"), "SEND"},
		{"observer response body", at(t, observer, "processingMode", "responseBodyMode"), "STREAMED"},
		{"observer reads", at(t, observer, "metadataOptions", "forwardingNamespaces", "untyped"), []any{"tokenmeter.handoff"}},
		// The body limit agrees with tokenmeter's (envoy/limits_test.go).
		{"listener buffer limit", at(t, listener, "perConnectionBufferLimitBytes"), float64(config.DefaultMaxMessageBytes + config.EnvoyBufferHeadroom)},
		// A stream lasts as long as the model talks.
		{"route timeout", at(t, route, "route", "timeout"), "0s"},
		// The client's x-tokenmeter-* headers go before any filter, as in
		// envoy.yaml (envoy/trust_test.go): the ClientTrafficPolicy's
		// earlyRequestHeaders, Envoy's early header mutation.
		{"client headers removed early", at(t, hcm, "earlyHeaderMutationExtensions", "name=envoy.http.early_header_mutation.header_mutation", "typedConfig", "mutations"),
			[]any{map[string]any{"removeOnMatch": map[string]any{"keyMatcher": map[string]any{"prefix": envoy.HeaderPrefix}}}}},
	} {
		if fmt.Sprint(tt.v) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %v, want %v", tt.what, tt.v, tt.want)
		}
	}
	for _, cl := range d.clusters {
		if name := str(cl, "name"); strings.HasPrefix(name, ExtProcClusterPrefix) {
			if got := at(t, cl, "circuitBreakers", "thresholds").([]any)[0].(map[string]any)["maxRequests"]; got != float64(100000) {
				t.Errorf("cluster %s: max requests %v, want 100000 (a stream per request in flight)", name, got)
			}
		}
	}
	checkRouteHeaders(t, route)
}

// checkRouteHeaders holds the route's header edits to envoy.yaml's: the
// default attribution headers removed before the provider, and the same
// budget feedback headers added from the gate's metadata.
func checkRouteHeaders(t *testing.T, route any) {
	t.Helper()
	var removed []string
	for _, h := range at(t, route, "requestHeadersToRemove").([]any) {
		removed = append(removed, h.(string))
	}
	for _, d := range attribution.DefaultDimensions() {
		if !slices.Contains(removed, d.Header) {
			t.Errorf("the route does not remove attribution header %s", d.Header)
		}
	}
	added := map[string]string{}
	for _, h := range at(t, route, "responseHeadersToAdd").([]any) {
		hv := at(t, h, "header").(map[string]any)
		added[str(hv, "key")] = str(hv, "value")
	}
	want := envoyYAMLFeedback(t)
	if len(added) != len(want) {
		t.Errorf("the route adds %d response headers, envoy.yaml %d: %v", len(added), len(want), added)
	}
	for k, v := range want {
		if added[k] != v {
			t.Errorf("response header %s = %q, want %q as in envoy.yaml", k, added[k], v)
		}
	}
}

// envoyYAMLFeedback is envoy.yaml's response_headers_to_add: key → value.
func envoyYAMLFeedback(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(envoy.Dir(), "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	walk(cfg, func(m map[string]any) {
		for _, h := range list(m, "response_headers_to_add") {
			hv := object(h.(map[string]any), "header")
			out[str(hv, "key")] = str(hv, "value")
		}
	})
	if len(out) == 0 {
		t.Fatal("envoy.yaml adds no response headers")
	}
	return out
}

// A mistake in the resources fails the translation or leaves an object
// not accepted: egctl checks every object against its CRD's schema (unknown
// fields, CEL rules), and Envoy Gateway reports what it cannot attach or
// resolve in status. Each case is one edit of tokenmeter.yaml.
func TestMistakesAreCaught(t *testing.T) {
	for _, tt := range []struct {
		name, old, new string
		wantErr        string // in egctl's error; empty: in NotAccepted
	}{
		{"misspelled_field", "writableNamespaces:", "writeableNamespaces:", "writeableNamespaces"},
		{"observer_buffered_in_shadow_mode", "      response:\n        body: Streamed", "      response:\n        body: Buffered",
			"If shadowMode is enabled, body processing mode must be Streamed or unset"},
		{"reference_grant_for_another_namespace", "    kind: EnvoyExtensionPolicy\n    namespace: llm", "    kind: EnvoyExtensionPolicy\n    namespace: elsewhere", ""},
		{"policy_on_a_misspelled_route", "    kind: HTTPRoute\n    name: openai", "    kind: HTTPRoute\n    name: opneai", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := documents(func(name string) ([]byte, error) {
				b, err := readFile(name)
				if err != nil || name != "tokenmeter.yaml" {
					return b, err
				}
				if !strings.Contains(string(b), tt.old) {
					return nil, fmt.Errorf("tokenmeter.yaml has no %q", tt.old)
				}
				return []byte(strings.Replace(string(b), tt.old, tt.new, 1)), nil
			}, withClusterIP)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := translate(t, docs)
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr == "" && len(tr.NotAccepted()) == 0:
				t.Fatal("accepted as it is")
			case tt.wantErr == "":
				t.Logf("not accepted: %s", strings.Join(tr.NotAccepted(), "; "))
			}
		})
	}
}

// The arrangement runs on the pinned Envoy: Static's bootstrap passes
// Envoy's own validation, reads nothing from ADS, and points every cluster
// of the translation at the addresses given.
func TestStaticBootstrapValidates(t *testing.T) {
	cfg, listener, err := Arrangement(18081, 15051)
	if err != nil {
		t.Fatal(err)
	}
	if listener != Listener || !strings.Contains(string(cfg), `"name": "`+Listener+`"`) {
		t.Fatalf("listener %q not in the bootstrap", listener)
	}
	var boot map[string]any
	if err := json.Unmarshal(cfg, &boot); err != nil {
		t.Fatal(err)
	}
	ports := map[string]float64{}
	for _, c := range list(object(boot, "staticResources"), "clusters") {
		cl := c.(map[string]any)
		walk(object(cl, "loadAssignment"), func(m map[string]any) {
			if sa := object(object(m, "address"), "socketAddress"); sa != nil {
				ports[str(cl, "name")] = sa["portValue"].(float64)
			}
		})
	}
	for name, want := range map[string]float64{ExtProcClusterPrefix + "0": 15051, ExtProcClusterPrefix + "1": 15051, ProviderCluster: 18081} {
		if ports[name] != want {
			t.Errorf("cluster %s at port %v, want %v", name, ports[name], want)
		}
	}
	bin, err := envoy.Binary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "envoy.json")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--mode", "validate", "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("envoy --mode validate: %v\n%s", err, out)
	}
}

// Static refuses what it cannot make static: the shipped provider Backend's
// TLS reads the system CAs from Envoy Gateway's xDS server (SDS over ADS),
// and a cluster without an address here would point at a cluster IP.
func TestStaticRefuses(t *testing.T) {
	everywhere := func(string) (string, int, bool) { return "127.0.0.1", 1, true }
	for _, tt := range []struct {
		name     string
		endpoint Endpoint
		want     string
	}{
		{"sds_over_ads", everywhere, "still reads from ADS"},
		{"no_address", func(c string) (string, int, bool) { return "127.0.0.1", 1, c != ProviderCluster }, "no address for it"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(shippedTranslation(t).XDS[Gateway])
			if err != nil {
				t.Fatal(err)
			}
			var dump map[string]any // a copy: Static edits it
			if err := json.Unmarshal(raw, &dump); err != nil {
				t.Fatal(err)
			}
			if _, err := Static(dump, tt.endpoint); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
