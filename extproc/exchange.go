package extproc

import (
	"context"
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/metering"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Phase names, used as the metric label.
const (
	phaseRequestHeaders  = "request_headers"
	phaseRequestBody     = "request_body"
	phaseResponseHeaders = "response_headers"
	phaseResponseBody    = "response_body"
	phaseOther           = "other"
	// phaseGateWait is the time from a request's headers reaching tokenmeter
	// to its decision: the body's arrival plus any queueing in tokenmeter;
	// what Envoy's message_timeout bounds.
	phaseGateWait = "gate_wait"
)

// exchange is the state of one HTTP request: what the request and response
// say, read message by message. The metering decisions are package
// metering's; the mode (mode.go) says which messages a stream sees.
type exchange struct {
	srv  *Server
	snap *Snapshot

	rec         ledger.Record
	in          metering.Request      // what the request said, for the metering core
	dialectName string                // named by the Envoy route; empty to choose by path
	remaining   []ratelimit.Remaining // budgets' state after this request's reservation
	path        string                // :path as the client sent it
	dialect     dialect.Dialect
	entry       *pricing.Entry // the admission's; nil: unpriced
	reserved    usage.Usage    // what admission reserved, to charge if no observer comes
	hold        *ratelimit.Reservation
	decoder     dialect.Decoder

	// pipelined: Envoy sends the body without waiting for the answer to the
	// headers (send_body_without_waiting_for_header_response), so tokenmeter
	// holds that answer until the whole body is read and decides once, in a
	// single round trip. chunks are the held body messages.
	pipelined  bool
	holding    bool
	chunks     [][]byte
	chunkBytes int64
	// decision is the answer that lets an admitted request go on to the
	// provider: a gate puts its handoff in it.
	decision *extprocv3.ProcessingResponse

	admitted         bool      // the budget decision was made
	arrived          time.Time // when the request headers arrived (the gate deadline runs from here)
	respParseCounted bool      // a response reading problem was counted
	hasLength        bool      // the request carried content-length
	responseStarted  bool
	closed           bool           // the record is final
	pending          *ledger.Record // to settle and append after the answer is sent
	settle           ratelimit.Amounts
	release          bool

	out [1]*extprocv3.ProcessingResponse // handle's answer, without an allocation
}

func newExchange(s *Server, snap *Snapshot) *exchange {
	start := s.now()
	return &exchange{srv: s, snap: snap, in: metering.Request{Route: -1, Start: start},
		rec: ledger.Record{Start: start, Currency: snap.Config.Catalog.Currency()}}
}

// newRecordID names a record and its handoff: the server's random prefix,
// then a counter, so ids are unique across replicas and restarts without a
// coordinator, and a handoff's prefix says which server made it (claim).
func (s *Server) newRecordID() string {
	return s.idPrefix + "-" + strconv.FormatUint(s.ids.Add(1), 36)
}

// handle answers one message: usually one answer, none while the request
// headers' answer waits for the body (pipelined), several when it is sent.
// It never fails: anything it cannot read passes through and is recorded.
func (x *exchange) handle(ctx context.Context, req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, string) {
	if x.closed {
		return x.one(passThrough(req)), phaseOther
	}
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return x.one(x.requestHeaders(ctx, req)), phaseRequestHeaders
	case *extprocv3.ProcessingRequest_RequestBody:
		return x.requestBody(ctx, r.RequestBody), phaseRequestBody
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return x.one(x.responseHeaders(r.ResponseHeaders)), phaseResponseHeaders
	case *extprocv3.ProcessingRequest_ResponseBody:
		return x.one(x.responseBody(r.ResponseBody)), phaseResponseBody
	}
	// A message tokenmeter did not ask for (trailers): let it pass.
	return x.one(passThrough(req)), phaseOther
}

// observe reads one message as an observer: only the response matters (the
// request headers just open the stream), and no answer is sent.
func (x *exchange) observe(req *extprocv3.ProcessingRequest) string {
	if x.closed {
		return phaseOther
	}
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		x.responseHeaders(r.ResponseHeaders)
		return phaseResponseHeaders
	case *extprocv3.ProcessingRequest_ResponseBody:
		x.responseBody(r.ResponseBody)
		return phaseResponseBody
	}
	return phaseOther
}

func (x *exchange) one(r *extprocv3.ProcessingResponse) []*extprocv3.ProcessingResponse {
	if r == nil {
		return nil
	}
	x.out[0] = r
	return x.out[:1]
}

// notSent ends an exchange whose answer Envoy will never use: its stream
// was cancelled before the answer went out (message_timeout; the client
// left), or the answer could not be sent. The provider is not called, a
// hold is released, and a refusal the client never saw is recorded as the
// gate timeout it was.
func (x *exchange) notSent(ctx context.Context) {
	if x.rec.Outcome == ledger.Denied && x.pending != nil {
		x.rec.Outcome, x.rec.Reason = ledger.GateTimeout, reason.AnswerLate
	}
	x.abort(ctx, false)
}

// settleFirst settles and records a final exchange before its answer goes
// out when store.settle_before_response asks for durability over latency:
// the charge is on disk before Envoy can release the answer, so a crash
// cannot lose a charge whose answer the client got.
func (x *exchange) settleFirst(ctx context.Context) {
	if x.snap.Config.SettleBeforeResponse {
		x.afterSend(context.WithoutCancel(ctx))
	}
}

func (x *exchange) requestHeaders(ctx context.Context, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	h := req.GetRequestHeaders()
	hdrs := h.GetHeaders().GetHeaders()
	get := func(name string) string { return headerValue(hdrs, name) }
	x.rec.RequestID, x.rec.ClientRequestID = x.srv.newRecordID(), get("x-request-id")
	length, hasLength := lookupHeader(hdrs, "content-length")
	x.hasLength = hasLength
	x.path = get(":path")
	path, _, _ := strings.Cut(x.path, "?")
	d, route, ok := x.snap.Dialects.ResolveRoute(x.dialectName, x.snap.Config.Routes, get(":authority"), path)
	key, keyStatus := x.apiKey(d, get)
	dims, invalid := x.snap.Extractor.Extract(newRequest(req, key))
	x.rec.Dimensions = dims
	for _, d := range invalid {
		x.srv.observer.InvalidAttribution(d)
	}
	if !ok || get(":method") != "POST" {
		// Not an API tokenmeter meters: stop Envoy from sending the rest.
		x.rec.Outcome, x.rec.Reason = ledger.Unmetered, reason.UnknownPath
		x.finish(nil)
		return skipRest()
	}
	x.dialect, x.in.Route = d, route
	x.rec.Dialect, x.rec.Provider = d.Name(), d.Provider()
	if route >= 0 && x.snap.Config.Routes[route].Provider != "" {
		x.rec.Provider = x.snap.Config.Routes[route].Provider
	}
	x.in.Provider = x.rec.Provider

	if den := x.refuseKey(keyStatus); den != nil {
		return den
	}
	if n, err := strconv.ParseInt(length, 10, 64); err == nil && n > x.snap.Config.MaxMessageBytes {
		// Refused before a byte of the body is read: Envoy would otherwise
		// hold the body up to its buffer limit first.
		return x.tooLarge()
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
		return x.lastRequestAnswer(headersContinue(true))
	}
	if x.pipelined {
		x.holding = true // answered with the body's answers
		return nil
	}
	return headersContinue(true)
}

func (x *exchange) requestBody(ctx context.Context, b *extprocv3.HttpBody) []*extprocv3.ProcessingResponse {
	if x.holding {
		return x.heldBody(ctx, b)
	}
	if x.dialect == nil || x.admitted {
		return x.one(bodyContinue(true, nil, false))
	}
	newBody, den := x.readRequest(ctx, b.GetBody())
	if den != nil {
		return x.one(den)
	}
	return x.one(x.lastRequestAnswer(bodyContinue(true, newBody, x.hasLength)))
}

// readRequest parses the whole request body and admits it. It returns the
// body to send instead (nil: unchanged), or the answer that refuses it.
func (x *exchange) readRequest(ctx context.Context, body []byte) ([]byte, *extprocv3.ProcessingResponse) {
	x.in.BodyBytes = int64(len(body))
	if x.in.BodyBytes > x.snap.Config.MaxMessageBytes {
		// A buffered body (inline mode) arrives whole, up to Envoy's limit.
		return nil, x.tooLarge()
	}
	if r := x.late(ctx); r != nil {
		return nil, r
	}
	req, newBody, err := x.dialect.ParseRequest(body, dialect.RequestOptions{InjectStreamUsage: x.snap.Config.InjectStreamUsage, Path: x.path})
	if err != nil {
		// Admitted on a worst case (estimate), and passed on unchanged.
		x.in.ParseFailed = true
		x.parseError(err)
		newBody = nil
	}
	x.in.Body = req
	x.rec.Model, x.rec.Stream = metering.CleanModel(req.Model), req.Stream
	den := x.admit(ctx)
	if !x.arrived.IsZero() {
		x.srv.observer.ObservePhase(phaseGateWait, time.Since(x.arrived))
	}
	if den != nil {
		return nil, den
	}
	return newBody, nil
}

// heldBody gathers a pipelined body. At its end the request is decided and
// every held answer goes out at once: the headers' (with content-length set
// when the body was rewritten), then one per chunk, the first carrying the
// whole new body and the others emptied.
func (x *exchange) heldBody(ctx context.Context, b *extprocv3.HttpBody) []*extprocv3.ProcessingResponse {
	chunk := b.GetBody()
	x.chunks = append(x.chunks, chunk)
	x.chunkBytes += int64(len(chunk))
	if x.chunkBytes > x.snap.Config.MaxMessageBytes {
		x.holding = false
		return x.one(x.tooLarge())
	}
	if !b.GetEndOfStream() {
		return nil
	}
	x.holding = false
	body := chunk
	if len(x.chunks) > 1 {
		body = make([]byte, 0, x.chunkBytes)
		for _, c := range x.chunks {
			body = append(body, c...)
		}
	}
	newBody, den := x.readRequest(ctx, body)
	if den != nil {
		return x.one(den)
	}
	hdr := headersContinue(true)
	if newBody != nil && x.hasLength {
		hdr.GetRequestHeaders().Response.HeaderMutation = &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			setHeader("content-length", strconv.Itoa(len(newBody))),
		}}
	}
	out := make([]*extprocv3.ProcessingResponse, 0, 1+len(x.chunks))
	out = append(out, x.lastRequestAnswer(hdr))
	for i := range x.chunks {
		r := bodyContinue(true, nil, false)
		switch {
		case newBody == nil:
		case i == 0:
			r.GetRequestBody().Response.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: newBody}}
		default:
			r.GetRequestBody().Response.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}}
		}
		out = append(out, r)
	}
	x.chunks = nil
	return out
}

// lastRequestAnswer marks r as the answer that lets an admitted request go
// on to the provider; a gate puts its handoff in it (mode.go).
func (x *exchange) lastRequestAnswer(r *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	if x.dialect != nil && !x.closed {
		x.decision = r
	}
	return r
}

// admit reserves the request's estimate (metering.Admit) on every matching
// budget. It returns an immediate response when the request must not go on.
func (x *exchange) admit(ctx context.Context) *extprocv3.ProcessingResponse {
	x.admitted = true
	matching := x.snap.Limiter.Matching(x.rec.Dimensions)
	a := metering.Admit(x.snap.Config, matching, &x.in)
	x.entry, x.reserved, x.rec.Fallback = a.Entry, a.Reserved, a.Fallback
	x.rec.Priced = a.Entry != nil && !a.Fallback
	if x.rec.Priced {
		x.rec.PricedModel = a.Entry.Name
	}
	if a.Unpriced != nil {
		x.rec.Reason = reason.UnpricedModel
		return x.denyUnpriced(a.Unpriced)
	}
	hold, den, err := x.snap.Limiter.Reserve(ctx, x.rec.Dimensions, a.Estimate)
	if err != nil {
		// The store failed: each matching budget says whether its requests
		// go through unchecked (the default) or are refused; both are
		// counted, never silent.
		x.storeError("reserve", err)
		var closed *ratelimit.Budget
		for _, b := range matching {
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

// late refuses to decide a request Envoy no longer waits for: its gate
// stream was cancelled (message_timeout, or the client left), or the
// decision would come past the gate deadline. Reserving then would hold
// budget for a request that never runs.
func (x *exchange) late(ctx context.Context) *extprocv3.ProcessingResponse {
	if ctx.Err() != nil {
		x.rec.Outcome, x.rec.Reason = ledger.GateTimeout, reason.StreamCancelled
		x.finish(nil)
		// Never sent: Process sees the cancelled stream and ends it.
		return passThroughBody()
	}
	if d := x.snap.Config.GateDeadline; d > 0 && !x.arrived.IsZero() {
		if waited := time.Since(x.arrived); waited > d {
			x.srv.observer.Overloaded()
			return x.overloaded(waited)
		}
	}
	return nil
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
		// Decided, and its answer could not be sent: the record stands.
		x.afterSend(ctx)
		return
	}
	switch {
	case x.dialect == nil:
		x.ended(metering.Unrouted, eof)
	case !x.admitted:
		x.ended(metering.Undecided, eof)
	case !x.responseStarted:
		x.ended(metering.Admitted, eof)
	default:
		x.complete(false)
	}
	x.afterSend(ctx)
}

// ended finishes an exchange whose stream ended at stage, before a response.
func (x *exchange) ended(stage metering.Stage, eof bool) {
	x.rec.Outcome, x.rec.Reason = metering.Ended(stage, eof)
	x.finish(nil)
}

func (x *exchange) storeError(op string, err error) {
	x.srv.observer.StoreError(op)
	x.srv.log.Error("budget store", "op", op, "err", err)
	x.rec.Reason = reason.Note(x.rec.Reason, reason.StoreUnavailable)
}

// parseError counts and logs a body tokenmeter could not fully read, and
// notes its reason on the record.
func (x *exchange) parseError(err error) {
	x.rec.Reason = reason.Note(x.rec.Reason, x.countParseError(err))
}

// countParseError counts and logs a reading problem, and returns its reason.
func (x *exchange) countParseError(err error) reason.Reason {
	why := metering.ReadReason(err)
	x.srv.observer.ParseError(x.rec.Dialect, string(why))
	x.srv.log.Debug("parse", "dialect", x.rec.Dialect, "reason", why, "err", err)
	return why
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
