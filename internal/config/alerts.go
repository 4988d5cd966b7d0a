package config

import (
	"os"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
)

// Alerts is the alerts section: where alerts go and how often budgets are
// checked against their thresholds.
type Alerts struct {
	Interval time.Duration
	Webhooks []webhook.Target
	// ForecastInterval paces month-end projections and anomaly checks,
	// which read a week of ledger history each.
	ForecastInterval time.Duration
	// Anomaly, when set, alerts on a group whose spend today passes a factor
	// of its trailing median.
	Anomaly *alerting.Anomaly
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
					w.Fail(n, k, "want at least 1s")
				}
			},
			"forecast_interval": func(n *yaml.Node, k string) {
				w.duration(&c.Alerts.ForecastInterval)(n, k)
				if c.Alerts.ForecastInterval < time.Second {
					w.Fail(n, k, "want at least 1s")
				}
			},
			"anomaly": func(n *yaml.Node, k string) { c.Alerts.Anomaly = w.anomaly(n, k) },
			"webhooks": func(n *yaml.Node, k string) {
				w.Sequence(n, k, "a list of webhooks", func(item *yaml.Node, k string) {
					if t, ok := w.webhook(item, k); ok {
						if slices.ContainsFunc(c.Alerts.Webhooks, func(o webhook.Target) bool { return o.Name == t.Name }) {
							w.Fail(item, join(k, "name"), "webhook name used twice")
							return
						}
						c.Alerts.Webhooks = append(c.Alerts.Webhooks, t)
					}
				})
			},
		})
	}
}

const groupByWhat = "the dimensions whose spend is watched, e.g. [project]"

// anomaly reads:
//
//	anomaly:
//	  group_by: [project]     # configured dimensions
//	  factor: "3"             # today's spend > factor × the median of the baseline days
//	  baseline_days: 7
//	  min_spend: "5.00"       # in the reporting currency; quieter groups never alert
func (w *walker) anomaly(n *yaml.Node, key string) *alerting.Anomaly {
	a := &alerting.Anomaly{Factor: money.MustParse("3"), BaselineDays: 7}
	var days int64 = 7
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"group_by": w.scalars(groupByWhat, func(v string, item *yaml.Node, k string) {
			a.GroupBy = append(a.GroupBy, v)
			w.remember(k, item)
		}),
		"factor": func(n *yaml.Node, k string) {
			w.value(n, k, `a decimal factor above 1, e.g. "3"`, func(v string) bool {
				f, err := money.Parse(v)
				if err != nil || f <= money.MustParse("1") {
					return false
				}
				a.Factor = f
				return true
			})
		},
		"baseline_days": w.integer(&days, 3, 90),
		"min_spend": func(n *yaml.Node, k string) {
			w.value(n, k, `a decimal amount in the reporting currency, e.g. "5.00"`, func(v string) bool {
				m, err := money.Parse(v)
				if err != nil || m < 0 {
					return false
				}
				a.MinSpend = m
				return true
			})
		},
	})
	a.BaselineDays = int(days)
	if len(a.GroupBy) == 0 {
		w.Missing(n, join(key, "group_by"), groupByWhat)
	}
	return a
}

func (w *walker) webhook(n *yaml.Node, key string) (webhook.Target, bool) {
	before := len(w.errs)
	var t webhook.Target
	var url, urlEnv, format string
	w.mapping(n, key, map[string]func(*yaml.Node, string){
		"name":        w.str(&t.Name),
		"url":         w.str(&url),
		"url_env":     w.str(&urlEnv),
		"format":      w.str(&format),
		"headers_env": w.envHeaders(&t.Headers),
	})
	switch {
	case t.Name == "":
		w.Missing(n, join(key, "name"), "the webhook's name")
	case !budgetName(t.Name):
		w.Fail(n, join(key, "name"), "want letters, digits, '-', '_' or '.'")
	}
	switch {
	case (url == "") == (urlEnv == ""):
		w.Fail(n, key, "want exactly one of url, url_env")
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
			w.Fail(n, key, err.Error())
		}
	}
	return t, len(w.errs) == before
}
