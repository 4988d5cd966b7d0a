package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The OTLP section as written, with the environment's header values read
// at load; protocol defaults to grpc and the durations to the exporter's.
func TestOTLPSection(t *testing.T) {
	t.Setenv("TOKENMETER_TEST_OTLP_KEY", "k-123")
	tests := []struct {
		file string
		want OTLP
	}{
		{"minimal.yaml", OTLP{}},
		{"otlp_minimal.yaml", OTLP{Endpoint: "http://127.0.0.1:4317", Protocol: OTLPGRPC}},
		{"otlp.yaml", OTLP{Endpoint: "https://otel.example.com:4318/custom/metrics", Protocol: OTLPHTTP,
			Interval: 15 * time.Second, Timeout: 3 * time.Second,
			Headers:            map[string]string{"x-api-key": "k-123"},
			ResourceAttributes: map[string]string{"deployment.environment.name": "prod", "k8s.cluster.name": "eu-1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Metrics.OTLP, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", c.Metrics.OTLP, tt.want)
			}
		})
	}
}

// Each fixture is named after its mistake; the message names the file, the
// line, the key, the value and why (never a header's secret value).
func TestOTLPSectionErrors(t *testing.T) {
	tests := []badFile{
		{"otlp_without_endpoint.yaml", `testdata/otlp_without_endpoint.yaml:4: metrics.otlp.endpoint: missing; want the OTLP receiver's URL, e.g. http://127.0.0.1:4317`},
		{"otlp_misspelled_key.yaml", `testdata/otlp_misspelled_key.yaml:5: metrics.otlp.intervall: unknown key; want one of endpoint, headers_env, interval, protocol, resource_attributes, timeout`},
		{"otlp_bad_values.yaml", "testdata/otlp_bad_values.yaml:4: metrics.otlp.endpoint: \"grpc://collector:4317\": want a URL such as http://127.0.0.1:4317 (http:// plaintext, https:// TLS)\n" +
			"testdata/otlp_bad_values.yaml:5: metrics.otlp.protocol: \"http/protobuf\": want grpc (OTLP/gRPC, the default) or http (OTLP/HTTP, protobuf)\n" +
			"testdata/otlp_bad_values.yaml:6: metrics.otlp.interval: \"100ms\": want at least 1s, e.g. \"60s\""},
		{"otlp_grpc_with_path.yaml", `testdata/otlp_grpc_with_path.yaml:4: metrics.otlp.endpoint: "http://collector:4317/v1/metrics": a gRPC endpoint has no path; a path is for protocol http`},
		{"otlp_header_env_unset.yaml", `testdata/otlp_header_env_unset.yaml:5: metrics.otlp.headers_env.authorization: "TOKENMETER_TEST_UNSET_VARIABLE": this environment variable is empty or unset`},
	}
	badFiles(t, tests)
}

// The exporter is built once, at start: a reload that changes the section
// is refused, and says so.
func TestOTLPChangeNeedsRestart(t *testing.T) {
	cur, err := Load("testdata/otlp_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	next, err := Load("testdata/otlp_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	next.Metrics.OTLP.Interval = 5 * time.Second
	if err := restartOnly(cur, next); err == nil || err.Error() != "testdata/otlp_minimal.yaml: [metrics] changed: restart tokenmeter to apply them; keeping the running config" {
		t.Fatalf("got %v", err)
	}
}
