package config

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// budgetView is what valid.yaml sets in a budget.
type budgetView struct {
	Name   string
	Unit   ratelimit.Unit
	Limit  int64
	Window ratelimit.Window
	Match  []ratelimit.Match
}

// routeView is what valid.yaml sets in a route.
type routeView struct{ Host, Prefix, Dialect string }

// Every key valid.yaml sets, as read.
func TestLoadValid(t *testing.T) {
	c, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var budgets []budgetView
	for _, b := range c.Budgets {
		budgets = append(budgets, budgetView{b.Name, b.Unit, b.Limit, b.Window, b.Match})
	}
	var routes []routeView
	for _, r := range c.Routes {
		routes = append(routes, routeView{r.Host, r.Prefix, r.Dialect.Name()})
	}
	tests := []struct {
		key       string
		got, want any
	}{
		{"listen.grpc", c.GRPCListen, "127.0.0.1:7000"},
		{"listen.admin", c.AdminListen, "127.0.0.1:7001"},
		{"extproc.max_message_bytes", c.MaxMessageBytes, int64(16 << 20)},
		{"extproc.inject_stream_usage", c.InjectStreamUsage, false},
		{"extproc.default_max_tokens", c.DefaultMaxTokens, int64(1000)},
		{"store.dir", c.StoreDir, "/var/lib/tokenmeter"},
		{"store.sync_writes", c.StoreSyncWrites, true},
		{"catalog.builtin", c.BuiltinCatalog, false},
		{"catalog.files", c.CatalogFiles, []string{filepath.Join("testdata", "prices.yaml")}},
		{"catalog entries", c.Catalog.Len(), 1},
		{"unpriced.policy", c.Unpriced, UnpricedAllow},
		{"attribution.dimensions", c.Dimensions,
			[]attribution.Dimension{{Name: "project", Header: "x-project"}, {Name: "cost_centre", Header: "x-cost-centre"}}},
		{"budgets", budgets, []budgetView{
			{"daily", ratelimit.Money, int64(money.MustParse("12.5")), ratelimit.Day, []ratelimit.Match{{Dimension: "project", Value: "demo"}}},
			{"per-cc", ratelimit.Tokens, 1_000_000, ratelimit.Month, []ratelimit.Match{{Dimension: "cost_centre", Value: ratelimit.Wildcard}}},
		}},
		{"routes", routes, []routeView{{Prefix: "/team-x/", Dialect: "openai_chat"}, {Host: "api.groq.com", Dialect: "openai_chat"}}},
		{"shutdown", c.Shutdown, Shutdown{Drain: 0, Grace: 45 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %+v, want %+v", tt.got, tt.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := Load("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCListen != DefaultGRPCListen || c.AdminListen != DefaultAdminListen || !c.InjectStreamUsage ||
		c.MaxMessageBytes != DefaultMaxMessageBytes || c.Unpriced != UnpricedDeny || len(c.Dimensions) != 3 || c.StoreDir != DefaultStoreDir ||
		c.Shutdown != (Shutdown{Drain: 5 * time.Second, Grace: 20 * time.Second}) {
		t.Fatalf("defaults: %+v", c)
	}
}

// Each fixture is named after its mistake; the message names the file, the
// line, the key, the value and why.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"unknown_key.yaml", `testdata/unknown_key.yaml:4: extproc.inject_stream_usgae: unknown key; want one of admission, buffer_json_below_bytes, default_max_tokens, gate_deadline, inject_stream_usage, max_message_bytes, max_response_buffer_bytes, observer_deadline`},
		// The walker's problems, worded as in catalogs and rates files.
		{"repeated_key.yaml", `testdata/repeated_key.yaml:4: extproc.default_max_tokens: repeated key; first at line 3`},
		{"yaml_alias.yaml", `testdata/yaml_alias.yaml:2: listen.admin: YAML aliases are not supported; write the value out`},
		{"missing_value.yaml", `testdata/missing_value.yaml:3: extproc.admission: missing value; want estimate (the default: prompt bytes / 4 plus max_tokens) or strict (an upper bound: one token per prompt byte)`},
		{"second_document.yaml", `testdata/second_document.yaml:2: a second YAML document; a file holds one, split others into their own files`},
		{"bad_window.yaml", `testdata/bad_window.yaml:5: budgets[0].window: "fortnight": want minute, hour, day, month, week, year, total`},
		{"two_limits.yaml", `testdata/two_limits.yaml:4: budgets[0].limit: want exactly one of money, tokens, requests, concurrent`},
		{"unknown_dimension.yaml", `testdata/unknown_dimension.yaml:4: budgets[0].match.tenant: "tenant": not a configured dimension; configured: project, team, user`},
		{"negative_money_limit.yaml", `testdata/negative_money_limit.yaml:4: budgets[0].limit.money: "-5": want a positive decimal amount, e.g. "25.00" (in limit.currency, default the reporting currency)`},
		{"unknown_reporting_currency.yaml", `testdata/unknown_reporting_currency.yaml:3: currency.reporting: "EURO": want an active ISO 4217 currency code such as USD or EUR`},
		{"reporting_currency_without_rate.yaml", `testdata/reporting_currency_without_rate.yaml:3: currency.reporting: "JPY": the catalog is in USD and no USD→JPY (or JPY→USD) rate is in force now; add one to currency.rates_files`},
		{"budget_currency_without_rate.yaml", `testdata/budget_currency_without_rate.yaml:5: budgets[0].limit.currency: "CHF": the catalog is in USD and no USD→CHF (or CHF→USD) rate is in force now; add one to currency.rates_files`},
		{"currency_on_token_limit.yaml", `testdata/currency_on_token_limit.yaml:4: budgets[0].limit.currency: only a money limit has a currency`},
		{"bad_rates_file.yaml", `testdata/negative_rate.yaml:2: rates[0].rate: "-1.08": not positive; want the units of to that one unit of from buys`},
		{"duplicate_budget.yaml", `testdata/duplicate_budget.yaml:4: budgets[1].name: "b": budget name used twice`},
		{"bad_policy.yaml", `testdata/bad_policy.yaml:2: unpriced.policy: "free": want deny, allow or fallback`},
		{"missing_catalog.yaml", `testdata/missing_catalog.yaml:1: catalog.files: required with catalog.builtin: false: at least one price catalog file`},
		{"reserved_dimension.yaml", `testdata/reserved_dimension.yaml:4: attribution.dimensions[0]: dimension name "model": reserved for a built-in label`},
		{"unknown_dialect.yaml", `testdata/unknown_dialect.yaml:3: routes[0].dialect: "klingon": unknown dialect; known: {known}`},
		// Cross-section checks name the item as written, even after an invalid one.
		{"budget_after_invalid.yaml", "testdata/budget_after_invalid.yaml:3: budgets[0].window: \"fortnight\": want minute, hour, day, month, week, year, total\n" +
			"testdata/budget_after_invalid.yaml:4: budgets[1].match.tenant: \"tenant\": not a configured dimension; configured: project, team, user"},
		{"bad_adjustment.yaml", "testdata/bad_adjustment.yaml:3: adjustments[0].percent: \"-100\": a discount must be less than 100%\n" +
			"testdata/bad_adjustment.yaml:4: adjustments[1].percent: \"0.00000001\": want a decimal percentage with at most 7 decimal places, such as \"10\" or \"-12.5\"\n" +
			"testdata/bad_adjustment.yaml:7: adjustments[4].name: missing; want the adjustment's name\n" +
			"testdata/bad_adjustment.yaml:5: adjustments[2].match.tenant: \"tenant\": not a configured dimension\n" +
			"testdata/bad_adjustment.yaml:6: adjustments[3].name: \"c\": adjustment name used twice"},
		{"fallback_unknown_model.yaml", `testdata/fallback_unknown_model.yaml:2: unpriced.fallback_model: "gpt-9": not a model in the catalog`},
		{"fallback_without_model.yaml", `testdata/fallback_without_model.yaml: unpriced.fallback_model: required with policy fallback: the catalog model unknown models are priced at`},
		{"route_fallback_without_model.yaml", `testdata/route_fallback_without_model.yaml:5: routes[0].unpriced: fallback_model is required with policy fallback`},
		{"route_fallback_unknown_model.yaml", `testdata/route_fallback_unknown_model.yaml:6: routes[0].unpriced.fallback_model: "gpt-9": not a model in the catalog`},
		{"window_and_rolling.yaml", `testdata/window_and_rolling.yaml:6: budgets[0].rolling: "1m": a budget has a calendar window or a rolling one, not both`},
		{"bad_time_zone.yaml", `testdata/bad_time_zone.yaml:6: budgets[0].time_zone: "Europe/Pariss": want an IANA time zone name such as Europe/Paris or UTC`},
		{"concurrent_with_window.yaml", `testdata/concurrent_with_window.yaml:3: budgets[0]: a concurrent limit counts requests in flight: it has no window`},
		{"rolling_fraction.yaml", `testdata/rolling_fraction.yaml:5: budgets[0].rolling: "1500ms": want a whole number of seconds from 1s to 24h, e.g. 1m for a per-minute rate`},
		{"bad_store_error_policy.yaml", `testdata/bad_store_error_policy.yaml:5: budgets[0].on_store_error: "panic": want allow (fail open, the default) or deny (fail closed)`},
		{"budget_without_window.yaml", `testdata/budget_without_window.yaml:3: budgets[0]: want a window (minute, hour, day, month, week, year, total) or a rolling period such as 1m`},
		{"bad_key_limits.yaml", "testdata/bad_key_limits.yaml:7: budgets[0].key_limits.user=bob: \"user=bob\": want a key of the form project=VALUE,user=VALUE (a ',', '=' or '%' in a value written %2C, %3D, %25)\n" +
			"testdata/bad_key_limits.yaml:7: budgets[0].key_limits.project=other,user=cy: \"project=other,user=cy\": project is \"demo\" in this budget's match\n" +
			"testdata/bad_key_limits.yaml:7: budgets[0].key_limits.project=demo,user=dee: \"-1\": want a positive decimal amount, as the budget's money limit"},
		{"route_without_match.yaml", `testdata/route_without_match.yaml:3: routes[0]: want a host, a prefix, or both`},
		{"not_yaml.yaml", `testdata/not_yaml.yaml:1: not valid YAML: did not find expected ',' or '}'`},
		{"bad_catalog_price.yaml", `load catalog: testdata/negative_price.yaml:6: models[0].prices.input: "-1": negative; a price is zero or more`},
		{"negative_shutdown_grace.yaml", `testdata/negative_shutdown_grace.yaml:3: shutdown.grace: "-1s": want a duration such as "5s" or "0" to disable`},
		{"observer_deadline_too_short.yaml", `testdata/observer_deadline_too_short.yaml:3: extproc.observer_deadline: "10ms": want 0 (off) or at least 1s, e.g. "10s"`},
		// One run reports the config's mistakes and the catalogs' together.
		{"config_and_catalog_errors.yaml", `testdata/config_and_catalog_errors.yaml:2: extproc.max_message_bytez: unknown key; want one of admission, buffer_json_below_bytes, default_max_tokens, gate_deadline, inject_stream_usage, max_message_bytes, max_response_buffer_bytes, observer_deadline` +
			"\n" + `load catalog: testdata/negative_price.yaml:6: models[0].prices.input: "-1": negative; a price is zero or more`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatal("loaded without error")
			}
			// The list of dialects grows with every dialect; it comes from the registry.
			want := strings.ReplaceAll(tt.want, "{known}", strings.Join(dialect.DefaultRegistry().Names(), ", "))
			if err.Error() != want {
				t.Fatalf("error:\n got %s\nwant %s", err, want)
			}
		})
	}
}

// A LiteLLM price file is a catalog source as it is: converted on load, and
// overridden by later YAML files like any other catalog.
func TestLiteLLMCatalogSource(t *testing.T) {
	c, err := Load("testdata/litellm_catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.Catalog.Lookup("openai", "gpt-4o", time.Now())
	if !ok || e.Source != "litellm model_prices_and_context_window.json" {
		t.Fatalf("gpt-4o from LiteLLM: %+v %v", e, ok)
	}
	var u usage.Usage
	u.Set(usage.Input, 1000)
	u.Set(usage.CacheRead, 1000)
	u.Set(usage.Output, 100)
	// 1000×2.5 + 1000×1.25 + 100×10 = 4750 µ$.
	if got, err := e.Cost(&u, pricing.CostOptions{}); err != nil || got != money.MustParse("0.00475") {
		t.Fatalf("cost %s, %v", got, err)
	}
	// prices.yaml, later in the list, overrides LiteLLM's gpt-4o-mini.
	if e, ok := c.Catalog.Lookup("openai", "gpt-4o-mini", time.Now()); !ok || e.File != filepath.Join("testdata", "prices.yaml") {
		t.Fatalf("override: %+v", e)
	}
}

// The reporting currency, the rates and each money budget's currency: a
// budget without one is in the reporting currency.
func TestCurrency(t *testing.T) {
	c, err := Load("testdata/currency.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Reporting != "EUR" || c.Catalog.Currency() != "USD" {
		t.Fatalf("reporting %s, catalog %s", c.Reporting, c.Catalog.Currency())
	}
	want := map[string]money.Currency{"eur": "EUR", "gbp": "GBP", "usd": "USD", "tokens": ""}
	for _, b := range c.Budgets {
		if b.Currency != want[b.Name] {
			t.Errorf("budget %s in %q, want %q", b.Name, b.Currency, want[b.Name])
		}
	}
	// $1.0834 is €1 at the configured rate, used inverted.
	got, rate, err := c.FX.Convert(money.MustParse("1.0834"), "USD", "EUR", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || got != money.MustParse("1") || rate.Source != "ECB reference rate" {
		t.Fatalf("convert: %v %v %v", got, rate, err)
	}
}

// Every kind of limit the budgets section takes.
func TestLimits(t *testing.T) {
	c, err := Load("testdata/limits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ratelimit.Budget{}
	for _, b := range c.Budgets {
		got[b.Name] = b
	}
	if b := got["weekly-paris"]; b.Window != ratelimit.Week || b.Location.String() != "Europe/Paris" || !b.FailClosed || b.Currency != "USD" {
		t.Errorf("weekly-paris: %+v", b)
	}
	if b := got["yearly"]; b.Window != ratelimit.Year || b.Location != nil || b.FailClosed {
		t.Errorf("yearly: %+v", b)
	}
	if b := got["forever"]; b.Window != ratelimit.Total || !b.Shadow {
		t.Errorf("forever: %+v", b)
	}
	if b := got["rpm"]; b.Rolling != time.Minute || b.Unit != ratelimit.Requests || b.Limit != 60 {
		t.Errorf("rpm: %+v", b)
	}
	if b := got["tpm"]; b.Rolling != time.Minute || b.Unit != ratelimit.Tokens || b.Limit != 100000 {
		t.Errorf("tpm: %+v", b)
	}
	if b := got["inflight"]; b.Unit != ratelimit.Concurrent || b.Limit != 8 {
		t.Errorf("inflight: %+v", b)
	}
}

// The built-in catalog is loaded unless turned off, and the config's own
// files override it.
func TestBuiltinCatalog(t *testing.T) {
	c, err := Load("testdata/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.BuiltinCatalog || c.Catalog.Len() < 100 {
		t.Fatalf("builtin %v, %d entries", c.BuiltinCatalog, c.Catalog.Len())
	}
	// testdata/prices.yaml prices gpt-4o-mini itself; claude-sonnet-4 comes from the built-in catalog.
	if e, ok := c.Catalog.Lookup("openai", "gpt-4o-mini", time.Now()); !ok || e.File != filepath.Join("testdata", "prices.yaml") {
		t.Fatalf("gpt-4o-mini from %+v", e)
	}
	if e, ok := c.Catalog.Lookup("anthropic", "claude-sonnet-4-20250514", time.Now()); !ok || !strings.HasPrefix(e.File, "builtin") {
		t.Fatalf("claude-sonnet-4 from %+v", e)
	}
}

func TestAlerts(t *testing.T) {
	t.Setenv("TM_TEST_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/secret")
	t.Setenv("TM_TEST_WEBHOOK_TOKEN", "s3cret")
	c, err := Load("testdata/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Alerts.Interval != 30*time.Second || len(c.Alerts.Webhooks) != 2 {
		t.Fatalf("alerts %+v", c.Alerts)
	}
	if w := c.Alerts.Webhooks[0]; w.URL != "https://hooks.slack.com/services/T000/B000/secret" || w.Format != "slack" || w.Headers["X-Token"] != "s3cret" {
		t.Fatalf("finance webhook %+v", w)
	}
	if b := c.Budgets[0]; !slices.Equal(b.AlertAt, []int{50, 80, 100}) {
		t.Fatalf("alert_at %v", b.AlertAt)
	}
	if a := c.Alerts.Anomaly; c.Alerts.ForecastInterval != time.Minute || a == nil || !slices.Equal(a.GroupBy, []string{"project"}) ||
		a.Factor != money.MustParse("2.5") || a.BaselineDays != 14 || a.MinSpend != money.MustParse("10") {
		t.Fatalf("forecasts and anomalies: %v %+v", c.Alerts.ForecastInterval, a)
	}
	if l := c.Ledger; l.Dir != "/var/lib/tokenmeter/ledger" || l.Retention != 400*24*time.Hour || l.QueueSize != 1024 || l.TimeZone.String() != "Europe/Paris" {
		t.Fatalf("ledger %+v", l)
	}
	_, err = Load("testdata/bad_alerts.yaml")
	want := `testdata/bad_alerts.yaml:3: alerts.anomaly.factor: "1": want a decimal factor above 1, e.g. "3"` + "\n" +
		`testdata/bad_alerts.yaml:5: alerts.webhooks[0]: invalid webhook target: url scheme must be http or https` + "\n" +
		`testdata/bad_alerts.yaml:6: alerts.webhooks[1].url_env: "TM_TEST_UNSET_VAR": this environment variable is empty or unset` + "\n" +
		`testdata/bad_alerts.yaml:7: alerts.webhooks[2]: want exactly one of url, url_env` + "\n" +
		`testdata/bad_alerts.yaml:8: alerts.webhooks[3].format: "teams": want json or slack` + "\n" +
		`testdata/bad_alerts.yaml:10: budgets[0].alert_at[1]: "50": want thresholds in ascending order, each once` + "\n" +
		`testdata/bad_alerts.yaml:11: budgets[1].alert_at: thresholds apply to calendar windows, not to rolling or concurrent limits` + "\n" +
		`testdata/bad_alerts.yaml:12: ledger.retention_days: "-1": want a whole number from 0 to 36500` + "\n" +
		`testdata/bad_alerts.yaml:12: ledger.time_zone: "Mars/Olympus": want an IANA time zone name such as Europe/Paris or UTC` + "\n" +
		`testdata/bad_alerts.yaml:3: alerts.anomaly.group_by[0]: "tenant": not a configured dimension; configured: project, team, user`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant\n%s", err, want)
	}
}

// badFile is a testdata file that must not load, and the whole error it
// must give.
type badFile struct{ file, want string }

// badFiles loads each file under testdata and compares the error, whole.
func badFiles(t *testing.T, tests []badFile) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatal("loaded without error")
			}
			if err.Error() != tt.want {
				t.Fatalf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}
