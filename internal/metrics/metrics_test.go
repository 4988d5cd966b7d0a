package metrics

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	return w.Body.String()
}

// A million one-token charges of 75 nano-dollars export as exactly 0.075:
// the sum is kept in nano-units and converted once, at scrape.
func TestCostIsSummedExactly(t *testing.T) {
	m := New(DimensionNames("project"), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := &ledger.Record{Provider: "openai", Model: "m", PricedModel: "m", Priced: true, Currency: money.USD,
		Outcome: ledger.OK, Cost: 75, Dimensions: attribution.Dimensions{Names: []string{"project"}, Values: []string{"p"}}}
	r.Usage.Set(usage.CacheRead, 1)
	for i := 0; i < 1_000_000; i++ {
		m.Append(r)
	}
	out := scrape(t, m)
	for _, want := range []string{
		`tokenmeter_cost_total{currency="USD",model="m",project="p",provider="openai"} 0.075` + "\n",
		`tokenmeter_tokens_total{class="cache_read",model="m",project="p",provider="openai"} 1e+06` + "\n",
		`tokenmeter_requests_total{model="m",outcome="ok",provider="openai"} 1e+06` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
}

func TestUnpricedDeniedAndInvalid(t *testing.T) {
	m := New(DimensionNames("project"), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	dims := attribution.Dimensions{Names: []string{"project"}, Values: []string{"p"}}
	u := &ledger.Record{Provider: "openai", Model: "mystery", Outcome: ledger.OK, Dimensions: dims}
	u.Usage.Set(usage.Input, 7)
	m.Append(u)
	m.Append(&ledger.Record{Provider: "openai", Model: "gpt", PricedModel: "gpt", Priced: true, Outcome: ledger.Denied, Budget: "b", Dimensions: dims})
	m.InvalidAttribution("project")
	m.ParseError("openai_chat", "malformed_json")
	out := scrape(t, m)
	for _, want := range []string{
		`tokenmeter_unpriced_requests_total{outcome="ok",provider="openai"} 1`,
		`tokenmeter_tokens_total{class="input",model="unpriced",project="p",provider="openai"} 7`,
		`tokenmeter_denied_total{budget="b"} 1`,
		`tokenmeter_requests_total{model="gpt",outcome="denied",provider="openai"} 1`,
		`tokenmeter_invalid_attribution_total{dimension="project"} 1`,
		`tokenmeter_parse_errors_total{dialect="openai_chat",reason="malformed_json"} 1`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	if strings.Contains(out, "mystery") || strings.Contains(out, `tokenmeter_cost_total{currency="",model="unpriced"`) {
		t.Errorf("unpriced model has a cost sample:\n%s", out)
	}
}
