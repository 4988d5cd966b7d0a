package istio

import (
	"fmt"
	"strconv"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// The EnvoyFilter semantics the shipped resources use, and only those,
// applied as Istio's pilot/pkg/networking/core/envoyfilter applies them
// (read there, not copied):
//
//   - a patch applies when its context is the proxy's (or ANY);
//   - listener match: name, and portNumber against the listener's address;
//     filterChain.filter.name against the network filter's name;
//     filterChain.filter.subFilter.name against an HTTP filter's name;
//   - LISTENER MERGE: proto merge of the value into the listener;
//   - NETWORK_FILTER MERGE: both typed_configs unpacked, the patch's merged
//     into the filter's (Istio's MergeAnyWithAny), repacked;
//   - HTTP_FILTER INSERT_BEFORE: before the first filter the subFilter names
//     (at the front when none is named); INSERT_FIRST: at the front; patches
//     in their order, so three INSERT_BEFORE router keep their order;
//   - VIRTUAL_HOST MERGE: route configuration match by name, and for a
//     sidecar portNumber against the route's name ("80"); vhost match by name
//     and domainName; proto merge of the value (repeated fields append, map
//     entries are set).
//
// Anything else a resource asks for is an error here, so the tests cannot
// silently prove less than a resource does. The route configuration is the
// HCM's inline route_config where Istio serves it over RDS: the patches are
// the same.
type patchSet struct {
	ef     *networkingapi.EnvoyFilter
	values []proto.Message
	// applied counts, per patch, the objects it changed: a patch that
	// applies nowhere (a misspelt host, a wrong port) is a bug.
	applied []int
}

func newPatchSet(ef *networkingapi.EnvoyFilter) (*patchSet, error) {
	ps := &patchSet{ef: ef, applied: make([]int, len(ef.GetConfigPatches()))}
	for i, p := range ef.GetConfigPatches() {
		if err := supported(p); err != nil {
			return nil, fmt.Errorf("patch %d: %w", i, err)
		}
		v, err := patchValue(p)
		if err != nil {
			return nil, fmt.Errorf("patch %d: %w", i, err)
		}
		ps.values = append(ps.values, v)
	}
	return ps, nil
}

func supported(p *networkingapi.EnvoyFilter_EnvoyConfigObjectPatch) error {
	op := p.GetPatch().GetOperation()
	ok := map[networkingapi.EnvoyFilter_ApplyTo][]networkingapi.EnvoyFilter_Patch_Operation{
		networkingapi.EnvoyFilter_LISTENER:       {networkingapi.EnvoyFilter_Patch_MERGE},
		networkingapi.EnvoyFilter_NETWORK_FILTER: {networkingapi.EnvoyFilter_Patch_MERGE},
		networkingapi.EnvoyFilter_HTTP_FILTER:    {networkingapi.EnvoyFilter_Patch_INSERT_BEFORE, networkingapi.EnvoyFilter_Patch_INSERT_FIRST},
		networkingapi.EnvoyFilter_VIRTUAL_HOST:   {networkingapi.EnvoyFilter_Patch_MERGE},
	}[p.GetApplyTo()]
	found := false
	for _, o := range ok {
		found = found || o == op
	}
	if !found {
		return fmt.Errorf("%s %s: not implemented by these tests", p.GetApplyTo(), op)
	}
	m := p.GetMatch()
	if m.GetProxy() != nil || m.GetCluster() != nil {
		return fmt.Errorf("match on proxy or cluster: not implemented by these tests")
	}
	if fc := m.GetListener().GetFilterChain(); fc != nil &&
		(fc.GetName() != "" || fc.GetSni() != "" || fc.GetTransportProtocol() != "" || fc.GetApplicationProtocols() != "" || fc.GetDestinationPort() != 0) {
		return fmt.Errorf("filter chain match beyond its filter: not implemented by these tests")
	}
	if rc := m.GetRouteConfiguration(); rc != nil && (rc.GetPortName() != "" || rc.GetGateway() != "" || rc.GetVhost().GetRoute() != nil) {
		return fmt.Errorf("route configuration match on port name, gateway or route: not implemented by these tests")
	}
	if rc := m.GetRouteConfiguration(); rc != nil && rc.GetPortNumber() != 0 && m.GetContext() == networkingapi.EnvoyFilter_GATEWAY {
		return fmt.Errorf("a gateway's route port match (Istio maps it through the gateway's Service): not implemented by these tests")
	}
	return nil
}

// patches returns the indexes of the patches of kind applyTo that apply in
// ctx.
func (ps *patchSet) patches(ctx networkingapi.EnvoyFilter_PatchContext, applyTo networkingapi.EnvoyFilter_ApplyTo) []int {
	var out []int
	for i, p := range ps.ef.GetConfigPatches() {
		c := p.GetMatch().GetContext()
		if p.GetApplyTo() == applyTo && (c == ctx || c == networkingapi.EnvoyFilter_ANY) {
			out = append(out, i)
		}
	}
	return out
}

func (ps *patchSet) listenerMatches(i int, l *listenerv3.Listener) bool {
	m := ps.ef.GetConfigPatches()[i].GetMatch().GetListener()
	if m == nil {
		return true
	}
	if m.GetName() != "" && m.GetName() != l.GetName() {
		return false
	}
	return m.GetPortNumber() == 0 || m.GetPortNumber() == l.GetAddress().GetSocketAddress().GetPortValue()
}

func (ps *patchSet) filterMatches(i int, f *listenerv3.Filter) bool {
	name := ps.ef.GetConfigPatches()[i].GetMatch().GetListener().GetFilterChain().GetFilter().GetName()
	return name == "" || name == f.GetName()
}

// applyListener applies the patches of ctx to l and to the inline route
// configuration of its HTTP connection managers.
func (ps *patchSet) applyListener(ctx networkingapi.EnvoyFilter_PatchContext, l *listenerv3.Listener) error {
	for _, i := range ps.patches(ctx, networkingapi.EnvoyFilter_LISTENER) {
		if ps.listenerMatches(i, l) {
			proto.Merge(l, ps.values[i])
			ps.applied[i]++
		}
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if err := ps.applyNetworkFilter(ctx, l, f); err != nil {
				return err
			}
		}
	}
	return nil
}

func (ps *patchSet) applyNetworkFilter(ctx networkingapi.EnvoyFilter_PatchContext, l *listenerv3.Listener, f *listenerv3.Filter) error {
	for _, i := range ps.patches(ctx, networkingapi.EnvoyFilter_NETWORK_FILTER) {
		if !ps.listenerMatches(i, l) || !ps.filterMatches(i, f) {
			continue
		}
		merged, err := mergeAny(f.GetTypedConfig(), ps.values[i].(*listenerv3.Filter).GetTypedConfig())
		if err != nil {
			return fmt.Errorf("patch %d: %w", i, err)
		}
		f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: merged}
		ps.applied[i]++
	}
	if f.GetName() != "envoy.filters.network.http_connection_manager" {
		return nil
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return fmt.Errorf("listener %s: %w", l.GetName(), err)
	}
	for _, i := range ps.patches(ctx, networkingapi.EnvoyFilter_HTTP_FILTER) {
		if ps.listenerMatches(i, l) && ps.filterMatches(i, f) {
			hcm.HttpFilters = ps.insertHTTPFilter(i, hcm.HttpFilters)
		}
	}
	if err := ps.applyRoutes(ctx, hcm.GetRouteConfig()); err != nil {
		return err
	}
	a, err := anypb.New(hcm)
	if err != nil {
		return fmt.Errorf("repack %s: %w", l.GetName(), err)
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
	return nil
}

func (ps *patchSet) insertHTTPFilter(i int, filters []*hcmv3.HttpFilter) []*hcmv3.HttpFilter {
	p := ps.ef.GetConfigPatches()[i]
	value := proto.Clone(ps.values[i]).(*hcmv3.HttpFilter)
	at := 0
	if sub := p.GetMatch().GetListener().GetFilterChain().GetFilter().GetSubFilter().GetName(); sub != "" && p.GetPatch().GetOperation() == networkingapi.EnvoyFilter_Patch_INSERT_BEFORE {
		at = -1
		for k, f := range filters {
			if f.GetName() == sub {
				at = k
				break
			}
		}
		if at < 0 {
			return filters // Istio: no match, nothing inserted
		}
	}
	ps.applied[i]++
	return append(filters[:at:at], append([]*hcmv3.HttpFilter{value}, filters[at:]...)...)
}

func (ps *patchSet) applyRoutes(ctx networkingapi.EnvoyFilter_PatchContext, rc *routev3.RouteConfiguration) error {
	if rc == nil {
		return fmt.Errorf("the HCM has no inline route_config")
	}
	for _, i := range ps.patches(ctx, networkingapi.EnvoyFilter_VIRTUAL_HOST) {
		m := ps.ef.GetConfigPatches()[i].GetMatch().GetRouteConfiguration()
		if m.GetName() != "" && m.GetName() != rc.GetName() {
			continue
		}
		if port, _ := strconv.Atoi(rc.GetName()); m.GetPortNumber() != 0 && int(m.GetPortNumber()) != port {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			if vm := m.GetVhost(); vm != nil && ((vm.GetName() != "" && vm.GetName() != vh.GetName()) ||
				(vm.GetDomainName() != "" && !contains(vh.GetDomains(), vm.GetDomainName()))) {
				continue
			}
			proto.Merge(vh, ps.values[i])
			ps.applied[i]++
		}
	}
	return nil
}

// mergeAny merges src into a copy of dst, both unpacked as dst's type: an
// Any of another type is an error (Istio then keeps dst and logs).
func mergeAny(dst, src *anypb.Any) (*anypb.Any, error) {
	if dst.GetTypeUrl() != src.GetTypeUrl() {
		return nil, fmt.Errorf("merge %s into %s: types differ", src.GetTypeUrl(), dst.GetTypeUrl())
	}
	d, err := dst.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", dst.GetTypeUrl(), err)
	}
	s, err := src.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", src.GetTypeUrl(), err)
	}
	proto.Merge(d, s)
	out, err := anypb.New(d)
	if err != nil {
		return nil, fmt.Errorf("repack %s: %w", dst.GetTypeUrl(), err)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
