package cloudevents

import (
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// Data is an event's data: one record, in the names of the ledger's export
// (docs/ledger-export.md), money as exact decimal strings. It carries no API
// key and no prompt: the record holds neither (an API key reaches a record
// only as the id or name a dimension reads).
type Data struct {
	Provider      string `json:"provider"`
	Dialect       string `json:"dialect"`
	Model         string `json:"model"` // as requested
	ResponseModel string `json:"response_model,omitempty"`
	PricedModel   string `json:"priced_model,omitempty"`
	ServiceTier   string `json:"service_tier,omitempty"`
	Stream        bool   `json:"stream"`
	Status        int    `json:"status"`

	Outcome ledger.Outcome `json:"outcome"`
	// Charged is the outcome's: false for denied, upstream_error,
	// gate_timeout and unmetered, which carry no tokens and no cost.
	Charged bool   `json:"charged"`
	Reason  string `json:"reason,omitempty"`
	Budget  string `json:"budget,omitempty"`

	// Tokens has every class (0 when none) and "total", so that a meter's
	// JSONPath always finds a number; Units likewise.
	Tokens    map[string]int64 `json:"tokens"`
	Units     map[string]int64 `json:"units"`
	Estimated string           `json:"estimated,omitempty"` // how usage was estimated; empty when reported

	// Priced is false when the catalog has no price for the model: Cost and
	// ListCost are then absent, never "0", so an unpriced request is never
	// summed as free.
	Priced     bool   `json:"priced"`
	Fallback   bool   `json:"fallback,omitempty"`
	Cost       string `json:"cost,omitempty"`
	ListCost   string `json:"list_cost,omitempty"`
	Currency   string `json:"currency,omitempty"`
	Adjustment string `json:"adjustment,omitempty"`
	// ReportingCost is Cost converted at the request's start, when the
	// reporting currency differs from the catalog's.
	ReportingCost     string `json:"reporting_cost,omitempty"`
	ReportingCurrency string `json:"reporting_currency,omitempty"`

	DurationMS int64             `json:"duration_ms"`
	Dimensions map[string]string `json:"dimensions"`
}

// Meta is what every event of a sender shares.
type Meta struct {
	Source string // the CloudEvents source (a URI-reference), e.g. "tokenmeter"
	Type   string // the CloudEvents type, e.g. "tokenmeter.request"
	// Subject names the dimension whose value is the event's subject (the
	// customer a receiver such as OpenMeter aggregates by).
	Subject string
}

// ErrNoID: a record without a RequestID has nothing a receiver could
// deduplicate its retries by, so it is not sent.
var ErrNoID = errors.New("record has no request id")

// NewData is r's data.
func NewData(r *ledger.Record) Data {
	d := Data{
		Provider: r.Provider, Dialect: r.Dialect, Model: r.Model, ResponseModel: r.ResponseModel,
		PricedModel: r.PricedModel, ServiceTier: r.ServiceTier, Stream: r.Stream, Status: r.Status,
		Outcome: r.Outcome, Charged: r.Outcome.Charged(), Reason: string(r.Reason), Budget: r.Budget,
		Tokens:    make(map[string]int64, usage.NumClasses+1),
		Units:     make(map[string]int64, usage.NumUnits),
		Estimated: r.EstimateMethod,
		Priced:    r.Priced, Fallback: r.Fallback,
		DurationMS: r.Duration.Milliseconds(),
		Dimensions: make(map[string]string, len(r.Dimensions.Names)),
	}
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		d.Tokens[c.String()] = r.Usage.Tokens[c].N
	}
	d.Tokens["total"] = r.Usage.Total()
	for u := usage.Unit(0); u < usage.NumUnits; u++ {
		d.Units[u.String()] = r.Usage.Units[u].N
	}
	if r.Priced {
		d.Cost, d.ListCost, d.Currency, d.Adjustment = r.Cost.String(), r.ListCost.String(), string(r.Currency), r.Adjustment
		if r.ReportingCurrency != "" && r.ReportingCurrency != r.Currency {
			d.ReportingCost, d.ReportingCurrency = r.ReportingCost.String(), string(r.ReportingCurrency)
		}
	}
	for i, n := range r.Dimensions.Names {
		if i < len(r.Dimensions.Values) {
			d.Dimensions[n] = r.Dimensions.Values[i]
		}
	}
	return d
}

// NewEvent is r as a CloudEvent: id the record's RequestID (unique across
// replicas and restarts, so a receiver that deduplicates by source and id,
// as OpenMeter does, counts a retried event once), time its start, subject
// the value of m.Subject's dimension ("unknown" when the record has none:
// the spec forbids an empty subject). It is validated against the spec.
func NewEvent(m Meta, r *ledger.Record) (event.Event, error) {
	if r.RequestID == "" {
		return event.Event{}, ErrNoID
	}
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(r.RequestID)
	e.SetSource(m.Source)
	e.SetType(m.Type)
	subject := r.Dimensions.Get(m.Subject)
	if subject == "" {
		subject = attribution.Unknown
	}
	e.SetSubject(subject)
	e.SetTime(r.Start)
	if err := e.SetData(event.ApplicationJSON, NewData(r)); err != nil {
		return event.Event{}, fmt.Errorf("cloudevents: encode data: %w", err)
	}
	if err := e.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("cloudevents: invalid event: %w", err)
	}
	return e, nil
}
