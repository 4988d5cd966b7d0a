package extproc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

func serverWith(t *testing.T, cfgText string, store ratelimit.Store, now func() time.Time) (*Server, *fakeSink, *fakeObserver) {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	if store == nil {
		bs, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bs.Close() })
		store = bs
	}
	sink := &fakeSink{}
	obs := &fakeObserver{parse: map[string]int{}, phases: map[string]int{}}
	return NewServer(NewSnapshot(cfg, store, now), sink, obs, slog.New(slog.NewTextHandler(io.Discard, nil)), now), sink, obs
}

func headerMap(hs []*corev3.HeaderValueOption) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	return m
}

// Admitted requests learn what is left: the tightest calendar budget, and
// OpenAI-style x-ratelimit-* headers for rolling (RPM/TPM) budgets.
func TestFeedbackHeaders(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC) }
	s, _, _ := serverWith(t, `catalog: {files: [testdata/prices.yaml]}
budgets:
  - {name: daily-money, limit: {money: "1"}, window: day}
  - {name: daily-tokens, limit: {tokens: 10000}, window: day}
  - {name: rpm, limit: {requests: 5}, rolling: 1m}
  - {name: tpm, limit: {tokens: 100000}, rolling: 1m}
  - {name: trial, limit: {requests: 1}, window: day, shadow: true}
extproc: {default_max_tokens: 1000}
`, nil, now)
	// The reservation: no prompt text, plus the default 1000 output tokens.
	fs := play(t, s, io.EOF,
		headers(false, ":path", "/v1/chat/completions", ":method", "POST"),
		reqBody(`{"model":"gpt-4o-mini","messages":[]}`),
		respHeaders(false, ":status", "200", "content-type", "application/json"),
		respBody(jsonResp, true),
	)
	got := headerMap(fs.sent[2].GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders())
	// daily-tokens has 9000 of 10000 left (90%); daily-money has $1 −
	// 1000 × $0.60/10⁶ = $0.9994 left (99.94%): tokens is tighter.
	want := map[string]string{
		"x-tokenmeter-budget":            "daily-tokens",
		"x-tokenmeter-budget-remaining":  "9000",
		"x-tokenmeter-budget-reset":      "21600",
		"x-ratelimit-limit-requests":     "5",
		"x-ratelimit-remaining-requests": "4",
		"x-ratelimit-reset-requests":     "1s",
		"x-ratelimit-limit-tokens":       "100000",
		"x-ratelimit-remaining-tokens":   "99000",
		"x-ratelimit-reset-tokens":       "1s",
	}
	if len(got) != len(want) {
		t.Fatalf("headers %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

type brokenStore struct{ ratelimit.Store }

var errDown = errors.New("store down")

func (brokenStore) Reserve(context.Context, ratelimit.Lease, []ratelimit.Hold) (ratelimit.ReserveResult, error) {
	return ratelimit.ReserveResult{}, errDown
}
func (brokenStore) Get(context.Context, ratelimit.Hold) (ratelimit.Counter, error) {
	return ratelimit.Counter{}, errDown
}
func (brokenStore) Settle(context.Context, ratelimit.Lease, []ratelimit.Hold, []int64) error {
	return errDown
}

// With the store down, a fail-open budget lets requests through and a
// fail-closed one refuses them; both are counted.
func TestStoreUnavailable(t *testing.T) {
	for _, tt := range []struct {
		project string
		status  int
		counted string
	}{
		{"open", 0, "unavailable/lenient/false"},
		{"closed", 503, "unavailable/strict/true"},
	} {
		s, sink, obs := serverWith(t, `catalog: {files: [testdata/prices.yaml]}
budgets:
  - {name: lenient, match: {project: open}, limit: {requests: 5}, window: day}
  - {name: strict, match: {project: closed}, limit: {requests: 5}, window: day, on_store_error: deny}
`, brokenStore{}, time.Now)
		fs := play(t, s, io.EOF,
			headers(false, ":path", "/v1/messages", ":method", "POST", "x-tokenmeter-project", tt.project),
			reqBody(`{"model":"claude-x","max_tokens":10,"messages":[]}`),
			respHeaders(false, ":status", "200", "content-type", "application/json"),
			respBody(`{}`, true),
		)
		if got := int(fs.sent[1].GetImmediateResponse().GetStatus().GetCode()); got != tt.status {
			t.Fatalf("%s: status %d, want %d", tt.project, got, tt.status)
		}
		if obs.phases[tt.counted] != 1 {
			t.Fatalf("%s: counters %v, want %s", tt.project, obs.phases, tt.counted)
		}
		if tt.status != 0 {
			if body := string(fs.sent[1].GetImmediateResponse().GetBody()); body != `{"type":"error","error":{"type":"api_error","message":"tokenmeter: budget \"strict\" cannot be checked (its store is unavailable) and is set to deny then"}}` {
				t.Fatalf("body %s", body)
			}
			if r := sink.recs[0]; r.Outcome != "denied" || r.Reason != "store_unavailable" || r.Budget != "strict" {
				t.Fatalf("record %+v", r)
			}
		}
	}
}

// A shadow budget that would deny lets the request through and counts it.
func TestShadowDenialCounted(t *testing.T) {
	s, _, obs := serverWith(t, `catalog: {files: [testdata/prices.yaml]}
budgets:
  - {name: trial, limit: {requests: 1}, window: day, shadow: true}
`, nil, time.Now)
	for i := 0; i < 3; i++ {
		fs := play(t, s, io.EOF,
			headers(false, ":path", "/v1/chat/completions", ":method", "POST"),
			reqBody(`{"model":"gpt-4o-mini","messages":[]}`),
			respHeaders(false, ":status", "200", "content-type", "application/json"),
			respBody(jsonResp, true),
		)
		if fs.sent[1].GetImmediateResponse() != nil {
			t.Fatalf("request %d denied by a shadow budget", i)
		}
	}
	if obs.phases["shadow/trial"] != 2 {
		t.Fatalf("shadow denials %d, want 2", obs.phases["shadow/trial"])
	}
}
