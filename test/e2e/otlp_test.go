package e2e

import (
	"fmt"
	"maps"
	"os"
	"testing"

	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"

	"github.com/tokenmeter/tokenmeter/internal/otelmetrics/otlptest"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// A chat request through the real Envoy, with the real binary exporting
// over OTLP/gRPC to an in-process receiver: the export it flushes on a
// graceful stop carries the exact token usage by type and class, the exact
// cost and the request's attribution, with the configured header and
// resource attributes.
func TestOTLPExportOfAChatRequest(t *testing.T) {
	rcv := otlptest.Start(t)
	t.Setenv("TOKENMETER_E2E_OTLP_KEY", "secret-1")
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: fmt.Sprintf(`metrics:
  otlp:
    endpoint: %q
    headers_env: {x-api-key: TOKENMETER_E2E_OTLP_KEY}
    resource_attributes: {deployment.environment.name: e2e}
`, rcv.GRPCEndpoint())})
	h := map[string]string{
		"x-tokenmeter-project": "alpha", "x-tokenmeter-team": "search", "x-tokenmeter-user": "ann",
		"x-mock-prompt-tokens": "1200", "x-mock-cached-tokens": "200",
		"x-mock-completion-tokens": "50", "x-mock-reasoning-tokens": "30",
	}
	resp := s.Post(chatBody, h)
	if got := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	// The record is in once Prometheus has it; the interval (60 s) has not
	// passed, so the stop's flush is what exports it.
	dims := []string{"project", "alpha", "team", "search", "model", "gpt-4o-mini", "provider", "openai", "currency", "USD"}
	s.WaitMetric("tokenmeter_cost_total", labels(dims...), usd("0.000213"))
	s.TM.Stop(os.Interrupt)

	reqs := rcv.Requests()
	if len(reqs) == 0 {
		t.Fatalf("no OTLP export after a graceful stop; tokenmeter said:\n%s", s.TM.Output())
	}
	if k := rcv.Headers()[len(reqs)-1]["x-api-key"]; k != "secret-1" {
		t.Errorf("x-api-key %q, want the environment's value", k)
	}
	last := reqs[len(reqs)-1]
	res := otlptest.Attrs(last.GetResourceMetrics()[0].GetResource().GetAttributes())
	if res["service.name"] != "tokenmeter" || res["deployment.environment.name"] != "e2e" {
		t.Errorf("resource %v", res)
	}

	// user is not an attribute by default, as it is not a Prometheus label.
	base := map[string]string{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
		"gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini",
		"tokenmeter.attribution.project": "alpha", "tokenmeter.attribution.team": "search"}
	with := func(k, v string) map[string]string { m := maps.Clone(base); m[k] = v; return m }

	usage := otlptest.Metric(last, "gen_ai.client.token.usage")
	for typ, want := range map[string]float64{"input": 1200, "output": 80} {
		p := histogramPoint(t, usage, with("gen_ai.token.type", typ))
		if p.GetCount() != 1 || p.GetSum() != want {
			t.Errorf("token usage %s: count %d sum %v, want 1 and %v", typ, p.GetCount(), p.GetSum(), want)
		}
	}
	tokens := otlptest.Metric(last, "tokenmeter.tokens")
	for class, want := range map[string]int64{"input": 1000, "cache_read": 200, "output": 50, "reasoning": 30} {
		if v := numberPoint(t, tokens, with("tokenmeter.token.class", class)).GetAsInt(); v != want {
			t.Errorf("tokens %s = %d, want %d", class, v, want)
		}
	}
	cost := otlptest.Metric(last, "tokenmeter.cost")
	if v := numberPoint(t, cost, with("tokenmeter.currency", "USD")).GetAsDouble(); v != usd("0.000213") || cost.GetUnit() != "{USD}" {
		t.Errorf("cost = %v %s, want exactly 0.000213 {USD}", v, cost.GetUnit())
	}
	dur := otlptest.Metric(last, "gen_ai.client.operation.duration")
	durAttrs := map[string]string{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
		"gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini", "tokenmeter.outcome": "ok"}
	if p := histogramPoint(t, dur, durAttrs); p.GetCount() != 1 || p.GetSum() <= 0 {
		t.Errorf("operation duration: count %d sum %v", p.GetCount(), p.GetSum())
	}
}

func histogramPoint(t *testing.T, m *metricpb.Metric, want map[string]string) *metricpb.HistogramDataPoint {
	t.Helper()
	for _, p := range m.GetHistogram().GetDataPoints() {
		if maps.Equal(otlptest.Attrs(p.GetAttributes()), want) {
			return p
		}
	}
	t.Fatalf("%s: no point with %v in %v", m.GetName(), want, m)
	return nil
}

func numberPoint(t *testing.T, m *metricpb.Metric, want map[string]string) *metricpb.NumberDataPoint {
	t.Helper()
	for _, p := range m.GetSum().GetDataPoints() {
		if maps.Equal(otlptest.Attrs(p.GetAttributes()), want) {
			return p
		}
	}
	t.Fatalf("%s: no point with %v in %v", m.GetName(), want, m)
	return nil
}
