package dialect

import "github.com/tokenmeter/tokenmeter/internal/usage"

// count is a provider's number and whether it was present.
type count struct {
	n  int64
	ok bool
}

// additive is usage in which every count is its own class, as Anthropic and
// Bedrock report it: input excludes cache reads and writes.
type additive struct {
	input, cacheRead, cacheWrite, write5m, write1h, output count
}

// classes sets a's classes on out. A TTL breakdown of the cache write, when
// present, is what the TTL prices follow, so it wins over the total; the
// total alone has the default (5-minute) TTL; a 1-hour part alone leaves the
// rest of the total at the default. It reports false when a count is
// negative or the breakdown does not add up to the total; counts are then
// clamped at zero and the caller reports inconsistent_usage.
func (a additive) classes(out *usage.Usage) bool {
	ok := true
	set := func(c usage.Class, n int64) {
		ok = ok && n >= 0
		out.Set(c, max(n, 0))
	}
	for _, f := range [...]struct {
		v count
		c usage.Class
	}{{a.input, usage.Input}, {a.cacheRead, usage.CacheRead}, {a.output, usage.Output}, {a.write1h, usage.CacheWrite1h}} {
		if f.v.ok {
			set(f.c, f.v.n)
		}
	}
	switch {
	case a.write5m.ok:
		set(usage.CacheWrite, a.write5m.n)
		// An absent 1-hour part is 0: the breakdown must still add up.
		ok = ok && (!a.cacheWrite.ok || a.write5m.n+a.write1h.n == a.cacheWrite.n)
	case a.cacheWrite.ok && a.write1h.ok:
		set(usage.CacheWrite, a.cacheWrite.n-max(a.write1h.n, 0))
	case a.cacheWrite.ok:
		set(usage.CacheWrite, a.cacheWrite.n)
	}
	return ok
}
