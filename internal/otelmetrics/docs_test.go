package otelmetrics

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/tokenmeter/tokenmeter/internal/metrics"
)

// docs/metrics.md's OTLP table lists every instrument the sink exports,
// with its unit, and nothing else.
func TestDocsListEveryInstrument(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## OTLP\n")
	if !ok {
		t.Fatal("docs/metrics.md has no OTLP section")
	}
	documented := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| [^|]+ \\| `([^`]+)`").FindAllStringSubmatch(section, -1) {
		documented[m[1]] = m[2]
	}

	reader := sdkmetric.NewManualReader()
	o := Options{Currency: "USD", Labels: metrics.DimensionNames(dimNames...)}
	o.Labels.Dimensions[0].MaxValues = 1
	s, err := NewWithReader(reader, resource.Empty(), o)
	if err != nil {
		t.Fatal(err)
	}
	sendRecords(s) // every instrument gets a point, the overflow counter too
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			exported = append(exported, m.Name)
			if unit, ok := documented[m.Name]; !ok {
				t.Errorf("%s is exported but not in docs/metrics.md's OTLP table", m.Name)
			} else if unit != m.Unit && !(m.Name == "tokenmeter.cost" && strings.HasPrefix(unit, m.Unit)) {
				t.Errorf("%s: unit %q, documented %q", m.Name, m.Unit, unit)
			}
		}
	}
	for name := range documented {
		if !slices.Contains(exported, name) {
			t.Errorf("docs/metrics.md's OTLP table names %s, which is not exported", name)
		}
	}
}
