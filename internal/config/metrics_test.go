package config

import (
	"path/filepath"
	"reflect"
	"testing"
)

// The metrics section resolves one setting per attribution dimension: its
// own, else the section's cap, and user off unless turned on.
func TestMetricsSection(t *testing.T) {
	tests := []struct {
		file string
		want Metrics
	}{
		{"minimal.yaml", Metrics{Dimensions: []MetricDimension{
			{Name: "project", Enabled: true}, {Name: "team", Enabled: true}, {Name: "user", Enabled: false}}}},
		{"metrics.yaml", Metrics{MaxLabelValues: 30, MaxLabelSets: 500, MaxBudgetKeys: 10, Dimensions: []MetricDimension{
			{Name: "project", Enabled: true, MaxValues: 200}, {Name: "team", Enabled: true, MaxValues: 30},
			{Name: "user", Enabled: true, MaxValues: 30}, {Name: "env", Enabled: false, MaxValues: 30}}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Metrics, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", c.Metrics, tt.want)
			}
		})
	}
}

// Each fixture is named after its mistake; the message names the file, the
// line, the key, the value and why.
func TestMetricsSectionErrors(t *testing.T) {
	tests := []badFile{
		{"metrics_unknown_dimension.yaml", `testdata/metrics_unknown_dimension.yaml:5: metrics.dimensions.tenant: "tenant": not a configured dimension; configured: project, team, user`},
		{"metrics_misspelled_key.yaml", "testdata/metrics_misspelled_key.yaml:3: metrics.max_label_value: unknown key; want one of dimensions, max_budget_keys, max_label_sets, max_label_values, otlp\n" +
			"testdata/metrics_misspelled_key.yaml:5: metrics.dimensions.user.enable: unknown key; want one of enabled, max_values"},
		{"metrics_zero_cap.yaml", "testdata/metrics_zero_cap.yaml:3: metrics.max_label_sets: \"0\": want a whole number from 1 to 1000000\n" +
			"testdata/metrics_zero_cap.yaml:5: metrics.dimensions.project.max_values: \"-5\": want a whole number from 1 to 100000"},
		{"metrics_dimension_twice.yaml", `testdata/metrics_dimension_twice.yaml:5: metrics.dimensions.project: repeated key; first at line 4`},
	}
	badFiles(t, tests)
}

// The labels are fixed when the metrics register: a reload that changes
// the section is refused, and says so.
func TestMetricsChangeNeedsRestart(t *testing.T) {
	cur, err := Load("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	next, err := Load("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := restartOnly(cur, next); err != nil {
		t.Fatalf("same file refused: %v", err)
	}
	next.Metrics.Dimensions[2].Enabled = true
	if err := restartOnly(cur, next); err == nil || err.Error() != "testdata/minimal.yaml: [metrics] changed: restart tokenmeter to apply them; keeping the running config" {
		t.Fatalf("got %v", err)
	}
}
