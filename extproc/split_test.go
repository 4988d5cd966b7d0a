package extproc

import (
	"context"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// gateConfig is what Envoy's gate filter (envoy.yaml) announces on its
// first message.
var gateConfig = &extprocv3.ProtocolConfiguration{
	RequestBodyMode:                         filterv3.ProcessingMode_STREAMED,
	ResponseBodyMode:                        filterv3.ProcessingMode_NONE,
	SendBodyWithoutWaitingForHeaderResponse: true,
}

func asGate(msgs ...*extprocv3.ProcessingRequest) []*extprocv3.ProcessingRequest {
	msgs[0].ProtocolConfig = gateConfig
	return msgs
}

func chunk(b string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
}

// asObserver marks msgs as Envoy sends them to the observer: observability
// mode, the gate's handoff forwarded on each.
func asObserver(handoff *structpb.Struct, msgs ...*extprocv3.ProcessingRequest) []*extprocv3.ProcessingRequest {
	for _, m := range msgs {
		m.ObservabilityMode = true
		if handoff != nil {
			m.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{HandoffNamespace: handoff}}
		}
	}
	return msgs
}

func handoffIn(t *testing.T, fs *fakeStream) *structpb.Struct {
	t.Helper()
	for _, r := range fs.sent {
		if h := r.GetDynamicMetadata().GetFields()[HandoffNamespace].GetStructValue(); h != nil {
			return h
		}
	}
	t.Fatalf("no handoff in %d answers", len(fs.sent))
	return nil
}

// Split mode records exactly what inline mode records, whatever happens to
// the response: the gate decides and hands over, the observer prices,
// settles and records, and the budget ends where inline leaves it.
func TestSplitRecordsAsInline(t *testing.T) {
	const sseChunk = `data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"abcdefgh"}}]}` + "\n\n"
	stream := `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"12345678"}]}`
	json := `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`
	tests := []splitCase{
		{"json", json, func() []*extprocv3.ProcessingRequest {
			return []*extprocv3.ProcessingRequest{respHeaders(false, ":status", "200", "content-type", "application/json"), respBody(jsonResp, true)}
		}, io.EOF, ledger.OK, "", 60, 15, "0.000024", 1},
		{"stream cut: the prompt estimated from its text", stream, func() []*extprocv3.ProcessingRequest {
			return []*extprocv3.ProcessingRequest{respHeaders(false, ":status", "200", "content-type", "text/event-stream"), respBody(sseChunk, false)}
		}, context.Canceled, ledger.Partial, "stream_cut", 3, 1, "0.00000105", 1},
		{"no response: the client left", json, func() []*extprocv3.ProcessingRequest { return nil },
			context.Canceled, ledger.UpstreamError, "client_disconnect", 0, 0, "0", 0},
		{"500 without usage", json, func() []*extprocv3.ProcessingRequest {
			return []*extprocv3.ProcessingRequest{respHeaders(false, ":status", "500", "content-type", "application/json"), respBody(`{"error":{}}`, true)}
		}, io.EOF, ledger.UpstreamError, "", 0, 0, "0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]ledger.Record
			for i, split := range []bool{false, true} {
				s, sink, _ := newTestServer(t)
				if split {
					playSplit(t, s, sink, tt)
				} else {
					msgs := append([]*extprocv3.ProcessingRequest{splitReqHeaders(), reqBody(tt.body)}, tt.response()...)
					play(t, s, tt.end, msgs...)
				}
				if len(sink.recs) != 1 {
					t.Fatalf("split=%v: %d records", split, len(sink.recs))
				}
				got[i] = sink.recs[0]
				tt.check(t, s, split, got[i])
			}
			sameRecord(t, got[0], got[1])
		})
	}
}

// splitCase is one request of TestSplitRecordsAsInline and the record it
// must give, split or inline.
type splitCase struct {
	name     string
	body     string
	response func() []*extprocv3.ProcessingRequest
	end      error // how the response stream ends
	outcome  ledger.Outcome
	reason   reason.Reason
	in, out  int64
	cost     string
	spent    int64 // requests charged to budget "two"
}

func splitReqHeaders() *extprocv3.ProcessingRequest {
	return headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "capped", "x-request-id", "r9")
}

// playSplit plays tt through a gate, then its observer.
func playSplit(t *testing.T, s *Server, sink *fakeSink, tt splitCase) {
	t.Helper()
	gate := play(t, s, context.Canceled, asGate(splitReqHeaders(), chunk(tt.body[:10], false), chunk(tt.body[10:], true))...)
	// The headers' answer waits for the body; then all three go.
	if len(gate.sent) != 3 || gate.sent[0].GetRequestHeaders() == nil || gate.sent[2].GetRequestBody() == nil {
		t.Fatalf("gate answered %v", gate.sent)
	}
	if len(sink.recs) != 0 {
		t.Fatalf("the gate recorded %+v; the observer should", sink.recs)
	}
	h := handoffIn(t, gate)
	obs := play(t, s, tt.end, asObserver(h, append([]*extprocv3.ProcessingRequest{splitReqHeaders()}, tt.response()...)...)...)
	if len(obs.sent) != 0 {
		t.Fatalf("the observer answered %v", obs.sent)
	}
}

// check holds r and the budget to what tt says.
func (tt splitCase) check(t *testing.T, s *Server, split bool, r ledger.Record) {
	t.Helper()
	if r.Outcome != tt.outcome || r.Reason != tt.reason || r.Usage.Get(usage.Input) != tt.in || r.Usage.Get(usage.Output) != tt.out ||
		r.Cost.String() != tt.cost || r.ClientRequestID != "r9" || r.Dimensions.Get("project") != "capped" || r.Model != "gpt-4o-mini" {
		t.Fatalf("split=%v: %s %q in %d out %d cost %s, want %s %q %d %d %s (%+v)", split, r.Outcome, r.Reason,
			r.Usage.Get(usage.Input), r.Usage.Get(usage.Output), r.Cost, tt.outcome, tt.reason, tt.in, tt.out, tt.cost, r)
	}
	st, err := s.Snapshot().Limiter.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Counter.Spent != tt.spent || st[0].Counter.Reserved != 0 {
		t.Fatalf("split=%v: budget %+v, want %d spent, nothing held", split, st, tt.spent)
	}
}

// sameRecord: inline and split give the same record, but for the timings.
func sameRecord(t *testing.T, a, b ledger.Record) {
	t.Helper()
	a.Start, a.Duration, a.TTFT, b.Duration, b.TTFT = b.Start, 0, 0, 0, 0
	if a.Usage.Tokens != b.Usage.Tokens || a.Usage.Estimated != b.Usage.Estimated || a.Outcome != b.Outcome || a.Cost != b.Cost || a.PricedModel != b.PricedModel ||
		a.EstimateMethod != b.EstimateMethod || a.Provider != b.Provider || a.Dialect != b.Dialect || a.Stream != b.Stream {
		t.Fatalf("inline %+v\nsplit  %+v", a, b)
	}
}

// A pipelined request the gate rewrites: the headers' answer sets the new
// length, the first chunk carries the whole new body, the others are
// emptied; the feedback headers travel as metadata for Envoy's route.
func TestGateRewritesAHeldBody(t *testing.T) {
	s, _, _ := newTestServer(t)
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	fs := play(t, s, context.Canceled, asGate(
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "capped", "content-length", strconv.Itoa(len(body))),
		chunk(body[:20], false), chunk(body[20:50], false), chunk(body[50:], true))...)
	if len(fs.sent) != 4 {
		t.Fatalf("%d answers, want 4", len(fs.sent))
	}
	hm := fs.sent[0].GetRequestHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
	newBody := fs.sent[1].GetRequestBody().GetResponse().GetBodyMutation().GetBody()
	if !gjson.GetBytes(newBody, "stream_options.include_usage").Bool() || len(hm) != 1 || string(hm[0].GetHeader().GetRawValue()) != strconv.Itoa(len(newBody)) {
		t.Fatalf("new body %s, headers %v", newBody, hm)
	}
	for _, r := range fs.sent[2:] {
		if !r.GetRequestBody().GetResponse().GetBodyMutation().GetClearBody() {
			t.Fatalf("later chunk not emptied: %v", r)
		}
	}
	fb := fs.sent[0].GetDynamicMetadata().GetFields()[FeedbackNamespace].GetStructValue().GetFields()
	if fb["x-tokenmeter-budget"].GetStringValue() != "two" || fb["x-tokenmeter-budget-remaining"].GetStringValue() != "1" {
		t.Fatalf("feedback metadata %v", fb)
	}
}

// A held body over extproc.max_message_bytes is refused with 413 and
// recorded, not held further.
func TestGateRefusesAnOversizedBody(t *testing.T) {
	s, sink, _ := newTestServer(t)
	s.Snapshot().Config.MaxMessageBytes = 16
	fs := play(t, s, context.Canceled, asGate(
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "p"),
		chunk(`{"model":"gpt-4o-mini",`, false), chunk(`"messages":[]}`, true))...)
	// Refused, and the stream ended: the rest of the body is not read.
	if len(fs.sent) != 1 || fs.sent[0].GetImmediateResponse().GetStatus().GetCode() != 413 || len(fs.in) != 1 {
		t.Fatalf("answers %v, %d messages unread", fs.sent, len(fs.in))
	}
	if len(sink.recs) != 1 || sink.recs[0].Outcome != ledger.Denied || sink.recs[0].Reason != reason.RequestTooLarge {
		t.Fatalf("records %+v", sink.recs)
	}
}

// An observer without a handoff (a path tokenmeter does not meter, a request
// the gate refused) stops at the response and records nothing; a handoff it
// cannot read is counted.
func TestObserverWithoutUsableHandoff(t *testing.T) {
	s, sink, obs := newTestServer(t)
	fs := play(t, s, io.EOF, asObserver(nil, headers(false, ":path", "/healthz"), respHeaders(false, ":status", "200"), respBody("ok", true))...)
	if len(fs.in) != 1 || len(sink.recs) != 0 {
		t.Fatalf("left %d messages unread, %d records; want 1, 0", len(fs.in), len(sink.recs))
	}
	bad := &structpb.Struct{Fields: map[string]*structpb.Value{handoffField: structpb.NewStringValue("v=1&dialect=no-such")}}
	play(t, s, io.EOF, asObserver(bad, headers(false, ":path", "/v1/chat/completions"))...)
	if obs.parse["handoff/bad_handoff"] != 1 || len(sink.recs) != 0 {
		t.Fatalf("parse errors %v, records %d", obs.parse, len(sink.recs))
	}
}

// FuzzResume: a handoff is read from Envoy's metadata; whatever it holds,
// the observer resumes or refuses it, never panics.
func FuzzResume(f *testing.F) {
	f.Add("v=1&dialect=openai_chat&start=1795000000000000000&route=0&model=gpt-4o-mini&max_tokens=12&hold=v1+l+1+2+b%2Ck%2C0%2CUSD%2C1%2C-%2C2%2C10%2C1&dims=project&val=p")
	f.Add("v=1&dialect=anthropic_messages&start=-5&route=99&fallback=1&dims=a,b&val=x")
	f.Add("v=1&dialect=openai_chat&hold=v1&prompt_bytes=%zz")
	f.Fuzz(func(t *testing.T, h string) {
		// One server per fuzz process: building one per exec (the catalog,
		// a Badger store) held this target to tens of execs a second.
		s := newFuzzBed(t).srv
		x, err := s.resume(s.Snapshot(), &structpb.Struct{Fields: map[string]*structpb.Value{handoffField: structpb.NewStringValue(h)}})
		if err == nil && (x.dialect == nil || x.hold == nil || len(x.rec.Dimensions.Names) != len(x.rec.Dimensions.Values)) {
			t.Fatalf("resumed inconsistently: %+v", x)
		}
	})
}

// The shipped envoy.yaml forwards to the observer every header it reads.
func TestShippedObserverForwardsItsHeaders(t *testing.T) {
	raw, err := os.ReadFile("../envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	var allowed []string
	var walk func(v any, inObserver bool)
	walk = func(v any, inObserver bool) {
		switch v := v.(type) {
		case map[string]any:
			if v["name"] == "tokenmeter.observer" {
				inObserver = true
			}
			if e, ok := v["exact"].(string); ok && inObserver {
				allowed = append(allowed, e)
			}
			for _, c := range v {
				walk(c, inObserver)
			}
		case []any:
			for _, c := range v {
				walk(c, inObserver)
			}
		}
	}
	walk(cfg, false)
	for _, h := range ObserverHeaders {
		if !slices.Contains(allowed, h) {
			t.Errorf("the observer in envoy.yaml does not forward %q (forwards %q)", h, allowed)
		}
	}
	// Nor more: a header no one reads costs every observer message its bytes.
	for _, h := range allowed {
		if !slices.Contains(ObserverHeaders, h) {
			t.Errorf("the observer in envoy.yaml forwards %q, which no dialect declares (ObserverHeaders %q)", h, ObserverHeaders)
		}
	}
}

// ObserverHeaders is derived from the dialects: every header a registered
// dialect declares is in it, Bedrock InvokeModel's usage counts among them.
func TestObserverHeadersCoverTheDialects(t *testing.T) {
	for _, h := range append(dialect.DefaultRegistry().ResponseHeaders(), ":status", "content-type",
		"content-encoding", "content-length", "x-amzn-bedrock-input-token-count", "x-amzn-bedrock-output-token-count") {
		if !slices.Contains(ObserverHeaders, h) {
			t.Errorf("ObserverHeaders %q lacks %q", ObserverHeaders, h)
		}
	}
}

// The observer may run on another replica than the gate (Envoy balances
// each stream on its own): the handoff alone settles the reservation in the
// shared store and records the request there; only the prompt text stays
// behind, so a cut stream's input is estimated from the prompt's size.
func TestObserverOnAnotherReplica(t *testing.T) {
	store := memStore(t)
	var replicas [2]*Server
	var sinks [2]*fakeSink
	for i := range replicas {
		replicas[i], sinks[i], _ = serverOn(t, testConfig, store)
	}
	body := `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"12345678"}]}`
	gate := play(t, replicas[0], context.Canceled, asGate(
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "capped"), chunk(body, true))...)
	sse := `data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"abcdefgh"}}]}` + "\n\n"
	play(t, replicas[1], context.Canceled, asObserver(handoffIn(t, gate),
		headers(false), respHeaders(false, ":status", "200", "content-type", "text/event-stream"), respBody(sse, false))...)
	if len(sinks[0].recs) != 0 || len(sinks[1].recs) != 1 {
		t.Fatalf("records: gate's replica %d, observer's %d; want 0, 1", len(sinks[0].recs), len(sinks[1].recs))
	}
	r := sinks[1].recs[0]
	// 8 prompt bytes, no text here: estimated from the size, (8+3)/4 = 2
	// tokens (3 with the text, on the gate's replica); the output, 1 token,
	// from the text this replica saw.
	if r.Outcome != ledger.Partial || r.Usage.Get(usage.Input) != 2 || r.Usage.Get(usage.Output) != 1 || r.Dimensions.Get("project") != "capped" {
		t.Fatalf("record %+v", r)
	}
	st, err := replicas[1].Snapshot().Limiter.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Counter != (ratelimit.Counter{Spent: 1}) {
		t.Fatalf("budget %+v: want 1 request spent, nothing held", st)
	}
}

// The prompt table gives each prompt to its observer once, and drops what
// no observer took once it is too old or the table is over its size.
func TestPromptTable(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	p := newPrompts(10, time.Second)
	p.put("a", "12345", t0)
	if got := p.take("a"); got != "12345" || p.take("a") != "" {
		t.Fatalf("take: %q, then not again", got)
	}
	p.put("b", "1234", t0)
	p.put("c", "1234", t0)
	p.put("d", "1234", t0) // 12 bytes: over 10, the oldest goes
	if p.take("b") != "" || p.take("c") != "1234" {
		t.Fatal("the oldest prompt was not dropped for size")
	}
	p.put("e", "1", t0.Add(2*time.Second)) // d is past its second
	if p.take("d") != "" || p.take("e") != "1" || p.bytes != 0 || len(p.m) != 0 {
		t.Fatalf("expired prompt kept: %d bytes, %d entries", p.bytes, len(p.m))
	}
	if len(p.order) > 1 {
		t.Fatalf("order keeps %d entries", len(p.order))
	}
}
