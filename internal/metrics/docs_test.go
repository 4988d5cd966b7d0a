package metrics

import (
	"context"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/cloudevents"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/webhook"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// docs/metrics.md lists every metric family tokenmeter exports, and only
// those: each family of a scrape with every collector registered and a
// sample in each must be named on the page, and each name on the page must
// be exported.
func TestDocsListEveryMetric(t *testing.T) {
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	b := &ratelimit.Budget{Name: "b", Unit: ratelimit.Money, Window: ratelimit.Day}
	m := New(DimensionNames("project"), func(context.Context) ([]ratelimit.Status, error) {
		return []ratelimit.Status{{Budget: b, Key: "all", Limit: 10, Resets: time.Unix(0, 0)}}, nil
	}, quiet)
	m.WatchLedger(func() usagedb.Stats { return usagedb.Stats{} })
	m.WatchAlerts(func() webhook.Stats { return webhook.Stats{} })
	m.WatchCloudEvents(func() cloudevents.Stats { return cloudevents.Stats{} })
	m.WatchForecasts(func() []alerting.Forecast { return []alerting.Forecast{{Budget: "b", Key: "all"}} })
	r := &ledger.Record{Provider: "openai", Model: "m", PricedModel: "m", Priced: true, Outcome: ledger.OK, Currency: money.USD, Cost: 1,
		Dimensions: dims([]string{"project"}, "p")}
	r.Usage.Set(usage.Input, 1)
	r.Usage.SetUnit(usage.Images, 1)
	m.Append(r)
	m.Append(&ledger.Record{Provider: "openai", Model: "x", Outcome: ledger.Denied, Budget: "b"})
	m.Append(&ledger.Record{Provider: "openai", Model: "x", Outcome: ledger.Denied, Reason: reason.KeyRevoked})
	m.ObservePhase("request_headers", time.Microsecond)
	m.ParseError("openai_chat", "malformed_json")
	m.InvalidAttribution("project")
	m.StoreError("reserve")
	m.ShadowDenied("b")
	m.StoreUnavailable("b", true)

	typ := regexp.MustCompile(`(?m)^# TYPE (tokenmeter_[a-z_]+) `)
	var exported []string
	for _, mm := range typ.FindAllStringSubmatch(scrape(t, m), -1) {
		exported = append(exported, mm[1])
	}
	if len(exported) < 20 {
		t.Fatalf("only %d families exported: %v", len(exported), exported)
	}
	named := regexp.MustCompile("`(tokenmeter_[a-z_]+)`")
	var documented []string
	for _, mm := range named.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, mm[1])
	}
	for _, f := range exported {
		if !slices.Contains(documented, f) {
			t.Errorf("%s is exported but not in docs/metrics.md", f)
		}
	}
	for _, f := range documented {
		if !slices.Contains(exported, f) {
			t.Errorf("docs/metrics.md names %s, which is not exported", f)
		}
	}
}
