package envoygateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Endpoint gives the address every endpoint of a translated cluster moves
// to; ok false: the cluster has no place on this machine.
type Endpoint func(cluster string) (host string, port int, ok bool)

// Static turns one Gateway's config dump (Translation.XDS[Gateway]) into a
// bootstrap the pinned Envoy runs without an xDS server. Each change is
// either what the xDS server would do at run time or an address of this
// machine; nothing else of Envoy Gateway's output is touched:
//
//  1. The bootstrap's xDS client goes: dynamic_resources (ADS for listeners
//     and clusters), the xds_cluster that reaches Envoy Gateway, and the
//     local_cluster (EDS over ADS, only for zone-aware routing) with the
//     cluster_manager's local_cluster_name.
//  2. The dump's listeners become static listeners, and each HTTP
//     connection manager's RDS the route configuration it names (inline).
//  3. The dump's clusters become static clusters: an EDS cluster becomes
//     STATIC, with the endpoints the dump has for it.
//  4. Every endpoint of a dump cluster moves to endpoint(cluster) (a
//     Service's cluster IP means nothing here), and every listener and the
//     admin bind 127.0.0.1 on a port the kernel picks (tests run side by
//     side).
//
// Anything left that reads from ADS is an error: Envoy would wait for a
// server that never comes.
func Static(dump map[string]any, endpoint Endpoint) ([]byte, error) {
	d, err := split(dump)
	if err != nil {
		return nil, err
	}
	boot := d.bootstrap
	// 1.
	delete(boot, "dynamicResources")
	if cm := object(boot, "clusterManager"); cm != nil {
		delete(cm, "localClusterName")
		if len(cm) == 0 {
			delete(boot, "clusterManager")
		}
	}
	static := object(boot, "staticResources")
	if static == nil {
		return nil, errors.New("the bootstrap has no static_resources")
	}
	var clusters []any
	for _, c := range list(static, "clusters") {
		if name, _ := c.(map[string]any)["name"].(string); name != "xds_cluster" && name != "local_cluster" {
			clusters = append(clusters, c)
		}
	}
	// 2.
	listeners := list(static, "listeners")
	for _, l := range d.listeners {
		if err := inlineRoutes(l, d.routes); err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
	}
	// 3. and 4.
	for _, c := range d.clusters {
		if err := staticCluster(c, d.endpoints, endpoint); err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
	}
	static["listeners"], static["clusters"] = listeners, clusters
	for _, l := range listeners {
		loopback(object(l.(map[string]any), "address"))
	}
	loopback(object(object(boot, "admin"), "address"))
	if path := find(boot, "ads", ""); path != "" {
		return nil, fmt.Errorf("the static bootstrap still reads from ADS at %s", path)
	}
	return json.MarshalIndent(boot, "", "  ")
}

// dump is a config dump taken apart: the bootstrap, and the resources an
// xDS server would send, without their Any wrappers' @type.
type dumpParts struct {
	bootstrap           map[string]any
	listeners, clusters []map[string]any
	routes, endpoints   map[string]map[string]any // by name, by cluster name
}

func split(dump map[string]any) (*dumpParts, error) {
	d := &dumpParts{routes: map[string]map[string]any{}, endpoints: map[string]map[string]any{}}
	for _, c := range list(dump, "configs") {
		m, _ := c.(map[string]any)
		kind, _ := m["@type"].(string)
		switch kind[strings.LastIndexByte(kind, '.')+1:] {
		case "BootstrapConfigDump":
			d.bootstrap = object(m, "bootstrap")
		case "ListenersConfigDump":
			for _, l := range list(m, "dynamicListeners") {
				d.listeners = append(d.listeners, unwrap(object(object(l.(map[string]any), "activeState"), "listener")))
			}
		case "RoutesConfigDump":
			for _, r := range list(m, "dynamicRouteConfigs") {
				rc := unwrap(object(r.(map[string]any), "routeConfig"))
				d.routes[str(rc, "name")] = rc
			}
		case "ClustersConfigDump":
			for _, c := range list(m, "dynamicActiveClusters") {
				d.clusters = append(d.clusters, unwrap(object(c.(map[string]any), "cluster")))
			}
		case "EndpointsConfigDump":
			for _, e := range list(m, "dynamicEndpointConfigs") {
				cla := unwrap(object(e.(map[string]any), "endpointConfig"))
				d.endpoints[str(cla, "clusterName")] = cla
			}
		}
	}
	if d.bootstrap == nil || len(d.listeners) == 0 || len(d.clusters) == 0 {
		return nil, fmt.Errorf("not a config dump with a bootstrap, listeners and clusters (%d configs)", len(list(dump, "configs")))
	}
	return d, nil
}

// inlineRoutes replaces the RDS of each HTTP connection manager of listener
// l with the route configuration it names.
func inlineRoutes(l map[string]any, routes map[string]map[string]any) error {
	chains := list(l, "filterChains")
	if dc := object(l, "defaultFilterChain"); dc != nil {
		chains = append(chains, dc)
	}
	for _, fc := range chains {
		for _, f := range list(fc.(map[string]any), "filters") {
			tc := object(f.(map[string]any), "typedConfig")
			rds := object(tc, "rds")
			if rds == nil {
				continue
			}
			name := str(rds, "routeConfigName")
			rc, ok := routes[name]
			if !ok {
				return fmt.Errorf("listener %s: no route configuration %q in the dump", str(l, "name"), name)
			}
			delete(tc, "rds")
			tc["routeConfig"] = rc
		}
	}
	return nil
}

// staticCluster makes cluster c STATIC when it reads its endpoints from EDS,
// and moves its endpoints to endpoint's address.
func staticCluster(c map[string]any, endpoints map[string]map[string]any, endpoint Endpoint) error {
	name := str(c, "name")
	if eds := object(c, "edsClusterConfig"); eds != nil {
		svc := str(eds, "serviceName")
		if svc == "" {
			svc = name
		}
		cla, ok := endpoints[svc]
		if !ok {
			return fmt.Errorf("cluster %s: no endpoints for %q in the dump", name, svc)
		}
		delete(c, "edsClusterConfig")
		c["type"], c["loadAssignment"] = "STATIC", cla
	}
	host, port, ok := endpoint(name)
	if !ok {
		return fmt.Errorf("cluster %s: no address for it on this machine", name)
	}
	n := 0
	for _, group := range list(object(c, "loadAssignment"), "endpoints") {
		for _, lb := range list(group.(map[string]any), "lbEndpoints") {
			sa := object(object(object(lb.(map[string]any), "endpoint"), "address"), "socketAddress")
			if sa == nil {
				return fmt.Errorf("cluster %s: an endpoint without a socket address", name)
			}
			sa["address"], sa["portValue"] = host, port
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("cluster %s has no endpoints", name)
	}
	return nil
}

func loopback(addr map[string]any) {
	if sa := object(addr, "socketAddress"); sa != nil {
		sa["address"], sa["portValue"] = "127.0.0.1", 0
	}
}

// find returns the path of the first key named key under v, or "".
func find(v any, key, path string) string {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v[key]; ok {
			return path + "." + key
		}
		for k, c := range v {
			if p := find(c, key, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, c := range v {
			if p := find(c, key, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

func object(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	return v
}

func list(m map[string]any, key string) []any {
	v, _ := m[key].([]any)
	return v
}

func str(m map[string]any, key string) string {
	v, _ := m[key].(string)
	return v
}

// unwrap drops an Any's @type: the static field holds the message itself.
func unwrap(m map[string]any) map[string]any {
	delete(m, "@type")
	return m
}

// Arrangement is a testbed.Arrangement: the Envoy that Envoy Gateway would
// run for Input, in front of the mock provider on upstreamPort and
// tokenmeter on extProcPort, and the name of its listener. egctl runs once
// per process; each call takes a fresh copy of its output.
func Arrangement(upstreamPort, extProcPort int) ([]byte, string, error) {
	return inputArrangement(upstreamPort, extProcPort)
}

var inputArrangement = ArrangementOf(Input)

// ArrangementOf is Arrangement for the resources docs returns instead of
// Input: Input with a test's edits, or with more objects (a SecurityPolicy).
// egctl runs once per ArrangementOf, on first use.
func ArrangementOf(docs func() ([]byte, error)) func(upstreamPort, extProcPort int) ([]byte, string, error) {
	var once struct {
		sync.Once
		xds []byte
		err error
	}
	return func(upstreamPort, extProcPort int) ([]byte, string, error) {
		once.Do(func() { once.xds, once.err = translated(docs) })
		if once.err != nil {
			return nil, "", once.err
		}
		var t Translation
		if err := json.Unmarshal(once.xds, &t.XDS); err != nil {
			return nil, "", fmt.Errorf("translation: %w", err)
		}
		dump, ok := t.XDS[Gateway].(map[string]any)
		if !ok {
			return nil, "", fmt.Errorf("no config for Gateway %s in the translation", Gateway)
		}
		config, err := Static(dump, func(cluster string) (string, int, bool) {
			switch {
			case strings.HasPrefix(cluster, ExtProcClusterPrefix):
				return "127.0.0.1", extProcPort, true
			case cluster == ProviderCluster:
				return "127.0.0.1", upstreamPort, true
			}
			return "", 0, false
		})
		return config, Listener, err
	}
}

// translated is the translation of docs' resources, its xDS part as JSON;
// an object Envoy Gateway did not accept is an error.
func translated(docs func() ([]byte, error)) ([]byte, error) {
	egctl, err := Egctl()
	if err != nil {
		return nil, err
	}
	in, err := docs()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t, err := Translate(ctx, egctl, in)
	if err != nil {
		return nil, err
	}
	if bad := t.NotAccepted(); len(bad) > 0 {
		return nil, fmt.Errorf("envoy gateway did not accept the resources: %s", strings.Join(bad, "; "))
	}
	return json.Marshal(t.XDS)
}
