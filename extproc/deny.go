package extproc

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/tokenmeter/tokenmeter/ledger"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// deny answers with 429 before the request reaches the provider. The body is
// OpenAI's error shape, which OpenAI SDKs surface as a RateLimitError; other
// dialects' shapes come with their dialects.
func (x *exchange) deny(d *ratelimit.Denial) *extprocv3.ProcessingResponse {
	secs := int64(math.Ceil(d.RetryAfter.Seconds()))
	msg := fmt.Sprintf("tokenmeter: budget %q is exhausted for %s (limit %s %s per %s); it resets in %ds",
		d.Budget.Name, d.Key, d.Budget.LimitString(), unitNoun(d.Budget), d.Budget.Window, secs)
	x.rec.Outcome, x.rec.Budget = ledger.Denied, d.Budget.Name
	x.finish(nil)
	return immediate(429, "budget_exceeded", msg,
		setHeader("retry-after", strconv.FormatInt(secs, 10)),
		setHeader("x-tokenmeter-budget", d.Budget.Name))
}

// denyUnpriced refuses a model the catalog cannot price when a money budget
// applies and the policy is deny: its cost could not be held against the budget.
func (x *exchange) denyUnpriced(b *ratelimit.Budget) *extprocv3.ProcessingResponse {
	msg := fmt.Sprintf("tokenmeter: model %q has no price in the catalog, and money budget %q applies (unpriced policy: deny)",
		x.rec.Model, b.Name)
	x.rec.Outcome, x.rec.Budget = ledger.Denied, b.Name
	x.finish(nil)
	return immediate(403, "model_unpriced", msg, setHeader("x-tokenmeter-budget", b.Name))
}

func unitNoun(b *ratelimit.Budget) string {
	if b.Unit == ratelimit.Money {
		return "money"
	}
	return b.Unit.String()
}

type openAIError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func immediate(status int, code, msg string, headers ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	var e openAIError
	e.Error.Message, e.Error.Type, e.Error.Code = msg, code, code
	body, _ := json.Marshal(e) // a struct of strings always marshals
	headers = append(headers, setHeader("content-type", "application/json"))
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: headers},
			Body:    body,
			Details: "tokenmeter_" + code,
		},
	}}
}
