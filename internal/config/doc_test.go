package config

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docProbes put an unknown key in each mapping of the schema; the error
// names the keys accepted there, which is the schema as the parser knows
// it. prefix is how docs/config.md writes that mapping's keys.
var docProbes = []struct{ prefix, yaml string }{
	{"", "zz_probe: 1"},
	{"listen.", "listen: {zz_probe: 1}"},
	{"admin.", "admin: {zz_probe: 1}"},
	{"extproc.", "extproc: {zz_probe: 1}"},
	{"reload.", "reload: {zz_probe: 1}"},
	{"shutdown.", "shutdown: {zz_probe: 1}"},
	{"store.", "store: {zz_probe: 1}"},
	{"store.redis.", "store: {redis: {zz_probe: 1}}"},
	{"catalog.", "catalog: {builtin: true, zz_probe: 1}"},
	{"currency.", "currency: {zz_probe: 1}"},
	{"alerts.", "alerts: {zz_probe: 1}"},
	{"alerts.webhooks[].", "alerts: {webhooks: [{zz_probe: 1}]}"},
	{"alerts.anomaly.", "alerts: {anomaly: {zz_probe: 1}}"},
	{"ledger.", "ledger: {zz_probe: 1}"},
	{"ledger.cloudevents.", "ledger: {cloudevents: {zz_probe: 1}}"},
	{"ledger.postgres.", "ledger: {postgres: {zz_probe: 1}}"},
	{"unpriced.", "unpriced: {zz_probe: 1}"},
	{"attribution.", "attribution: {zz_probe: 1}"},
	{"attribution.dimensions[].", "attribution: {dimensions: [{zz_probe: 1}]}"},
	{"attribution.dimensions[].from[].", "attribution: {dimensions: [{name: a, from: [{zz_probe: 1}]}]}"},
	{"attribution.dimensions[].from[].metadata.", "attribution: {dimensions: [{name: a, from: [{metadata: {zz_probe: 1}}]}]}"},
	{"attribution.api_keys.", "attribution: {api_keys: {zz_probe: 1}}"},
	{"attribution.api_keys.keys[].", "attribution: {api_keys: {keys: [{zz_probe: 1}]}}"},
	{"metrics.", "metrics: {zz_probe: 1}"},
	{"metrics.dimensions.<name>.", "metrics: {dimensions: {project: {zz_probe: 1}}}"},
	{"metrics.otlp.", "metrics: {otlp: {zz_probe: 1}}"},
	{"routes[].", "routes: [{zz_probe: 1}]"},
	{"routes[].unpriced.", "routes: [{prefix: /x, unpriced: {zz_probe: 1}}]"},
	{"adjustments[].", "adjustments: [{zz_probe: 1}]"},
	{"budgets[].", "budgets: [{zz_probe: 1}]"},
	{"budgets[].limit.", "budgets: [{limit: {zz_probe: 1}}]"},
	{"statements.", "statements: {zz_probe: 1}"},
	{"statements.tax[].", "statements: {tax: [{zz_probe: 1}]}"},
}

var acceptedRE = regexp.MustCompile(`zz_probe: unknown key; want one of ([a-z_, ]+)`)

// docs/config.md lists every key the parser accepts, and nothing else.
func TestConfigDocListsEveryKey(t *testing.T) {
	var schema []string
	for _, p := range docProbes {
		data := p.yaml + "\n"
		if !strings.HasPrefix(p.yaml, "catalog:") {
			data = "catalog: {builtin: true}\n" + data
		}
		_, err := Parse("probe.yaml", []byte(data))
		m := acceptedRE.FindStringSubmatch(fmt.Sprint(err))
		if m == nil {
			t.Fatalf("probe %q: no list of accepted keys in %v", p.yaml, err)
		}
		for _, k := range strings.Split(m[1], ", ") {
			schema = append(schema, p.prefix+k)
		}
	}
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllSubmatch(doc, -1) {
		documented = append(documented, string(m[1]))
	}
	for _, k := range schema {
		if !slices.Contains(documented, k) {
			t.Errorf("docs/config.md does not document %s", k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(schema, k) {
			t.Errorf("docs/config.md documents %s, which the parser does not accept", k)
		}
	}
}
