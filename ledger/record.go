// Package ledger holds the usage record: one row per metered request, the
// unit that metrics, budgets and (later) statements are all derived from.
package ledger

import (
	"time"

	"github.com/tokenmeter/tokenmeter/attribution"
	"github.com/tokenmeter/tokenmeter/fx"
	"github.com/tokenmeter/tokenmeter/money"
	"github.com/tokenmeter/tokenmeter/usage"
)

// Outcome is how a request ended, as far as metering is concerned. It is a
// metric label value: keep the set small.
type Outcome string

// The outcomes.
const (
	OK            Outcome = "ok"             // usage reported by the provider and read
	Denied        Outcome = "denied"         // refused by tokenmeter before the upstream call
	UpstreamError Outcome = "upstream_error" // non-2xx, or no response at all
	Partial       Outcome = "partial"        // the stream was cut; charged for what was seen
	Estimated     Outcome = "estimated"      // complete, but usage had to be estimated
	Unmetered     Outcome = "unmetered"      // could not be metered at all (see Reason)
)

// Record is one metered request.
type Record struct {
	RequestID string // Envoy's x-request-id when present
	Start     time.Time
	Duration  time.Duration
	// TTFT is the time to the first response body bytes (for a stream, the
	// first tokens); 0 when no body arrived.
	TTFT       time.Duration
	Dimensions attribution.Dimensions

	Provider      string
	Dialect       string
	Model         string // as requested
	ResponseModel string // as the provider named it; may be empty
	PricedModel   string // the catalog entry that priced it; empty when unpriced

	Status int // upstream HTTP status; 0 when none arrived
	// ServiceTier is the price tier the request was priced at (flex,
	// priority, batch), as the response named it, else as the request asked;
	// empty for the standard tier.
	ServiceTier string
	Stream      bool
	Usage       usage.Usage
	// EstimateMethod says how usage was estimated when the provider did not
	// report it (see package estimate); empty when it was reported.
	EstimateMethod string

	// ListCost is the cost at catalog prices; Cost is what is charged, after
	// any markup or discount (Adjustment names it). They are equal without one.
	ListCost   money.Amount
	Cost       money.Amount
	Adjustment string
	Currency   money.Currency
	// ReportingCost is Cost in ReportingCurrency, converted at Start with the
	// rate FX (zero when the currencies are the same): each request is
	// converted once, at its own instant, so statements re-run later agree.
	ReportingCost     money.Amount
	ReportingCurrency money.Currency
	FX                fx.Rate
	Priced            bool // false: the model has no price; Cost is 0 and must not be read as free
	// Fallback: the model is not in the catalog and Cost is at the configured
	// fallback model's prices; it still counts as an unpriced model.
	Fallback bool

	Outcome Outcome
	Reason  string // why metering fell short (a dialect.Reason, "client_disconnect", ...)
	Budget  string // the budget that denied it, for Denied
}

// Sink receives records. Implementations must not block: they are called on
// the request path after the response has been released to Envoy.
type Sink interface {
	Append(r *Record)
}

// Sinks fans a record out to several sinks in order.
type Sinks []Sink

// Append implements Sink.
func (s Sinks) Append(r *Record) {
	for _, k := range s {
		k.Append(r)
	}
}
