package metering

import (
	"errors"
	"fmt"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/estimate"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// EstimateReservation is the record's estimate method when it was charged
// at its admission's estimate (no observer read the response).
const EstimateReservation = "reservation"

// Response is what was read of a request's response.
type Response struct {
	Status   int            // the HTTP status
	Result   dialect.Result // the decoder's, at the end
	Complete bool           // the body reached its end; false when it was cut
}

// Settlement is a request's finished record and what to charge for it.
type Settlement struct {
	// Record is final but for its Duration, which needs a clock.
	Record ledger.Record
	// Charge settles the reservation; nil releases it (nothing is charged).
	Charge *ratelimit.Amounts
	// ReadError is a problem reading a complete 2xx body, for the caller to
	// count (a provider's own error is not one).
	ReadError error
	// Notes are worth a log line and change nothing: a service tier the
	// catalog does not list, a cost or a conversion that failed.
	Notes []error
}

// Settle finishes the record rec of request r (admitted at entry, nil when
// unpriced) once its response has been read. rec carries what the gate and
// the observer recorded so far (ids, dimensions, model, status, reasons
// noted); Settle decides the outcome, the usage, the cost, the markup, the
// reporting cost and the reason.
func Settle(cfg *config.Config, rec ledger.Record, r *Request, entry *pricing.Entry, resp Response) Settlement {
	var s Settlement
	res := &resp.Result
	rec.ResponseModel = CleanModel(res.Model)
	ok2xx := resp.Status/100 == 2
	u := requestUnits(res.Usage, ok2xx, &r.Body)
	why := reason.Of(res.Err)
	// A stream cut after its final usage (a client that hangs up right after
	// the last frame) is not partial: the decoder saw the end, the usage is
	// whole.
	cut := !resp.Complete && (res.Err != nil || !u.Reported())
	rec.Outcome = outcomeOf(ok2xx, u.Reported(), cut, why)
	if !resp.Complete && rec.Outcome != ledger.OK {
		// Explained by the cut first, not by the truncation it causes.
		rec.Reason = reason.Note(rec.Reason, reason.StreamCut)
	}
	if ok2xx || u.Reported() {
		rec.Reason = reason.Note(rec.Reason, why)
	}
	if ok2xx && resp.Complete && res.Err != nil && why != reason.ProviderError {
		s.ReadError = res.Err
		rec.Reason = reason.Note(rec.Reason, ReadReason(res.Err))
	}
	if ok2xx && !u.Reported() {
		u = estimated(&rec, r, res)
	}
	rec.Usage = u
	if !ok2xx && !u.Reported() {
		s.Record = rec
		return s
	}
	s.Notes = price(cfg, &rec, entry, r.Body.ServiceTier, res.ServiceTier)
	s.Charge = &ratelimit.Amounts{Money: rec.Cost, Tokens: u.Total(), Requests: 1}
	s.Record = rec
	return s
}

// Unobserved finishes an admitted request whose response no observer read:
// charged at its admission's estimate (reserved), priced as a response
// would be (markups, currency), so that budgets hold.
func Unobserved(cfg *config.Config, rec ledger.Record, r *Request, entry *pricing.Entry, reserved usage.Usage) Settlement {
	rec.Outcome = ledger.Unobserved
	rec.Usage = reserved
	rec.Usage.Estimated = true
	rec.EstimateMethod = EstimateReservation
	notes := price(cfg, &rec, entry, r.Body.ServiceTier, "")
	rec.Reason = reason.Note(rec.Reason, reason.NoObserver)
	return Settlement{Record: rec, Charge: &ratelimit.Amounts{Money: rec.Cost, Tokens: rec.Usage.Total(), Requests: 1}, Notes: notes}
}

// Stage is how far a request got when its stream ended before a response
// could be read.
type Stage int

const (
	Unrouted  Stage = iota // no dialect claimed it: not an API tokenmeter meters
	Undecided              // the gate had not decided
	Admitted               // admitted, and no response began
)

// Ended is the outcome and reason of a request whose stream ended at stage;
// eof is true when Envoy closed the stream as done (it needed nothing more),
// false when it was cancelled (the client or Envoy went away). None is
// charged. A stream that ends once a response began is settled instead
// (Settle, with Complete false).
func Ended(stage Stage, eof bool) (ledger.Outcome, reason.Reason) {
	switch {
	case stage == Unrouted:
		return ledger.Unmetered, reason.NoResponse
	case stage == Undecided && !eof:
		// Envoy stopped waiting for the decision (or the client left), and
		// the provider was never called.
		return ledger.GateTimeout, reason.StreamCancelled
	case eof:
		return ledger.UpstreamError, reason.NoResponse
	}
	return ledger.UpstreamError, reason.ClientDisconnect
}

// ReadReason is the reason a reading error carries, unexpected_shape when
// it carries none.
func ReadReason(err error) reason.Reason {
	if r := reason.Of(err); r != "" {
		return r
	}
	return reason.UnexpectedShape
}

// CleanModel makes a client-supplied model name safe to use as a metric
// label, a proto string and a record field.
func CleanModel(m string) string {
	if m == "" {
		return ""
	}
	v, _ := attribution.Clean(m)
	return v
}

// requestUnits adds to a response's usage what the request alone says is
// billed: speech characters, image size and quality. Characters are the
// billable unit only of models that report no tokens (tts-1); a
// token-billed speech model (gpt-4o-mini-tts) is priced by its tokens.
func requestUnits(u usage.Usage, ok2xx bool, req *dialect.Request) usage.Usage {
	if ok2xx && req.InputCharacters > 0 && !u.Reported() {
		u.SetUnit(usage.Characters, req.InputCharacters)
	}
	if u.Units[usage.Images].N > 0 && u.ImageSize == "" {
		u.ImageSize, u.ImageQuality = req.ImageSize, req.ImageQuality
	}
	return u
}

// outcomeOf says how a response ended and so whether it is charged
// (ledger.Outcome.Charged).
func outcomeOf(ok2xx, reported, cut bool, why reason.Reason) ledger.Outcome {
	switch {
	case !ok2xx && !reported:
		// A failed call that reports no usage is not charged.
		return ledger.UpstreamError
	case !ok2xx, why == reason.ProviderError:
		// The provider failed after it began to serve (an error event
		// mid-stream under a 200, or an error status with usage): charged
		// for what it reported, else for what streamed before the error.
		return ledger.ProviderError
	case cut:
		return ledger.Partial
	case reported:
		return ledger.OK
	}
	return ledger.Estimated
}

// estimated is the usage of a 2xx response that reported none: never zero
// silently, what was sent and seen is counted.
func estimated(rec *ledger.Record, r *Request, res *dialect.Result) usage.Usage {
	model := rec.ResponseModel
	if model == "" {
		model = r.Body.Model
	}
	in, m1 := estimate.Tokens(model, []byte(r.Body.Prompt), r.Body.PromptBytes)
	out, m2 := estimate.Tokens(model, res.Text, res.StreamedTextBytes)
	u := usage.Usage{Estimated: true}
	u.Tokens[usage.Input] = usage.Count{N: in}
	u.Tokens[usage.Output] = usage.Count{N: out}
	rec.EstimateMethod = string(m1)
	if m1 == "" { // no prompt text: the output side says how
		rec.EstimateMethod = string(m2)
	}
	rec.Reason = reason.Note(rec.Reason, reason.NoUsage)
	return u
}

// price sets the record's cost. The response's model, when it names one the
// catalog knows, wins over the requested one: it is what was served. Each
// request is priced at the prices in force when it started, and the tier
// the response says it was served at wins over the one the request asked
// for.
func price(cfg *config.Config, rec *ledger.Record, entry *pricing.Entry, askedTier, servedTier string) []error {
	if e := Lookup(cfg, rec.Provider, rec.ResponseModel, rec.Start); e != nil {
		entry, rec.Fallback = e, false // the served model has a price of its own
	}
	rec.Priced = entry != nil
	if entry == nil {
		// Never a silent zero: the ledger says why there is no cost, also
		// when the request named no model the gate could read and the
		// response names one the catalog does not know.
		rec.Reason = reason.Note(rec.Reason, reason.UnpricedModel)
		return nil
	}
	if rec.Fallback {
		rec.Reason = reason.Note(rec.Reason, reason.FallbackPrice)
	} else {
		rec.PricedModel = entry.Name
	}
	tier := askedTier
	switch servedTier {
	case "":
	case dialect.ServedStandard:
		tier = ""
	default:
		tier = servedTier
	}
	rec.ServiceTier = tier
	var notes []error
	cost, err := entry.Cost(&rec.Usage, pricing.CostOptions{ServiceTier: tier})
	if errors.Is(err, pricing.ErrUnknownServiceTier) {
		// The entry does not list the tier: priced at base prices, which
		// Cost returned.
		notes = append(notes, fmt.Errorf("%s: service tier %q is not in the catalog; priced at base: %w", entry.Name, tier, err))
		err = nil
	}
	if err != nil {
		// Usage the entry has no price for (audio, images, units), or an
		// overflow: keep the tokens, refuse to guess a price.
		rec.Priced = false
		if errors.Is(err, pricing.ErrNoPrice) {
			rec.Reason = reason.Note(rec.Reason, reason.UnpricedUsage)
		} else {
			notes = append(notes, fmt.Errorf("price %s: %w", entry.Name, err))
		}
		return notes
	}
	rec.ListCost, rec.Cost = cost, cost
	if err := adjust(cfg, rec); err != nil {
		notes = append(notes, err)
	}
	if err := report(cfg, rec); err != nil {
		notes = append(notes, err)
	}
	return notes
}

// adjust applies the first matching markup or discount to the list amount,
// as on an invoice line: list × factor, rounded once to a nano-unit.
func adjust(cfg *config.Config, rec *ledger.Record) error {
	for i := range cfg.Adjustments {
		a := &cfg.Adjustments[i]
		if !a.Applies(rec.Dimensions, rec.Provider) {
			continue
		}
		var s money.Sum
		s.AddEach(1, rec.ListCost)
		charged, err := s.AmountTimes(a.Factor)
		if err != nil {
			return fmt.Errorf("adjustment %s: %w", a.Name, err)
		}
		rec.Cost, rec.Adjustment = charged, a.Name
		return nil
	}
	return nil
}

// report converts the charged cost into the reporting currency at the
// request's start.
func report(cfg *config.Config, rec *ledger.Record) error {
	to := cfg.Reporting
	if to == "" || to == rec.Currency {
		rec.ReportingCost, rec.ReportingCurrency = rec.Cost, rec.Currency
		return nil
	}
	v, rate, err := cfg.FX.Convert(rec.Cost, rec.Currency, to, rec.Start)
	if err != nil {
		// The config check makes sure a rate is in force at load; only a
		// request that started before every configured rate gets here. The
		// record keeps its catalog-currency cost and no reporting cost.
		return fmt.Errorf("convert to the reporting currency: %w", err)
	}
	rec.ReportingCost, rec.ReportingCurrency, rec.FX = v, to, rate
	return nil
}
