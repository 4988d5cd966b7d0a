// Package e2e tests tokenmeter behind a real Envoy (see package testbed).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/estimate"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the cost of a token?"}]}`

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokenmeter-e2e")
	if err != nil {
		panic(err)
	}
	bin, err = testbed.Build(dir, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func newStack(t *testing.T, budgets string) *testbed.Stack {
	return testbed.New(t, testbed.Options{Bin: bin, Budgets: budgets})
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// A JSON chat completion through Envoy: exact tokens by class, exact cost,
// the response bytes untouched, and the access log carrying the metadata:
// in split mode (the shipped envoy.yaml) what the gate knows, the model and
// provider; inline, also the tokens and the cost.
func TestJSONChatIsMeteredExactly(t *testing.T) { bothModes(t, jsonChatIsMeteredExactly) }

// bothModes runs f with tokenmeter in split mode, then inline.
func bothModes(t *testing.T, f func(t *testing.T, inline bool)) {
	for _, inline := range []bool{false, true} {
		t.Run(map[bool]string{false: "split", true: "inline"}[inline], func(t *testing.T) { f(t, inline) })
	}
}

func jsonChatIsMeteredExactly(t *testing.T, inline bool) {
	s := testbed.New(t, testbed.Options{Bin: bin, Inline: inline})
	h := map[string]string{
		"x-tokenmeter-project": "alpha", "x-tokenmeter-team": "search", "x-tokenmeter-user": "ann",
		"x-mock-prompt-tokens": "1200", "x-mock-cached-tokens": "200",
		"x-mock-completion-tokens": "50", "x-mock-reasoning-tokens": "30",
	}
	resp := s.Post(chatBody, h)
	got := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if want := testbed.Direct(t, chatBody, h); !bytes.Equal(got, want) {
		t.Fatalf("response changed in transit:\n got %s\nwant %s", got, want)
	}

	// prompt 1200 of which 200 cached; completion 80 of which 30 reasoning.
	// cost = 1000×0.15 + 200×0.075 + 50×0.60 + 30×0.60 (reasoning at output) = 213 µ$.
	// user is not a metric label by default (docs/metrics.md): the ledger has it.
	dims := []string{"project", "alpha", "team", "search", "model", "gpt-4o-mini", "provider", "openai"}
	s.WaitMetric("tokenmeter_cost_total", labels(append(dims, "currency", "USD")...), usd("0.000213"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 1000, "cache_read": 200, "output": 50, "reasoning": 30} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(dims, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
	if v, _ := testbed.Value(m, "tokenmeter_requests_total", labels("model", "gpt-4o-mini", "outcome", "ok")); v != 1 {
		t.Errorf("requests_total{outcome=ok} = %v, want 1", v)
	}

	// The request reached the provider as the client sent it. Inline, with
	// its content-length; in split mode chunked, because Envoy drops the
	// length of a body an ext_proc filter streams (it could be rewritten).
	wantLength := int64(len(chatBody))
	if !inline {
		wantLength = -1
	}
	if up := s.Mock.Requests(); len(up) != 1 || string(up[0].Body) != chatBody || up[0].ContentLength != wantLength {
		t.Fatalf("upstream saw %+v", up)
	}

	if !inline {
		waitFor(t, func() bool { return strings.Contains(s.Proxy.Output(), `"model":"gpt-4o-mini","outcome":null`) }, "access log with the model:\n"+s.Proxy.Output())
		if !strings.Contains(s.Proxy.Output(), `"provider":"openai"`) {
			t.Errorf("access log lacks the provider:\n%s", s.Proxy.Output())
		}
		return
	}
	waitFor(t, func() bool { return strings.Contains(s.Proxy.Output(), `"cost":"0.000213"`) }, "access log with cost 0.000213:\n"+s.Proxy.Output())
	for _, want := range []string{`"input_tokens":1000`, `"cache_read_tokens":200`, `"reasoning_tokens":30`, `"outcome":"ok"`, `"currency":"USD"`} {
		if !strings.Contains(s.Proxy.Output(), want) {
			t.Errorf("access log lacks %s:\n%s", want, s.Proxy.Output())
		}
	}
}

// A stream without stream_options: tokenmeter injects include_usage, the
// upstream sees a correct body and content-length, and the client gets the
// upstream's bytes unchanged (which now end with the usage chunk).
func TestStreamingChatInjectsUsage(t *testing.T) {
	s := newStack(t, "")
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Stream me a story."}]}`
	h := map[string]string{"x-tokenmeter-project": "alpha", "x-mock-prompt-tokens": "40", "x-mock-completion-tokens": "25"}
	resp := s.Post(body, h)
	got := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "text/event-stream" {
		t.Fatalf("status %d, content-type %q", resp.StatusCode, resp.Header.Get("content-type"))
	}

	reqs := s.Mock.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	up := reqs[0]
	if !gjson.GetBytes(up.Body, "stream_options.include_usage").Bool() {
		t.Fatalf("include_usage not injected: %s", up.Body)
	}
	// The new body's length: its content-length, or chunked (-1) where
	// Envoy drops the length of a streamed body it lets tokenmeter rewrite.
	if up.ContentLength != int64(len(up.Body)) && up.ContentLength != -1 {
		t.Fatalf("upstream content-length %d, body %d bytes", up.ContentLength, len(up.Body))
	}
	for _, k := range []string{"model", "stream", "messages"} {
		if gjson.GetBytes(up.Body, k).Raw != gjson.Get(body, k).Raw {
			t.Fatalf("field %s changed: %s", k, up.Body)
		}
	}
	if want := testbed.Direct(t, string(up.Body), h); !bytes.Equal(got, want) {
		t.Fatalf("stream changed in transit:\n got %s\nwant %s", got, want)
	}
	if !bytes.Contains(got, []byte(`"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":25`)) {
		t.Fatalf("no usage chunk in stream:\n%s", got)
	}
	// 40×0.15 + 25×0.60 = 21 µ$.
	base := []string{"project", "alpha", "model", "gpt-4o-mini"}
	s.WaitMetric("tokenmeter_cost_total", labels(base...), usd("0.000021"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 40, "output": 25} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
}

// A requests budget: three pass, the fourth gets 429 at once, in OpenAI's
// error shape, with retry-after to the end of the UTC day.
func TestBudgetDeniesWithRetryAfter(t *testing.T) {
	s := newStack(t, `  - {name: three-a-day, match: {project: limited}, limit: {requests: 3}, window: day}
`)
	h := map[string]string{"x-tokenmeter-project": "limited"}
	for i := 0; i < 3; i++ {
		resp := s.Post(chatBody, h)
		if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
	// The third settles just after its response; wait for it so the fourth
	// is judged on settled counters.
	s.WaitMetric("tokenmeter_budget_spent", labels("budget", "three-a-day", "key", "project=limited", "window", "day"), 3)
	before := time.Now().UTC()
	resp := s.Post(chatBody, h)
	body := testbed.ReadAll(t, resp)
	if resp.StatusCode != 429 {
		t.Fatalf("fourth request: status %d, want 429: %s", resp.StatusCode, body)
	}
	if got := gjson.GetBytes(body, "error.code").String(); got != "budget_exceeded" {
		t.Fatalf("error.code = %q in %s", got, body)
	}
	if gjson.GetBytes(body, "error.type").String() != "budget_exceeded" || !strings.Contains(gjson.GetBytes(body, "error.message").String(), `"three-a-day"`) {
		t.Fatalf("error body %s", body)
	}
	if resp.Header.Get("x-tokenmeter-budget") != "three-a-day" {
		t.Fatalf("x-tokenmeter-budget = %q", resp.Header.Get("x-tokenmeter-budget"))
	}
	midnight := time.Date(before.Year(), before.Month(), before.Day()+1, 0, 0, 0, 0, time.UTC)
	retry, err := strconv.Atoi(resp.Header.Get("retry-after"))
	if want := int(math.Ceil(midnight.Sub(before).Seconds())); err != nil || retry < want-2 || retry > want {
		t.Fatalf("retry-after %q, want about %d (seconds to UTC midnight)", resp.Header.Get("retry-after"), want)
	}
	if n := len(s.Mock.Requests()); n != 3 {
		t.Fatalf("upstream saw %d requests, want 3: the denied one must not reach it", n)
	}
	s.WaitMetric("tokenmeter_denied_total", labels("budget", "three-a-day"), 1)
	s.WaitMetric("tokenmeter_requests_total", labels("outcome", "denied"), 1)
	// Other projects are not affected.
	if resp := s.Post(chatBody, map[string]string{"x-tokenmeter-project": "other"}); resp.StatusCode != 200 {
		t.Fatalf("other project: %d", resp.StatusCode)
	}
}

// A money budget reserves each request's estimate before the call. With a
// $0.01 limit, an estimate of 0.00245775 (1 prompt token estimated from 2
// bytes, plus the default 4,096 output tokens, at gpt-4o-mini prices) and an
// actual cost of 0.00021 (1000 in + 100 out), a request is admitted while
// spent + 0.00245775 ≤ 0.01, i.e. spent ≤ 0.00754225: 36 requests
// (36 × 0.00021 = 0.00756), and the 37th is refused.
func TestMoneyBudgetHoldsThenRestartKeepsIt(t *testing.T) {
	s := newStack(t, `  - {name: ten-cents, match: {project: "*"}, limit: {money: "0.01"}, window: month}
`)
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	h := map[string]string{"x-tokenmeter-project": "p1", "x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "100"}
	spent := labels("budget", "ten-cents", "key", "project=p1", "window", "month")
	for i := 1; i <= 36; i++ {
		resp := s.Post(body, h)
		if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		s.WaitMetric("tokenmeter_budget_spent", spent, float64(money.Amount(int64(i)*210_000).Units()))
	}
	resp := s.Post(body, h)
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 429 {
		t.Fatalf("request 37: status %d, want 429: %s", resp.StatusCode, b)
	}
	s.WaitMetric("tokenmeter_budget_spent", spent, usd("0.00756"))

	// Kill tokenmeter without a chance to flush, restart it on the same
	// port: the counter is still there and still denies.
	s.Restart(os.Kill)
	s.WaitMetric("tokenmeter_budget_spent", spent, usd("0.00756"))
	resp = s.Post(body, h)
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 429 {
		t.Fatalf("after restart: status %d, want 429: %s", resp.StatusCode, b)
	}
	// Another key of the wildcard budget has its own counter.
	resp = s.Post(body, map[string]string{"x-tokenmeter-project": "p2"})
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("p2 after restart: %d %s", resp.StatusCode, b)
	}
}

// A client that hangs up mid-stream is charged for what was seen, marked
// partial: the prompt estimated from its bytes, the output from the text that
// reached it.
func TestClientDisconnectMidStreamIsPartial(t *testing.T) {
	s := newStack(t, "")
	content := "Tell me everything, slowly."
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"` + content + `"}]}`
	resp := s.Post(body, map[string]string{"x-tokenmeter-project": "cut", "x-mock-chunk-delay-ms": "3000", "x-mock-completion-tokens": "5"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Read the role chunk and the first word (the mock then pauses 3 s), and hang up.
	rd := bufio.NewReader(resp.Body)
	var text string
	for events := 0; events < 2; {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			events++
			text += gjson.Get(data, "choices.0.delta.content").String()
		}
	}
	resp.Body.Close()
	if text == "" {
		t.Fatal("no text before hanging up")
	}
	// Estimated with gpt-4o-mini's real BPE encoding (package estimate is
	// pinned to tiktoken's counts in its own tests).
	in, _ := estimate.Tokens("gpt-4o-mini", []byte(content), int64(len(content)))
	out, _ := estimate.Tokens("gpt-4o-mini", []byte(text), int64(len(text)))
	base := labels("project", "cut", "model", "gpt-4o-mini", "class", "input")
	s.WaitMetric("tokenmeter_requests_total", labels("model", "gpt-4o-mini", "outcome", "partial"), 1)
	s.WaitMetric("tokenmeter_tokens_total", base, float64(in))
	base["class"] = "output"
	s.WaitMetric("tokenmeter_tokens_total", base, float64(out))
}

// A client that leaves while the provider has not answered yet: the request
// is recorded (upstream_error, for want of a response) and its reservation
// released, in split mode (where the observer learns of it from its request
// headers stream ending) as inline.
func TestClientLeavesBeforeTheResponse(t *testing.T) {
	bothModes(t, func(t *testing.T, inline bool) {
		slow := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select { // longer than the client waits
				case <-time.After(3 * time.Second):
				case <-r.Context().Done():
					return
				}
				next.ServeHTTP(w, r)
			})
		}
		s := testbed.New(t, testbed.Options{Bin: bin, Inline: inline, Upstream: slow,
			Budgets: "  - {name: toks, match: {project: \"*\"}, limit: {tokens: 1000000}, window: day}\n"})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", s.Proxy.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("content-type", "application/json")
		req.Header.Set("x-tokenmeter-project", "gone")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("answered %d; the client should have given up", resp.StatusCode)
		}
		s.WaitMetric("tokenmeter_requests_total", labels("model", "gpt-4o-mini", "outcome", "upstream_error"), 1)
		s.WaitMetric("tokenmeter_budget_reserved", labels("budget", "toks", "key", "project=gone"), 0)
		if v, _ := testbed.Value(s.Metrics(), "tokenmeter_budget_spent", labels("budget", "toks", "key", "project=gone")); v != 0 {
			t.Fatalf("spent %v tokens on a request that got no answer", v)
		}
	})
}

// A POST to a path that is no LLM API passes through with its body, in split
// mode too, where the gate ends its stream after the headers while Envoy
// has already sent it the body.
func TestUnmeteredPathPassesThrough(t *testing.T) {
	s := newStack(t, "")
	body := strings.Repeat(`{"not":"an LLM call"}`, 2000)
	resp, err := http.Post(s.Proxy.URL+"/v1/files", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	testbed.ReadAll(t, resp)
	up := s.Mock.Requests()
	if len(up) != 1 || string(up[0].Body) != body {
		t.Fatalf("upstream saw %d requests (status %d)", len(up), resp.StatusCode)
	}
	s.WaitMetric("tokenmeter_requests_total", labels("outcome", "unmetered"), 1)
}

// Unknown models are metered and counted as unpriced, never as $0; with a
// money budget and the deny policy they are refused before the call.
func TestUnpricedModel(t *testing.T) {
	s := newStack(t, `  - {name: money, match: {project: guarded}, limit: {money: "5"}, window: day}
`)
	body := `{"model":"mystery-1","messages":[{"role":"user","content":"hi"}]}`
	resp := s.Post(body, map[string]string{"x-tokenmeter-project": "free", "x-mock-prompt-tokens": "7", "x-mock-completion-tokens": "3"})
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	// The client's model name is not a label: an unpriced model is "unpriced".
	s.WaitMetric("tokenmeter_unpriced_requests_total", labels("provider", "openai", "outcome", "ok"), 1)
	m := s.Metrics()
	if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels("model", "unpriced", "project", "free", "class", "input")); v != 7 {
		t.Errorf("input tokens of unpriced model = %v, want 7", v)
	}
	if _, ok := testbed.Value(m, "tokenmeter_cost_total", labels("model", "unpriced")); ok {
		t.Errorf("an unpriced model has a cost sample; it must have none")
	}

	resp = s.Post(body, map[string]string{"x-tokenmeter-project": "guarded"})
	b := testbed.ReadAll(t, resp)
	if resp.StatusCode != 403 || gjson.GetBytes(b, "error.code").String() != "model_unpriced" {
		t.Fatalf("guarded project: %d %s", resp.StatusCode, b)
	}
	if n := len(s.Mock.Requests()); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}
}

// A failed upstream call is not charged (upstream_error) unless the provider
// reports usage (provider_error, charged).
func TestUpstreamErrors(t *testing.T) {
	s := newStack(t, `  - {name: toks, match: {project: "*"}, limit: {tokens: 1000000}, window: day}
`)
	resp := s.Post(chatBody, map[string]string{"x-tokenmeter-project": "e1", "x-mock-status": "500"})
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 500 {
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	s.WaitMetric("tokenmeter_requests_total", labels("outcome", "upstream_error"), 1)
	if v, ok := testbed.Value(s.Metrics(), "tokenmeter_budget_spent", labels("key", "project=e1")); ok && v != 0 {
		t.Fatalf("a 500 without usage was charged %v tokens", v)
	}

	resp = s.Post(chatBody, map[string]string{"x-tokenmeter-project": "e2", "x-mock-status": "500",
		"x-mock-status-usage": "true", "x-mock-prompt-tokens": "11", "x-mock-completion-tokens": "2"})
	testbed.ReadAll(t, resp)
	s.WaitMetric("tokenmeter_budget_spent", labels("key", "project=e2"), 13)
	s.WaitMetric("tokenmeter_requests_total", labels("outcome", "provider_error"), 1)
	s.WaitMetric("tokenmeter_requests_total", labels("outcome", "upstream_error"), 1)
}

// A body that cannot be parsed passes through unchanged and is counted.
func TestMalformedBodyPassesThrough(t *testing.T) {
	s := newStack(t, "")
	resp := s.Post(`{"model": "gpt-4o-mini", "messages": [`, map[string]string{"x-tokenmeter-project": "bad"})
	b := testbed.ReadAll(t, resp)
	if resp.StatusCode != 400 {
		t.Fatalf("status %d (the mock rejects bad JSON with 400): %s", resp.StatusCode, b)
	}
	reqs := s.Mock.Requests()
	if len(reqs) != 1 || string(reqs[0].Body) != `{"model": "gpt-4o-mini", "messages": [` {
		t.Fatalf("upstream did not get the body unchanged: %+v", reqs)
	}
	s.WaitMetric("tokenmeter_parse_errors_total", labels("dialect", "openai_chat", "reason", "malformed_json"), 1)
	s.WaitMetric("tokenmeter_requests_total", labels("outcome", "upstream_error"), 1)
	if !json.Valid(b) {
		t.Fatalf("client should see the upstream's JSON error, got %s", b)
	}
}

// usd is the float64 /metrics shows for an exact amount.
func usd(s string) float64 { return money.MustParse(s).Units() }

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// An Envoy route that names its dialect (ExtProcPerRoute grpc_initial_metadata)
// is metered even though its path is not OpenAI's.
func TestRouteNamesItsDialect(t *testing.T) {
	s := newStack(t, "")
	req, err := http.NewRequest("POST", s.Proxy.URL+"/team-x/generate", strings.NewReader(chatBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-tokenmeter-project", "teamx")
	req.Header.Set("x-mock-prompt-tokens", "10")
	req.Header.Set("x-mock-completion-tokens", "10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	if p := s.Mock.Requests()[0].Path; p != "/v1/chat/completions" {
		t.Fatalf("upstream path %q", p)
	}
	// 10×0.15 + 10×0.60 = 7.5 µ$.
	s.WaitMetric("tokenmeter_cost_total", labels("project", "teamx", "model", "gpt-4o-mini"), usd("0.0000075"))
}
