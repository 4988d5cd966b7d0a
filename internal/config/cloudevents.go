package config

import (
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/internal/cloudevents"
)

// CloudEvents is ledger.cloudevents: every record also sent as a CloudEvent
// to an HTTP endpoint such as OpenMeter's (package internal/cloudevents).
// It is restart-only: the sender, its queue and its connection are built
// once, at start, and a reload cannot hand a queue to another endpoint
// without either losing or repeating events.
type CloudEvents struct {
	URL string // from url, or read at load from url_env's variable
	// Headers are sent with every request, e.g. OpenMeter's Authorization:
	// Bearer; their values come from the environment, read at load.
	Headers map[string]string
	Source  string // the events' source; default cloudevents.DefaultSource
	Type    string // the events' type; default cloudevents.DefaultType
	// Subject names the dimension whose value is each event's subject (the
	// customer); default the first configured dimension.
	Subject       string
	QueueSize     int64
	BatchSize     int64 // 1: each event alone, in structured mode
	FlushInterval time.Duration
	Timeout       time.Duration
	MaxAttempts   int64
}

// cloudEvents reads:
//
//	cloudevents:
//	  url_env: OPENMETER_URL                         # or url: https://openmeter.cloud/api/v1/events
//	  headers_env: {Authorization: OPENMETER_AUTH}   # "Bearer om_..." from the environment
//	  source: tokenmeter
//	  type: tokenmeter.request
//	  subject: project                               # the dimension that is the customer
//	  queue_size: 10000
//	  batch_size: 100
//	  flush_interval: 1s
//	  timeout: 10s
//	  max_attempts: 8
func (w *walker) cloudEvents(dst **CloudEvents) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		before := len(w.errs)
		ce := &CloudEvents{Source: cloudevents.DefaultSource, Type: cloudevents.DefaultType,
			QueueSize: cloudevents.DefaultQueueSize, BatchSize: cloudevents.DefaultBatchSize,
			FlushInterval: cloudevents.DefaultFlushInterval, Timeout: cloudevents.DefaultTimeout,
			MaxAttempts: cloudevents.DefaultMaxAttempts}
		var rawURL, urlEnv string
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"url":         w.str(&rawURL),
			"url_env":     w.str(&urlEnv),
			"headers_env": w.envHeaders(&ce.Headers),
			"source": func(n *yaml.Node, k string) {
				// The spec's source is a non-empty URI-reference.
				w.value(n, k, `a URI-reference such as "tokenmeter" or "https://gateway.example.com/eu-1"`, func(v string) bool {
					_, err := url.Parse(v)
					ce.Source = v
					return err == nil && v != "" && !strings.ContainsAny(v, " \t")
				})
			},
			"type": func(n *yaml.Node, k string) {
				w.value(n, k, `a non-empty event type without spaces, such as "tokenmeter.request"`, func(v string) bool {
					ce.Type = v
					return v != "" && !strings.ContainsAny(v, " \t\r\n")
				})
			},
			"subject":        w.str(&ce.Subject), // a dimension: checked after the walk (checkCloudEvents)
			"queue_size":     w.integer(&ce.QueueSize, 16, 1<<24),
			"batch_size":     w.integer(&ce.BatchSize, 1, 1000),
			"max_attempts":   w.integer(&ce.MaxAttempts, 1, 100),
			"flush_interval": w.positiveDuration(&ce.FlushInterval, `"1s"`),
			"timeout":        w.positiveDuration(&ce.Timeout, `"10s"`),
		})
		switch {
		case (rawURL == "") == (urlEnv == ""):
			w.Fail(n, k, "want exactly one of url, url_env: where the events are POSTed, e.g. https://openmeter.cloud/api/v1/events")
		case urlEnv != "":
			if rawURL = os.Getenv(urlEnv); rawURL == "" {
				w.failKey(join(k, "url_env"), urlEnv, "this environment variable is empty or unset")
			}
		}
		ce.URL = rawURL
		if len(w.errs) == before {
			if err := cloudevents.Validate(ce.URL, ce.Headers); err != nil {
				// Validate quotes neither the URL (url_env may hold a
				// secret) nor a header value.
				w.Fail(n, k, err.Error())
			}
		}
		*dst = ce
	}
}

// positiveDuration reads a duration over 0; example is one, quoted.
func (w *walker) positiveDuration(dst *time.Duration, example string) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.value(n, k, "a duration over 0 such as "+example, func(v string) bool {
			d, err := time.ParseDuration(v)
			*dst = d
			return err == nil && d > 0
		})
	}
}

// checkCloudEvents names the subject's dimension once the dimensions are
// known: the first configured one by default.
func (w *walker) checkCloudEvents(c *Config, dims map[string]bool) {
	ce := c.Ledger.CloudEvents
	if ce == nil || len(c.Dimensions) == 0 {
		return
	}
	if ce.Subject == "" {
		ce.Subject = c.Dimensions[0].Name
		return
	}
	if !dims[ce.Subject] {
		w.failKey("ledger.cloudevents.subject", ce.Subject,
			"not a configured dimension; configured: "+strings.Join(slices.Sorted(maps.Keys(dims)), ", "))
	}
}
