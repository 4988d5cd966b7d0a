package extproc

import (
	"errors"
	"fmt"
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

// handoff is the gate's metadata: everything the observer needs to price,
// settle and record the request, in one query-string value. Envoy repeats
// it on every observer message and gRPC decodes it each time, so it is one
// string, not a Struct of fields (a map entry and a message per field).
func (x *exchange) handoff(id string) *structpb.Struct {
	v := url.Values{
		"v":                 {handoffVersion},
		"id":                {id},
		"client_request_id": {x.rec.ClientRequestID},
		"start":             {strconv.FormatInt(x.rec.Start.UnixNano(), 10)},
		"provider":          {x.rec.Provider},
		"dialect":           {x.rec.Dialect},
		"route":             {strconv.Itoa(x.route)},
		"hold":              {x.hold.Text()},
	}
	if len(x.rec.Dimensions.Names) > 0 {
		// Dimension names are label names: no commas.
		v["dims"] = []string{strings.Join(x.rec.Dimensions.Names, ",")}
		v["val"] = x.rec.Dimensions.Values
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
	str("model", x.req.Model)
	str("image_size", x.req.ImageSize)
	str("image_quality", x.req.ImageQuality)
	str("service_tier", x.req.ServiceTier)
	str("reason", x.rec.Reason)
	num("max_tokens", x.req.MaxTokens)
	num("prompt_bytes", x.req.PromptBytes)
	num("input_characters", x.req.InputCharacters)
	flag("stream", x.req.Stream)
	flag("include_usage", x.req.IncludeUsage)
	flag("fallback", x.rec.Fallback)
	return &structpb.Struct{Fields: map[string]*structpb.Value{handoffField: structpb.NewStringValue(v.Encode())}}
}

// handoffField holds the handoff in its namespace's Struct.
const handoffField = "h"

// errHandoff wraps every reason an observer cannot use a handoff.
var errHandoff = errors.New("bad handoff metadata")

// handoffOf returns the gate's handoff in an observer message, or nil.
func handoffOf(req *extprocv3.ProcessingRequest) *structpb.Struct {
	return req.GetMetadataContext().GetFilterMetadata()[HandoffNamespace]
}

// resume builds the observer's exchange from the gate's handoff, as the gate
// left it after admission.
func (s *Server) resume(snap *Snapshot, h *structpb.Struct) (*exchange, error) {
	f, err := url.ParseQuery(h.GetFields()[handoffField].GetStringValue())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errHandoff, err)
	}
	get := f.Get
	num := func(k string) (int64, error) {
		v := get(k)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: %s %q", errHandoff, k, v)
		}
		return n, nil
	}
	if v := get("v"); v != handoffVersion {
		return nil, fmt.Errorf("%w: version %q, want %q", errHandoff, v, handoffVersion)
	}
	x := newExchange(s, snap)
	start, err := num("start")
	if err != nil {
		return nil, err
	}
	x.rec.Start = time.Unix(0, start)
	x.rec.RequestID, x.rec.ClientRequestID = get("id"), get("client_request_id")
	var names []string
	if d := get("dims"); d != "" {
		names = strings.Split(d, ",")
	}
	values := f["val"]
	if len(names) != len(values) {
		return nil, fmt.Errorf("%w: %d dimension names, %d values", errHandoff, len(names), len(values))
	}
	if cfg := snap.Extractor.Names(); slices.Equal(cfg, names) {
		names = cfg // the configured slice, shared like the gate's
	}
	x.rec.Dimensions = attribution.Dimensions{Names: names, Values: values}
	d, ok := snap.Dialects.ByName(get("dialect"))
	if !ok {
		return nil, fmt.Errorf("%w: dialect %q", errHandoff, get("dialect"))
	}
	x.dialect = d
	x.rec.Dialect, x.rec.Provider = d.Name(), get("provider")
	route, err := strconv.Atoi(get("route"))
	if err != nil || route >= len(snap.Config.Routes) {
		route = -1 // a reload dropped it: the global policies apply
	}
	x.route = route
	x.req = dialect.Request{
		Model: get("model"), Stream: get("stream") == "1", IncludeUsage: get("include_usage") == "1",
		ImageSize: get("image_size"), ImageQuality: get("image_quality"), ServiceTier: get("service_tier"),
	}
	if x.req.MaxTokens, err = num("max_tokens"); err != nil {
		return nil, err
	}
	if x.req.PromptBytes, err = num("prompt_bytes"); err != nil {
		return nil, err
	}
	if x.req.InputCharacters, err = num("input_characters"); err != nil {
		return nil, err
	}
	x.req.Prompt = s.prompts.take(get("id"))
	x.rec.Model, x.rec.Stream, x.rec.Reason = cleanModel(x.req.Model), x.req.Stream, get("reason")
	// The entry as the gate's admit chose it.
	if get("fallback") == "1" {
		x.entry, x.rec.Fallback = snap.Config.FallbackFor(route), true
	} else {
		x.lookup()
	}
	if x.hold, err = snap.Limiter.UnmarshalReservation(get("hold")); err != nil {
		return nil, fmt.Errorf("%w: %w", errHandoff, err)
	}
	x.admitted = true
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
