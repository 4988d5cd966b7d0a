// Package metering is the decision at the heart of tokenmeter: what a request
// may cost before it runs, and so what to reserve or why to refuse it
// (Admit); and once it has run, how it ended, what it used and what it cost,
// with markups and the reporting currency (Settle, Unobserved, Ended).
//
// These are plain functions over plain values: no gRPC, no store, no clock,
// no logger. extproc translates Envoy's messages into calls of this package
// and its results back into answers, reservations and records, as
// opa-envoy-plugin's envoyauth does for ext_authz; the tests here are tables
// of requests and responses, with no server in them.
package metering

import (
	"time"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Request is what the gate learned of a request before it runs.
type Request struct {
	Provider  string          // billed provider (a route may override the dialect's)
	Route     int             // the configured route that chose the dialect, or -1
	Start     time.Time       // prices and rates in force at this instant apply
	Body      dialect.Request // what the dialect read of the body, perhaps partly
	BodyBytes int64           // the whole body's size
	// ParseFailed: the body could not be fully read; Body holds what could.
	// Such a request is admitted on the worst case (Estimate).
	ParseFailed bool
}

// Admission is what to reserve for a request, or the budget that refuses it.
type Admission struct {
	// Entry is the catalog entry the request is priced at: the requested
	// model's, the fallback's (Fallback), or nil when unpriced.
	Entry    *pricing.Entry
	Fallback bool
	// Estimate is what to reserve on every matching budget; Reserved is the
	// usage it prices, charged when no observer reads the response.
	Estimate ratelimit.Amounts
	Reserved usage.Usage
	// Unpriced, when set, refuses the request: a money budget applies whose
	// unknown-model policy is deny, and the request's cost cannot be priced.
	Unpriced *ratelimit.Budget
}

// Admit decides what to reserve for r. matching are the budgets whose
// selectors match r's dimensions.
func Admit(cfg *config.Config, matching []*ratelimit.Budget, r *Request) Admission {
	var a Admission
	a.Entry = Lookup(cfg, r.Provider, r.Body.Model, r.Start)
	if a.Entry == nil {
		// An unknown model, or none the body said (it could not be parsed):
		// either way its cost cannot be held against a money budget.
		for _, b := range matching {
			if b.Unit == ratelimit.Money && cfg.UnpricedFor(b.Name, r.Route) == config.UnpricedDeny {
				a.Unpriced = b
				return a
			}
		}
		if fb := cfg.FallbackFor(r.Route); fb != nil {
			// Priced at the fallback entry so money budgets hold, and still
			// recorded as an unknown model.
			a.Entry, a.Fallback = fb, true
		}
	}
	a.Estimate, a.Reserved = Estimate(cfg, a.Entry, r)
	return a
}

// Lookup finds model's catalog entry at the prices in force at start; nil
// when the catalog has none (or model is empty).
func Lookup(cfg *config.Config, provider, model string, start time.Time) *pricing.Entry {
	if model == "" {
		return nil
	}
	e, _ := cfg.Catalog.Lookup(provider, model, start)
	return e
}

// EntryOf is the entry an admission chose, found again from its parts where
// the Admission itself is not at hand (an observer resuming a gate's
// handoff, perhaps after a reload).
func EntryOf(cfg *config.Config, r *Request, fallback bool) *pricing.Entry {
	if fallback {
		return cfg.FallbackFor(r.Route)
	}
	return Lookup(cfg, r.Provider, r.Body.Model, r.Start)
}

// Estimate is what a request may cost before it runs: its prompt, estimated
// from its size, plus max_tokens (or the configured default) of output. In
// strict admission, and for a body that could not be parsed, the prompt is
// one token per byte of the whole body, an upper bound for byte-level BPE
// tokenizers, priced at the dearest input rate the entry has (a prompt may
// be written to a cache). docs/budgets.md says what this bounds and what
// not (image and audio input, requests without max_tokens).
func Estimate(cfg *config.Config, e *pricing.Entry, r *Request) (ratelimit.Amounts, usage.Usage) {
	worst := r.ParseFailed || cfg.Admission == config.AdmissionStrict
	in := ReserveTokens(r.Body.PromptBytes)
	if worst {
		in = max(r.BodyBytes, r.Body.PromptBytes)
	}
	out := r.Body.MaxTokens
	if out <= 0 || r.ParseFailed {
		// A max_tokens read from a broken body is not trusted to bound it.
		out = max(out, cfg.DefaultMaxTokens)
	}
	var u usage.Usage
	u.Set(usage.Input, in)
	u.Set(usage.Output, out)
	a := ratelimit.Amounts{Tokens: u.Total(), Requests: 1}
	if e == nil {
		return a, u
	}
	opts := pricing.CostOptions{ServiceTier: r.Body.ServiceTier}
	if c, err := e.Cost(&u, opts); err == nil {
		a.Money = c
	}
	if !worst {
		return a, u
	}
	for _, class := range []usage.Class{usage.CacheWrite, usage.CacheWrite1h} {
		var w usage.Usage
		w.Set(class, in)
		w.Set(usage.Output, out)
		if c, err := e.Cost(&w, opts); err == nil && c > a.Money {
			a.Money = c
		}
	}
	return a, u
}

// ReserveTokens approximates a prompt's tokens from its bytes for a budget
// reservation: about four bytes a token. Running a real tokenizer here would
// put milliseconds on every request's path; package estimate does that,
// only when a response lacks usage.
func ReserveTokens(bytes int64) int64 {
	if bytes <= 0 {
		return 0
	}
	return (bytes + 3) / 4
}
