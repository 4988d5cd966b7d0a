// Package ledger holds the usage record: one row per metered request, the
// unit that metrics, budgets, reports and statements are all derived from.
package ledger

import (
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"slices"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Outcome is how a request ended, as far as metering is concerned. It is a
// metric label value: keep the set small. Whether a record carries a charge
// is a property of its outcome alone (Charged), so that a report filtering
// rows never loses money by guessing.
type Outcome string

// The outcomes. Charged ones: ok, estimated, partial, provider_error,
// unobserved. Never charged: denied, upstream_error, gate_timeout,
// unmetered.
const (
	OK        Outcome = "ok"        // usage reported by the provider and read
	Estimated Outcome = "estimated" // complete, but usage had to be estimated (Reason says why)
	// Partial: the response was cut before its end (the client left, or the
	// upstream reset it: Reason says which); charged for what was seen.
	Partial Outcome = "partial"
	// ProviderError: the provider reported an error after it had begun to
	// serve (an error event mid-stream, or an error status that still
	// reports usage); charged for what it reported, else for what streamed.
	ProviderError Outcome = "provider_error"
	// Unobserved: admitted, and no observer read the response (its stream
	// was lost, or never opened) before the deadline; charged at the
	// admission's estimate so that budgets hold.
	Unobserved Outcome = "unobserved"

	Denied Outcome = "denied" // refused by tokenmeter before the upstream call
	// UpstreamError: a non-2xx answer without usage, or no answer at all;
	// nothing was charged.
	UpstreamError Outcome = "upstream_error"
	// GateTimeout: Envoy stopped waiting for tokenmeter's decision
	// (message_timeout) and answered the client itself; the provider was not
	// called and nothing was charged.
	GateTimeout Outcome = "gate_timeout"
	Unmetered   Outcome = "unmetered" // could not be metered at all (see Reason)
)

// Outcomes lists every outcome, charged ones first. The outcome tables of
// docs/ledger-export.md and the README follow this order and Charged
// (usagedb's TestDocsOutcomeTable holds them to it).
var Outcomes = [...]Outcome{OK, Estimated, Partial, ProviderError, Unobserved, Denied, UpstreamError, GateTimeout, Unmetered}

// Charged reports whether a record with this outcome carries a charge (its
// Cost, when Priced; its tokens otherwise) on budgets and statements.
func (o Outcome) Charged() bool {
	switch o {
	case OK, Estimated, Partial, ProviderError, Unobserved:
		return true
	}
	return false
}

// Record is one metered request.
type Record struct {
	// RequestID is tokenmeter's id for the record, unique across replicas
	// and restarts; ClientRequestID is the x-request-id the request carried
	// (a client may repeat it, so it identifies nothing on its own).
	RequestID       string
	ClientRequestID string
	Start           time.Time
	Duration        time.Duration
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
	Reason  reason.Reason // why metering fell short; package reason says which one a record keeps
	Budget  string        // the budget that denied it, for Denied
}

// Clone copies what the caller of a Sink may reuse once Append returns, for
// a sink that keeps the record (a queue): the dimension values and the raw
// usage fields. Dimension names are shared and read-only by contract
// (attribution.Dimensions), so they are not copied.
func (r *Record) Clone() *Record {
	c := *r
	c.Dimensions.Values = slices.Clone(r.Dimensions.Values)
	c.Usage.Raw = slices.Clone(r.Usage.Raw)
	return &c
}

// Sink receives records. Implementations must not block: they are called on
// the request path after the response has been released to Envoy. A sink
// that keeps a record past Append keeps a Clone.
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
