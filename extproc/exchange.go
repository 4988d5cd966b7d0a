package extproc

import (
	"context"
	"errors"
	"strconv"
	"strings"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tokenmeter/tokenmeter/attribution"
	"github.com/tokenmeter/tokenmeter/config"
	"github.com/tokenmeter/tokenmeter/dialect"
	"github.com/tokenmeter/tokenmeter/ledger"
	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/usage"
)

// Phase names, used as the metric label.
const (
	phaseRequestHeaders  = "request_headers"
	phaseRequestBody     = "request_body"
	phaseResponseHeaders = "response_headers"
	phaseResponseBody    = "response_body"
	phaseOther           = "other"
)

// Reasons tokenmeter itself records (dialects add theirs).
const (
	reasonUnknownPath      = "unknown_path"
	reasonClientDisconnect = "client_disconnect"
	reasonNoResponse       = "no_response"
	reasonUnpriced         = "unpriced_model"
	reasonUnpricedUsage    = "unpriced_usage" // audio, image or unit usage the entry has no price for
	reasonFallback         = "fallback_price" // an unknown model priced at the configured fallback
	reasonStore            = "store_unavailable"
)

// exchange is the state of one HTTP request.
type exchange struct {
	srv  *Server
	snap *Snapshot

	rec         ledger.Record
	dialectName string                // named by the Envoy route; empty to choose by path
	route       int                   // index of the configured route that chose the dialect, or -1
	servedTier  string                // the service tier the response names (dialect.Result.ServiceTier)
	remaining   []ratelimit.Remaining // budgets' state after this request's reservation
	path        string                // :path as the client sent it
	dialect     dialect.Dialect
	req         dialect.Request
	entry       *pricing.Entry // nil: unpriced
	hold        *ratelimit.Reservation
	decoder     dialect.Decoder

	admitted         bool // the budget decision was made
	respParseCounted bool // a response reading problem was counted
	hasLength        bool // the request carried content-length
	responseStarted  bool
	closed           bool           // the record is final
	pending          *ledger.Record // to settle and append after the answer is sent
	settle           ratelimit.Amounts
	release          bool
}

func newExchange(s *Server, snap *Snapshot) *exchange {
	return &exchange{srv: s, snap: snap, route: -1, rec: ledger.Record{Start: s.now(), Currency: snap.Config.Catalog.Currency()}}
}

// handle answers one message. It never fails: anything it cannot read passes
// through and is recorded.
func (x *exchange) handle(ctx context.Context, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, string) {
	if x.closed {
		return nil, phaseOther
	}
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return x.requestHeaders(ctx, r.RequestHeaders), phaseRequestHeaders
	case *extprocv3.ProcessingRequest_RequestBody:
		return x.requestBody(ctx, r.RequestBody), phaseRequestBody
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return x.responseHeaders(r.ResponseHeaders), phaseResponseHeaders
	case *extprocv3.ProcessingRequest_ResponseBody:
		return x.responseBody(r.ResponseBody), phaseResponseBody
	}
	return nil, phaseOther
}

func (x *exchange) requestHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	hdrs := h.GetHeaders().GetHeaders()
	get := func(name string) string { return headerValue(hdrs, name) }
	x.rec.RequestID = get("x-request-id")
	_, x.hasLength = lookupHeader(hdrs, "content-length")
	dims, invalid := x.snap.Extractor.Extract(get)
	x.rec.Dimensions = dims
	for _, d := range invalid {
		x.srv.observer.InvalidAttribution(d)
	}
	x.path = get(":path")
	path, _, _ := strings.Cut(x.path, "?")
	d, route, ok := x.snap.Dialects.ResolveRoute(x.dialectName, x.snap.Config.Routes, get(":authority"), path)
	if !ok || get(":method") != "POST" {
		// Not an API tokenmeter meters: stop Envoy from sending the rest.
		x.rec.Outcome, x.rec.Reason = ledger.Unmetered, reasonUnknownPath
		x.finish(nil)
		return skipRest()
	}
	x.dialect, x.route = d, route
	x.rec.Dialect, x.rec.Provider = d.Name(), d.Provider()
	if route >= 0 && x.snap.Config.Routes[route].Provider != "" {
		x.rec.Provider = x.snap.Config.Routes[route].Provider
	}

	if den, err := x.snap.Limiter.Precheck(ctx, dims); err != nil {
		x.storeError("precheck", err)
	} else if den != nil {
		return x.deny(den)
	}
	if h.GetEndOfStream() {
		// No body will follow: admit now, on what we know.
		if den := x.admit(ctx); den != nil {
			return den
		}
	}
	return headersContinue(true)
}

func (x *exchange) requestBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.dialect == nil || x.admitted {
		return bodyContinue(true, nil, false)
	}
	req, newBody, err := x.dialect.ParseRequest(b.GetBody(), dialect.RequestOptions{InjectStreamUsage: x.snap.Config.InjectStreamUsage, Path: x.path})
	if err != nil {
		x.parseError(err)
		newBody = nil
	}
	x.req = req
	x.rec.Model, x.rec.Stream = cleanModel(req.Model), req.Stream
	if den := x.admit(ctx); den != nil {
		return den
	}
	return bodyContinue(true, newBody, x.hasLength)
}

// cleanModel makes a client-supplied model name safe to use as a metric
// label, a proto string and a record field.
func cleanModel(m string) string {
	if m == "" {
		return ""
	}
	v, _ := attribution.Clean(m)
	return v
}

// admit prices the request's estimate and reserves it on every matching
// budget. It returns an immediate response when the request must not go on.
func (x *exchange) admit(ctx context.Context) *extprocv3.ProcessingResponse {
	x.admitted = true
	cfg := x.snap.Config
	if x.req.Model != "" {
		x.entry, _ = cfg.Catalog.Lookup(x.rec.Provider, x.req.Model, x.rec.Start)
	}
	x.rec.Priced = x.entry != nil
	if x.entry != nil {
		x.rec.PricedModel = x.entry.Name
	}
	if x.entry == nil && x.req.Model != "" {
		for _, b := range x.snap.Limiter.Matching(x.rec.Dimensions) {
			if b.Unit == ratelimit.Money && cfg.UnpricedFor(b.Name, x.route) == config.UnpricedDeny {
				x.rec.Reason = reasonUnpriced
				return x.denyUnpriced(b)
			}
		}
		if fb := cfg.FallbackFor(x.route); fb != nil {
			// Priced at the fallback entry so money budgets hold, and still
			// recorded as an unknown model.
			x.entry, x.rec.Fallback = fb, true
		}
	}
	est := x.estimate()
	hold, den, err := x.snap.Limiter.Reserve(ctx, x.rec.Dimensions, est)
	if err != nil {
		// The store failed: each matching budget says whether its requests
		// go through unchecked (the default) or are refused; both are
		// counted, never silent.
		x.storeError("reserve", err)
		var closed *ratelimit.Budget
		for _, b := range x.snap.Limiter.Matching(x.rec.Dimensions) {
			if b.FailClosed && closed == nil {
				closed = b
				continue
			}
			x.srv.observer.StoreUnavailable(b.Name, false)
		}
		if closed != nil {
			x.srv.observer.StoreUnavailable(closed.Name, true)
			return x.denyUnavailable(closed)
		}
		return nil
	}
	if den != nil {
		return x.deny(den)
	}
	for _, s := range hold.Shadowed {
		x.srv.observer.ShadowDenied(s.Budget.Name)
		x.srv.log.Info("shadow budget would deny", "budget", s.Budget.Name, "key", s.Key,
			"spent", s.Spent, "reserved", s.Reserved, "asked", s.Asked, "limit", s.Limit)
	}
	x.hold = hold
	x.remaining = x.snap.Limiter.Remaining(hold)
	return nil
}

// estimate is what a request may cost before it runs: its prompt, estimated
// from its size, plus max_tokens (or the configured default) of output.
func (x *exchange) estimate() ratelimit.Amounts {
	var u usage.Usage
	u.Set(usage.Input, reserveTokens(x.req.PromptBytes))
	out := x.req.MaxTokens
	if out <= 0 {
		out = x.snap.Config.DefaultMaxTokens
	}
	u.Set(usage.Output, out)
	a := ratelimit.Amounts{Tokens: u.Total(), Requests: 1}
	if x.entry != nil {
		if c, err := x.entry.Cost(&u, pricing.CostOptions{ServiceTier: x.req.ServiceTier}); err == nil {
			a.Money = c
		}
	}
	return a
}

// reserveTokens approximates a prompt's tokens from its bytes for a budget
// reservation: about four bytes a token. Running a real tokenizer here would
// put milliseconds on every request's path; the package estimate does that,
// only when a response lacks usage.
func reserveTokens(bytes int64) int64 {
	if bytes <= 0 {
		return 0
	}
	return (bytes + 3) / 4
}

func (x *exchange) responseHeaders(h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	if x.dialect == nil {
		return headersContinue(false)
	}
	x.responseStarted = true
	hdrs := h.GetHeaders().GetHeaders()
	get := func(name string) string { return headerValue(hdrs, name) }
	x.rec.Status, _ = strconv.Atoi(get(":status"))
	resp := dialect.Response{Status: x.rec.Status, ContentType: get("content-type"), ContentEncoding: get("content-encoding"), Header: get}
	x.decoder = x.dialect.NewDecoder(resp, int(x.snap.Config.MaxResponseBuffer))
	if h.GetEndOfStream() {
		md := x.complete(true)
		r := x.responseHeadersContinue()
		r.DynamicMetadata = md
		return r
	}
	r := x.responseHeadersContinue()
	// A small non-streaming body is cheaper in one message than in chunks;
	// streams and large or unsized bodies stay streamed, so Envoy never has
	// to buffer past its limit.
	if !strings.HasPrefix(resp.ContentType, "text/event-stream") {
		if n, err := strconv.ParseInt(get("content-length"), 10, 64); err == nil && n <= x.snap.Config.BufferJSONBelow {
			r.ModeOverride = bufferedResponseBody()
		}
	}
	return r
}

// responseHeadersContinue lets the response headers through with the budget
// feedback headers added.
func (x *exchange) responseHeadersContinue() *extprocv3.ProcessingResponse {
	r := headersContinue(false)
	if hs := x.feedbackHeaders(); len(hs) > 0 {
		r.GetResponseHeaders().Response.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: hs}
	}
	return r
}

func (x *exchange) responseBody(b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if x.decoder == nil {
		return bodyContinue(false, nil, false)
	}
	if x.rec.TTFT == 0 && len(b.GetBody()) > 0 {
		// The first body bytes: for a stream, the first tokens.
		x.rec.TTFT = x.srv.now().Sub(x.rec.Start)
	}
	if err := x.decoder.Feed(b.GetBody()); err != nil && x.rec.Status/100 == 2 && !x.respParseCounted {
		x.respParseCounted = true
		x.parseError(err)
	}
	r := bodyContinue(false, nil, false)
	if b.GetEndOfStream() {
		r.DynamicMetadata = x.complete(true)
	}
	return r
}

// abort ends an exchange that Envoy stopped before the response completed:
// the client went away, the upstream failed, or Envoy had nothing more to
// send (eof).
func (x *exchange) abort(ctx context.Context, eof bool) {
	if x.closed {
		return
	}
	if x.dialect == nil {
		x.rec.Outcome, x.rec.Reason = ledger.Unmetered, reasonNoResponse
		x.finish(nil)
	} else if !x.responseStarted {
		x.rec.Outcome, x.rec.Reason = ledger.UpstreamError, reasonNoResponse
		if !eof {
			x.rec.Reason = reasonClientDisconnect
		}
		x.finish(nil)
	} else {
		x.complete(false)
		if x.rec.Reason == "" && x.rec.Outcome != ledger.OK {
			x.rec.Reason = reasonClientDisconnect
		}
	}
	x.afterSend(ctx)
}

func (x *exchange) storeError(op string, err error) {
	x.srv.observer.StoreError(op)
	x.srv.log.Error("budget store", "op", op, "err", err)
	if x.rec.Reason == "" {
		x.rec.Reason = reasonStore
	}
}

func (x *exchange) parseError(err error) {
	reason := dialect.ReasonOf(err)
	if reason == "" {
		reason = dialect.ReasonUnexpectedShape
	}
	x.srv.observer.ParseError(x.rec.Dialect, string(reason))
	if x.rec.Reason == "" {
		x.rec.Reason = string(reason)
	}
	x.srv.log.Debug("parse", "dialect", x.rec.Dialect, "reason", reason, "err", err)
}

// finish marks the record final. settle is what to charge the reservation;
// nil releases it.
func (x *exchange) finish(settle *ratelimit.Amounts) {
	x.closed = true
	x.rec.Duration = x.srv.now().Sub(x.rec.Start)
	if settle != nil {
		x.settle = *settle
	} else {
		x.release = true
	}
	x.pending = &x.rec
}

// afterSend settles the budgets and appends the record once Envoy has its
// answer, so storage latency never sits on the request path.
func (x *exchange) afterSend(ctx context.Context) {
	if x.pending == nil {
		return
	}
	rec := x.pending
	x.pending = nil
	var err error
	if x.release {
		err = x.snap.Limiter.Release(ctx, x.hold)
	} else {
		err = x.snap.Limiter.Settle(ctx, x.hold, x.settle)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		x.storeError("settle", err)
	}
	x.srv.sink.Append(rec)
}
