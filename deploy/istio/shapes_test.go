package istio

import (
	"fmt"
	"net"
	"strconv"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// providerHosts are the hosts of providers.yaml's ServiceEntry.
func providerHosts(t *testing.T) []string {
	t.Helper()
	for _, o := range loadAll(t) {
		if o.kind == "ServiceEntry" && o.name == "llm-providers" {
			return o.spec.(*networkingapi.ServiceEntry).GetHosts()
		}
	}
	t.Fatal("no ServiceEntry llm-providers")
	return nil
}

// sidecarShape is a sidecar's outbound HTTP listener on port 80 as Istio
// builds it with providers.yaml applied: a virtual host per provider, and
// one for another service on port 80 (other.internal), which tokenmeter must
// leave alone.
func sidecarShape(t *testing.T) shape {
	var vhosts []vhost
	for _, h := range providerHosts(t) {
		vhosts = append(vhosts, sidecarVhost(h, 80))
	}
	vhosts = append(vhosts, sidecarVhost("other.internal", 80))
	return shape{
		name: "sidecar", filter: "tokenmeter-sidecar", context: networkingapi.EnvoyFilter_SIDECAR_OUTBOUND,
		port: 80, routeName: "80", vhosts: vhosts,
	}
}

// gatewayTargetPort maps a Gateway server's port to the port Istio's
// gateway listens on: the targetPort of istio's default gateway Services
// (80 to 8080, 443 to 8443), which is where Istio binds the listener.
var gatewayTargetPort = map[uint32]uint32{80: 8080, 443: 8443}

// gatewayShape is the HTTPS listener Istio builds for the first server of
// the Gateway named gateway: route configuration
// https.<port>.<port name>.<gateway>.<namespace>, a virtual host
// "<host>:<port>" per host of the VirtualService bound to it, routed where
// the VirtualService says (the tests' vhosts argument).
func gatewayShape(t *testing.T, name, filter, gateway string, vhosts func(port uint32) []vhost) shape {
	t.Helper()
	for _, o := range loadAll(t) {
		if o.kind != "Gateway" || o.name != gateway {
			continue
		}
		srv := o.spec.(*networkingapi.Gateway).GetServers()[0]
		port := srv.GetPort().GetNumber()
		return shape{
			name: name, filter: filter, context: networkingapi.EnvoyFilter_GATEWAY,
			port:      gatewayTargetPort[port],
			routeName: fmt.Sprintf("https.%d.%s.%s.%s", port, srv.GetPort().GetName(), o.name, o.namespace),
			vhosts:    vhosts(port),
		}
	}
	t.Fatalf("no Gateway %q", gateway)
	return shape{}
}

// egressShape: the egress gateway's server for the providers; each
// provider's route goes to its ServiceEntry port 80, where the gateway
// originates TLS (providers.yaml's DestinationRules).
func egressShape(t *testing.T) shape {
	return gatewayShape(t, "egress gateway", "tokenmeter-egress-gateway", "llm-egress", func(port uint32) []vhost {
		var out []vhost
		for _, h := range providerHosts(t) {
			out = append(out, vhost{name: net.JoinHostPort(h, strconv.Itoa(int(port))), domains: []string{h}, cluster: "outbound|80||" + h})
		}
		return out
	})
}

// ingressShape: the ingress gateway's server for llm.example.com, whose
// VirtualService sends the OpenAI API to the provider with its authority
// rewritten.
func ingressShape(t *testing.T) shape {
	return gatewayShape(t, "ingress gateway", "tokenmeter-ingress-gateway", "llm-ingress", func(port uint32) []vhost {
		return []vhost{{
			name: net.JoinHostPort("llm.example.com", strconv.Itoa(int(port))), domains: []string{"llm.example.com"},
			cluster: "outbound|80||api.openai.com", rewrite: "api.openai.com",
		}}
	})
}

// patched builds s's listener and applies its EnvoyFilter, failing on a
// patch that applies nowhere or a result Envoy's own validation rules
// refuse.
func patched(t *testing.T, s shape) *listenerv3.Listener {
	t.Helper()
	ef := proto.Clone(envoyFilter(t, s.filter)).(*networkingapi.EnvoyFilter)
	if s.omit != nil {
		kept := ef.ConfigPatches[:0]
		for _, p := range ef.GetConfigPatches() {
			if !s.omit(p) {
				kept = append(kept, p)
			}
		}
		ef.ConfigPatches = kept
	}
	ps, err := newPatchSet(ef)
	if err != nil {
		t.Fatal(err)
	}
	l := s.listener()
	if err := ps.applyListener(s.context, l); err != nil {
		t.Fatal(err)
	}
	for i, n := range ps.applied {
		p := ps.ef.GetConfigPatches()[i]
		if n == 0 || (p.GetApplyTo() == networkingapi.EnvoyFilter_VIRTUAL_HOST && n != 1) {
			t.Errorf("%s: patch %d (%s %s) applied %d times", s.filter, i, p.GetApplyTo(), p.GetPatch().GetOperation(), n)
		}
	}
	if err := validate(l); err != nil {
		t.Fatalf("%s: patched listener: %v", s.filter, err)
	}
	return l
}

// validate runs Envoy's validation rules (protoc-gen-validate) on the
// listener, its HTTP connection manager and every HTTP filter's config: the
// rules do not reach into an Any, so each is unpacked.
func validate(l *listenerv3.Listener) error {
	if err := l.ValidateAll(); err != nil {
		return err
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return err
	}
	if err := hcm.ValidateAll(); err != nil {
		return err
	}
	for _, f := range hcm.GetHttpFilters() {
		m, err := f.GetTypedConfig().UnmarshalNew()
		if err != nil {
			return fmt.Errorf("%s: %w", f.GetName(), err)
		}
		if v, ok := m.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				return fmt.Errorf("%s: %w", f.GetName(), err)
			}
		}
	}
	return nil
}

// hcmOf returns the patched listener's HTTP connection manager.
func hcmOf(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{}
	if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	return proto.Clone(hcm).(*hcmv3.HttpConnectionManager)
}
