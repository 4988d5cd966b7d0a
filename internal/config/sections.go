package config

import (
	"path/filepath"
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
					w.Fail(n, k, `want 0 (off) or at least 1s, e.g. "10s"`)
				}
			},
			"gate_deadline": w.duration(&c.GateDeadline),
			"admission": func(n *yaml.Node, k string) {
				w.value(n, k, "estimate (the default: prompt bytes / 4 plus max_tokens) or strict (an upper bound: one token per prompt byte)", func(v string) bool {
					switch a := Admission(v); a {
					case AdmissionEstimate, AdmissionStrict:
						c.Admission = a
						return true
					}
					return false
				})
			},
		})
	}
}

func (w *walker) shutdownSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"drain": w.duration(&c.Shutdown.Drain),
			"grace": w.duration(&c.Shutdown.Grace),
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
				w.value(n, k, "badger (embedded, the default) or redis (shared by replicas)", func(v string) bool {
					switch v {
					case "badger", "redis":
						c.StoreType = v
						return true
					}
					return false
				})
			},
			"redis": w.redis(&c.Redis),
		})
		if c.StoreType == "redis" && len(c.Redis.Addrs) == 0 {
			w.Fail(n, join(k, "redis.addrs"), "required with store type redis")
		}
	}
}

func (w *walker) catalogSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"builtin": w.boolean(&c.BuiltinCatalog),
			"files": w.scalars("a list of price catalog files", func(v string, _ *yaml.Node, _ string) {
				c.CatalogFiles = append(c.CatalogFiles, resolve(c.File, v))
			}),
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
			"cloudevents":    w.cloudEvents(&c.Ledger.CloudEvents),
			"time_zone": func(n *yaml.Node, k string) {
				if loc, ok := w.timeZone(n, k); ok {
					c.Ledger.TimeZone = loc
				}
			},
			"type":     w.ledgerType(&c.Ledger),
			"postgres": w.ledgerPostgres(&c.Ledger.Postgres),
		})
		if c.Ledger.Type == "postgres" && c.Ledger.Postgres.DSNEnv == "" {
			w.Fail(n, join(k, "postgres.dsn_env"), "required with ledger type postgres")
		}
		if p := &c.Ledger.Postgres; c.Ledger.Type == "postgres" && p.SpoolDir == "" && c.Ledger.Dir != "" {
			// Nothing lost while Postgres is away, by default: the
			// directory a Badger ledger would use holds the spool.
			p.SpoolDir = filepath.Join(c.Ledger.Dir, "spool")
		}
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
			"policy": w.unpricedPolicy(&c.Unpriced),
			"fallback_model": func(n *yaml.Node, k string) {
				fallback.node = n
				fallback.model, _ = w.Scalar(n, k, "the catalog model unknown models are priced at")
			},
		})
	}
}

func (w *walker) adjustmentsSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.Sequence(n, k, "a list of adjustments", func(item *yaml.Node, k string) {
			if a, ok := w.adjustment(item, k); ok {
				c.Adjustments = append(c.Adjustments, a)
				w.keepItem("adjustments", k)
			}
		})
	}
}

func (w *walker) budgetsSection(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.Sequence(n, k, "a list of budgets", func(item *yaml.Node, k string) {
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
		w.value(n, k, "deny, allow or fallback", func(v string) bool {
			switch p := UnpricedPolicy(v); p {
			case UnpricedDeny, UnpricedAllow, UnpricedFallback:
				*dst = p
				return true
			}
			return false
		})
	}
}

// timeZone reads an IANA time zone name (the ledger's, a budget's). Local is
// refused: it would be whatever the host says, different on each replica.
func (w *walker) timeZone(n *yaml.Node, k string) (loc *time.Location, ok bool) {
	w.value(n, k, "an IANA time zone name such as Europe/Paris or UTC", func(v string) bool {
		var err error
		loc, err = time.LoadLocation(v)
		ok = err == nil && v != "" && v != "Local"
		return ok
	})
	return loc, ok
}
