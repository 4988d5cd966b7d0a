package config

import (
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/webhook"
)

// Alerts is the alerts section: where alerts go and how often budgets are
// checked against their thresholds.
type Alerts struct {
	Interval time.Duration
	Webhooks []webhook.Target
}

// alerts reads:
//
//	alerts:
//	  interval: 10s
//	  webhooks:
//	    - name: finance
//	      url_env: FINANCE_SLACK_WEBHOOK   # or url: https://...; a Slack URL is a secret: prefer url_env
//	      format: slack                    # or json (the default)
//	      headers_env: {Authorization: ALERTS_AUTH}   # header values from the environment
func (w *walker) alerts(c *Config) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"interval": func(n *yaml.Node, k string) {
				w.duration(&c.Alerts.Interval)(n, k)
				if c.Alerts.Interval < time.Second {
					w.fail(n, k, "want at least 1s")
				}
			},
			"webhooks": func(n *yaml.Node, k string) {
				w.sequence(n, k, func(item *yaml.Node, k string) {
					if t, ok := w.webhook(item, k); ok {
						if slices.ContainsFunc(c.Alerts.Webhooks, func(o webhook.Target) bool { return o.Name == t.Name }) {
							w.fail(item, join(k, "name"), "webhook name used twice")
							return
						}
						c.Alerts.Webhooks = append(c.Alerts.Webhooks, t)
					}
				})
			},
		})
	}
}

func (w *walker) webhook(n *yaml.Node, key string) (webhook.Target, bool) {
	before := len(w.errs)
	var t webhook.Target
	var url, urlEnv, format string
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"name":    w.str(&t.Name),
		"url":     w.str(&url),
		"url_env": w.str(&urlEnv),
		"format":  w.str(&format),
		"headers_env": func(n *yaml.Node, k string) {
			w.pairs(n, k, func(header string, v *yaml.Node, k string) {
				env, ok := w.scalar(v, k)
				if !ok {
					return
				}
				val := os.Getenv(env)
				if val == "" {
					// The value is a secret: name the variable, never the value.
					w.fail(v, k, "this environment variable is empty or unset")
					return
				}
				if t.Headers == nil {
					t.Headers = map[string]string{}
				}
				t.Headers[header] = val
			})
		},
	})
	switch {
	case t.Name == "":
		w.fail(n, join(key, "name"), "required")
	case !budgetName(t.Name):
		w.fail(n, join(key, "name"), "want letters, digits, '-', '_' or '.'")
	}
	switch {
	case (url == "") == (urlEnv == ""):
		w.fail(n, key, "want exactly one of url, url_env")
	case urlEnv != "":
		if url = os.Getenv(urlEnv); url == "" {
			w.failKey(join(key, "url_env"), urlEnv, "this environment variable is empty or unset")
		}
	}
	t.URL = url
	f, err := webhook.ParseFormat(format)
	if err != nil {
		w.failKey(join(key, "format"), format, "want json or slack")
	}
	t.Format = f
	if len(w.errs) == before && url != "" {
		if err := t.Validate(); err != nil {
			// Validate never quotes the URL or a header value.
			w.fail(n, key, err.Error())
		}
	}
	return t, len(w.errs) == before
}
