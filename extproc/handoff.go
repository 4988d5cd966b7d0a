package extproc

import (
	"errors"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/metering"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
)

// Split mode. Envoy runs two ext_proc filters against tokenmeter:
//
//   - the gate sees the request (headers, body) and answers before the
//     upstream call: deny, reserve, rewrite. It sends no response phase.
//   - the observer runs in Envoy's observability_mode: Envoy sends it the
//     response (and the request headers, so that it learns of a client that
//     leaves before the response) and never waits for an answer.
//
// Envoy waits only for the gate, so the response and every streamed chunk
// pass without a round trip. The gate hands what it decided to the observer
// in dynamic metadata (namespace HandoffNamespace), which Envoy forwards on
// every observer message (metadata_options.forwarding_namespaces): the
// observer may be another replica sharing the budget store, so the handoff
// is self-contained, except the prompt text (kept only for estimation when a
// response lacks usage), which stays in the gate's process (prompts below).

// Dynamic metadata namespaces the gate writes. Envoy's filter config must
// list them in metadata_options.receiving_namespaces (the gate) and
// forwarding_namespaces (HandoffNamespace, the observer).
const (
	HandoffNamespace  = "tokenmeter.handoff"
	FeedbackNamespace = "tokenmeter.feedback" // the budget headers, for route response_headers_to_add
)

const handoffVersion = "1"

// ObserverHeaders are the response headers an observer reads: the
// exchange's own, then every registered dialect's declaration
// (dialect.Dialect.ResponseHeaders), derived rather than listed so that a
// dialect cannot read a header the observer is never sent (issue 12: Bedrock
// InvokeModel's usage headers were missing, and split mode billed it from
// bytes/4). The observer filter in envoy.yaml forwards exactly these
// (forward_rules); a test holds the two to each other.
var ObserverHeaders = append([]string{":status", "content-type", "content-encoding", "content-length"},
	dialect.DefaultRegistry().ResponseHeaders()...)

// handoff is what the gate tells the observer of an admitted request:
// everything the observer needs to price, settle and record it, but the
// prompt text (prompts below).
type handoff struct {
	ID, ClientRequestID string
	Start               time.Time
	Provider, Dialect   string
	Route               int    // the configured route that chose the dialect, or -1
	Hold                string // the reservation, as ratelimit.Reservation.Text
	Dimensions          attribution.Dimensions
	// Body is the request as the gate read it, without its Prompt.
	Body     dialect.Request
	Reason   reason.Reason // noted at the gate (a body it could not read)
	Fallback bool          // admitted at the fallback price
}

// encode writes h as one query string. Envoy repeats the metadata on every
// observer message and gRPC decodes it each time, so it is one string, not
// a Struct of fields (a map entry and a message per field), and strings
// only: no float64 near money.
func (h *handoff) encode() string {
	v := url.Values{
		"v":                 {handoffVersion},
		"id":                {h.ID},
		"client_request_id": {h.ClientRequestID},
		"start":             {strconv.FormatInt(h.Start.UnixNano(), 10)},
		"provider":          {h.Provider},
		"dialect":           {h.Dialect},
		"route":             {strconv.Itoa(h.Route)},
		"hold":              {h.Hold},
	}
	if len(h.Dimensions.Names) > 0 {
		// Dimension names are label names: no commas.
		v["dims"] = []string{strings.Join(h.Dimensions.Names, ",")}
		v["val"] = h.Dimensions.Values
	}
	str := func(k, s string) {
		if s != "" {
			v[k] = []string{s}
		}
	}
	num := func(k string, n int64) {
		if n != 0 {
			v[k] = []string{strconv.FormatInt(n, 10)}
		}
	}
	flag := func(k string, b bool) {
		if b {
			v[k] = []string{"1"}
		}
	}
	str("model", h.Body.Model)
	str("image_size", h.Body.ImageSize)
	str("image_quality", h.Body.ImageQuality)
	str("service_tier", h.Body.ServiceTier)
	str("reason", string(h.Reason))
	num("max_tokens", h.Body.MaxTokens)
	num("prompt_bytes", h.Body.PromptBytes)
	num("input_characters", h.Body.InputCharacters)
	flag("stream", h.Body.Stream)
	flag("include_usage", h.Body.IncludeUsage)
	flag("fallback", h.Fallback)
	return v.Encode()
}

// decodeHandoff reads what encode wrote. The route is -1 when it is not a
// number; whether it still exists is the reader's to check.
func decodeHandoff(text string) (handoff, error) {
	var h handoff
	f, err := url.ParseQuery(text)
	if err != nil {
		return h, fmt.Errorf("%w: %w", errHandoff, err)
	}
	get := f.Get
	if v := get("v"); v != handoffVersion {
		return h, fmt.Errorf("%w: version %q, want %q", errHandoff, v, handoffVersion)
	}
	var nums [4]int64
	for i, k := range []string{"start", "max_tokens", "prompt_bytes", "input_characters"} {
		v := get(k)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return h, fmt.Errorf("%w: %s %q", errHandoff, k, v)
		}
		nums[i] = n
	}
	var names []string
	if d := get("dims"); d != "" {
		names = strings.Split(d, ",")
	}
	values := f["val"]
	if len(names) != len(values) {
		return h, fmt.Errorf("%w: %d dimension names, %d values", errHandoff, len(names), len(values))
	}
	h.Route, err = strconv.Atoi(get("route"))
	if err != nil {
		h.Route = -1
	}
	h.ID, h.ClientRequestID, h.Start = get("id"), get("client_request_id"), time.Unix(0, nums[0])
	h.Provider, h.Dialect, h.Hold = get("provider"), get("dialect"), get("hold")
	h.Dimensions = attribution.Dimensions{Names: names, Values: values}
	h.Body = dialect.Request{
		Model: get("model"), Stream: get("stream") == "1", IncludeUsage: get("include_usage") == "1",
		ImageSize: get("image_size"), ImageQuality: get("image_quality"), ServiceTier: get("service_tier"),
		MaxTokens: nums[1], PromptBytes: nums[2], InputCharacters: nums[3],
	}
	h.Reason, h.Fallback = reason.Reason(get("reason")), get("fallback") == "1"
	return h, nil
}

// handoffField holds the encoded handoff in its namespace's Struct.
const handoffField = "h"

// errHandoff wraps every reason an observer cannot use a handoff.
var errHandoff = errors.New("bad handoff metadata")

// handoffMetadata is the dynamic metadata of the gate's answer that admits
// the request: the handoff, the provider and model for Envoy's access log,
// and the budget feedback for the route to add to the response (the
// observer cannot change the response). The prompt stays in the table.
func (x *exchange) handoffMetadata() *structpb.Struct {
	id := x.rec.RequestID
	if x.in.Body.Prompt != "" {
		// A copy: the prompt may alias the whole request body, which the
		// table's size bound would not count.
		x.srv.prompts.put(id, strings.Clone(x.in.Body.Prompt), x.srv.now())
	}
	h := handoff{
		ID: id, ClientRequestID: x.rec.ClientRequestID, Start: x.rec.Start,
		Provider: x.rec.Provider, Dialect: x.rec.Dialect, Route: x.in.Route, Hold: x.hold.Text(),
		Dimensions: x.rec.Dimensions, Body: x.in.Body, Reason: x.rec.Reason, Fallback: x.rec.Fallback,
	}
	md := map[string]*structpb.Value{
		HandoffNamespace: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			handoffField: structpb.NewStringValue(h.encode()),
		}}),
		"tokenmeter": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
			"provider": structpb.NewStringValue(x.rec.Provider),
			"model":    structpb.NewStringValue(x.modelName()),
		}}),
	}
	if hs := x.feedbackHeaders(); len(hs) > 0 {
		fb := make(map[string]*structpb.Value, len(hs))
		for _, h := range hs {
			fb[h.GetHeader().GetKey()] = structpb.NewStringValue(string(h.GetHeader().GetRawValue()))
		}
		md[FeedbackNamespace] = structpb.NewStructValue(&structpb.Struct{Fields: fb})
	}
	return &structpb.Struct{Fields: md}
}

// handoffOf returns the gate's handoff in an observer message, or nil.
func handoffOf(req *extprocv3.ProcessingRequest) *structpb.Struct {
	return req.GetMetadataContext().GetFilterMetadata()[HandoffNamespace]
}

// resume builds the observer's exchange from the gate's handoff, as the gate
// left it after admission.
func (s *Server) resume(snap *Snapshot, md *structpb.Struct) (*exchange, error) {
	h, err := decodeHandoff(md.GetFields()[handoffField].GetStringValue())
	if err != nil {
		return nil, err
	}
	d, ok := snap.Dialects.ByName(h.Dialect)
	if !ok {
		return nil, fmt.Errorf("%w: dialect %q", errHandoff, h.Dialect)
	}
	if h.Route >= len(snap.Config.Routes) {
		h.Route = -1 // a reload dropped it: the global policies apply
	}
	if cfg := snap.Extractor.Names(); slices.Equal(cfg, h.Dimensions.Names) {
		h.Dimensions.Names = cfg // the configured slice, shared like the gate's
	}
	hold, err := snap.Limiter.UnmarshalReservation(h.Hold)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errHandoff, err)
	}
	x := newExchange(s, snap)
	x.dialect, x.hold, x.admitted = d, hold, true
	h.Body.Prompt = s.prompts.take(h.ID)
	x.in = metering.Request{Provider: h.Provider, Route: h.Route, Start: h.Start, Body: h.Body}
	x.rec.Start, x.rec.RequestID, x.rec.ClientRequestID = h.Start, h.ID, h.ClientRequestID
	x.rec.Dimensions, x.rec.Dialect, x.rec.Provider = h.Dimensions, d.Name(), h.Provider
	x.rec.Model, x.rec.Stream, x.rec.Reason = metering.CleanModel(h.Body.Model), h.Body.Stream, h.Reason
	// The entry as the gate's admission chose it.
	x.entry, x.rec.Fallback = metering.EntryOf(snap.Config, &x.in, h.Fallback), h.Fallback
	x.rec.Priced = x.entry != nil && !h.Fallback
	if x.rec.Priced {
		x.rec.PricedModel = x.entry.Name
	}
	return x, nil
}

// prompts keeps each handed-off prompt until its observer takes it. The
// prompt is only read to estimate input tokens when a response lacks usage
// (a stream cut short, a provider that reports none); carrying it in the
// metadata would send it with every streamed chunk. An observer in another
// process finds nothing and estimates from the prompt's size instead.
type prompts struct {
	mu    sync.Mutex
	m     map[string]string
	order []promptAge // oldest first
	bytes int64
	max   int64
	ttl   time.Duration
}

type promptAge struct {
	id      string
	expires time.Time
}

func newPrompts(maxBytes int64, ttl time.Duration) *prompts {
	return &prompts{m: map[string]string{}, max: maxBytes, ttl: ttl}
}

// put keeps prompt under id; it drops what its observer never took (gone
// to another replica) once too old or over the size bound.
func (p *prompts) put(id, prompt string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[id] = prompt
	p.bytes += int64(len(prompt))
	p.order = append(p.order, promptAge{id, now.Add(p.ttl)})
	n := 0
	for ; n < len(p.order); n++ {
		v, ok := p.m[p.order[n].id]
		if ok && p.bytes <= p.max && now.Before(p.order[n].expires) {
			break // the oldest still waiting for its observer
		}
		if ok {
			p.bytes -= int64(len(v))
			delete(p.m, p.order[n].id)
		}
	}
	if n > 0 {
		p.order = append(p.order[:0], p.order[n:]...)
	}
}

func (p *prompts) take(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[id]
	if ok {
		delete(p.m, id)
		p.bytes -= int64(len(v))
	}
	return v
}
