package extproc

import (
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"math"
	"math/bits"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// deny answers with 429 before the request reaches the provider, in the
// caller's API dialect so that its SDK raises its own rate-limit error.
func (x *exchange) deny(d *ratelimit.Denial) *extprocv3.ProcessingResponse {
	secs := int64(math.Ceil(d.RetryAfter.Seconds()))
	msg := fmt.Sprintf("tokenmeter: budget %q is exhausted for %s (limit %s %s per %s); retry in %ds",
		d.Budget.Name, d.Key, d.Budget.Format(d.Limit), unitNoun(d.Budget), d.Budget.Period(), secs)
	if d.Budget.Unit == ratelimit.Concurrent {
		msg = fmt.Sprintf("tokenmeter: budget %q allows %d requests in flight for %s; retry in %ds",
			d.Budget.Name, d.Limit, d.Key, secs)
	}
	x.rec.Outcome, x.rec.Budget = ledger.Denied, d.Budget.Name
	x.finish(nil)
	return x.immediate(429, "budget_exceeded", msg,
		setHeader("retry-after", strconv.FormatInt(secs, 10)),
		setHeader("x-tokenmeter-budget", d.Budget.Name))
}

// denyUnpriced refuses a model the catalog cannot price when a money budget
// applies and the policy is deny: its cost could not be held against the budget.
func (x *exchange) denyUnpriced(b *ratelimit.Budget) *extprocv3.ProcessingResponse {
	msg := fmt.Sprintf("tokenmeter: model %q has no price in the catalog, and money budget %q applies (unpriced policy: deny)",
		x.rec.Model, b.Name)
	if x.rec.Model == "" {
		msg = fmt.Sprintf("tokenmeter: the request names no model tokenmeter can read, so its cost cannot be held against money budget %q (unpriced policy: deny)", b.Name)
	}
	x.rec.Outcome, x.rec.Budget = ledger.Denied, b.Name
	x.finish(nil)
	return x.immediate(403, "model_unpriced", msg, setHeader("x-tokenmeter-budget", b.Name))
}

// denyUnavailable refuses a request that a fail-closed budget could not check.
func (x *exchange) denyUnavailable(b *ratelimit.Budget) *extprocv3.ProcessingResponse {
	msg := fmt.Sprintf("tokenmeter: budget %q cannot be checked (its store is unavailable) and is set to deny then", b.Name)
	x.rec.Outcome, x.rec.Budget, x.rec.Reason = ledger.Denied, b.Name, reason.StoreUnavailable
	x.finish(nil)
	return x.immediate(503, "budget_store_unavailable", msg,
		setHeader("retry-after", "1"),
		setHeader("x-tokenmeter-budget", b.Name))
}

// tooLarge refuses a pipelined request body larger than tokenmeter holds
// (extproc.max_message_bytes): the same answer Envoy gives a body over its
// buffer limit when it buffers the body itself.
func (x *exchange) tooLarge() *extprocv3.ProcessingResponse {
	msg := fmt.Sprintf("tokenmeter: the request body exceeds %d bytes, the most it reads to meter a request (extproc.max_message_bytes)",
		x.snap.Config.MaxMessageBytes)
	x.rec.Outcome, x.rec.Reason = ledger.Denied, reason.RequestTooLarge
	x.chunks = nil
	x.finish(nil)
	return x.immediate(413, "request_too_large", msg)
}

// overloaded refuses a request whose decision comes too late for Envoy to
// use (config extproc.gate_deadline): a refusal the client sees, and can
// retry, rather than an admission after Envoy has answered 504.
func (x *exchange) overloaded(waited time.Duration) *extprocv3.ProcessingResponse {
	msg := fmt.Sprintf("tokenmeter: overloaded; the budget decision took %s, past the gate deadline of %s; retry in 1s",
		waited.Round(time.Millisecond), x.snap.Config.GateDeadline)
	x.rec.Outcome, x.rec.Reason = ledger.Denied, reason.Overloaded
	x.chunks = nil
	x.finish(nil)
	return x.immediate(503, "tokenmeter_overloaded", msg, setHeader("retry-after", "1"))
}

func unitNoun(b *ratelimit.Budget) string {
	if b.Unit == ratelimit.Money {
		if b.Currency != "" {
			return string(b.Currency)
		}
		return "money"
	}
	return b.Unit.String()
}

// immediate refuses the request with status, in the caller's dialect (an
// OpenAI-shaped body when no dialect claimed it).
func (x *exchange) immediate(status int, code, msg string, headers ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	r := dialect.Refusal{Status: status, Code: code, Message: msg}
	e := dialect.OpenAIRefusal(r)
	if x.dialect != nil {
		e = x.dialect.ErrorBody(r)
	}
	for _, h := range e.Headers {
		headers = append(headers, setHeader(h[0], h[1]))
	}
	headers = append(headers, setHeader("content-type", "application/json"))
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: headers},
			Body:    e.Body,
			Details: "tokenmeter_" + code,
		},
	}}
}

// feedbackHeaders tell an admitted caller where it stands:
//   - x-tokenmeter-budget-remaining, -budget and -budget-reset: what is left
//     of the tightest matching calendar budget (the smallest fraction of its
//     limit), in its unit, after this request's reservation, and the seconds
//     until it resets;
//   - x-ratelimit-limit-, -remaining- and -reset-requests / -tokens, as
//     OpenAI names them, for the tightest rolling (RPM/TPM) budget of each
//     unit. They replace the provider's own: tokenmeter's limit is the one
//     that will refuse the next request first.
//
// Shadow budgets send nothing: they must not change what callers do.
func (x *exchange) feedbackHeaders() []*corev3.HeaderValueOption {
	if len(x.remaining) == 0 {
		return nil
	}
	var tight *ratelimit.Remaining
	var rate [2]*ratelimit.Remaining // requests, tokens
	for i := range x.remaining {
		r := &x.remaining[i]
		switch {
		case r.Budget.Rolling > 0 && r.Budget.Unit == ratelimit.Requests:
			rate[0] = tighter(rate[0], r)
		case r.Budget.Rolling > 0 && r.Budget.Unit == ratelimit.Tokens:
			rate[1] = tighter(rate[1], r)
		case r.Budget.Rolling == 0:
			tight = tighter(tight, r)
		}
	}
	var out []*corev3.HeaderValueOption
	if tight != nil {
		left := strconv.FormatInt(tight.Remaining, 10)
		if tight.Budget.Unit == ratelimit.Money {
			left = money.Amount(tight.Remaining).String()
		}
		out = append(out,
			setHeader("x-tokenmeter-budget", tight.Budget.Name),
			setHeader("x-tokenmeter-budget-remaining", left),
			setHeader("x-tokenmeter-budget-reset", strconv.FormatInt(ceilSeconds(tight.Resets.Sub(x.rec.Start)), 10)))
	}
	for i, unit := range []string{"requests", "tokens"} {
		r := rate[i]
		if r == nil {
			continue
		}
		out = append(out,
			setHeader("x-ratelimit-limit-"+unit, strconv.FormatInt(r.Limit, 10)),
			setHeader("x-ratelimit-remaining-"+unit, strconv.FormatInt(r.Remaining, 10)),
			setHeader("x-ratelimit-reset-"+unit, (time.Duration(ceilSeconds(r.Resets.Sub(x.rec.Start)))*time.Second).String()))
	}
	return out
}

// tighter returns whichever of a and b has the smaller fraction of its limit
// left, compared exactly: a.rem × b.limit < b.rem × a.limit in 128 bits.
func tighter(a, b *ratelimit.Remaining) *ratelimit.Remaining {
	if a == nil {
		return b
	}
	ah, al := bits.Mul64(uint64(a.Remaining), uint64(b.Limit))
	bh, bl := bits.Mul64(uint64(b.Remaining), uint64(a.Limit))
	if bh < ah || (bh == ah && bl < al) {
		return b
	}
	return a
}

func ceilSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 0 {
		return 0
	}
	return s
}

// apiKey resolves the API key the request carries, read where d's API
// carries it (any of the known places when no dialect claimed the path).
// It returns the key only when it is valid.
func (x *exchange) apiKey(d dialect.Dialect, get func(string) string) (*apikey.Key, apikey.Status) {
	if x.snap.Keys == nil {
		return nil, apikey.Valid
	}
	provider := ""
	if d != nil {
		provider = d.Provider()
	}
	k, st := x.snap.Keys.Resolve(apikey.Read(provider, get, x.path))
	if st != apikey.Valid {
		k = nil
	}
	return k, st
}

// refuseKey refuses a request whose API key the policy does not let
// through (attribution.api_keys): 401 in the caller's dialect, before the
// provider is called. A revoked key is always refused; a missing or unknown
// one as its policy says. The key itself is never echoed.
func (x *exchange) refuseKey(st apikey.Status) *extprocv3.ProcessingResponse {
	pol := x.snap.Config.APIKeys
	var why reason.Reason
	var msg string
	switch {
	case pol == nil || st == apikey.Valid:
		return nil
	case st == apikey.Revoked:
		why, msg = reason.KeyRevoked, "tokenmeter: this API key has been revoked"
	case st == apikey.Unknown && pol.Unknown == apikey.Deny:
		why, msg = reason.KeyUnknown, "tokenmeter: this API key is not known (it may have been rotated)"
	case st == apikey.Missing && pol.Missing == apikey.Deny:
		why, msg = reason.KeyMissing, "tokenmeter: this API needs an API key, and the request carries none"
	default:
		return nil // the policy attributes it: its key dimensions read "unknown"
	}
	x.rec.Outcome, x.rec.Reason = ledger.Denied, why
	x.finish(nil)
	return x.immediate(401, "invalid_api_key", msg)
}
