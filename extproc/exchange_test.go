package extproc

import (
	"context"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

const testConfig = `catalog: {files: [testdata/prices.yaml]}
adjustments:
  - {name: chargeback, match: {project: marked}, percent: "10"}
  - {name: negotiated, match: {project: discounted}, provider: openai, percent: "-20"}
  - {name: never-reached, match: {project: discounted}, percent: "50"}
budgets:
  - {name: two, match: {project: capped}, limit: {requests: 2}, window: day}
`

type fakeObserver struct {
	mu     sync.Mutex
	parse  map[string]int
	phases map[string]int
}

func (f *fakeObserver) ObservePhase(p string, _ time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.phases[p]++
}
func (f *fakeObserver) ParseError(d, r string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parse[d+"/"+r]++
}
func (f *fakeObserver) InvalidAttribution(string) {}
func (f *fakeObserver) StoreError(string)         {}
func (f *fakeObserver) ShadowDenied(b string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.phases["shadow/"+b]++
}
func (f *fakeObserver) StoreUnavailable(b string, denied bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.phases[fmt.Sprintf("unavailable/%s/%v", b, denied)]++
}

func (f *fakeObserver) Overloaded() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.phases["overloaded"]++
}

type fakeSink struct {
	mu   sync.Mutex
	recs []ledger.Record
}

func (f *fakeSink) Append(r *ledger.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, *r)
}

func newTestServer(t testing.TB) (*Server, *fakeSink, *fakeObserver) {
	t.Helper()
	return serverOn(t, testConfig, memStore(t))
}

// memStore is an in-memory budget store, closed when the test ends.
func memStore(t testing.TB) *badgerstore.Store {
	t.Helper()
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// serverOn builds a server from config YAML over store, recording into a
// fake sink and counting into a fake observer.
func serverOn(t testing.TB, cfgYAML string, store ratelimit.Store) (*Server, *fakeSink, *fakeObserver) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	sink := &fakeSink{}
	obs := &fakeObserver{parse: map[string]int{}, phases: map[string]int{}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return NewServer(NewSnapshot(cfg, store, time.Now), sink, obs, log, time.Now), sink, obs
}

func headers(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	var hs []*corev3.HeaderValue
	for i := 0; i+1 < len(kv); i += 2 {
		hs = append(hs, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	h := &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}, EndOfStream: eos}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: h}}
}

func respHeaders(eos bool, kv ...string) *extprocv3.ProcessingRequest {
	r := headers(eos, kv...)
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: r.GetRequestHeaders()}}
}

func reqBody(b string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: true}}}
}

func respBody(b string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
}

// fakeStream plays a fixed list of messages, then ends with err.
type fakeStream struct {
	extprocv3.ExternalProcessor_ProcessServer
	ctx  context.Context
	in   []*extprocv3.ProcessingRequest
	err  error
	sent []*extprocv3.ProcessingResponse
}

func (f *fakeStream) Context() context.Context { return f.ctx }
func (f *fakeStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if len(f.in) == 0 {
		return nil, f.err
	}
	m := f.in[0]
	f.in = f.in[1:]
	return m, nil
}
func (f *fakeStream) Send(r *extprocv3.ProcessingResponse) error {
	f.sent = append(f.sent, r)
	return nil
}
func (f *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeStream) SetTrailer(metadata.MD)       {}

func play(t *testing.T, s *Server, end error, msgs ...*extprocv3.ProcessingRequest) *fakeStream {
	t.Helper()
	fs := &fakeStream{ctx: context.Background(), in: msgs, err: end}
	if err := s.Process(fs); err != nil && end == io.EOF {
		t.Fatalf("Process: %v", err)
	}
	return fs
}

const jsonResp = `{"model":"gpt-4o-mini-2024-07-18","usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":40},"completion_tokens_details":{"reasoning_tokens":5}}}`

func TestExchangeJSONRecord(t *testing.T) {
	s, sink, _ := newTestServer(t)
	fs := play(t, s, io.EOF,
		headers(false, ":path", "/v1/chat/completions?x=1", ":method", "POST", "x-tokenmeter-project", "p", "x-request-id", "r1", "content-length", "60"),
		reqBody(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`),
		respHeaders(false, ":status", "200", "content-type", "application/json", "content-length", "300"),
		respBody(jsonResp, true),
	)
	if len(fs.sent) != 4 {
		t.Fatalf("sent %d responses", len(fs.sent))
	}
	if fs.sent[2].GetModeOverride().GetResponseBodyMode().String() != "BUFFERED" {
		t.Fatalf("small JSON response not switched to BUFFERED: %v", fs.sent[2].GetModeOverride())
	}
	md := fs.sent[3].GetDynamicMetadata().GetFields()["tokenmeter"].GetStructValue().GetFields()
	// 60×0.15 + 40×0.075 + 15×0.60 + 5×0.60 = 9 + 3 + 9 + 3 = 24 µ$.
	if md["cost"].GetStringValue() != "0.000024" || md["input_tokens"].GetNumberValue() != 60 || md["model"].GetStringValue() != "gpt-4o-mini" {
		t.Fatalf("metadata %v", md)
	}
	if len(sink.recs) != 1 {
		t.Fatalf("%d records", len(sink.recs))
	}
	r := sink.recs[0]
	want := [usage.NumClasses]int64{usage.Input: 60, usage.CacheRead: 40, usage.Output: 15, usage.Reasoning: 5}
	for c, n := range want {
		if r.Usage.Tokens[c].N != n {
			t.Errorf("%s = %d, want %d", usage.Class(c), r.Usage.Tokens[c].N, n)
		}
	}
	if r.Outcome != ledger.OK || r.Cost != money.MustParse("0.000024") || !r.Priced || r.ClientRequestID != "r1" ||
		r.ResponseModel != "gpt-4o-mini-2024-07-18" || r.Dimensions.Get("project") != "p" || r.Status != 200 {
		t.Fatalf("record %+v", r)
	}
}

func TestExchangeOutcomes(t *testing.T) {
	chat := headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "p")
	body := reqBody(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"12345678"}]}`)
	sse := respHeaders(false, ":status", "200", "content-type", "text/event-stream")
	chunk := `data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"abcdefgh"}}]}` + "\n\n"
	// Estimates use gpt-4o-mini's o200k encoding: "12345678" is 3 tokens
	// ("123" "456" "78"), "abcdefgh" is 1.
	tests := []struct {
		name    string
		end     error
		msgs    []*extprocv3.ProcessingRequest
		outcome ledger.Outcome
		reason  reason.Reason
		in, out int64
	}{
		{"non-LLM path is unmetered", io.EOF, []*extprocv3.ProcessingRequest{headers(true, ":path", "/healthz", ":method", "GET")}, ledger.Unmetered, reason.UnknownPath, 0, 0},
		{"client gone mid-stream is partial, estimated", context.Canceled, []*extprocv3.ProcessingRequest{chat, body, sse, respBody(chunk, false)}, ledger.Partial, "stream_cut", 3, 1},
		{"client gone right after the final frame is ok", context.Canceled, []*extprocv3.ProcessingRequest{chat, body, sse,
			respBody(chunk+`data: {"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4}}`+"\n\ndata: [DONE]\n\n", false)},
			ledger.OK, "", 11, 4},
		{"stream without usage is estimated", io.EOF, []*extprocv3.ProcessingRequest{chat, body, sse, respBody(chunk+"data: [DONE]\n\n", true)}, ledger.Estimated, "no_usage", 3, 1},
		{"500 without usage is not charged", io.EOF, []*extprocv3.ProcessingRequest{chat, body, respHeaders(false, ":status", "500", "content-type", "application/json"), respBody(`{"error":{"message":"x"}}`, true)}, ledger.UpstreamError, "", 0, 0},
		{"no response at all", context.Canceled, []*extprocv3.ProcessingRequest{chat, body}, ledger.UpstreamError, "client_disconnect", 0, 0},
		{"malformed request body passes", io.EOF, []*extprocv3.ProcessingRequest{chat, reqBody(`{"model":`), respHeaders(false, ":status", "400", "content-type", "application/json"), respBody(`{}`, true)}, ledger.UpstreamError, "malformed_json", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, sink, _ := newTestServer(t)
			play(t, s, tt.end, tt.msgs...)
			if len(sink.recs) != 1 {
				t.Fatalf("%d records, want 1", len(sink.recs))
			}
			r := sink.recs[0]
			if r.Outcome != tt.outcome || r.Reason != tt.reason || r.Usage.Get(usage.Input) != tt.in || r.Usage.Get(usage.Output) != tt.out {
				t.Fatalf("outcome %s reason %q in %d out %d; want %s %q %d %d", r.Outcome, r.Reason,
					r.Usage.Get(usage.Input), r.Usage.Get(usage.Output), tt.outcome, tt.reason, tt.in, tt.out)
			}
			// Exactly the partial and estimated outcomes carry estimates here.
			if want := tt.outcome == ledger.Partial || tt.outcome == ledger.Estimated; r.Usage.Estimated != want {
				t.Fatalf("estimated = %v, want %v", r.Usage.Estimated, want)
			}
		})
	}
}

func TestExchangeDeniesAtHeadersOnceExhausted(t *testing.T) {
	s, sink, _ := newTestServer(t)
	chat := func() []*extprocv3.ProcessingRequest {
		return []*extprocv3.ProcessingRequest{
			headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "capped"),
			reqBody(`{"model":"gpt-4o-mini","messages":[]}`),
			respHeaders(false, ":status", "200", "content-type", "application/json"),
			respBody(jsonResp, true),
		}
	}
	play(t, s, io.EOF, chat()...)
	play(t, s, io.EOF, chat()...)
	fs := play(t, s, io.EOF, chat()[0])
	ir := fs.sent[0].GetImmediateResponse()
	if ir == nil || ir.GetStatus().GetCode() != 429 {
		t.Fatalf("third request not denied at headers: %v", fs.sent[0])
	}
	if last := sink.recs[len(sink.recs)-1]; last.Outcome != ledger.Denied || last.Budget != "two" {
		t.Fatalf("record %+v", last)
	}
}

func TestInvalidUTF8ModelIsCleaned(t *testing.T) {
	s, sink, _ := newTestServer(t)
	fs := play(t, s, io.EOF,
		headers(false, ":path", "/v1/chat/completions", ":method", "POST"),
		reqBody("{\"model\":\"gpt\xff\",\"messages\":[]}"),
		respHeaders(false, ":status", "200", "content-type", "application/json"),
		respBody("{\"model\":\"x\xfe\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}", true),
	)
	for _, r := range fs.sent {
		if _, err := proto.Marshal(r); err != nil {
			t.Fatalf("response does not marshal: %v", err)
		}
	}
	if r := sink.recs[0]; r.Model != "invalid" || r.ResponseModel != "invalid" || r.Usage.Get(usage.Input) != 3 {
		t.Fatalf("record %+v", r)
	}
}

// A request for the flex tier is priced at the catalog's flex prices.
func TestServiceTierIsPriced(t *testing.T) {
	for _, tt := range []struct{ asked, served, cost, recorded string }{
		{"", "", "0.000024", ""},
		{"flex", "", "0.000012", "flex"},
		{"priority", "", "0.000024", "priority"},
		// The response's word wins: flex asked but served at the default
		// tier is billed at base; "auto" served at flex is billed at flex.
		{"flex", "default", "0.000024", ""},
		{"auto", "flex", "0.000012", "flex"},
	} {
		s, sink, _ := newTestServer(t)
		body := `{"model":"gpt-4o-mini","messages":[]}`
		if tt.asked != "" {
			body = `{"model":"gpt-4o-mini","service_tier":"` + tt.asked + `","messages":[]}`
		}
		resp := jsonResp
		if tt.served != "" {
			resp = strings.Replace(jsonResp, `{"model"`, `{"service_tier":"`+tt.served+`","model"`, 1)
		}
		play(t, s, io.EOF,
			headers(false, ":path", "/v1/chat/completions", ":method", "POST"),
			reqBody(body),
			respHeaders(false, ":status", "200", "content-type", "application/json"),
			respBody(resp, true),
		)
		// Base: 60×0.15 + 40×0.075 + 15×0.60 + 5×0.60 = 24 µ$; flex halves it;
		// priority is not in this catalog, so it is priced at base.
		if r := sink.recs[0]; r.Cost != money.MustParse(tt.cost) || !r.Priced || r.ServiceTier != tt.recorded {
			t.Errorf("asked %q served %q: cost %s tier %q priced %v, want %s %q", tt.asked, tt.served, r.Cost, r.ServiceTier, r.Priced, tt.cost, tt.recorded)
		}
	}
}

// Markups and discounts: the record keeps the list cost beside the charged
// one; the first matching adjustment applies.
func TestAdjustments(t *testing.T) {
	for _, tt := range []struct{ project, list, charged, adj string }{
		{"plain", "0.000024", "0.000024", ""},
		{"marked", "0.000024", "0.0000264", "chargeback"},
		{"discounted", "0.000024", "0.0000192", "negotiated"},
	} {
		s, sink, _ := newTestServer(t)
		fs := play(t, s, io.EOF,
			headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", tt.project),
			reqBody(`{"model":"gpt-4o-mini","messages":[]}`),
			respHeaders(false, ":status", "200", "content-type", "application/json"),
			respBody(jsonResp, true),
		)
		r := sink.recs[0]
		if r.ListCost != money.MustParse(tt.list) || r.Cost != money.MustParse(tt.charged) || r.Adjustment != tt.adj {
			t.Errorf("%s: list %s charged %s (%q), want %s %s (%q)", tt.project, r.ListCost, r.Cost, r.Adjustment, tt.list, tt.charged, tt.adj)
		}
		md := fs.sent[len(fs.sent)-1].GetDynamicMetadata().GetFields()["tokenmeter"].GetStructValue().GetFields()
		if md["cost"].GetStringValue() != tt.charged || md["list_cost"].GetStringValue() != tt.list {
			t.Errorf("%s: metadata %v", tt.project, md)
		}
	}
}

// Unknown models: the global fallback prices them at a catalog entry (still
// counted as unpriced); a budget can override the policy.
func TestUnpricedPolicies(t *testing.T) {
	cfgText := `catalog: {files: [testdata/prices.yaml]}
unpriced: {policy: fallback, fallback_model: gpt-4o-mini}
budgets:
  - {name: strict, match: {project: strict}, limit: {money: "1"}, window: day, unpriced: deny}
  - {name: lenient, match: {project: lenient}, limit: {money: "1"}, window: day}
routes:
  - {prefix: /guarded/, dialect: openai_chat, unpriced: {policy: deny}}
  - {prefix: /open/, dialect: openai_chat, provider: deepseek, unpriced: {policy: allow}}
  - {prefix: /cheap/, dialect: openai_chat, unpriced: {policy: fallback, fallback_model: house-model}}
`
	for _, tt := range []struct {
		project, prefix string
		status          int    // 0: admitted
		cost            string // "" for unpriced
		provider        string
	}{
		{"strict", "", 403, "", "openai"},
		{"lenient", "", 0, "0.000024", "openai"},
		{"none", "", 0, "0.000024", "openai"},
		// The route's policy beats the global one; a budget's beats the route's.
		{"lenient", "/guarded", 403, "", "openai"},
		{"none", "/guarded", 0, "", "openai"}, // no money budget: deny has nothing to guard
		{"lenient", "/open", 0, "", "deepseek"},
		{"strict", "/open", 403, "", "deepseek"},
		{"lenient", "/cheap", 0, "0.00014", "openai"}, // house-model: 100 prompt at 1.00 + 20 out at 2.00 per million
	} {
		s, sink, _ := serverOn(t, cfgText, memStore(t))
		fs := play(t, s, io.EOF,
			headers(false, ":path", tt.prefix+"/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", tt.project),
			reqBody(`{"model":"mystery-1","messages":[]}`),
			respHeaders(false, ":status", "200", "content-type", "application/json"),
			// The response names no model the catalog knows either.
			respBody(strings.Replace(jsonResp, "gpt-4o-mini-2024-07-18", "mystery-1-0901", 1), true),
		)
		r := sink.recs[0]
		name := tt.project + tt.prefix
		if got := int(fs.sent[1].GetImmediateResponse().GetStatus().GetCode()); got != tt.status {
			t.Fatalf("%s: status %d, want %d", name, got, tt.status)
		}
		if r.Provider != tt.provider {
			t.Fatalf("%s: provider %q, want %q", name, r.Provider, tt.provider)
		}
		if tt.status != 0 {
			continue
		}
		if tt.cost == "" {
			if r.Priced || r.Fallback || r.Cost != 0 || r.Reason != "unpriced_model" {
				t.Fatalf("%s: want unpriced, got %+v", name, r)
			}
			continue
		}
		// Priced at gpt-4o-mini's prices (24 µ$), flagged as a fallback for an
		// unknown model, under the requested model's name.
		if r.Cost != money.MustParse(tt.cost) || !r.Fallback || r.PricedModel != "" || r.Model != "mystery-1" || r.Reason != "fallback_price" {
			t.Fatalf("%s: cost %s, want %s: %+v", name, r.Cost, tt.cost, r)
		}
	}
}

// A fallback is dropped when the response names a model the catalog prices:
// the served model's own price wins.
func TestFallbackYieldsToServedModel(t *testing.T) {
	s, sink, _ := serverOn(t, "catalog: {files: [testdata/prices.yaml]}\nunpriced: {policy: fallback, fallback_model: gpt-4o-mini}\n", memStore(t))
	play(t, s, io.EOF,
		headers(false, ":path", "/v1/chat/completions", ":method", "POST"),
		reqBody(`{"model":"alias-we-do-not-know","messages":[]}`),
		respHeaders(false, ":status", "200", "content-type", "application/json"),
		respBody(jsonResp, true), // names gpt-4o-mini-2024-07-18
	)
	if r := sink.recs[0]; r.Fallback || r.PricedModel != "gpt-4o-mini" || r.Cost != money.MustParse("0.000024") {
		t.Fatalf("%+v", r)
	}
}

// The charged cost is converted once into the reporting currency, at the
// request's start, and the record keeps the rate it used.
func TestReportingCurrency(t *testing.T) {
	s, sink, _ := serverOn(t, testConfig+"currency: {reporting: EUR, rates_files: [testdata/rates.yaml]}\n", memStore(t))
	fs := play(t, s, io.EOF,
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "marked"),
		reqBody(`{"model":"gpt-4o-mini","messages":[]}`),
		respHeaders(false, ":status", "200", "content-type", "application/json"),
		respBody(jsonResp, true),
	)
	r := sink.recs[0]
	// $0.0000264 charged (list $0.000024 + 10%) is €0.00002112 at €1 = $1.25.
	if r.Cost != money.MustParse("0.0000264") || r.Currency != "USD" ||
		r.ReportingCost != money.MustParse("0.00002112") || r.ReportingCurrency != "EUR" || r.FX.Source != "test rate" {
		t.Fatalf("record: cost %s %s, reporting %s %s, rate %+v", r.Cost, r.Currency, r.ReportingCost, r.ReportingCurrency, r.FX)
	}
	md := fs.sent[len(fs.sent)-1].GetDynamicMetadata().GetFields()["tokenmeter"].GetStructValue().GetFields()
	if md["reporting_cost"].GetStringValue() != "0.00002112" || md["reporting_currency"].GetStringValue() != "EUR" {
		t.Fatalf("metadata %v", md)
	}
}

// settleStore fails a settle whose context is done, as a network store
// (Redis) does.
type settleStore struct{ ratelimit.Store }

func (s settleStore) Settle(ctx context.Context, l ratelimit.Lease, h []ratelimit.Hold, amounts []int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Store.Settle(ctx, l, h, amounts)
}

// A stream Envoy cancels (the client left mid-stream) is still settled: the
// charge for what was seen must not die with the stream's context.
func TestCancelledStreamStillSettles(t *testing.T) {
	s, sink, _ := serverOn(t, testConfig, settleStore{memStore(t)})
	ctx, cancel := context.WithCancel(context.Background())
	fs := &cancelOnEnd{fakeStream: fakeStream{ctx: ctx, err: context.Canceled, in: []*extprocv3.ProcessingRequest{
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "capped"),
		reqBody(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"12345678"}]}`),
		respHeaders(false, ":status", "200", "content-type", "text/event-stream"),
		respBody(`data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"abcdefgh"}}]}`+"\n\n", false),
	}}, cancel: cancel}
	s.Process(fs)
	if len(sink.recs) != 1 || sink.recs[0].Outcome != ledger.Partial {
		t.Fatalf("records %+v", sink.recs)
	}
	st, err := s.Snapshot().Limiter.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Counter != (ratelimit.Counter{Spent: 1}) {
		t.Fatalf("budget %+v: want the request charged, nothing held", st)
	}
}

// cancelOnEnd cancels the stream's context when its messages run out, as
// gRPC does when Envoy resets the stream.
type cancelOnEnd struct {
	fakeStream
	cancel context.CancelFunc
}

func (c *cancelOnEnd) Recv() (*extprocv3.ProcessingRequest, error) {
	if len(c.in) == 0 {
		c.cancel()
	}
	return c.fakeStream.Recv()
}
