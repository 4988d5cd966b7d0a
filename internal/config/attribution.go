package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
)

// dimensions reads attribution.dimensions. Each is a name and either one
// header (the short form) or from: an ordered list of sources.
//
//   - {name: project, header: x-tokenmeter-project}
//   - name: user
//     from:
//   - {metadata: {namespace: envoy.filters.http.jwt_authn, path: [jwt_payload, sub]}}
//   - {attribute: connection.uri_san_peer_certificate}
//   - {header: x-tokenmeter-user}
func (w *walker) dimensions(n *yaml.Node, key string) []attribution.Dimension {
	var dims []attribution.Dimension
	w.Sequence(n, key, "a list of dimensions, each with name and header or from", func(item *yaml.Node, k string) {
		var d attribution.Dimension
		bad := false // a source was refused already: say it once
		w.mapping(item, k, map[string]func(*yaml.Node, string){
			"name":   w.str(&d.Name),
			"header": w.str(&d.Header),
			"from": func(n *yaml.Node, k string) {
				w.Sequence(n, k, "a list of sources: header, metadata or attribute", func(item *yaml.Node, k string) {
					s, ok := w.source(item, k)
					d.From, bad = append(d.From, s), bad || !ok
				})
				if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
					w.Fail(n, k, "want at least one source")
					bad = true
				}
			},
		})
		if bad {
			return
		}
		if err := attribution.Validate(append(dims, d)); err != nil {
			w.Fail(item, k, err.Error())
			return
		}
		dims = append(dims, d)
	})
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		w.Fail(n, key, "want at least one dimension")
	}
	return dims
}

// source reads one entry of a dimension's from list. ok is false when it
// was refused (and the error reported).
func (w *walker) source(n *yaml.Node, key string) (s attribution.Source, ok bool) {
	errs := len(*w.Errs)
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"header":    w.str(&s.Header),
		"attribute": w.str(&s.Attribute),
		"metadata": func(n *yaml.Node, k string) {
			w.mapping(n, k, map[string]func(*yaml.Node, string){
				"namespace": w.str(&s.Namespace),
				"path": w.scalars("a list of keys, e.g. [jwt_payload, sub]", func(v string, _ *yaml.Node, _ string) {
					s.Path = append(s.Path, v)
				}),
			})
		},
	})
	if len(*w.Errs) > errs {
		return s, false
	}
	if err := s.Validate(); err != nil {
		w.Fail(n, key, err.Error())
		return s, false
	}
	return s, true
}
