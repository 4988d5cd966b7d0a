package config

import (
	"net/url"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// OTLP protocols (metrics.otlp.protocol).
const (
	OTLPGRPC = "grpc" // OTLP/gRPC, the default (a collector's port 4317)
	OTLPHTTP = "http" // OTLP/HTTP with protobuf bodies (port 4318, path /v1/metrics)
)

// OTLP is the metrics.otlp section. Zero durations mean the exporter's
// defaults (internal/otelmetrics). It is part of Metrics, so a reload that
// changes it is refused like any change of the metrics section: the
// exporter is built once, at start.
type OTLP struct {
	// Endpoint is the receiver's URL: http:// for plaintext, https:// for
	// TLS with the system's roots. Empty: no OTLP export.
	Endpoint string
	// Protocol is OTLPGRPC or OTLPHTTP.
	Protocol string
	// Interval is how often the metrics are exported; Timeout bounds one
	// export.
	Interval, Timeout time.Duration
	// Headers are sent with every export (an API key, a tenant); their
	// values come from the environment, read at load.
	Headers map[string]string
	// ResourceAttributes describe this process (deployment.environment.name,
	// k8s.cluster.name, ...); they win over OTEL_RESOURCE_ATTRIBUTES.
	ResourceAttributes map[string]string
}

// otlp reads:
//
//	otlp:
//	  endpoint: http://127.0.0.1:4317   # http:// plaintext, https:// TLS
//	  protocol: grpc                    # or http (OTLP/HTTP, protobuf; path defaults to /v1/metrics)
//	  interval: 60s                     # export period
//	  timeout: 10s                      # one export's bound
//	  headers_env: {x-api-key: OTLP_API_KEY}   # header values from the environment
//	  resource_attributes: {deployment.environment.name: prod}
func (w *walker) otlp(o *OTLP) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		endpointGiven := false
		w.mapping(n, k, map[string]func(*yaml.Node, string){
			"endpoint": func(n *yaml.Node, k string) {
				endpointGiven = true
				w.value(n, k, "a URL such as http://127.0.0.1:4317 (http:// plaintext, https:// TLS)", func(v string) bool {
					u, err := url.Parse(v)
					if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
						return false
					}
					o.Endpoint = v
					return true
				})
			},
			"protocol": func(n *yaml.Node, k string) {
				w.value(n, k, "grpc (OTLP/gRPC, the default) or http (OTLP/HTTP, protobuf)", func(v string) bool {
					if v != OTLPGRPC && v != OTLPHTTP {
						return false
					}
					o.Protocol = v
					return true
				})
			},
			"interval": func(n *yaml.Node, k string) {
				w.duration(&o.Interval)(n, k)
				// Each export sends every series; more often than each
				// second is load on the collector, not fresher data.
				if o.Interval != 0 && o.Interval < time.Second {
					w.Fail(n, k, `want at least 1s, e.g. "60s"`)
				}
			},
			"timeout":             w.duration(&o.Timeout),
			"headers_env":         w.envHeaders(&o.Headers),
			"resource_attributes": w.stringMap(&o.ResourceAttributes, "a mapping of resource attribute to its value"),
		})
		if !endpointGiven {
			w.Missing(n, join(k, "endpoint"), "the OTLP receiver's URL, e.g. http://127.0.0.1:4317")
		}
		if o.Protocol == "" {
			o.Protocol = OTLPGRPC
		}
		if u, err := url.Parse(o.Endpoint); err == nil && o.Protocol == OTLPGRPC && u.Path != "" && u.Path != "/" {
			w.failKey(join(k, "endpoint"), o.Endpoint, "a gRPC endpoint has no path; a path is for protocol http")
		}
	}
}

// envHeaders reads a mapping of header name to the environment variable
// that holds its value.
func (w *walker) envHeaders(dst *map[string]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.pairs(n, k, "a mapping of header to environment variable", func(header string, v *yaml.Node, k string) {
			env, ok := w.Scalar(v, k, "the name of an environment variable")
			if !ok {
				return
			}
			val := os.Getenv(env)
			if val == "" {
				// The value is a secret: name the variable, never the value.
				w.Fail(v, k, "this environment variable is empty or unset")
				return
			}
			if *dst == nil {
				*dst = map[string]string{}
			}
			(*dst)[header] = val
		})
	}
}

// stringMap reads a mapping of free-form keys to single values.
func (w *walker) stringMap(dst *map[string]string, what string) func(*yaml.Node, string) {
	return func(n *yaml.Node, k string) {
		w.pairs(n, k, what, func(key string, v *yaml.Node, k string) {
			if val, ok := w.Scalar(v, k, "a single value"); ok {
				if *dst == nil {
					*dst = map[string]string{}
				}
				(*dst)[key] = val
			}
		})
	}
}
