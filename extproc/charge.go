package extproc

import (
	"errors"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/estimate"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// complete reads the decoder's result, decides what to charge, and finishes
// the record. complete is false when the stream was cut before its end. It
// returns the dynamic metadata for Envoy's access log.
func (x *exchange) complete(complete bool) *structpb.Struct {
	var res dialect.Result
	if x.decoder != nil {
		res = x.decoder.Finish(complete)
	}
	x.rec.ResponseModel = cleanModel(res.Model)
	x.servedTier = res.ServiceTier
	ok2xx := x.rec.Status/100 == 2
	u := x.requestUnits(res.Usage, ok2xx)
	reason := dialect.ReasonOf(res.Err)
	// A stream cut after its final usage (a client that hangs up right after
	// the last frame) is not partial: the decoder saw the end, the usage is
	// whole.
	cut := !complete && (res.Err != nil || !u.Reported())
	x.rec.Outcome = outcomeOf(ok2xx, u.Reported(), cut, reason)
	// A cut stream is explained by the cut, not by the truncation it causes.
	if ok2xx && cut && x.rec.Reason == "" {
		x.rec.Reason = reasonStreamCut
	}
	if reason != "" && x.rec.Reason == "" && (ok2xx || u.Reported()) {
		x.rec.Reason = string(reason)
	}
	// Reading problems of a complete 2xx body are counted once (Feed may
	// have counted them already); a provider's own error is not one.
	if ok2xx && complete && res.Err != nil && reason != dialect.ReasonProviderError && !x.respParseCounted {
		x.parseError(res.Err)
	}
	if ok2xx && !u.Reported() {
		u = x.estimated(&res)
	}
	x.rec.Usage = u

	if !ok2xx && !u.Reported() {
		x.finish(nil)
		return x.metadata()
	}
	x.price()
	x.finish(&ratelimit.Amounts{Money: x.rec.Cost, Tokens: u.Total(), Requests: 1})
	return x.metadata()
}

// requestUnits adds to a response's usage what the request alone says is
// billed: speech characters, image size and quality. Characters are the
// billable unit only of models that report no tokens (tts-1); a
// token-billed speech model (gpt-4o-mini-tts) is priced by its tokens.
func (x *exchange) requestUnits(u usage.Usage, ok2xx bool) usage.Usage {
	if ok2xx && x.req.InputCharacters > 0 && !u.Reported() {
		u.SetUnit(usage.Characters, x.req.InputCharacters)
	}
	if u.Units[usage.Images].N > 0 && u.ImageSize == "" {
		u.ImageSize, u.ImageQuality = x.req.ImageSize, x.req.ImageQuality
	}
	return u
}

// outcomeOf says how a response ended and so whether it is charged
// (ledger.Outcome.Charged).
func outcomeOf(ok2xx, reported, cut bool, reason dialect.Reason) ledger.Outcome {
	switch {
	case !ok2xx && !reported:
		// A failed call that reports no usage is not charged.
		return ledger.UpstreamError
	case !ok2xx, reason == dialect.ReasonProviderError:
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
func (x *exchange) estimated(res *dialect.Result) usage.Usage {
	model := x.rec.ResponseModel
	if model == "" {
		model = x.req.Model
	}
	in, m1 := estimate.Tokens(model, []byte(x.req.Prompt), x.req.PromptBytes)
	out, m2 := estimate.Tokens(model, res.Text, res.StreamedTextBytes)
	u := usage.Usage{Estimated: true}
	u.Tokens[usage.Input] = usage.Count{N: in}
	u.Tokens[usage.Output] = usage.Count{N: out}
	x.rec.EstimateMethod = string(m1)
	if m1 == "" { // no prompt text: the output side says how
		x.rec.EstimateMethod = string(m2)
	}
	if x.rec.Reason == "" {
		x.rec.Reason = string(dialect.ReasonNoUsage)
	}
	return u
}

// price sets the record's cost. The response's model, when it names one the
// catalog knows, wins over the requested one: it is what was served.
func (x *exchange) price() {
	cat := x.snap.Config.Catalog
	if x.rec.ResponseModel != "" {
		if e, ok := cat.Lookup(x.rec.Provider, x.rec.ResponseModel, x.rec.Start); ok {
			x.entry, x.rec.Fallback = e, false // the served model has a price of its own
		}
	}
	x.rec.Priced = x.entry != nil
	if x.entry == nil {
		// Never a silent zero: the ledger says why there is no cost, also
		// when the request named no model the gate could read and the
		// response names one the catalog does not know. That the cost is
		// unknown outranks how the body was read.
		x.rec.Reason = reasonUnpriced
		return
	}
	if x.rec.Fallback {
		x.rec.Reason = reasonFallback
	} else {
		x.rec.PricedModel = x.entry.Name
	}
	// Each request is priced at the prices in force when it started.
	// The tier the response says it was served at wins over the one the
	// request asked for.
	tier := x.req.ServiceTier
	switch x.servedTier {
	case "":
	case dialect.ServedStandard:
		tier = ""
	default:
		tier = x.servedTier
	}
	x.rec.ServiceTier = tier
	cost, err := x.entry.Cost(&x.rec.Usage, pricing.CostOptions{ServiceTier: tier})
	if errors.Is(err, pricing.ErrUnknownServiceTier) {
		// The entry does not list the tier: priced at base prices, which
		// Cost returned; the log says so.
		x.srv.log.Info("service tier not in the catalog; priced at base", "model", x.entry.Name, "tier", tier)
		err = nil
	}
	if err != nil {
		// Usage the entry has no price for (audio, images, units), or an
		// overflow: keep the tokens, refuse to guess a price.
		x.rec.Priced = false
		if errors.Is(err, pricing.ErrNoPrice) {
			x.rec.Reason = reasonUnpricedUsage
		} else {
			x.srv.log.Error("price", "model", x.entry.Name, "err", err)
		}
		return
	}
	x.rec.ListCost, x.rec.Cost = cost, cost
	for i := range x.snap.Config.Adjustments {
		a := &x.snap.Config.Adjustments[i]
		if !a.Applies(x.rec.Dimensions, x.rec.Provider) {
			continue
		}
		// The markup applies to the list amount, as on an invoice line:
		// list × factor, rounded once to a nano-unit.
		var s money.Sum
		s.AddEach(1, cost)
		charged, err := s.AmountTimes(a.Factor)
		if err != nil {
			x.srv.log.Error("adjustment", "adjustment", a.Name, "err", err)
			break
		}
		x.rec.Cost, x.rec.Adjustment = charged, a.Name
		break
	}
	x.report()
}

// report converts the charged cost into the reporting currency at the
// request's start.
func (x *exchange) report() {
	cfg := x.snap.Config
	to := cfg.Reporting
	if to == "" || to == x.rec.Currency {
		x.rec.ReportingCost, x.rec.ReportingCurrency = x.rec.Cost, x.rec.Currency
		return
	}
	v, rate, err := cfg.FX.Convert(x.rec.Cost, x.rec.Currency, to, x.rec.Start)
	if err != nil {
		// The config check makes sure a rate is in force at load; only a
		// request that started before every configured rate gets here. The
		// record keeps its catalog-currency cost and no reporting cost.
		x.srv.log.Error("convert to the reporting currency", "err", err)
		return
	}
	x.rec.ReportingCost, x.rec.ReportingCurrency, x.rec.FX = v, to, rate
}

// metadata is what Envoy's access log can print as
// %DYNAMIC_METADATA(tokenmeter:cost)% and so on.
func (x *exchange) metadata() *structpb.Struct {
	f := map[string]*structpb.Value{
		"provider": structpb.NewStringValue(x.rec.Provider),
		"model":    structpb.NewStringValue(x.modelName()),
		"outcome":  structpb.NewStringValue(string(x.rec.Outcome)),
		"currency": structpb.NewStringValue(string(x.rec.Currency)),
	}
	if x.rec.Priced {
		f["cost"] = structpb.NewStringValue(x.rec.Cost.String())
		f["list_cost"] = structpb.NewStringValue(x.rec.ListCost.String())
		if x.rec.ReportingCurrency != "" && x.rec.ReportingCurrency != x.rec.Currency {
			f["reporting_cost"] = structpb.NewStringValue(x.rec.ReportingCost.String())
			f["reporting_currency"] = structpb.NewStringValue(string(x.rec.ReportingCurrency))
		}
	} else {
		f["cost"] = structpb.NewStringValue("unpriced")
	}
	for c := usage.Class(0); c < usage.NumClasses; c++ {
		f[c.String()+"_tokens"] = structpb.NewNumberValue(float64(x.rec.Usage.Tokens[c].N))
	}
	if x.rec.Reason != "" {
		f["reason"] = structpb.NewStringValue(x.rec.Reason)
	}
	if x.rec.ServiceTier != "" {
		f["service_tier"] = structpb.NewStringValue(x.rec.ServiceTier)
	}
	if x.rec.Usage.Estimated {
		f["estimated"] = structpb.NewStringValue(x.rec.EstimateMethod)
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"tokenmeter": structpb.NewStructValue(&structpb.Struct{Fields: f}),
	}}
}

func (x *exchange) modelName() string {
	switch {
	case x.rec.PricedModel != "":
		return x.rec.PricedModel
	case x.rec.ResponseModel != "":
		return x.rec.ResponseModel
	}
	return x.rec.Model
}
