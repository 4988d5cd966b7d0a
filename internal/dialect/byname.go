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

// Route maps requests to a dialect by host, path prefix, or both; see
// Resolve. An empty Host or Prefix matches any.
type Route struct {
	// Host is the request's :authority without a port: exact, or "*.suffix"
	// for any subdomain. Hosts matter where Envoy is an egress gateway and
	// clients call the provider's own hostname (api.groq.com).
	Host    string
	Prefix  string
	Dialect Dialect
	// Provider, when set, replaces the dialect's provider: an
	// OpenAI-compatible API (DeepSeek, Mistral, Groq) is spoken in the
	// openai_chat dialect but billed, and priced, as its own provider.
	Provider string
}

func (rt *Route) matches(host, path string) bool {
	if rt.Host != "" {
		if suffix, ok := strings.CutPrefix(rt.Host, "*"); ok {
			if !strings.HasSuffix(host, suffix) {
				return false
			}
		} else if host != rt.Host {
			return false
		}
	}
	return strings.HasPrefix(path, rt.Prefix)
}

// specificity orders matching routes: a host beats none, then the longer prefix.
func (rt *Route) specificity() int {
	n := len(rt.Prefix)
	if rt.Host != "" {
		n += 1 << 20
	}
	return n
}

// Resolve picks the dialect for a request: an explicit name (from the Envoy
// route, via gRPC metadata) first, then the most specific configured route
// (host, then longest prefix), then the built-in path suffixes. host is the
// :authority; a port is ignored.
func (r *Registry) Resolve(name string, routes []Route, host, path string) (Dialect, bool) {
	d, _, ok := r.ResolveRoute(name, routes, host, path)
	return d, ok
}

// ResolveRoute is Resolve that also returns the index of the route that
// chose the dialect, or -1 when none did.
func (r *Registry) ResolveRoute(name string, routes []Route, host, path string) (Dialect, int, bool) {
	if name != "" {
		d, ok := r.ByName(name)
		return d, -1, ok
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.ToLower(host)
	best := -1
	for i := range routes {
		if routes[i].matches(host, path) && (best < 0 || routes[i].specificity() > routes[best].specificity()) {
			best = i
		}
	}
	if best >= 0 {
		return routes[best].Dialect, best, true
	}
	d, ok := r.ForPath(path)
	return d, -1, ok
}
