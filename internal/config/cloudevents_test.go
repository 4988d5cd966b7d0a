package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The section as written, the URL and header values read from the
// environment at load; what is left out takes the sender's defaults, the
// subject the first configured dimension.
func TestCloudEventsSection(t *testing.T) {
	t.Setenv("TOKENMETER_TEST_CE_URL", "https://openmeter.example.com/api/v1/events")
	t.Setenv("TOKENMETER_TEST_CE_AUTH", "Bearer om_secret")
	tests := []struct {
		file string
		want *CloudEvents
	}{
		{"minimal.yaml", nil},
		{"cloudevents_minimal.yaml", &CloudEvents{URL: "http://127.0.0.1:8888/api/v1/events", Source: "tokenmeter",
			Type: "tokenmeter.request", Subject: "project", QueueSize: 10000, BatchSize: 100,
			FlushInterval: time.Second, Timeout: 10 * time.Second, MaxAttempts: 8}},
		{"cloudevents.yaml", &CloudEvents{URL: "https://openmeter.example.com/api/v1/events",
			Headers: map[string]string{"Authorization": "Bearer om_secret"}, Source: "https://gateway.example.com/eu-1",
			Type: "com.example.llm.request", Subject: "project", QueueSize: 500, BatchSize: 1,
			FlushInterval: 250 * time.Millisecond, Timeout: 3 * time.Second, MaxAttempts: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Ledger.CloudEvents, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", c.Ledger.CloudEvents, tt.want)
			}
		})
	}
}

// Each fixture is named after its mistake; the message names the file, the
// line, the key, the value and why, and never quotes a header's value or a
// URL read from the environment.
func TestCloudEventsSectionErrors(t *testing.T) {
	const f = "testdata/"
	tests := []badFile{
		{"cloudevents_without_url.yaml", f + "cloudevents_without_url.yaml:4: ledger.cloudevents: want exactly one of url, url_env: where the events are POSTed, e.g. https://openmeter.cloud/api/v1/events"},
		{"cloudevents_url_and_url_env.yaml", f + "cloudevents_url_and_url_env.yaml:4: ledger.cloudevents: want exactly one of url, url_env: where the events are POSTed, e.g. https://openmeter.cloud/api/v1/events"},
		{"cloudevents_url_env_unset.yaml", f + `cloudevents_url_env_unset.yaml:4: ledger.cloudevents.url_env: "TOKENMETER_TEST_UNSET_VARIABLE": this environment variable is empty or unset`},
		{"cloudevents_header_env_unset.yaml", f + `cloudevents_header_env_unset.yaml:5: ledger.cloudevents.headers_env.Authorization: "TOKENMETER_TEST_UNSET_VARIABLE": this environment variable is empty or unset`},
		{"cloudevents_not_http.yaml", f + "cloudevents_not_http.yaml:4: ledger.cloudevents: the URL's scheme must be http or https"},
		{"cloudevents_unknown_subject.yaml", f + `cloudevents_unknown_subject.yaml:5: ledger.cloudevents.subject: "customer": not a configured dimension; configured: project, team, user`},
		{"cloudevents_misspelled_key.yaml", f + "cloudevents_misspelled_key.yaml:5: ledger.cloudevents.batchsize: unknown key; want one of batch_size, flush_interval, headers_env, max_attempts, queue_size, source, subject, timeout, type, url, url_env"},
		{"cloudevents_bad_values.yaml", f + `cloudevents_bad_values.yaml:5: ledger.cloudevents.source: "token meter": want a URI-reference such as "tokenmeter" or "https://gateway.example.com/eu-1"` + "\n" +
			f + `cloudevents_bad_values.yaml:6: ledger.cloudevents.batch_size: "0": want a whole number from 1 to 1000` + "\n" +
			f + `cloudevents_bad_values.yaml:7: ledger.cloudevents.queue_size: "8": want a whole number from 16 to 16777216` + "\n" +
			f + `cloudevents_bad_values.yaml:8: ledger.cloudevents.flush_interval: "0s": want a duration over 0 such as "1s"` + "\n" +
			f + `cloudevents_bad_values.yaml:9: ledger.cloudevents.timeout: "soon": want a duration over 0 such as "10s"` + "\n" +
			f + `cloudevents_bad_values.yaml:10: ledger.cloudevents.max_attempts: "1000": want a whole number from 1 to 100`},
	}
	badFiles(t, tests)
}

// The sender is built once, at start: a reload that changes the section is
// refused, and says so.
func TestCloudEventsChangeNeedsRestart(t *testing.T) {
	cur, err := Load("testdata/cloudevents_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	next, err := Load("testdata/cloudevents_minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := restartOnly(cur, next); err != nil {
		t.Fatalf("an unchanged section: %v", err)
	}
	next.Ledger.CloudEvents.Subject = "team"
	if err := restartOnly(cur, next); err == nil || err.Error() != "testdata/cloudevents_minimal.yaml: [ledger.cloudevents] changed: restart tokenmeter to apply them; keeping the running config" {
		t.Fatalf("got %v", err)
	}
}
