package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	envoygateway "github.com/tokenmeter/tokenmeter/deploy/envoy-gateway"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// tokenmeter on Envoy Gateway: deploy/envoy-gateway's resources, translated
// by Envoy Gateway's own translator (egctl x translate) and run by the pinned
// Envoy as a static bootstrap (envoygateway.Static), in front of the real
// tokenmeter and the mock provider. The gate's body comes Buffered and a
// round trip after its headers (Envoy Gateway cannot set
// send_body_without_waiting_for_header_response); the observer runs in
// shadowMode. Metering is exact all the same.
func TestEnvoyGateway(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, Arrangement: envoygateway.Arrangement, Upstream: slowWhenAsked, Budgets: `
  - {name: eg-monthly, match: {project: eg}, limit: {money: "100"}, window: month}
  - {name: one-a-day, match: {project: capped}, limit: {requests: 1}, window: day}
  - {name: toks, match: {project: gone}, limit: {tokens: 1000000}, window: day}
`})
	records := 0
	t.Run("json", func(t *testing.T) { records = egJSONChat(t, s, records) })
	t.Run("stream", func(t *testing.T) { records = egStreamChat(t, s, records) })
	t.Run("deny", func(t *testing.T) { records = egDeny(t, s, records) })
	t.Run("large-body", func(t *testing.T) { egLargeBody(t, s) })
	t.Run("client-leaves", func(t *testing.T) { egClientLeaves(t, s) })
	t.Run("unmetered-path", func(t *testing.T) { egUnmeteredPath(t, s) })
	t.Run("gate-unreachable", func(t *testing.T) { egGateUnreachable(t, s) }) // last: it stops tokenmeter
}

// slowWhenAsked holds a request carrying x-test-slow for 3 s (or until the
// client leaves) before the mock answers.
func slowWhenAsked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-test-slow") != "" {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// last returns the newest of the stack's n ledger records.
func last(t *testing.T, s *testbed.Stack, n int) *ledger.Record {
	t.Helper()
	recs := exported(t, s, n)
	newest := recs[0]
	for _, r := range recs {
		if r.Start.After(newest.Start) {
			newest = r
		}
	}
	return newest
}

// A JSON chat: exact tokens and cost, the answer unchanged, the request
// reaching the provider as sent (with its content-length: a Buffered body
// keeps it) and without the attribution headers, the budget feedback headers
// set by the HTTPRoute from the gate's metadata.
func egJSONChat(t *testing.T, s *testbed.Stack, records int) int {
	h := map[string]string{
		"x-tokenmeter-project": "eg", "x-tokenmeter-team": "search", "x-tokenmeter-user": "ann",
		"x-mock-prompt-tokens": "1200", "x-mock-cached-tokens": "200",
		"x-mock-completion-tokens": "50", "x-mock-reasoning-tokens": "30",
	}
	mockBefore := len(s.Mock.Requests())
	resp := s.Post(chatBody, h)
	got := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if want := testbed.Direct(t, chatBody, h); !bytes.Equal(got, want) {
		t.Fatalf("response changed in transit:\n got %s\nwant %s", got, want)
	}
	up := s.Mock.Requests()
	if len(up) != mockBefore+1 {
		t.Fatalf("the provider saw %d requests, want 1", len(up)-mockBefore)
	}
	if r := up[len(up)-1]; string(r.Body) != chatBody || r.ContentLength != int64(len(chatBody)) {
		t.Fatalf("the provider saw %q with content-length %d", r.Body, r.ContentLength)
	}
	for k := range attributionHeaders {
		if v, ok := up[len(up)-1].Header[http.CanonicalHeaderKey(k)]; ok {
			t.Errorf("the provider received %s: %q", k, v)
		}
	}
	// The admission reserved the estimate: 28 prompt bytes / 4 = 7 input
	// tokens and default_max_tokens 4,096 output at gpt-4o-mini's prices,
	// 7×0.15 + 4096×0.60 = 2458.65 µ$, so 100 − 0.00245865 was left.
	for k, want := range map[string]string{
		"x-tokenmeter-budget": "eg-monthly", "x-tokenmeter-budget-remaining": "99.99754135",
	} {
		if v := resp.Header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if _, err := strconv.Atoi(resp.Header.Get("x-tokenmeter-budget-reset")); err != nil {
		t.Errorf("x-tokenmeter-budget-reset = %q, want seconds", resp.Header.Get("x-tokenmeter-budget-reset"))
	}

	// prompt 1200 of which 200 cached; completion 80 of which 30 reasoning:
	// 1000×0.15 + 200×0.075 + 50×0.60 + 30×0.60 = 213 µ$.
	dims := []string{"project", "eg", "team", "search", "model", "gpt-4o-mini", "provider", "openai"}
	s.WaitMetric("tokenmeter_cost_total", labels(append(dims, "currency", "USD")...), usd("0.000213"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 1000, "cache_read": 200, "output": 50, "reasoning": 30} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(dims, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
	records++
	r := last(t, s, records)
	if r.Outcome != ledger.OK || r.Cost.String() != "0.000213" || r.Dimensions.Get("user") != "ann" ||
		r.Usage.Get(usage.Input) != 1000 || r.Usage.Get(usage.CacheRead) != 200 || r.Usage.Get(usage.Output) != 50 || r.Usage.Get(usage.Reasoning) != 30 {
		t.Fatalf("record %+v: want ok, 0.000213, user ann, 1000/200/50/30 tokens", r)
	}
	return records
}

// A stream without stream_options: the gate injects include_usage (and sets
// the new content-length), the client gets the provider's bytes unchanged,
// the observer reads the usage from the last chunk.
func egStreamChat(t *testing.T, s *testbed.Stack, records int) int {
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Stream me a story."}]}`
	h := map[string]string{"x-tokenmeter-project": "eg-stream", "x-mock-prompt-tokens": "40", "x-mock-completion-tokens": "25"}
	resp := s.Post(body, h)
	got := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "text/event-stream" {
		t.Fatalf("status %d, content-type %q: %s", resp.StatusCode, resp.Header.Get("content-type"), got)
	}
	reqs := s.Mock.Requests()
	up := reqs[len(reqs)-1]
	if !gjson.GetBytes(up.Body, "stream_options.include_usage").Bool() || up.ContentLength != int64(len(up.Body)) {
		t.Fatalf("the provider saw content-length %d and %s", up.ContentLength, up.Body)
	}
	if want := testbed.Direct(t, string(up.Body), h); !bytes.Equal(got, want) {
		t.Fatalf("stream changed in transit:\n got %s\nwant %s", got, want)
	}
	// 40×0.15 + 25×0.60 = 21 µ$.
	base := []string{"project", "eg-stream", "model", "gpt-4o-mini"}
	s.WaitMetric("tokenmeter_cost_total", labels(base...), usd("0.000021"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 40, "output": 25} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
	records++
	if r := last(t, s, records); r.Outcome != ledger.OK || !r.Stream || r.Cost.String() != "0.000021" {
		t.Fatalf("record %+v: want an ok stream, 0.000021", r)
	}
	return records
}

// A budget refusal comes from the gate, in OpenAI's error shape, before the
// provider is called.
func egDeny(t *testing.T, s *testbed.Stack, records int) int {
	h := map[string]string{"x-tokenmeter-project": "capped"}
	if resp := s.Post(chatBody, h); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %s", resp.StatusCode, testbed.ReadAll(t, resp))
	} else {
		testbed.ReadAll(t, resp)
	}
	s.WaitMetric("tokenmeter_budget_spent", labels("budget", "one-a-day", "key", "project=capped", "window", "day"), 1)
	mockBefore := len(s.Mock.Requests())
	resp := s.Post(chatBody, h)
	body := testbed.ReadAll(t, resp)
	if resp.StatusCode != 429 || gjson.GetBytes(body, "error.code").String() != "budget_exceeded" ||
		!strings.Contains(gjson.GetBytes(body, "error.message").String(), `"one-a-day"`) {
		t.Fatalf("second request: %d %s", resp.StatusCode, body)
	}
	if n := len(s.Mock.Requests()) - mockBefore; n != 0 {
		t.Fatalf("the provider saw the refused request (%d requests)", n)
	}
	records += 2
	if r := last(t, s, records); r.Outcome != ledger.Denied || r.Dimensions.Get("project") != "capped" {
		t.Fatalf("record %+v: want denied for project capped", r)
	}
	return records
}

// A 5 MiB body: past Envoy Gateway's default 32 KiB buffer limit (which
// would answer 413), so the ClientTrafficPolicy's limit is what lets the gate
// read it whole; and past gRPC's common 4 MiB message limit, so tokenmeter's
// rewritten body (include_usage injected) shows that the gate's stream,
// whose max_receive_message_length Envoy Gateway cannot set, takes it.
func egLargeBody(t *testing.T, s *testbed.Stack) {
	content := strings.Repeat("lorem ipsum ", (5<<20)/12)
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"` + content + `"}]}`
	resp := s.Post(body, map[string]string{"x-tokenmeter-project": "eg-large", "x-mock-prompt-tokens": "1310720", "x-mock-completion-tokens": "8"})
	if got := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %.300s", resp.StatusCode, got)
	}
	reqs := s.Mock.Requests()
	up := reqs[len(reqs)-1]
	if !gjson.GetBytes(up.Body, "stream_options.include_usage").Bool() || gjson.GetBytes(up.Body, "messages.0.content").String() != content {
		t.Fatalf("the provider saw %d bytes without include_usage or with another prompt", len(up.Body))
	}
	// 1310720×0.15 + 8×0.60 = 196612.8 µ$.
	s.WaitMetric("tokenmeter_cost_total", labels("project", "eg-large"), usd("0.1966128"))
}

// A client that leaves before the provider answers: recorded as
// upstream_error and its reservation released at once. The observer learns
// of it from its stream, which opens at the request headers: Envoy passes
// them on only after the gate's answer to the Buffered body, so they carry
// the handoff.
func egClientLeaves(t *testing.T, s *testbed.Stack) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.Proxy.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-tokenmeter-project", "gone")
	req.Header.Set("x-test-slow", "1")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("answered %d; the client should have given up", resp.StatusCode)
	}
	s.WaitMetric("tokenmeter_requests_total", labels("model", "gpt-4o-mini", "outcome", "upstream_error"), 1)
	s.WaitMetric("tokenmeter_budget_reserved", labels("budget", "toks", "key", "project=gone"), 0)
}

// A POST to a path no dialect reads: the gate lets it through at the
// headers and ends its stream (Envoy Gateway does not allow mode_override,
// so Envoy still holds the body for it, and takes the closed stream as the
// end of processing), and the provider's answer reaches the client.
func egUnmeteredPath(t *testing.T, s *testbed.Stack) {
	mockBefore := len(s.Mock.Requests())
	resp, body := post(t, s.Proxy.URL+"/v1/not-an-llm-api", `{"purpose":"none"}`, nil)
	if resp.StatusCode != 404 || !strings.Contains(body, `"error"`) {
		t.Fatalf("status %d: %s; want the mock's 404", resp.StatusCode, body)
	}
	if reqs := s.Mock.Requests(); len(reqs) != mockBefore+1 || string(reqs[len(reqs)-1].Body) != `{"purpose":"none"}` {
		t.Fatalf("the provider did not get the request as sent")
	}
}

// With tokenmeter gone the gate fails closed: Envoy answers 503 itself
// (statusOnError) with an empty body (Envoy Gateway has no local-reply
// mappers for envoy.yaml's JSON one), and the provider is not called.
func egGateUnreachable(t *testing.T, s *testbed.Stack) {
	s.TM.Stop(os.Interrupt)
	mockBefore := len(s.Mock.Requests())
	resp := s.Post(chatBody, map[string]string{"x-tokenmeter-project": "eg"})
	body := testbed.ReadAll(t, resp)
	if resp.StatusCode != 503 || len(body) != 0 {
		t.Fatalf("status %d: %q; want 503, empty", resp.StatusCode, body)
	}
	if n := len(s.Mock.Requests()) - mockBefore; n != 0 {
		t.Fatalf("the provider saw %d requests", n)
	}
}
