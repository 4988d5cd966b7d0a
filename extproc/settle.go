package extproc

import (
	"context"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/metering"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// complete reads the decoder's result and finishes the record with what
// metering.Settle decides. complete is false when the stream was cut before
// its end. It returns the dynamic metadata for Envoy's access log.
func (x *exchange) complete(complete bool) *structpb.Struct {
	var res dialect.Result
	if x.decoder != nil {
		res = x.decoder.Finish(complete)
	}
	s := metering.Settle(x.snap.Config, x.rec, &x.in, x.entry, metering.Response{Status: x.rec.Status, Result: res, Complete: complete})
	if s.ReadError != nil && !x.respParseCounted {
		// Reading problems of a complete 2xx body are counted once (Feed
		// may have counted them already); Settle noted the reason.
		x.respParseCounted = true
		x.countParseError(s.ReadError)
	}
	x.settled(s)
	return x.metadata()
}

// unobserved finishes a handoff no observer claimed, charged at the
// admission's estimate (metering.Unobserved).
func (x *exchange) unobserved(ctx context.Context) {
	x.settled(metering.Unobserved(x.snap.Config, x.rec, &x.in, x.entry, x.reserved))
	x.afterSend(ctx)
}

// settled takes a settlement's record and charge, and logs its notes.
func (x *exchange) settled(s metering.Settlement) {
	for _, n := range s.Notes {
		x.srv.log.Warn("settle", "request_id", s.Record.RequestID, "err", n)
	}
	x.rec = s.Record
	x.finish(s.Charge)
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
		f["reason"] = structpb.NewStringValue(string(x.rec.Reason))
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
