package envoy

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// WithFilterBeforeRouter returns config with filter (the YAML of one
// http_filters entry) just before the router of the connection manager's
// chain: after the gate and the observer, e.g. Envoy's credential_injector
// putting the provider's key in place of the caller's tokenmeter key.
func WithFilterBeforeRouter(config, filter []byte) ([]byte, error) {
	return withHCMFilter(config, filter, func(chain []*yaml.Node) int {
		return slices.IndexFunc(chain, func(n *yaml.Node) bool { return filterName(n) == "envoy.filters.http.router" })
	})
}

// withHCMFilter inserts filter into the one connection manager chain that
// holds the router, at the index where says.
func withHCMFilter(config, filter []byte, where func(chain []*yaml.Node) int) ([]byte, error) {
	f, err := oneFilter(filter)
	if err != nil {
		return nil, err
	}
	root, err := parseConfig(config)
	if err != nil {
		return nil, err
	}
	added := 0
	hcmChain(root, func(chain *yaml.Node) {
		chain.Content = slices.Insert(chain.Content, where(chain.Content), f)
		added++
	})
	if added != 1 {
		return nil, fmt.Errorf("want one connection manager with a router in the config, found %d", added)
	}
	return marshalConfig(root)
}
