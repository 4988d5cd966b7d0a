package config

import (
	"fmt"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// budgetReader is one budget as it is read: what each key set, and the
// nodes the rules across keys point their errors at.
type budgetReader struct {
	w                                 *walker
	b                                 ratelimit.Budget
	limits                            int        // how many of money, tokens, requests, concurrent
	curNode                           *yaml.Node // limit.currency, remembered under the budget's name
	curKey                            string
	windowNode, rollingNode, zoneNode *yaml.Node
	keyLimits                         *yaml.Node // read once the unit is known
	keyLimitsKey                      string
}

// budget reads one budget. The selector's dimensions are checked against the
// configured ones in crossCheck, once every section has been read.
func (w *walker) budget(n *yaml.Node, key string) (ratelimit.Budget, bool) {
	before := len(w.errs)
	r := &budgetReader{w: w}
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"name":           w.str(&r.b.Name),
		"match":          w.match(&r.b.Match),
		"limit":          r.limit,
		"unpriced":       r.unpriced,
		"window":         r.window,
		"rolling":        r.rolling,
		"time_zone":      r.timeZone,
		"shadow":         w.boolean(&r.b.Shadow),
		"key_limits":     func(n *yaml.Node, k string) { r.keyLimits, r.keyLimitsKey = n, k },
		"alert_at":       r.alertAt,
		"on_store_error": r.onStoreError,
	})
	if r.keyLimits != nil && r.limits == 1 {
		w.keyLimits(&r.b, r.keyLimits, r.keyLimitsKey)
	}
	r.checkWindow(n, key)
	r.checkRequired(n, key)
	if r.curNode != nil && w.currencyNodes != nil {
		w.currencyNodes.budgets[r.b.Name], w.currencyNodes.keys[r.b.Name] = r.curNode, r.curKey
	}
	return r.b, len(w.errs) == before
}

// match reads a dimension selector, a budget's or an adjustment's. Its
// dimensions are checked against the configured ones after the walk.
func (w *walker) match(dst *[]ratelimit.Match) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.pairs(n, k, "a mapping of dimension to value", func(dim string, v *yaml.Node, k string) {
			if val, ok := w.Scalar(v, k, "a single value"); ok {
				*dst = append(*dst, ratelimit.Match{Dimension: dim, Value: val})
			}
		})
	}
}

func (r *budgetReader) limit(n *yaml.Node, k string) {
	w, b := r.w, &r.b
	w.mapping(n, k, map[string]func(*yaml.Node, string){
		"money": r.money,
		"currency": func(n *yaml.Node, k string) {
			if cur, ok := w.currencyCode(n, k); ok {
				b.Currency, r.curNode, r.curKey = cur, n, k
			}
		},
		"tokens":     w.count(b, &r.limits, ratelimit.Tokens),
		"requests":   w.count(b, &r.limits, ratelimit.Requests),
		"concurrent": w.count(b, &r.limits, ratelimit.Concurrent),
	})
	if r.limits != 1 {
		w.Fail(n, k, "want exactly one of money, tokens, requests, concurrent")
	}
	if b.Currency != "" && b.Unit != ratelimit.Money {
		w.Fail(n, join(k, "currency"), "only a money limit has a currency")
	}
}

func (r *budgetReader) money(n *yaml.Node, k string) {
	r.limits++
	r.b.Unit = ratelimit.Money
	r.w.value(n, k, `a positive decimal amount, e.g. "25.00" (in limit.currency, default the reporting currency)`, func(v string) bool {
		a, err := money.Parse(v)
		if err != nil || a <= 0 {
			return false
		}
		r.b.Limit = int64(a)
		return true
	})
}

func (r *budgetReader) unpriced(n *yaml.Node, k string) {
	r.w.value(n, k, "deny or allow", func(v string) bool {
		switch p := UnpricedPolicy(v); p {
		case UnpricedDeny, UnpricedAllow:
			r.w.budgetUnpriced = p
			return true
		}
		return false
	})
}

func (r *budgetReader) window(n *yaml.Node, k string) {
	// The node is kept even when invalid: the budget has a window, only a
	// wrong one, and checkWindow should not also say it has none.
	r.windowNode = n
	r.w.value(n, k, strings.Join(ratelimit.WindowNames(), ", "), func(v string) bool {
		win, ok := ratelimit.ParseWindow(v)
		r.b.Window = win
		return ok
	})
}

func (r *budgetReader) rolling(n *yaml.Node, k string) {
	d := &r.b.Rolling
	r.w.duration(d)(n, k)
	if *d != 0 && (*d < time.Second || *d > 24*time.Hour || *d%time.Second != 0) {
		r.w.Fail(n, k, "want a whole number of seconds from 1s to 24h, e.g. 1m for a per-minute rate")
	}
	r.rollingNode = n
}

func (r *budgetReader) timeZone(n *yaml.Node, k string) {
	if loc, ok := r.w.timeZone(n, k); ok {
		r.b.Location, r.zoneNode = loc, n
	}
}

func (r *budgetReader) alertAt(n *yaml.Node, k string) {
	r.w.Sequence(n, k, "a list of percentages of the limit, such as [50, 80, 100]", func(item *yaml.Node, k string) {
		var pct int64
		r.w.integer(&pct, 1, 1000)(item, k)
		if pct == 0 {
			return
		}
		if at := r.b.AlertAt; len(at) > 0 && int(pct) <= at[len(at)-1] {
			r.w.Fail(item, k, "want thresholds in ascending order, each once")
			return
		}
		r.b.AlertAt = append(r.b.AlertAt, int(pct))
	})
}

func (r *budgetReader) onStoreError(n *yaml.Node, k string) {
	r.w.value(n, k, "allow (fail open, the default) or deny (fail closed)", func(v string) bool {
		r.b.FailClosed = v == "deny"
		return v == "allow" || v == "deny"
	})
}

// checkWindow holds the rules between the limit and its window.
func (r *budgetReader) checkWindow(n *yaml.Node, key string) {
	b, w := &r.b, r.w
	calendar, rolling := r.windowNode != nil, r.rollingNode != nil
	concurrent := b.Unit == ratelimit.Concurrent
	switch {
	case calendar && rolling:
		w.Fail(r.rollingNode, join(key, "rolling"), "a budget has a calendar window or a rolling one, not both")
	case concurrent && (calendar || rolling):
		w.Fail(n, key, "a concurrent limit counts requests in flight: it has no window")
	case rolling && r.zoneNode != nil:
		w.Fail(r.zoneNode, join(key, "time_zone"), "a rolling window has no calendar: time_zone applies to window")
	case len(b.AlertAt) > 0 && (b.Rolling > 0 || concurrent):
		w.Fail(n, join(key, "alert_at"), "thresholds apply to calendar windows, not to rolling or concurrent limits")
	case r.limits > 0 && !concurrent && !calendar && !rolling:
		w.Fail(n, key, "want a window ("+strings.Join(ratelimit.WindowNames(), ", ")+") or a rolling period such as 1m")
	}
}

// checkRequired holds the keys every budget needs.
func (r *budgetReader) checkRequired(n *yaml.Node, key string) {
	if r.b.Name == "" {
		r.w.Missing(n, join(key, "name"), "the budget's name")
	}
	if r.limits == 0 {
		r.w.Missing(n, join(key, "limit"), "one of money, tokens, requests, concurrent")
	}
	if r.b.Name != "" && !budgetName(r.b.Name) {
		r.w.Fail(n, join(key, "name"), fmt.Sprintf("%q: want letters, digits, '-', '_' or '.'", r.b.Name))
	}
}
