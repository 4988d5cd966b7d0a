package metering

import (
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// start is when every test request begins: after the fx fixture's rate.
var start = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("testdata/test.yaml", []byte("catalog: {builtin: true}\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func moneyBudget(name string) *ratelimit.Budget {
	return &ratelimit.Budget{Name: name, Unit: ratelimit.Money}
}

func TestAdmit(t *testing.T) {
	const claude = `{"model":"claude-sonnet-4","max_tokens":100,"messages":[{"role":"user","content":"0123456789012345678901"}]}`
	for _, tt := range []struct {
		name, yaml string
		provider   string
		body       dialect.Request
		bodyBytes  int64
		failed     bool
		matching   []*ratelimit.Budget
		// want
		entry    string // "" for none
		fallback bool
		money    string
		tokens   int64
		unpriced string // the refusing budget
	}{
		// (22 prompt bytes + 3) / 4 = 6 tokens at $3/M, + 100 × $15/M.
		{name: "estimate", provider: "anthropic", body: dialect.Request{Model: "claude-sonnet-4", MaxTokens: 100, PromptBytes: 22},
			bodyBytes: int64(len(claude)), entry: "claude-sonnet-4", money: "0.001518", tokens: 106},
		// One token per body byte at the dearest input rate (1-hour cache
		// write, $6/M) + 100 × $15/M: 108×6 + 100×15 = 2148 µ$.
		{name: "strict", yaml: "extproc: {admission: strict}\n", provider: "anthropic",
			body:      dialect.Request{Model: "claude-sonnet-4", MaxTokens: 100, PromptBytes: 22},
			bodyBytes: int64(len(claude)), entry: "claude-sonnet-4", money: "0.002148", tokens: 208},
		// A body that could not be parsed is held on the worst case: 1000
		// bytes as input at $6/M, and the default 4096 output tokens even
		// though max_tokens read 10: 6000 + 61440 µ$.
		{name: "unparsed body", provider: "anthropic", body: dialect.Request{Model: "claude-sonnet-4", MaxTokens: 10, PromptBytes: 40},
			bodyBytes: 1000, failed: true, entry: "claude-sonnet-4", money: "0.06744", tokens: 5096},
		// 1000 bytes → 250 tokens at $0.15/M + 50 × $0.6/M = 37.5 + 30 µ$.
		{name: "openai", provider: "openai", body: dialect.Request{Model: "gpt-4o-mini", MaxTokens: 50, PromptBytes: 1000},
			bodyBytes: 1100, entry: "gpt-4o-mini", money: "0.0000675", tokens: 300},
		{name: "unknown model, deny under a money budget", provider: "openai", body: dialect.Request{Model: "mystery", MaxTokens: 50},
			matching: []*ratelimit.Budget{{Name: "tokens", Unit: ratelimit.Tokens}, moneyBudget("daily")}, unpriced: "daily"},
		{name: "unknown model, no money budget", provider: "openai", body: dialect.Request{Model: "mystery", MaxTokens: 50},
			matching: []*ratelimit.Budget{{Name: "tokens", Unit: ratelimit.Tokens}}, tokens: 50},
		{name: "unknown model, allowed", yaml: "unpriced: {policy: allow}\n", provider: "openai",
			body: dialect.Request{Model: "mystery", MaxTokens: 50}, matching: []*ratelimit.Budget{moneyBudget("daily")}, tokens: 50},
		// Priced at the fallback so money budgets hold: 50 × $0.6/M.
		{name: "unknown model, fallback", yaml: "unpriced: {policy: fallback, fallback_model: gpt-4o-mini}\n", provider: "openai",
			body: dialect.Request{Model: "mystery", MaxTokens: 50}, matching: []*ratelimit.Budget{moneyBudget("daily")},
			entry: "gpt-4o-mini", fallback: true, money: "0.00003", tokens: 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.yaml)
			r := Request{Provider: tt.provider, Route: -1, Start: start, Body: tt.body, BodyBytes: tt.bodyBytes, ParseFailed: tt.failed}
			a := Admit(cfg, tt.matching, &r)
			if tt.unpriced != "" {
				if a.Unpriced == nil || a.Unpriced.Name != tt.unpriced {
					t.Fatalf("refused by %v, want budget %s", a.Unpriced, tt.unpriced)
				}
				return
			}
			if a.Unpriced != nil {
				t.Fatalf("refused by %s", a.Unpriced.Name)
			}
			entry := ""
			if a.Entry != nil {
				entry = a.Entry.Name
			}
			want := ratelimit.Amounts{Tokens: tt.tokens, Requests: 1}
			if tt.money != "" {
				want.Money = money.MustParse(tt.money)
			}
			if entry != tt.entry || a.Fallback != tt.fallback || a.Estimate != want || a.Reserved.Total() != tt.tokens {
				t.Fatalf("entry %q fallback %v estimate %+v reserved %d; want %q %v %+v %d",
					entry, a.Fallback, a.Estimate, a.Reserved.Total(), tt.entry, tt.fallback, want, tt.tokens)
			}
		})
	}
}

func TestReserveTokens(t *testing.T) {
	for in, want := range map[int64]int64{-1: 0, 0: 0, 1: 1, 4: 1, 5: 2, 22: 6} {
		if got := ReserveTokens(in); got != want {
			t.Errorf("ReserveTokens(%d) = %d, want %d", in, got, want)
		}
	}
}
