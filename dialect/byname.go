package dialect

import (
	"slices"
	"strings"
)

// ByName returns the registered dialect called name, for routes that name
// their dialect in config or in Envoy route settings rather than by path.
func (r *Registry) ByName(name string) (Dialect, bool) {
	for _, rt := range r.routes {
		if rt.dialect.Name() == name {
			return rt.dialect, true
		}
	}
	return nil, false
}

// Names lists the registered dialect names, sorted, for validation messages.
func (r *Registry) Names() []string {
	var names []string
	for _, rt := range r.routes {
		if !slices.Contains(names, rt.dialect.Name()) {
			names = append(names, rt.dialect.Name())
		}
	}
	slices.Sort(names)
	return names
}

// Route maps a path prefix to a dialect by name; see Resolve.
type Route struct {
	Prefix  string
	Dialect Dialect
}

// Resolve picks the dialect for a request: an explicit name (from the Envoy
// route, via gRPC metadata) first, then the longest matching configured
// prefix, then the built-in path suffixes.
func (r *Registry) Resolve(name string, routes []Route, path string) (Dialect, bool) {
	if name != "" {
		return r.ByName(name)
	}
	var best *Route
	for i := range routes {
		if strings.HasPrefix(path, routes[i].Prefix) && (best == nil || len(routes[i].Prefix) > len(best.Prefix)) {
			best = &routes[i]
		}
	}
	if best != nil {
		return best.Dialect, true
	}
	return r.ForPath(path)
}
