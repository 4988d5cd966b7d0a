package metering

import (
	"fmt"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
)

func used(in, out int64) usage.Usage {
	var u usage.Usage
	u.Tokens[usage.Input] = usage.Count{N: in, Reported: true}
	u.Tokens[usage.Output] = usage.Count{N: out, Reported: true}
	return u
}

// settleCase is one response to a request for model (a gpt-4o-mini at
// $0.15/M in and $0.6/M out unless said) and what the record must say.
type settleCase struct {
	name, yaml string
	provider   string
	model      string
	noted      reason.Reason // noted before the response (at the gate)
	fallback   bool
	resp       Response
	// want
	outcome   ledger.Outcome
	reason    reason.Reason
	priced    bool
	cost      string // charged, in the catalog's currency; "" for none
	list      string // "" for cost
	report    string // "" for cost
	charge    bool   // the reservation is settled (else released)
	readError bool
	method    string // the estimate method, "" when reported
}

func TestSettle(t *testing.T) {
	ok := func(u usage.Usage) Response {
		return Response{Status: 200, Complete: true, Result: dialect.Result{Model: "gpt-4o-mini-2024-07-18", Usage: u}}
	}
	cut := func(r Response) Response { r.Complete = false; return r }
	withErr := func(r Response, err error) Response { r.Result.Err = err; return r }
	tier := func(r Response, t string) Response { r.Result.ServiceTier = t; return r }
	noUsage := Response{Status: 200, Complete: true, Result: dialect.Result{Text: []byte("01234567890123456789"), StreamedTextBytes: 20}}
	for _, tt := range []settleCase{
		// 1000 × 0.15 + 500 × 0.6 = 450 µ$.
		{name: "reported", resp: ok(used(1000, 500)), outcome: ledger.OK, priced: true, cost: "0.00045", charge: true},
		{name: "served at batch", resp: tier(ok(used(1000, 500)), "batch"), outcome: ledger.OK, priced: true, cost: "0.000225", charge: true},
		{name: "served at standard after asking priority", resp: tier(ok(used(1000, 500)), dialect.ServedStandard),
			outcome: ledger.OK, priced: true, cost: "0.00045", charge: true},
		{name: "markup on the list price", yaml: "adjustments:\n  - {name: chargeback, percent: \"10\"}\n",
			resp: ok(used(1000, 500)), outcome: ledger.OK, priced: true, cost: "0.000495", list: "0.00045", charge: true},
		// 450000 nano-dollars ÷ 1.0834 = 415359.05… → 415359 nano-euros.
		{name: "reported in euros", yaml: "currency: {reporting: EUR, rates_files: [fx.yaml]}\n",
			resp: ok(used(1000, 500)), outcome: ledger.OK, priced: true, cost: "0.00045", report: "0.000415359", charge: true},
		// Claude 3.5 Haiku ($0.8/M in, $4/M out) is estimated at bytes/4:
		// 40 prompt bytes → 10, 20 streamed → 5: 8 + 20 µ$.
		{name: "no usage: estimated", provider: "anthropic", model: "claude-3-5-haiku-20241022", resp: noUsage,
			outcome: ledger.Estimated, reason: reason.NoUsage, priced: true, cost: "0.000028", charge: true, method: "bytes_div_4"},
		{name: "cut without usage", provider: "anthropic", model: "claude-3-5-haiku-20241022", resp: cut(noUsage),
			outcome: ledger.Partial, reason: reason.StreamCut, priced: true, cost: "0.000028", charge: true, method: "bytes_div_4"},
		{name: "cut after the final usage", resp: cut(ok(used(1000, 500))), outcome: ledger.OK, priced: true, cost: "0.00045", charge: true},
		{name: "the cut outranks a body the gate could not read", noted: reason.MalformedJSON, resp: cut(withErr(ok(usage.Usage{}), reason.Truncated)),
			outcome: ledger.Partial, reason: reason.StreamCut, priced: true, cost: "0.0000015", charge: true, method: "bytes_div_4"}, // 40 prompt bytes → 10 tokens × $0.15/M
		{name: "upstream error", resp: Response{Status: 503, Complete: true}, outcome: ledger.UpstreamError},
		{name: "provider error under a 200 with usage", resp: withErr(ok(used(1000, 0)), reason.ProviderError),
			outcome: ledger.ProviderError, reason: reason.ProviderError, priced: true, cost: "0.00015", charge: true},
		{name: "a complete body read badly", resp: withErr(ok(used(1000, 500)), fmt.Errorf("chunk 3: %w", reason.InconsistentUsage)),
			outcome: ledger.OK, reason: reason.InconsistentUsage, priced: true, cost: "0.00045", charge: true, readError: true},
		{name: "unknown model", model: "mystery", resp: Response{Status: 200, Complete: true, Result: dialect.Result{Usage: used(10, 5)}},
			outcome: ledger.OK, reason: reason.UnpricedModel, charge: true},
		{name: "unpriced outranks what the gate noted", model: "mystery", noted: reason.MalformedJSON,
			resp:    Response{Status: 200, Complete: true, Result: dialect.Result{Usage: used(10, 5)}},
			outcome: ledger.OK, reason: reason.UnpricedModel, charge: true},
		// Admitted at the fallback (gpt-4o-mini), served a model the catalog
		// does not know: 10 × 0.15 + 5 × 0.6 = 4.5 µ$.
		{name: "fallback price", model: "mystery", fallback: true,
			yaml:    "unpriced: {policy: fallback, fallback_model: gpt-4o-mini}\n",
			resp:    Response{Status: 200, Complete: true, Result: dialect.Result{Model: "mystery-2", Usage: used(10, 5)}},
			outcome: ledger.OK, reason: reason.FallbackPrice, priced: true, cost: "0.0000045", charge: true},
		// The served model has a price of its own: gpt-4o ($2.5/M, $10/M).
		{name: "the served model's price wins over the fallback", model: "mystery", fallback: true,
			yaml:    "unpriced: {policy: fallback, fallback_model: gpt-4o-mini}\n",
			resp:    Response{Status: 200, Complete: true, Result: dialect.Result{Model: "gpt-4o", Usage: used(10, 5)}},
			outcome: ledger.OK, priced: true, cost: "0.000075", charge: true},
	} {
		t.Run(tt.name, func(t *testing.T) { checkSettle(t, &tt) })
	}
}

func checkSettle(t *testing.T, tt *settleCase) {
	t.Helper()
	cfg := parse(t, tt.yaml)
	provider, model := tt.provider, tt.model
	if provider == "" {
		provider = "openai"
	}
	if model == "" {
		model = "gpt-4o-mini"
	}
	r := Request{Provider: provider, Route: -1, Start: start, Body: dialect.Request{Model: model, PromptBytes: 40}}
	entry := EntryOf(cfg, &r, tt.fallback)
	rec := ledger.Record{Start: start, Provider: provider, Model: model, Reason: tt.noted, Fallback: tt.fallback,
		Currency: cfg.Catalog.Currency(), Status: tt.resp.Status,
		Dimensions: attribution.Dimensions{Names: []string{"team"}, Values: []string{"a"}}}
	s := Settle(cfg, rec, &r, entry, tt.resp)
	got := s.Record
	if got.Outcome != tt.outcome || got.Reason != tt.reason || got.Priced != tt.priced || got.EstimateMethod != tt.method {
		t.Fatalf("outcome %s reason %q priced %v method %q; want %s %q %v %q",
			got.Outcome, got.Reason, got.Priced, got.EstimateMethod, tt.outcome, tt.reason, tt.priced, tt.method)
	}
	if (s.Charge != nil) != tt.charge || (s.ReadError != nil) != tt.readError {
		t.Fatalf("charge %v read error %v; want charge %v, read error %v", s.Charge, s.ReadError, tt.charge, tt.readError)
	}
	cost, list, report := amount(tt.cost), amount(tt.list), amount(tt.report)
	if tt.list == "" {
		list = cost
	}
	if tt.report == "" {
		report = cost
	}
	if !tt.priced {
		list, report = 0, 0
	}
	if got.Cost != cost || got.ListCost != list || got.ReportingCost != report {
		t.Fatalf("cost %s list %s reporting %s; want %s %s %s", got.Cost, got.ListCost, got.ReportingCost, cost, list, report)
	}
	if s.Charge != nil && (s.Charge.Money != cost || s.Charge.Tokens != got.Usage.Total() || s.Charge.Requests != 1) {
		t.Fatalf("charge %+v for a cost of %s and %d tokens", *s.Charge, cost, got.Usage.Total())
	}
}

func amount(s string) money.Amount {
	if s == "" {
		return 0
	}
	return money.MustParse(s)
}

func TestUnobserved(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, model string
		fallback          bool
		noted             reason.Reason
		reason            reason.Reason
		cost              string
	}{
		// The reservation's 100 input and 50 output tokens at gpt-4o-mini's
		// prices: 15 + 30 µ$.
		{name: "charged at the estimate", model: "gpt-4o-mini", reason: reason.NoObserver, cost: "0.000045"},
		{name: "no observer outranks the fallback", model: "mystery", fallback: true,
			yaml: "unpriced: {policy: fallback, fallback_model: gpt-4o-mini}\n", reason: reason.NoObserver, cost: "0.000045"},
		{name: "unpriced outranks no observer", model: "mystery", noted: reason.MalformedJSON, reason: reason.UnpricedModel},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.yaml)
			r := Request{Provider: "openai", Route: -1, Start: start, Body: dialect.Request{Model: tt.model}}
			var reserved usage.Usage
			reserved.Set(usage.Input, 100)
			reserved.Set(usage.Output, 50)
			rec := ledger.Record{Start: start, Provider: "openai", Model: tt.model, Reason: tt.noted, Fallback: tt.fallback, Currency: "USD"}
			s := Unobserved(cfg, rec, &r, EntryOf(cfg, &r, tt.fallback), reserved)
			got := s.Record
			if got.Outcome != ledger.Unobserved || got.Reason != tt.reason || got.Cost != amount(tt.cost) ||
				got.EstimateMethod != EstimateReservation || !got.Usage.Estimated || got.Usage.Total() != 150 {
				t.Fatalf("record %+v", got)
			}
			if s.Charge == nil || s.Charge.Money != amount(tt.cost) || s.Charge.Tokens != 150 {
				t.Fatalf("charge %+v", s.Charge)
			}
		})
	}
}

func TestEnded(t *testing.T) {
	for _, tt := range []struct {
		stage   Stage
		eof     bool
		outcome ledger.Outcome
		reason  reason.Reason
	}{
		{Unrouted, true, ledger.Unmetered, reason.NoResponse},
		{Unrouted, false, ledger.Unmetered, reason.NoResponse},
		{Undecided, false, ledger.GateTimeout, reason.StreamCancelled},
		{Undecided, true, ledger.UpstreamError, reason.NoResponse},
		{Admitted, true, ledger.UpstreamError, reason.NoResponse},
		{Admitted, false, ledger.UpstreamError, reason.ClientDisconnect},
	} {
		o, r := Ended(tt.stage, tt.eof)
		if o != tt.outcome || r != tt.reason || o.Charged() {
			t.Errorf("Ended(%d, %v) = %s, %s; want %s, %s, not charged", tt.stage, tt.eof, o, r, tt.outcome, tt.reason)
		}
	}
}

// Entries are what the catalog says, found again from a handoff's parts.
func TestEntryOf(t *testing.T) {
	cfg := parse(t, "unpriced: {policy: fallback, fallback_model: gpt-4o-mini}\n")
	r := Request{Provider: "anthropic", Route: -1, Start: start, Body: dialect.Request{Model: "claude-sonnet-4-0"}}
	for _, tt := range []struct {
		fallback bool
		want     string
	}{{false, "claude-sonnet-4"}, {true, "gpt-4o-mini"}} {
		var e *pricing.Entry = EntryOf(cfg, &r, tt.fallback)
		if e == nil || e.Name != tt.want {
			t.Errorf("EntryOf(fallback %v) = %v, want %s", tt.fallback, e, tt.want)
		}
	}
}
