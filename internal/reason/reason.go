// Package reason is the one vocabulary for why a request's record is not a
// plain, fully read, priced success. A Reason is an error (usable with
// errors.Is and errors.As), a ledger column and a metric label at once, so
// the set is closed and small: each value is listed here with what it means.
//
// A record keeps one reason. Which one, when several apply, is fixed by two
// rules, so that a reader of the ledger knows what a reason outranks:
//
//  1. A reason that comes with the outcome it explains (a refusal, a gate
//     timeout, an upstream error, an unmetered request) is assigned with
//     that outcome and replaces whatever was noted before.
//  2. Otherwise a reason is noted (Note): the higher rank wins, and of equal
//     ranks the first noted stays. From the highest: what the cost could not
//     be based on (unpriced_model, unpriced_usage), that no observer read the
//     response (no_observer), that the price is the fallback's
//     (fallback_price), that the response was cut (stream_cut), then how a
//     body was read (the decoders' reasons, and store_unavailable when a
//     budget let the request through unchecked), and last no_usage, the
//     generic one.
//
// The ranks put first what changes the money on the record: a finance
// reader sees "unpriced" before "the stream was cut", and "charged at the
// estimate" before "the body had a stray byte".
package reason

import "errors"

// Reason is a short, stable code; see the package comment.
type Reason string

func (r Reason) Error() string { return string(r) }

// Reading a body: set by the dialects' decoders and request parsers.
const (
	MalformedJSON       Reason = "malformed_json"       // body or event is not valid JSON
	UnexpectedShape     Reason = "unexpected_shape"     // valid JSON, but not the documented shape
	TooLarge            Reason = "too_large"            // buffered state hit its cap
	NoUsage             Reason = "no_usage"             // the response ended without usage
	InconsistentUsage   Reason = "inconsistent_usage"   // e.g. cached > prompt tokens
	Truncated           Reason = "truncated"            // the body ended mid-event or mid-document
	ProviderError       Reason = "provider_error"       // the provider reported an error in the body
	UnsupportedEncoding Reason = "unsupported_encoding" // a Content-Encoding no decoder reads
)

// Pricing and charging: noted by the metering core.
const (
	UnpricedModel Reason = "unpriced_model" // the catalog has no price for the model
	UnpricedUsage Reason = "unpriced_usage" // audio, image or unit usage the entry has no price for
	FallbackPrice Reason = "fallback_price" // an unknown model priced at the configured fallback
	NoObserver    Reason = "no_observer"    // admitted, and no observer read the response: charged at the estimate
	// StreamCut: the response stopped before its end. The client left or the
	// upstream reset the stream; Envoy closes the ext_proc stream the same
	// way for both, so tokenmeter does not claim which.
	StreamCut Reason = "stream_cut"
	// StoreUnavailable: the budget store failed. Noted when the budgets let
	// the request through unchecked; assigned with the refusal when one is
	// set to fail closed.
	StoreUnavailable Reason = "store_unavailable"
)

// How a request ended without a charge: assigned with its outcome.
const (
	UnknownPath Reason = "unknown_path" // not an API tokenmeter meters (unmetered)
	// ClientDisconnect: the stream ended before any response, so the client
	// left (an upstream that fails before its headers makes Envoy answer for
	// it, which the observer sees).
	ClientDisconnect Reason = "client_disconnect"
	NoResponse       Reason = "no_response"       // Envoy ended the stream without a response
	RequestTooLarge  Reason = "request_too_large" // the body is over extproc.max_message_bytes (refused, 413)
	// StreamCancelled: the gate's stream was cancelled before its decision
	// (Envoy's message_timeout, or the client left): nothing reserved,
	// nothing sent.
	StreamCancelled Reason = "stream_cancelled"
	Overloaded      Reason = "overloaded" // the decision came past extproc.gate_deadline (refused, 503)
	// AnswerLate: the decision was made but Envoy had cancelled the stream
	// before the answer went out: the provider was not called.
	AnswerLate Reason = "answer_late"
	BadHandoff Reason = "bad_handoff" // an observer could not read the gate's handoff (a metric label only)
	// The API key (attribution.api_keys): refused with 401 before the
	// provider is called. A missing or unknown key is refused when its
	// policy is deny; a revoked one always.
	KeyMissing Reason = "api_key_missing" // the request carries no key
	KeyUnknown Reason = "api_key_unknown" // a key the table does not hold (or a secret rotated out)
	KeyRevoked Reason = "api_key_revoked" // a key that was revoked
)

// All is the vocabulary of record reasons, in the order docs/ledger.md lists
// it (a test holds the two together). BadHandoff is a metric label only.
var All = []Reason{
	UnpricedModel, UnpricedUsage, NoObserver, FallbackPrice, StreamCut,
	MalformedJSON, UnexpectedShape, TooLarge, Truncated, InconsistentUsage, UnsupportedEncoding, ProviderError,
	StoreUnavailable, NoUsage,
	UnknownPath, ClientDisconnect, NoResponse, RequestTooLarge, StreamCancelled, Overloaded, AnswerLate,
	KeyMissing, KeyUnknown, KeyRevoked,
}

// rank orders noted reasons; unlisted ones (the body-reading reasons and
// store_unavailable) rank 1.
var rank = map[Reason]int{
	NoUsage:       0,
	StreamCut:     2,
	FallbackPrice: 3,
	NoObserver:    4,
	UnpricedModel: 5,
	UnpricedUsage: 5,
	// Assigned with their outcome, never noted over another reason.
	UnknownPath: -1, ClientDisconnect: -1, NoResponse: -1, RequestTooLarge: -1,
	StreamCancelled: -1, Overloaded: -1, AnswerLate: -1, BadHandoff: -1,
	KeyMissing: -1, KeyUnknown: -1, KeyRevoked: -1,
}

// Rank is the precedence Note compares: higher wins. It is -1 for the
// reasons that are assigned with their outcome instead.
func Rank(r Reason) int {
	if n, ok := rank[r]; ok {
		return n
	}
	return 1
}

// Note returns the reason a record keeps when r is noted on one whose reason
// is cur: the higher rank, and cur on a tie. An empty r changes nothing.
func Note(cur, r Reason) Reason {
	if r == "" || (cur != "" && Rank(r) <= Rank(cur)) {
		return cur
	}
	return r
}

// Of extracts the Reason from err, or "" when err carries none.
func Of(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}
