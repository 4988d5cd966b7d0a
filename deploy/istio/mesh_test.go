package istio

import (
	"fmt"
	"math"
	"net"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	grpcstatsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_stats/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingapi "istio.io/api/networking/v1alpha3"
)

// An Istio-shaped proxy: the HTTP listener, route configuration and
// clusters Istio (pilot/pkg/networking/core, read for the facts) gives a
// sidecar or a gateway, reduced to what upstream Envoy runs. What Istio adds
// that only its own proxy build has (istio.metadata_exchange, istio.alpn,
// istio.stats) is left out; the filters that remain are Istio's, in its
// order, ending in the router, which is what the patches insert before.

// TokenmeterCluster is the cluster Istio builds for the tokenmeter Service
// (namespace tokenmeter, port 50051): outbound|<port>||<service FQDN>. The
// EnvoyFilters name it; the tests check they do.
const TokenmeterCluster = "outbound|50051||tokenmeter.tokenmeter.svc.cluster.local"

type vhost struct {
	name    string   // Istio's: "<host>:<port>"
	domains []string // a sidecar's: host and host:port; a gateway's: the host
	cluster string   // outbound|<port>||<host>
	rewrite string   // a VirtualService's rewrite.authority, if any
}

// shape is one proxy the EnvoyFilters patch.
type shape struct {
	name      string // the subtest's
	filter    string // the EnvoyFilter's metadata.name
	context   networkingapi.EnvoyFilter_PatchContext
	port      uint32 // the listener's (a gateway's is its Service's targetPort)
	routeName string // "80" for a sidecar, http.<port> or https.<port>.<port name>.<gateway>.<namespace> for a gateway
	vhosts    []vhost
	// omit, when set, drops the patches it returns true for: a test's
	// counterfactual, to show what a patch is for.
	omit func(*networkingapi.EnvoyFilter_EnvoyConfigObjectPatch) bool
}

func (s shape) gateway() bool { return s.context == networkingapi.EnvoyFilter_GATEWAY }

// sidecarVhost is how Istio names a sidecar's virtual host for a service
// host on a port: util.DomainName, "host:port", with host and host:port as
// domains.
func sidecarVhost(host string, port int) vhost {
	name := net.JoinHostPort(host, strconv.Itoa(port))
	return vhost{name: name, domains: []string{host, name}, cluster: fmt.Sprintf("outbound|%d||%s", port, host)}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err) // only for messages built here
	}
	return a
}

// istioFilters are the HTTP filters Istio puts in every HTTP connection
// manager that upstream Envoy also has, in Istio's order: gRPC stats,
// then fault and CORS (for routes' typed_per_filter_config), the router last.
func istioFilters() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{
		{Name: "envoy.filters.http.grpc_stats", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&grpcstatsv3.FilterConfig{
			EmitFilterState:        true,
			PerMethodStatSpecifier: &grpcstatsv3.FilterConfig_StatsForAllMethods{StatsForAllMethods: wrapperspb.Bool(false)},
		})}},
		{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}},
		{Name: "envoy.filters.http.cors", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})}},
		{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}},
	}
}

// istioRoute is the route Istio builds for a host with no VirtualService
// (or one without retries or timeouts): no timeout, its default retries.
func istioRoute(v vhost) *routev3.Route {
	action := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: v.cluster},
		Timeout:          durationpb.New(0),
		RetryPolicy: &routev3.RetryPolicy{
			RetryOn:    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
			NumRetries: wrapperspb.UInt32(2),
			RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
				Name:       "envoy.retry_host_predicates.previous_hosts",
				ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: mustAny(&previoushostsv3.PreviousHostsPredicate{})},
			}},
			HostSelectionRetryMaxAttempts: 5,
			RetriableStatusCodes:          []uint32{503},
		},
		MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(0), GrpcTimeoutHeaderMax: durationpb.New(0)},
	}
	if v.rewrite != "" {
		action.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: v.rewrite}
	}
	return &routev3.Route{
		Name:      "default",
		Match:     &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action:    &routev3.Route_Route{Route: action},
		Decorator: &routev3.Decorator{Operation: v.name + "/*"},
	}
}

// listener builds the shape's HTTP listener as Istio does: named
// 0.0.0.0_<port>, stat prefix <direction>_<name> and Istio's ";"
// delimiter, websocket upgrades, no stream idle timeout, path normalisation;
// a sidecar's does not bind (the outbound capture listener hands it
// connections), a gateway's uses the remote address.
func (s shape) listener() *listenerv3.Listener {
	var vhosts []*routev3.VirtualHost
	for _, v := range s.vhosts {
		vhosts = append(vhosts, &routev3.VirtualHost{
			Name: v.name, Domains: v.domains, Routes: []*routev3.Route{istioRoute(v)}, IncludeRequestAttemptCount: true,
		})
	}
	name := fmt.Sprintf("0.0.0.0_%d", s.port)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:                   "outbound_" + name + ";",
		CodecType:                    hcmv3.HttpConnectionManager_AUTO,
		UseRemoteAddress:             wrapperspb.Bool(s.gateway()),
		NormalizePath:                wrapperspb.Bool(true),
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_KEEP_UNCHANGED,
		UpgradeConfigs:               []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
		StreamIdleTimeout:            durationpb.New(0),
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: s.routeName, VirtualHosts: vhosts, ValidateClusters: wrapperspb.Bool(false),
		}},
		HttpFilters: istioFilters(),
	}
	l := &listenerv3.Listener{
		Name:             name,
		Address:          socket("0.0.0.0", s.port),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}}}},
	}
	if !s.gateway() {
		l.BindToPort = wrapperspb.Bool(false)
	}
	return l
}

func socket(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// istioThresholds are Istio's default circuit breakers: unlimited, so the
// tokenmeter cluster needs none of envoy.yaml's raised ones.
func istioThresholds() *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxRetries: wrapperspb.UInt32(math.MaxUint32), MaxRequests: wrapperspb.UInt32(math.MaxUint32),
		MaxConnections: wrapperspb.UInt32(math.MaxUint32), MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		TrackRemaining: true,
	}}}
}

// staticCluster is an Istio outbound cluster with its endpoints written in:
// Istio discovers them (EDS, or DNS for a ServiceEntry), and wraps the
// connection in mTLS (a mesh Service) or TLS (a DestinationRule's SIMPLE,
// for the providers). Here the endpoint is a local test server in clear.
func staticCluster(name, hostPort string, http2 bool) (*clusterv3.Cluster, error) {
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(10e9),
		CircuitBreakers:      istioThresholds(),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socket(host, uint32(port)),
			}}}},
		}}},
	}
	if http2 {
		// What Istio sets for a port whose protocol is gRPC, HTTP2 or
		// appProtocol kubernetes.io/h2c: ext_proc's gRPC needs HTTP/2.
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&upstreamhttpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		}
	}
	return c, nil
}

// bootstrap is the static Envoy config a test runs: the patched listener,
// made to bind a free local port under the name the harness waits for
// ("llm"; Istio's listener binds nothing, the capture listener hands it
// connections), and the clusters, every upstream (the providers' and
// others') pointing at upstream, tokenmeter's at grpcAddr.
func bootstrap(l *listenerv3.Listener, s shape, upstream, grpcAddr string) ([]byte, error) {
	l = proto.Clone(l).(*listenerv3.Listener)
	l.Name, l.Address, l.BindToPort = "llm", socket("127.0.0.1", 0), nil
	tm, err := staticCluster(TokenmeterCluster, grpcAddr, true)
	if err != nil {
		return nil, err
	}
	clusters := []*clusterv3.Cluster{tm}
	seen := map[string]bool{}
	for _, v := range s.vhosts {
		if seen[v.cluster] {
			continue
		}
		seen[v.cluster] = true
		c, err := staticCluster(v.cluster, upstream, false)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
	}
	b := &bootstrapv3.Bootstrap{
		Admin:           &bootstrapv3.Admin{Address: socket("127.0.0.1", 0)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Listeners: []*listenerv3.Listener{l}, Clusters: clusters},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	js, err := protojson.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return js, nil
}
