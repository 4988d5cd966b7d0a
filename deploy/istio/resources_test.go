package istio

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/config"
)

// Every resource decodes strictly, and the directory ships exactly these.
func TestResourcesDecodeStrictly(t *testing.T) {
	var got []string
	for _, o := range loadAll(t) {
		got = append(got, fmt.Sprintf("%s %s %s/%s", o.file, o.kind, o.namespace, o.name))
	}
	want := []string{
		"egress-gateway.yaml DestinationRule istio-system/egressgateway-llm",
		"egress-gateway.yaml EnvoyFilter istio-system/tokenmeter-egress-gateway",
		"egress-gateway.yaml Gateway istio-system/llm-egress",
		"egress-gateway.yaml VirtualService tokenmeter/llm-providers-via-egress",
		"ingress-gateway.yaml AuthorizationPolicy istio-system/llm-api-requires-jwt",
		"ingress-gateway.yaml EnvoyFilter istio-system/tokenmeter-ingress-gateway",
		"ingress-gateway.yaml Gateway istio-system/llm-ingress",
		"ingress-gateway.yaml RequestAuthentication istio-system/llm-api-jwt",
		"ingress-gateway.yaml VirtualService tokenmeter/llm-api",
		"providers.yaml DestinationRule tokenmeter/api-anthropic-com",
		"providers.yaml DestinationRule tokenmeter/api-openai-com",
		"providers.yaml DestinationRule tokenmeter/bedrock-runtime-us-east-1",
		"providers.yaml DestinationRule tokenmeter/bedrock-runtime-us-west-2",
		"providers.yaml DestinationRule tokenmeter/generativelanguage-googleapis-com",
		"providers.yaml ServiceEntry tokenmeter/llm-providers",
		"sidecar.yaml EnvoyFilter istio-system/tokenmeter-sidecar",
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("resources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The decoder is as strict as it claims: each mistake is refused.
func TestDecoderRefusesMistakes(t *testing.T) {
	const good = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: x, namespace: istio-system}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_OUTBOUND}
    patch:
      operation: INSERT_FIRST
      value:
        name: f
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor
          failure_mode_allow: true
`
	tests := []struct{ name, from, to, want string }{
		{"the good one passes", "", "", ""},
		{"unknown top-level field", "kind: EnvoyFilter\n", "kind: EnvoyFilter\nspecs: {}\n", "unknown field"},
		{"unknown metadata field", "namespace: istio-system}", "namespace: istio-system, nmae: y}", "unknown field"},
		{"unknown spec field", "  configPatches:", "  workloadSelectr: {}\n  configPatches:", "workloadSelectr"},
		{"unknown enum value", "SIDECAR_OUTBOUND", "SIDECAR_OUTBOUD", "SIDECAR_OUTBOUD"},
		{"duplicate key", "kind: EnvoyFilter\n", "kind: EnvoyFilter\nkind: EnvoyFilter\n", "already set"},
		{"unknown kind", "kind: EnvoyFilter", "kind: EnvoyFiltre", "not a kind"},
		{"status", "spec:\n", "status: {}\nspec:\n", "no status"},
		{"unknown field in a patch value", "failure_mode_allow", "failure_mode_alow", "failure_mode_alow"},
		{"unknown @type in a patch value", "ext_proc.v3.ExternalProcessor", "ext_proc.v3.ExternalProcesor", "ExternalProcesor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(good, tt.from, tt.to, 1)
			o, err := decodeDoc([]byte(doc))
			if err == nil {
				for _, p := range o.spec.(*networkingapi.EnvoyFilter).GetConfigPatches() {
					if _, err = patchValue(p); err != nil {
						break
					}
				}
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one naming %q", err, tt.want)
			}
		})
	}
}

// shipped is what envoy/envoy.yaml configures: the gate and the observer,
// the HCM's local_reply_config and the virtual host's header lists.
type shipped struct {
	filters map[string]proto.Message // typed configs by filter name
	hcm     *hcmv3.HttpConnectionManager
	vhost   *routev3.VirtualHost
}

func loadShipped(t *testing.T) shipped {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(envoy.Dir(), "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		t.Fatal(err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, b); err != nil {
		t.Fatalf("envoy.yaml: %v", err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	s := shipped{filters: map[string]proto.Message{}, hcm: hcm, vhost: hcm.GetRouteConfig().GetVirtualHosts()[0]}
	for _, f := range hcm.GetHttpFilters() {
		m, err := f.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		s.filters[f.GetName()] = m
	}
	return s
}

// Each EnvoyFilter's gate and observer are envoy.yaml's, but for the
// cluster (Istio's for the tokenmeter Service) and for being disabled on the
// listener; its local replies, feedback headers and removed attribution
// headers are envoy.yaml's; its listener buffer fits tokenmeter's body
// limit; its attribution filter removes every default dimension header.
func TestEnvoyFiltersAreEnvoyYAMLs(t *testing.T) {
	want := loadShipped(t)
	for _, name := range []string{"tokenmeter-sidecar", "tokenmeter-egress-gateway", "tokenmeter-ingress-gateway"} {
		t.Run(name, func(t *testing.T) {
			seen := map[string]bool{}
			for i, p := range envoyFilter(t, name).GetConfigPatches() {
				v, err := patchValue(p)
				if err != nil {
					t.Fatalf("patch %d: %v", i, err)
				}
				if err := checkAgainstShipped(v, want); err != nil {
					t.Errorf("patch %d (%s): %v", i, p.GetApplyTo(), err)
				}
				if f, ok := v.(*hcmv3.HttpFilter); ok {
					seen[f.GetName()] = true
				}
			}
			for _, f := range []string{"tokenmeter.attribution", envoy.GateFilter, envoy.ObserverFilter} {
				if !seen[f] {
					t.Errorf("no %s filter", f)
				}
			}
		})
	}
}

func checkAgainstShipped(v proto.Message, want shipped) error {
	switch v := v.(type) {
	case *listenerv3.Listener:
		if got, limit := v.GetPerConnectionBufferLimitBytes().GetValue(), uint32(config.DefaultMaxMessageBytes+config.EnvoyBufferHeadroom); got != limit {
			return fmt.Errorf("per_connection_buffer_limit_bytes %d, want %d", got, limit)
		}
	case *listenerv3.Filter:
		hcm := &hcmv3.HttpConnectionManager{}
		if err := v.GetTypedConfig().UnmarshalTo(hcm); err != nil {
			return err
		}
		if !proto.Equal(hcm.GetLocalReplyConfig(), want.hcm.GetLocalReplyConfig()) {
			return fmt.Errorf("local_reply_config differs from envoy.yaml's")
		}
	case *hcmv3.HttpFilter:
		return checkFilter(v, want)
	case *routev3.VirtualHost:
		return checkVhost(v, want)
	default:
		return fmt.Errorf("unexpected patch value %T", v)
	}
	return nil
}

func checkFilter(f *hcmv3.HttpFilter, want shipped) error {
	if !f.GetDisabled() {
		return fmt.Errorf("%s: not disabled on the listener", f.GetName())
	}
	m, err := f.GetTypedConfig().UnmarshalNew()
	if err != nil {
		return err
	}
	switch m := m.(type) {
	case *extprocv3.ExternalProcessor:
		if c := m.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != TokenmeterCluster {
			return fmt.Errorf("%s: cluster %q, want Istio's %q", f.GetName(), c, TokenmeterCluster)
		}
		m.GetGrpcService().GetEnvoyGrpc().ClusterName = "tokenmeter" // envoy.yaml's
		if !proto.Equal(m, want.filters[f.GetName()]) {
			return fmt.Errorf("%s differs from envoy.yaml's:\n got %v\nwant %v", f.GetName(), m, want.filters[f.GetName()])
		}
	case *headermutationv3.HeaderMutation:
		removed := map[string]bool{}
		for _, mu := range m.GetMutations().GetRequestMutations() {
			if r := mu.GetRemove(); r != "" {
				removed[r] = true
			}
		}
		for _, d := range attribution.DefaultDimensions() {
			if !removed[d.Header] {
				return fmt.Errorf("%s does not remove the client's %s", f.GetName(), d.Header)
			}
		}
	default:
		return fmt.Errorf("%s: unexpected filter %T", f.GetName(), m)
	}
	return nil
}

func checkVhost(v *routev3.VirtualHost, want shipped) error {
	if len(v.GetResponseHeadersToAdd()) != len(want.vhost.GetResponseHeadersToAdd()) {
		return fmt.Errorf("%d response headers, want envoy.yaml's %d", len(v.GetResponseHeadersToAdd()), len(want.vhost.GetResponseHeadersToAdd()))
	}
	for i, h := range v.GetResponseHeadersToAdd() {
		if !proto.Equal(h, want.vhost.GetResponseHeadersToAdd()[i]) {
			return fmt.Errorf("response header %d: %v, want envoy.yaml's %v", i, h, want.vhost.GetResponseHeadersToAdd()[i])
		}
	}
	if fmt.Sprint(v.GetRequestHeadersToRemove()) != fmt.Sprint(want.vhost.GetRequestHeadersToRemove()) {
		return fmt.Errorf("removes %v, want envoy.yaml's %v", v.GetRequestHeadersToRemove(), want.vhost.GetRequestHeadersToRemove())
	}
	var enabled []string
	for name, a := range v.GetTypedPerFilterConfig() {
		fc := &routev3.FilterConfig{}
		if err := a.UnmarshalTo(fc); err != nil || fc.GetConfig() == nil || fc.GetDisabled() {
			return fmt.Errorf("%s: want a FilterConfig with an empty config (enabled), got %v (%v)", name, fc, err)
		}
		enabled = append(enabled, name)
	}
	sort.Strings(enabled)
	if got := strings.Join(enabled, ","); got != "tokenmeter.attribution,tokenmeter.gate,tokenmeter.observer" {
		return fmt.Errorf("enables %s, want the attribution, the gate and the observer", got)
	}
	return nil
}

// The providers are listed alike everywhere: the ServiceEntry's hosts, a
// DestinationRule each (TLS on port 80, the host as SNI), a virtual host
// patch each in the sidecar and egress gateway EnvoyFilters, and a route
// each in the egress VirtualService, to the host itself.
func TestProviderListsAgree(t *testing.T) {
	hosts := providerHosts(t)
	want := strings.Join(sorted(hosts), " ")
	var drs, egressRoutes []string
	var egressHosts []string
	for _, o := range loadAll(t) {
		switch spec := o.spec.(type) {
		case *networkingapi.DestinationRule:
			if o.file != "providers.yaml" {
				continue
			}
			tls := spec.GetTrafficPolicy().GetPortLevelSettings()
			if len(tls) != 1 || tls[0].GetPort().GetNumber() != 80 || tls[0].GetTls().GetMode() != networkingapi.ClientTLSSettings_SIMPLE || tls[0].GetTls().GetSni() != spec.GetHost() {
				t.Errorf("DestinationRule %s: want TLS SIMPLE on port 80 with SNI %s, got %v", o.name, spec.GetHost(), tls)
			}
			drs = append(drs, spec.GetHost())
		case *networkingapi.VirtualService:
			if o.name != "llm-providers-via-egress" {
				continue
			}
			egressHosts = spec.GetHosts()
			for _, r := range spec.GetHttp()[1:] {
				a := r.GetMatch()[0].GetAuthority().GetExact()
				if d := r.GetRoute()[0].GetDestination(); d.GetHost() != a || d.GetPort().GetNumber() != 80 {
					t.Errorf("egress route for %s goes to %v", a, d)
				}
				egressRoutes = append(egressRoutes, a)
			}
		}
	}
	for what, got := range map[string][]string{
		"DestinationRules": drs, "egress VirtualService hosts": egressHosts, "egress gateway routes": egressRoutes,
		"sidecar virtual hosts":        vhostPatches(t, "tokenmeter-sidecar", ":80"),
		"egress gateway virtual hosts": vhostPatches(t, "tokenmeter-egress-gateway", ":80"),
	} {
		if g := strings.Join(sorted(got), " "); g != want {
			t.Errorf("%s: %s, want the ServiceEntry's %s", what, g, want)
		}
	}
}

// vhostPatches lists the hosts of an EnvoyFilter's VIRTUAL_HOST patches,
// their names without suffix.
func vhostPatches(t *testing.T, filter, suffix string) []string {
	var out []string
	for _, p := range envoyFilter(t, filter).GetConfigPatches() {
		if p.GetApplyTo() == networkingapi.EnvoyFilter_VIRTUAL_HOST {
			name := p.GetMatch().GetRouteConfiguration().GetVhost().GetName()
			if !strings.HasSuffix(name, suffix) {
				t.Errorf("%s: virtual host %q, want a name ending %q", filter, name, suffix)
			}
			out = append(out, strings.TrimSuffix(name, suffix))
		}
	}
	return out
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// Each EnvoyFilter, applied to its Istio-shaped listener: every patch lands
// (patched fails otherwise), the filters sit where they must (the
// attribution before the gate; on the ingress gateway before everything,
// ahead of Istio's JWT filter; the gate, then the observer, right before
// the router), and only the providers' virtual hosts enable them.
func TestPatchesApply(t *testing.T) {
	tests := []struct {
		s     shape
		order string
	}{
		{sidecarShape(t), "envoy.filters.http.grpc_stats envoy.filters.http.fault envoy.filters.http.cors tokenmeter.attribution tokenmeter.gate tokenmeter.observer envoy.filters.http.router"},
		{egressShape(t), "envoy.filters.http.grpc_stats envoy.filters.http.fault envoy.filters.http.cors tokenmeter.attribution tokenmeter.gate tokenmeter.observer envoy.filters.http.router"},
		{ingressShape(t), "tokenmeter.attribution envoy.filters.http.grpc_stats envoy.filters.http.fault envoy.filters.http.cors tokenmeter.gate tokenmeter.observer envoy.filters.http.router"},
	}
	for _, tt := range tests {
		t.Run(tt.s.name, func(t *testing.T) {
			l := patched(t, tt.s)
			if got := l.GetPerConnectionBufferLimitBytes().GetValue(); got != config.DefaultMaxMessageBytes+config.EnvoyBufferHeadroom {
				t.Errorf("listener buffer %d", got)
			}
			hcm := hcmOf(t, l)
			var names []string
			for _, f := range hcm.GetHttpFilters() {
				names = append(names, f.GetName())
				if strings.HasPrefix(f.GetName(), "tokenmeter.") != f.GetDisabled() {
					t.Errorf("%s: disabled %v", f.GetName(), f.GetDisabled())
				}
			}
			if got := strings.Join(names, " "); got != tt.order {
				t.Errorf("filters:\n %s\nwant\n %s", got, tt.order)
			}
			if hcm.GetLocalReplyConfig() == nil || len(hcm.GetLocalReplyConfig().GetMappers()) != 2 {
				t.Errorf("local_reply_config %v", hcm.GetLocalReplyConfig())
			}
			for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
				metered := len(vh.GetTypedPerFilterConfig()) == 3 && len(vh.GetResponseHeadersToAdd()) == 9
				if want := vh.GetName() != "other.internal:80"; metered != want {
					t.Errorf("virtual host %s: metered %v, want %v", vh.GetName(), metered, want)
				}
			}
		})
	}
}
