package config

import (
	"testing"

	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// A budget from the admin API is read and checked like one in the file, and
// its errors name the request, the key, the value and why.
func TestParseBudget(t *testing.T) {
	c, err := Load("testdata/currency.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := c.ParseBudget("PUT /v1/budgets/team-x", []byte(
		`{"name":"team-x","match":{"team":"x"},"limit":{"money":"50","currency":"GBP"},"window":"week","time_zone":"Europe/London","alert_at":[80],"unpriced":"allow"}`))
	if err != nil {
		t.Fatal(err)
	}
	b := rb.Budget
	if b.Name != "team-x" || b.Unit != ratelimit.Money || b.Currency != "GBP" || b.Window != ratelimit.Week ||
		b.Location.String() != "Europe/London" || len(b.AlertAt) != 1 || rb.Unpriced != UnpricedAllow {
		t.Fatalf("budget %+v", rb)
	}
	for _, tt := range []struct{ def, want string }{
		{`{"name":"a","limit":{"tokens":5},"window":"fortnight"}`, `PUT:1: window: "fortnight": want minute, hour, day, month, week, year, total`},
		{`{"name":"a","match":{"tenant":"x"},"limit":{"tokens":5},"window":"day"}`, `PUT:1: match.tenant: "tenant": not a configured dimension; configured: project, team, user`},
		{`{"name":"a","limit":{"money":"5","currency":"CHF"},"window":"day"}`, `PUT:1: limit.currency: "CHF": the catalog is in USD and no USD→CHF (or CHF→USD) rate is in force now; add one to currency.rates_files`},
		{`{"name":"a","limit":{"tokens":5},"window":"day","colour":"red"}`, `PUT:1: colour: unknown key; want one of alert_at, key_limits, limit, match, name, on_store_error, rolling, shadow, time_zone, unpriced, window`},
		{`{"name":`, `PUT: not valid JSON: line 1: did not find expected node content`},
	} {
		_, err := c.ParseBudget("PUT", []byte(tt.def))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s:\n got %v\nwant %s", tt.def, err, tt.want)
		}
	}
	merged := c.WithRuntime([]RuntimeBudget{rb, {Budget: ratelimit.Budget{Name: "eur"}}})
	if len(merged.Budgets) != len(c.Budgets)+1 || merged.UnpricedFor("team-x", -1) != UnpricedAllow || len(c.Budgets) != 4 {
		t.Fatalf("merged %d budgets (file %d)", len(merged.Budgets), len(c.Budgets))
	}
}
