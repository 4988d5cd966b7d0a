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
		i := slices.IndexFunc(chain.Content, func(n *yaml.Node) bool { return filterName(n) == "envoy.filters.http.router" })
		chain.Content = slices.Insert(chain.Content, i, f)
		added++
	})
	if added != 1 {
		return nil, fmt.Errorf("want one connection manager with a router in the config, found %d", added)
	}
	return marshalConfig(root)
}
