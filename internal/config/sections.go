package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// The top-level sections the file's mapping dispatches to (Parse), each a
// reader of its own.

func (w *walker) extprocSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"max_message_bytes":         w.integer(&c.MaxMessageBytes, 1<<20, 1<<30),
			"max_response_buffer_bytes": w.integer(&c.MaxResponseBuffer, 4<<10, 1<<30),
			"buffer_json_below_bytes":   w.integer(&c.BufferJSONBelow, 0, 1<<30),
			"inject_stream_usage":       w.boolean(&c.InjectStreamUsage),
			"default_max_tokens":        w.integer(&c.DefaultMaxTokens, 1, 10_000_000),
			"observer_deadline": func(n *yaml.Node, k string) {
				w.duration(&c.ObserverDeadline)(n, k)
				// The gate finishes its stream long before a second passes;
				// a shorter deadline would sweep handoffs whose observers
				// are on their way.
				if c.ObserverDeadline > 0 && c.ObserverDeadline < time.Second {
					w.fail(n, k, `want 0 (off) or at least 1s, e.g. "10s"`)
				}
			},
			"gate_deadline": w.duration(&c.GateDeadline),
			"admission": func(n *yaml.Node, k string) {
				switch v, _ := w.scalar(n, k); Admission(v) {
				case AdmissionEstimate, AdmissionStrict:
					c.Admission = Admission(v)
				default:
					w.fail(n, k, "want estimate (the default: prompt bytes / 4 plus max_tokens) or strict (an upper bound: one token per prompt byte)")
				}
			},
		})
	}
}

func (w *walker) storeSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"dir":                    w.str(&c.StoreDir),
			"sync_writes":            w.boolean(&c.StoreSyncWrites),
			"settle_before_response": w.boolean(&c.SettleBeforeResponse),
			"type": func(n *yaml.Node, k string) {
				switch v, _ := w.scalar(n, k); v {
				case "badger", "redis":
					c.StoreType = v
				default:
					w.fail(n, k, "want badger (embedded, the default) or redis (shared by replicas)")
				}
			},
			"redis": w.redis(&c.Redis),
		})
		if c.StoreType == "redis" && len(c.Redis.Addrs) == 0 {
			w.fail(n, join(k, "redis.addrs"), "required with store type redis")
		}
	}
}

func (w *walker) catalogSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"builtin": w.boolean(&c.BuiltinCatalog),
			"files": func(n *yaml.Node, k string) {
				w.sequence(n, k, func(item *yaml.Node, k string) {
					if v, ok := w.scalar(item, k); ok {
						c.CatalogFiles = append(c.CatalogFiles, resolve(c.File, v))
					}
				})
			},
		})
	}
}

func (w *walker) ledgerSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		var days int64
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"dir":            w.str(&c.Ledger.Dir),
			"retention_days": w.integer(&days, 0, 36500),
			"queue_size":     w.integer(&c.Ledger.QueueSize, 16, 1<<24),
			"time_zone": func(n *yaml.Node, k string) {
				v, _ := w.scalar(n, k)
				loc, err := time.LoadLocation(v)
				if err != nil || v == "" || v == "Local" {
					w.fail(n, k, "want an IANA time zone name such as Europe/Paris or UTC")
					return
				}
				c.Ledger.TimeZone = loc
			},
		})
		c.Ledger.Retention = time.Duration(days) * 24 * time.Hour
	}
}

// fallbackRef is unpriced.fallback_model as read, resolved once the catalog
// is loaded.
type fallbackRef struct {
	model string
	node  *yaml.Node
}

func (w *walker) unpricedSection(c *Config, fallback *fallbackRef) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"policy":         w.unpricedPolicy(&c.Unpriced),
			"fallback_model": func(n *yaml.Node, k string) { fallback.node = n; fallback.model, _ = w.scalar(n, k) },
		})
	}
}

func (w *walker) adjustmentsSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.sequence(n, k, func(item *yaml.Node, k string) {
			if a, ok := w.adjustment(item, k); ok {
				c.Adjustments = append(c.Adjustments, a)
				w.keepItem("adjustments", k)
			}
		})
	}
}

func (w *walker) budgetsSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.sequence(n, k, func(item *yaml.Node, k string) {
			w.budgetUnpriced = ""
			if b, ok := w.budget(item, k); ok {
				c.Budgets = append(c.Budgets, b)
				w.keepItem("budgets", k)
				if w.budgetUnpriced != "" {
					if c.BudgetUnpriced == nil {
						c.BudgetUnpriced = map[string]UnpricedPolicy{}
					}
					c.BudgetUnpriced[b.Name] = w.budgetUnpriced
				}
			}
		})
	}
}

// unpricedPolicy reads an unknown-model policy (the global one, a route's).
func (w *walker) unpricedPolicy(dst *UnpricedPolicy) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		v, _ := w.scalar(n, k)
		switch p := UnpricedPolicy(v); p {
		case UnpricedDeny, UnpricedAllow, UnpricedFallback:
			*dst = p
		default:
			w.fail(n, k, "want deny, allow or fallback")
		}
	}
}
