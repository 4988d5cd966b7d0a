package envoy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Names in envoy.yaml and upstream-filter.yaml.
const (
	// UpstreamCluster is the provider cluster of envoy.yaml, whose filter
	// chain Upstream puts tokenmeter in.
	UpstreamCluster = "llm_upstream"
	// AttributionFilter is upstream-filter.yaml's header_mutation that
	// removes the attribution headers after the gate has read them.
	AttributionFilter = "tokenmeter.attribution"
	// UpstreamCodec is the terminal filter of every upstream chain.
	UpstreamCodec = "envoy.filters.http.upstream_codec"
	// protocolOptionsKey is the typed_extension_protocol_options entry that
	// holds a cluster's HTTP filters.
	protocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// Upstream returns config with tokenmeter's gate and observer taken out of
// the HttpConnectionManager and put in the provider cluster's own filter
// chain, as upstream-filter.yaml has them: the third way to run tokenmeter,
// tested alike. The virtual hosts stop removing the attribution headers
// that the chain's AttributionFilter removes: the router applies
// request_headers_to_remove before the cluster's filters run, so the gate
// would never see them.
func Upstream(config []byte) ([]byte, error) {
	options, err := upstreamOptions()
	if err != nil {
		return nil, err
	}
	root, cluster, err := upstreamClusterIn(config)
	if err != nil {
		return nil, err
	}
	if findNamed(cluster, "http_filters", GateFilter) != nil {
		return nil, fmt.Errorf("the %s filter is in cluster %s already", GateFilter, UpstreamCluster)
	}
	moved := 0
	editFilterNodes(root, func(f *yaml.Node) []*yaml.Node {
		if n := filterName(f); n == GateFilter || n == ObserverFilter {
			moved++
			return nil
		}
		return []*yaml.Node{f}
	}, func(name string) (string, bool) { return name, true })
	if moved != 2 {
		return nil, fmt.Errorf("want the %s and %s filters in the config, found %d of them", GateFilter, ObserverFilter, moved)
	}
	protocol := mapValue(cluster, "typed_extension_protocol_options")
	if protocol == nil {
		protocol = &yaml.Node{Kind: yaml.MappingNode}
		setValue(cluster, "typed_extension_protocol_options", protocol)
	}
	setValue(protocol, protocolOptionsKey, mapValue(options, protocolOptionsKey))
	keepHeadersFor(root, strippedHeaders(options))
	return marshalConfig(root)
}

// WithUpstreamFilter returns config with filter (the YAML of one
// http_filters entry) first in the provider cluster's filter chain, the
// chain made with the upstream codec when the cluster has none: where Envoy
// AI Gateway's upstream ext_proc translates a request, ahead of tokenmeter
// when tokenmeter is there too.
func WithUpstreamFilter(config, filter []byte) ([]byte, error) {
	f, err := oneFilter(filter)
	if err != nil {
		return nil, err
	}
	root, cluster, err := upstreamClusterIn(config)
	if err != nil {
		return nil, err
	}
	chain, err := upstreamChainOf(cluster)
	if err != nil {
		return nil, err
	}
	chain.Content = append([]*yaml.Node{f}, chain.Content...)
	return marshalConfig(root)
}

// upstreamChainOf returns the cluster's filter chain, made (HTTP/1.1 and
// the upstream codec alone) where it has none.
func upstreamChainOf(cluster *yaml.Node) (*yaml.Node, error) {
	protocol := mapValue(cluster, "typed_extension_protocol_options")
	if protocol == nil {
		protocol = &yaml.Node{Kind: yaml.MappingNode}
		setValue(cluster, "typed_extension_protocol_options", protocol)
	}
	options := mapValue(protocol, protocolOptionsKey)
	if options == nil {
		options = &yaml.Node{Kind: yaml.MappingNode}
		if err := yaml.Unmarshal([]byte(`{"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http_protocol_options: {}}}`), options); err != nil {
			return nil, fmt.Errorf("protocol options: %w", err)
		}
		options = options.Content[0]
		setValue(protocol, protocolOptionsKey, options)
	}
	chain := mapValue(options, "http_filters")
	if chain == nil {
		var codec yaml.Node
		if err := yaml.Unmarshal([]byte(`[{name: `+UpstreamCodec+`, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec}}]`), &codec); err != nil {
			return nil, fmt.Errorf("upstream codec: %w", err)
		}
		chain = codec.Content[0]
		setValue(options, "http_filters", chain)
	}
	return chain, nil
}

// WithDownstreamFilter returns config with filter (the YAML of one
// http_filters entry) first in the connection manager's chain, the one that
// ends with the router: an edge filter, e.g. one that sets the attribution
// headers from an authenticated caller.
func WithDownstreamFilter(config, filter []byte) ([]byte, error) {
	return withHCMFilter(config, filter, func([]*yaml.Node) int { return 0 })
}

// hcmChain calls fn with every http_filters list that holds the router.
func hcmChain(n *yaml.Node, fn func(chain *yaml.Node)) {
	if chain := mapValue(n, "http_filters"); chain != nil && chain.Kind == yaml.SequenceNode &&
		slices.ContainsFunc(chain.Content, func(f *yaml.Node) bool { return filterName(f) == "envoy.filters.http.router" }) {
		fn(chain)
	}
	for _, c := range n.Content {
		hcmChain(c, fn)
	}
}

func oneFilter(filter []byte) (*yaml.Node, error) {
	var f yaml.Node
	if err := yaml.Unmarshal(filter, &f); err != nil || f.Kind != yaml.DocumentNode || f.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("want one http_filters entry (%v)", err)
	}
	return f.Content[0], nil
}

// upstreamOptions reads upstream-filter.yaml: one typed_extension_protocol_options
// entry whose chain ends with the upstream codec.
func upstreamOptions() (*yaml.Node, error) {
	raw, err := os.ReadFile(filepath.Join(Dir(), "upstream-filter.yaml"))
	if err != nil {
		return nil, fmt.Errorf("upstream filter: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("upstream-filter.yaml: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("upstream-filter.yaml: want a mapping")
	}
	options := doc.Content[0]
	chain := mapValue(mapValue(options, protocolOptionsKey), "http_filters")
	if chain == nil || len(chain.Content) == 0 || filterName(chain.Content[len(chain.Content)-1]) != UpstreamCodec {
		return nil, fmt.Errorf("upstream-filter.yaml: want %s.http_filters ending with %s", protocolOptionsKey, UpstreamCodec)
	}
	return options, nil
}

// strippedHeaders lists the request headers the AttributionFilter removes.
func strippedHeaders(options *yaml.Node) []string {
	var out []string
	for _, f := range mapValue(mapValue(options, protocolOptionsKey), "http_filters").Content {
		if filterName(f) != AttributionFilter {
			continue
		}
		for _, m := range mapValue(mapValue(mapValue(f, "typed_config"), "mutations"), "request_mutations").Content {
			if r := mapValue(m, "remove"); r != nil {
				out = append(out, r.Value)
			}
		}
	}
	return out
}

// keepHeadersFor drops headers from every request_headers_to_remove list,
// and a list left empty.
func keepHeadersFor(n *yaml.Node, headers []string) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			v := n.Content[i+1]
			if n.Content[i].Value != "request_headers_to_remove" || v.Kind != yaml.SequenceNode {
				continue
			}
			v.Content = slices.DeleteFunc(v.Content, func(h *yaml.Node) bool { return slices.Contains(headers, h.Value) })
			if len(v.Content) == 0 {
				n.Content = slices.Delete(n.Content, i, i+2)
				i -= 2
			}
		}
	}
	for _, c := range n.Content {
		keepHeadersFor(c, headers)
	}
}

// findNamed finds the entry named name in any list under key.
func findNamed(n *yaml.Node, key, name string) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		if list := mapValue(n, key); list != nil && list.Kind == yaml.SequenceNode {
			for _, e := range list.Content {
				if filterName(e) == name {
					return e
				}
			}
		}
	}
	for _, c := range n.Content {
		if found := findNamed(c, key, name); found != nil {
			return found
		}
	}
	return nil
}

// mapValue is the value of key in mapping n; nil when n is nil, not a
// mapping, or has no key.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// setValue sets key in mapping n to v, in place when present.
func setValue(n *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v
			return
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// upstreamClusterIn parses config and finds the provider's cluster in it.
func upstreamClusterIn(config []byte) (root, cluster *yaml.Node, err error) {
	root, err = parseConfig(config)
	if err != nil {
		return nil, nil, err
	}
	cluster = findNamed(root, "clusters", UpstreamCluster)
	if cluster == nil {
		return nil, nil, fmt.Errorf("no cluster %s in the config", UpstreamCluster)
	}
	return root, cluster, nil
}
