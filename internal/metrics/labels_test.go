package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// series counts the samples of each tokenmeter family in a scrape
// (histogram buckets count as samples of their family).
func series(out string) map[string]int {
	n := map[string]int{}
	name := regexp.MustCompile(`^(tokenmeter_[a-z_]+?)(?:_bucket|_sum|_count)?[{ ]`)
	for _, line := range strings.Split(out, "\n") {
		if m := name.FindStringSubmatch(line); m != nil {
			n[m[1]]++
		}
	}
	return n
}

func dims(names []string, values ...string) attribution.Dimensions {
	return attribution.Dimensions{Names: names, Values: values}
}

func TestValueCapFirstComeFirstServed(t *testing.T) {
	tests := []struct {
		name string
		max  int
		in   []string
		want []bool
	}{
		{"under the cap", 3, []string{"a", "b", "a"}, []bool{true, true, true}},
		{"past the cap", 2, []string{"a", "b", "c", "a", "d", "b"}, []bool{true, true, false, true, false, true}},
		{"default cap", 0, []string{"a"}, []bool{true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newValueCap(tt.max, DefaultMaxValues)
			for i, v := range tt.in {
				if got := c.admit(v); got != tt.want[i] {
					t.Fatalf("admit(%q) #%d = %v, want %v", v, i, got, tt.want[i])
				}
			}
		})
	}
}

// The attack: 10,000 requests, each with a model, project, team and
// user never seen before, under a budget on user: "*". The series count
// stays within a few hundred, and the overflow counter says exactly how many
// values were folded.
func TestTenThousandHostileValuesAreBounded(t *testing.T) {
	names := []string{"project", "team", "user"}
	o := DimensionNames(names...)
	o.Dimensions[2].Disabled = true // user is off by default in config
	budget := &ratelimit.Budget{Name: "per-user", Unit: ratelimit.Money, Window: ratelimit.Day}
	var keys []ratelimit.Status
	m := New(o, func(context.Context) ([]ratelimit.Status, error) { return keys, nil }, quiet)
	before := series(scrape(t, m))
	const n = 10_000
	for i := range n {
		r := &ledger.Record{Provider: "openai", Model: fmt.Sprintf("hostile-%d", i), Outcome: ledger.OK,
			Dimensions: dims(names, fmt.Sprintf("p-%d", i), fmt.Sprintf("t-%d", i), fmt.Sprintf("u-%d", i))}
		r.Usage.Set(usage.Input, 1)
		r.Usage.Set(usage.Output, 1)
		m.Append(r)
		keys = append(keys, ratelimit.Status{Budget: budget, Key: "user=" + fmt.Sprintf("u-%d", i), Limit: 10, Resets: time.Unix(1e9, 0)})
	}
	out := scrape(t, m)
	after := series(out)
	want := map[string]int{
		"tokenmeter_requests_total":                 1,                          // model="unpriced"
		"tokenmeter_unpriced_requests_total":        1,                          // by provider and outcome
		"tokenmeter_tokens_total":                   (DefaultMaxValues + 1) * 2, // 100 projects and "other", 2 classes
		"tokenmeter_budget_spent":                   DefaultMaxBudgetKeys + 1,
		"tokenmeter_budget_reserved":                DefaultMaxBudgetKeys + 1,
		"tokenmeter_budget_limit":                   DefaultMaxBudgetKeys + 1,
		"tokenmeter_budget_remaining":               DefaultMaxBudgetKeys + 1,
		"tokenmeter_budget_reset_timestamp_seconds": DefaultMaxBudgetKeys + 1,
		"tokenmeter_budget_keys_folded":             1,
	}
	added := 0
	for fam, got := range after {
		added += got - before[fam]
		if got-before[fam] != want[fam] {
			t.Errorf("%s: %d series added, want %d", fam, got-before[fam], want[fam])
		}
	}
	if added > 500 {
		t.Errorf("%d series added by %d hostile requests", added, n)
	}
	t.Logf("%d series added, /metrics %d bytes", added, len(out))
	for _, s := range []string{
		`tokenmeter_metric_label_overflow_total{label="project"} 9900`,
		`tokenmeter_metric_label_overflow_total{label="team"} 9900`,
		`tokenmeter_metric_label_overflow_total{label="label_set"} 0`,
		`tokenmeter_budget_keys_folded{budget="per-user"} 9950`,
		`tokenmeter_tokens_total{class="input",model="unpriced",project="other",provider="openai",team="other"} 9900`,
		`tokenmeter_budget_limit{budget="per-user",key="other",window="day"} 9.95e-05`,
	} {
		if !strings.Contains(out, s+"\n") {
			t.Errorf("missing %s", s)
		}
	}
	for _, bad := range []string{"hostile-", "p-100\"", "user=u-50\"", `user="`} {
		if strings.Contains(out, bad) {
			t.Errorf("scrape holds %q", bad)
		}
	}
}

// Per-label caps alone do not bound the product of labels: 10 projects × 10
// teams, each under its cap, are 100 combinations. The label-set cap folds
// what is past it.
func TestLabelSetsAreCapped(t *testing.T) {
	names := []string{"project", "team"}
	m := New(Options{Dimensions: []Dimension{{Name: "project"}, {Name: "team"}}, MaxLabelSets: 20}, nil, quiet)
	for p := range 10 {
		for tm := range 10 {
			r := &ledger.Record{Provider: "openai", Model: "m", PricedModel: "m", Priced: true, Outcome: ledger.OK,
				Currency: money.USD, Cost: 1, Dimensions: dims(names, fmt.Sprint("p", p), fmt.Sprint("t", tm))}
			r.Usage.Set(usage.Input, 1)
			m.Append(r)
		}
	}
	out := scrape(t, m)
	if got := series(out)["tokenmeter_cost_total"]; got != 21 {
		t.Errorf("%d cost series, want 20 and other", got)
	}
	for _, s := range []string{
		`tokenmeter_metric_label_overflow_total{label="label_set"} 80`,
		`tokenmeter_metric_label_overflow_total{label="project"} 0`,
		`tokenmeter_cost_total{currency="USD",model="m",project="other",provider="openai",team="other"} 8e-08`,
	} {
		if !strings.Contains(out, s+"\n") {
			t.Errorf("missing %s", s)
		}
	}
}

// A disabled dimension's label is gone from the series, not set to "".
func TestDisabledDimensionDropsItsLabel(t *testing.T) {
	names := []string{"project", "user"}
	m := New(Options{Dimensions: []Dimension{{Name: "project", MaxValues: 1}, {Name: "user", Disabled: true}}}, nil, quiet)
	for _, p := range []string{"a", "b", attribution.Unknown, attribution.Invalid} {
		r := &ledger.Record{Provider: "openai", Model: "m", PricedModel: "m", Priced: true, Outcome: ledger.OK,
			Currency: money.USD, Cost: 5, Dimensions: dims(names, p, "bob")}
		r.Usage.Set(usage.Output, 3)
		m.Append(r)
	}
	out := scrape(t, m)
	for _, s := range []string{
		`tokenmeter_tokens_total{class="output",model="m",project="a",provider="openai"} 3`,
		`tokenmeter_tokens_total{class="output",model="m",project="other",provider="openai"} 3`,
		// unknown and invalid are tokenmeter's own values: they take no slot.
		`tokenmeter_tokens_total{class="output",model="m",project="unknown",provider="openai"} 3`,
		`tokenmeter_tokens_total{class="output",model="m",project="invalid",provider="openai"} 3`,
		`tokenmeter_metric_label_overflow_total{label="project"} 1`,
	} {
		if !strings.Contains(out, s+"\n") {
			t.Errorf("missing %s", s)
		}
	}
	if strings.Contains(out, `user="`) || strings.Contains(out, "bob") {
		t.Errorf("the disabled dimension is exported:\n%s", out)
	}
}

// A model the catalog does not price is never a label, denied or not, and a
// fallback-priced one is not labelled as the fallback model either.
func TestUnpricedModelNamesAreFolded(t *testing.T) {
	names := []string{"project"}
	m := New(DimensionNames(names...), nil, quiet)
	for i := range 50 {
		m.Append(&ledger.Record{Provider: "openai", Model: fmt.Sprint("evil-", i), Outcome: ledger.Denied,
			Budget: "unpriced_model", Dimensions: dims(names, "p")})
	}
	fb := &ledger.Record{Provider: "openai", Model: "evil-fallback", Priced: true, Fallback: true, Outcome: ledger.OK,
		Currency: money.USD, Cost: 42, Dimensions: dims(names, "p")}
	fb.Usage.Set(usage.Input, 10)
	m.Append(fb)
	m.Append(&ledger.Record{Provider: "openai", Outcome: ledger.UpstreamError, Dimensions: dims(names, "p")})
	out := scrape(t, m)
	for _, s := range []string{
		`tokenmeter_requests_total{model="unpriced",outcome="denied",provider="openai"} 50`,
		`tokenmeter_requests_total{model="unpriced",outcome="ok",provider="openai"} 1`,
		`tokenmeter_requests_total{model="unknown",outcome="upstream_error",provider="openai"} 1`,
		`tokenmeter_unpriced_requests_total{outcome="denied",provider="openai"} 50`,
		`tokenmeter_unpriced_requests_total{outcome="ok",provider="openai"} 1`,
		`tokenmeter_cost_total{currency="USD",model="unpriced",project="p",provider="openai"} 4.2e-08`,
	} {
		if !strings.Contains(out, s+"\n") {
			t.Errorf("missing %s", s)
		}
	}
	if strings.Contains(out, "evil") {
		t.Errorf("a client's model name is a label:\n%s", out)
	}
}

// Units-only requests (Whisper audio, tts-1 characters, DALL·E images) add
// their cost and their units; an uncharged outcome adds no cost.
func TestUnitBilledRequestsAddCost(t *testing.T) {
	names := []string{"project"}
	tests := []struct {
		name    string
		unit    usage.Unit
		n       int64
		cost    money.Amount
		outcome ledger.Outcome
		want    money.Amount
	}{
		{"whisper seconds", usage.AudioMillis, 61_000, money.MustParse("0.0061"), ledger.OK, money.MustParse("0.0061")},
		{"tts characters", usage.Characters, 1000, money.MustParse("0.015"), ledger.Estimated, money.MustParse("0.015")},
		{"dall-e images", usage.Images, 2, money.MustParse("0.08"), ledger.Partial, money.MustParse("0.08")},
		{"upstream error carries no charge", usage.Images, 1, 0, ledger.UpstreamError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(DimensionNames(names...), nil, quiet)
			r := &ledger.Record{Provider: "openai", Model: "m", PricedModel: "m", Priced: true, Outcome: tt.outcome,
				Currency: money.USD, Cost: tt.cost, Dimensions: dims(names, "p")}
			r.Usage.SetUnit(tt.unit, tt.n)
			m.Append(r)
			if got := m.costSum(); got != tt.want {
				t.Fatalf("cost_total = %s, want %s", got, tt.want)
			}
			want := fmt.Sprintf(`tokenmeter_units_total{model="m",project="p",provider="openai",unit="%s"} %d`, tt.unit, tt.n)
			if out := scrape(t, m); !strings.Contains(out, want+"\n") {
				t.Fatalf("missing %s", want)
			}
		})
	}
}

// Keys past the cap are summed under key="other", for the budget gauges and
// the forecasts alike, with the count folded.
func TestBudgetKeysAreCapped(t *testing.T) {
	b := &ratelimit.Budget{Name: "b", Unit: ratelimit.Money, Window: ratelimit.Day}
	st := []ratelimit.Status{
		{Budget: b, Key: "user=a", Limit: 100, Counter: ratelimit.Counter{Spent: 10}, Resets: time.Unix(300, 0)},
		{Budget: b, Key: "user=b", Limit: 100, Counter: ratelimit.Counter{Spent: 20, Reserved: 5}, Resets: time.Unix(200, 0)},
		{Budget: b, Key: "user=c", Limit: 100, Counter: ratelimit.Counter{Spent: 120}, Resets: time.Unix(100, 0)},
	}
	m := New(Options{MaxBudgetKeys: 1}, func(context.Context) ([]ratelimit.Status, error) { return st, nil }, quiet)
	m.WatchForecasts(func() []alerting.Forecast {
		return []alerting.Forecast{
			{Budget: "b", Key: "user=a", Projected: 7, Money: true},
			{Budget: "b", Key: "user=b", Projected: 1000, Money: true},
			{Budget: "b", Key: "user=c", Projected: 2000, Money: true},
		}
	})
	out := scrape(t, m)
	for _, s := range []string{
		`tokenmeter_budget_spent{budget="b",key="user=a",window="day"} 1e-08`,
		`tokenmeter_budget_spent{budget="b",key="other",window="day"} 1.4e-07`,
		`tokenmeter_budget_reserved{budget="b",key="other",window="day"} 5e-09`,
		`tokenmeter_budget_limit{budget="b",key="other",window="day"} 2e-07`,
		`tokenmeter_budget_remaining{budget="b",key="other",window="day"} 7.5e-08`, // 75 + 0: c is over its limit
		`tokenmeter_budget_reset_timestamp_seconds{budget="b",key="other",window="day"} 100`,
		`tokenmeter_budget_keys_folded{budget="b"} 2`,
		`tokenmeter_budget_projected{budget="b",key="user=a"} 7e-09`,
		`tokenmeter_budget_projected{budget="b",key="other"} 3e-06`,
	} {
		if !strings.Contains(out, s+"\n") {
			t.Errorf("missing %s", s)
		}
	}
	if n := series(out)["tokenmeter_budget_spent"]; n != 2 {
		t.Errorf("%d spent series, want 2", n)
	}
}

func TestSatAdd(t *testing.T) {
	const maxI, minI = int64(1<<63 - 1), int64(-1 << 63)
	tests := []struct{ a, b, want int64 }{
		{1, 2, 3},
		{maxI, maxI, maxI},
		{minI, -1, minI},
		{maxI, -1, maxI - 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.a, "+", tt.b), func(t *testing.T) {
			if got := satAdd(tt.a, tt.b); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// costSum is the exact sum of every tokenmeter_cost_total series, in
// nano-units (the tests price in one currency).
func (m *Metrics) costSum() money.Amount {
	m.cost.mu.Lock()
	defer m.cost.mu.Unlock()
	var total money.Amount
	for _, s := range m.cost.sums {
		total += s.total
	}
	return total
}

// A request refused at the gate has no attribution on any series, so its
// values take no slot: 1,000 denied projects leave room for the one that
// spends.
func TestDeniedRequestsTakeNoSlot(t *testing.T) {
	names := []string{"project"}
	m := New(Options{Dimensions: []Dimension{{Name: "project", MaxValues: 1}}}, nil, quiet)
	for i := range 1000 {
		m.Append(&ledger.Record{Provider: "openai", Model: "m", PricedModel: "m", Priced: true, Outcome: ledger.Denied,
			Budget: "b", Currency: money.USD, Dimensions: dims(names, fmt.Sprint("denied-", i))})
	}
	r := &ledger.Record{Provider: "openai", Model: "m", PricedModel: "m", Priced: true, Outcome: ledger.OK,
		Currency: money.USD, Cost: 3, Dimensions: dims(names, "spender")}
	r.Usage.Set(usage.Input, 2)
	m.Append(r)
	out := scrape(t, m)
	for _, s := range []string{
		`tokenmeter_cost_total{currency="USD",model="m",project="spender",provider="openai"} 3e-09`,
		`tokenmeter_metric_label_overflow_total{label="project"} 0`,
		`tokenmeter_requests_total{model="m",outcome="denied",provider="openai"} 1000`,
		`tokenmeter_denied_total{budget="b"} 1000`,
	} {
		if !strings.Contains(out, s+"\n") {
			t.Errorf("missing %s", s)
		}
	}
}

// The response model is exported only for a record the catalog priced (an
// unpriced one would carry the client's string), capped like a dimension,
// and what is folded is counted under ResponseModelLabel.
func TestResponseModelIsBounded(t *testing.T) {
	var folded []string
	l := NewLabeler(Options{}, func(label string) { folded = append(folded, label) })
	priced := func(resp string) *ledger.Record {
		return &ledger.Record{Model: "gpt-4o", PricedModel: "gpt-4o", Priced: true, ResponseModel: resp}
	}
	tests := []struct {
		name string
		r    *ledger.Record
		want string
	}{
		{"priced", priced("gpt-4o-2024-08-06"), "gpt-4o-2024-08-06"},
		{"none named", priced(""), ""},
		{"unpriced", &ledger.Record{Model: "mine", ResponseModel: "mine-v1"}, ""},
		{"fallback", &ledger.Record{Model: "mine", PricedModel: "gpt-4o", Priced: true, Fallback: true, ResponseModel: "mine-v1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := l.ResponseModel(tt.r); got != tt.want {
				t.Fatalf("ResponseModel = %q, want %q", got, tt.want)
			}
		})
	}
	for i := range DefaultMaxValues + 5 {
		l.ResponseModel(priced(fmt.Sprintf("gpt-4o-%d", i)))
	}
	if got := l.ResponseModel(priced("gpt-4o-new")); got != Other {
		t.Fatalf("past the cap: %q, want %q", got, Other)
	}
	if got := l.ResponseModel(priced("gpt-4o-2024-08-06")); got != "gpt-4o-2024-08-06" {
		t.Fatalf("an admitted value stays admitted: got %q", got)
	}
	if len(folded) != 7 || folded[0] != ResponseModelLabel {
		t.Fatalf("folded %d times (%v), want 7 under %q", len(folded), folded, ResponseModelLabel)
	}
}
