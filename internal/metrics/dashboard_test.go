package metrics

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// The Grafana dashboard in examples/grafana queries only metrics and labels
// that tokenmeter exports: every metric name in its PromQL, and every label
// its "by (...)" clauses group on, is checked against a live scrape.
func TestGrafanaDashboardMatchesMetrics(t *testing.T) {
	data, err := os.ReadFile("../../examples/grafana/tokenmeter.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	// Every family exported, with one sample each, and its label names.
	budget := &ratelimit.Budget{Name: "b", Unit: ratelimit.Money, Limit: 10, Window: ratelimit.Day}
	m := New(DimensionNames("project", "team", "user"), func(context.Context) ([]ratelimit.Status, error) {
		return []ratelimit.Status{{Budget: budget, Key: "all", Limit: 10, Resets: time.Now()}}, nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := &ledger.Record{Provider: "openai", Model: "m", Priced: true, Currency: money.USD, Outcome: ledger.Denied, Budget: "b", Cost: 1,
		Dimensions: attribution.Dimensions{Names: []string{"project", "team", "user"}, Values: []string{"p", "t", "u"}}}
	r.Usage.Set(usage.Input, 1)
	m.Append(r)
	// A denied record carries no charge: the cost sample comes from an
	// answered one.
	ok := *r
	ok.Outcome = ledger.OK
	m.Append(&ok)
	m.Append(&ledger.Record{Provider: "openai", Model: "x", Outcome: ledger.OK, Dimensions: r.Dimensions, Usage: r.Usage})
	m.ObservePhase("request_headers", time.Microsecond)
	m.ParseError("openai_chat", "malformed_json")
	m.ShadowDenied("b")
	m.WatchAlerts(func() webhook.Stats { return webhook.Stats{} })
	labels := map[string]map[string]bool{}
	sample := regexp.MustCompile(`^(tokenmeter_[a-z_]+?)(?:_bucket|_sum|_count)?(?:\{(.*)\})? `)
	for _, line := range strings.Split(scrape(t, m), "\n") {
		mm := sample.FindStringSubmatch(line)
		if mm == nil {
			continue
		}
		name := mm[1]
		if labels[name] == nil {
			labels[name] = map[string]bool{}
		}
		for _, kv := range strings.Split(mm[2], ",") {
			if k, _, ok := strings.Cut(kv, "="); ok {
				labels[name][k] = true
			}
		}
	}
	metric := regexp.MustCompile(`tokenmeter_[a-z_]+`)
	by := regexp.MustCompile(`by \(([^)]*)\)`)
	checked := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			names := metric.FindAllString(tg.Expr, -1)
			for i, n := range names {
				n = strings.TrimSuffix(n, "_bucket")
				names[i] = n
				if labels[n] == nil {
					t.Errorf("panel %q: %s is not exported (expr %s)", p.Title, n, tg.Expr)
				}
				checked++
			}
			for _, g := range by.FindAllStringSubmatch(tg.Expr, -1) {
				for _, l := range strings.Split(g[1], ",") {
					l = strings.TrimSpace(l)
					found := l == "le"
					for _, n := range names {
						found = found || labels[n][l]
					}
					if !found {
						t.Errorf("panel %q: no metric in %s has label %q", p.Title, tg.Expr, l)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d metric references found: the dashboard did not parse as expected", checked)
	}
}
