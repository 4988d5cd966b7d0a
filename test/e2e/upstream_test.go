package e2e

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// tokenmeter as upstream HTTP filters (envoy/upstream-filter.yaml): in the
// provider cluster's filter chain, where it sees the request the provider
// is sent and the provider's own response.

// translateToAnthropic stands in for Envoy AI Gateway's upstream ext_proc,
// in the same place: first in the provider cluster's chain, ahead of
// tokenmeter's filters. Like AI Gateway for a Claude model behind an
// Anthropic backend, it turns an OpenAI-schema chat request into an
// Anthropic Messages call: the path, the anthropic-version header, and
// max_completion_tokens into the max_tokens Anthropic requires. It is a
// stand-in, not AI Gateway: a few string rewrites that fit these tests'
// requests, and it leaves the response as Anthropic's (AI Gateway
// translates it back at the router, after the upstream filters have seen
// it).
const translateToAnthropic = `name: aigw.stand-in
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
  default_source_code:
    inline_string: |
      function envoy_on_request(h)
        if h:headers():get(":path") ~= "/v1/chat/completions" then return end
        local body = h:body()
        local s = body:getBytes(0, body:length())
        if not string.find(s, '"model":"claude', 1, true) then return end
        s = string.gsub(s, '"max_completion_tokens":', '"max_tokens":')
        h:headers():replace(":path", "/v1/messages")
        h:headers():replace("anthropic-version", "2023-06-01")
        body:setBytes(s)
      end
`

// A Claude model asked for in the OpenAI schema, as an AI Gateway client
// does.
const (
	claudeInOpenAI       = `{"model":"claude-sonnet-4","max_completion_tokens":300,"messages":[{"role":"user","content":"Price me right."}]}`
	claudeStreamInOpenAI = `{"model":"claude-sonnet-4","max_completion_tokens":300,"stream":true,"messages":[{"role":"user","content":"Stream me."}]}`
)

// translatedStack starts a stack with tokenmeter downstream (split mode, in
// the connection manager) or upstream, and an Envoy whose provider cluster
// translates first; requests go to that Envoy.
func translatedStack(t *testing.T, upstream bool, budgets string) (*testbed.Stack, *envoy.Proxy) {
	s := testbed.New(t, testbed.Options{Bin: bin, UpstreamFilters: upstream, Budgets: budgets})
	config, err := envoy.WithUpstreamFilter(s.EnvoyConfig(s.TM.GRPC), []byte(translateToAnthropic))
	if err != nil {
		t.Fatal(err)
	}
	return s, s.StartProxy(config)
}

// The problem and its answer. A Claude request in the OpenAI schema,
// translated on its way to the provider: tokenmeter in the usual place
// (before the translation) reads an OpenAI chat request for a model OpenAI
// does not sell, records it unpriced and refuses it under a money budget;
// as upstream filters it reads the Anthropic call the provider got and
// prices Claude exactly, streams too.
func TestUpstreamPricesWhatTheProviderWasSent(t *testing.T) {
	const budgets = `  - {name: money, match: {project: money}, limit: {money: "10"}, window: month}
`
	type want struct {
		status int
		cost   string // Claude's, for the project; "" when unpriced
	}
	for _, tt := range []struct {
		name     string
		upstream bool
		free     want // no money budget applies
		money    want // the money budget applies
	}{
		{"downstream", false, want{200, ""}, want{403, ""}},
		{"upstream", true, want{200, "0.0036"}, want{200, "0.0036"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, p := translatedStack(t, tt.upstream, budgets)
			for project, w := range map[string]want{"free": tt.free, "money": tt.money} {
				// input 1000 × $3 + output 40 × $15 per million = 3600 µ$.
				h := map[string]string{"x-tokenmeter-project": project, "x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "40"}
				resp := s.PostTo(p, claudeInOpenAI, h)
				body := testbed.ReadAll(t, resp)
				if resp.StatusCode != w.status {
					t.Fatalf("%s: status %d, want %d: %s", project, resp.StatusCode, w.status, body)
				}
				if w.status == 403 && gjson.GetBytes(body, "error.code").String() != "model_unpriced" {
					t.Errorf("%s: refused with %s, want model_unpriced", project, body)
				}
				if w.cost == "" {
					continue
				}
				claude := []string{"project", project, "model", "claude-sonnet-4", "provider", "anthropic"}
				s.WaitMetric("tokenmeter_cost_total", labels(claude...), usd(w.cost))
				m := s.Metrics()
				for class, n := range map[string]float64{"input": 1000, "output": 40} {
					if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(claude, "class", class)...)); v != n {
						t.Errorf("%s: tokens{class=%s} = %v, want %v", project, class, v, n)
					}
				}
			}
			// The provider got Anthropic's call, whichever place tokenmeter
			// had, and only for the requests admitted.
			up := s.Mock.Requests()
			if len(up) != map[bool]int{false: 1, true: 2}[tt.upstream] {
				t.Fatalf("the provider got %d requests", len(up))
			}
			for _, r := range up {
				if r.Path != "/v1/messages" || gjson.GetBytes(r.Body, "max_tokens").Int() != 300 || r.Header.Get("anthropic-version") == "" {
					t.Errorf("the provider got %s %s (anthropic-version %q), not the Anthropic call", r.Path, r.Body, r.Header.Get("anthropic-version"))
				}
			}
			if tt.upstream {
				upstreamStream(t, s, p)
				return
			}
			// Downstream, both were read as an OpenAI chat for a model the
			// catalog has no OpenAI price for: unpriced, never Claude's.
			s.WaitMetric("tokenmeter_unpriced_requests_total", labels("provider", "openai", "outcome", "denied"), 1)
			if n := testbed.Sum(s.Metrics(), "tokenmeter_unpriced_requests_total", labels("provider", "openai")); n != 2 {
				t.Errorf("unpriced openai requests %v, want 2", n)
			}
			if _, ok := testbed.Value(s.Metrics(), "tokenmeter_cost_total", labels("model", "claude-sonnet-4")); ok {
				t.Error("downstream, tokenmeter priced Claude: it cannot know the model is Anthropic's")
			}
		})
	}
}

// upstreamStream: the stream of a Claude request in the OpenAI schema is
// Anthropic's on the wire, and priced exactly.
func upstreamStream(t *testing.T, s *testbed.Stack, p *envoy.Proxy) {
	t.Helper()
	h := map[string]string{"x-tokenmeter-project": "stream", "x-mock-prompt-tokens": "2000", "x-mock-completion-tokens": "25"}
	resp := s.PostTo(p, claudeStreamInOpenAI, h)
	body := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("event: message_delta")) {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	// input 2000 × $3 + output 25 × $15 per million = 6375 µ$.
	s.WaitMetric("tokenmeter_cost_total", labels("project", "stream", "model", "claude-sonnet-4", "provider", "anthropic"), usd("0.006375"))
}

// An edge filter that sets the team from the authenticated caller (here a
// constant), overwriting what the client sent: headers set before the
// router reach the upstream filters.
const edgeAttribution = `name: edge.attribution
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation
  mutations:
    request_mutations:
    - append:
        header: {key: x-tokenmeter-team, value: platform}
        append_action: OVERWRITE_IF_EXISTS_OR_ADD
`

// A plain OpenAI request through the upstream config: exact tokens and
// cost, attributed from the headers set before the router, which never
// reach the provider; the budget feedback headers and the access log read
// the upstream gate's metadata as in split mode.
func TestUpstreamFilterMetersExactly(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, UpstreamFilters: true,
		Budgets: `  - {name: per-project, match: {project: "*"}, limit: {money: "10"}, window: month}
`})
	config, err := envoy.WithDownstreamFilter(s.EnvoyConfig(s.TM.GRPC), []byte(edgeAttribution))
	if err != nil {
		t.Fatal(err)
	}
	p := s.StartProxy(config)
	h := map[string]string{
		"x-tokenmeter-project": "alpha", "x-tokenmeter-team": "spoofed", "x-tokenmeter-user": "ann",
		"x-mock-prompt-tokens": "1200", "x-mock-cached-tokens": "200",
		"x-mock-completion-tokens": "50", "x-mock-reasoning-tokens": "30",
	}
	resp := s.PostTo(p, chatBody, h)
	got := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	if want := testbed.Direct(t, chatBody, h); !bytes.Equal(got, want) {
		t.Fatalf("response changed in transit:\n got %s\nwant %s", got, want)
	}
	if resp.Header.Get("x-tokenmeter-budget") != "per-project" || resp.Header.Get("x-tokenmeter-budget-remaining") == "" {
		t.Errorf("feedback headers %v: the route reads the upstream gate's metadata", resp.Header)
	}

	// As jsonChatIsMeteredExactly: 1000×0.15 + 200×0.075 + 50×0.60 + 30×0.60 = 213 µ$.
	dims := []string{"project", "alpha", "team", "platform", "model", "gpt-4o-mini", "provider", "openai"}
	s.WaitMetric("tokenmeter_cost_total", labels(append(dims, "currency", "USD")...), usd("0.000213"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 1000, "cache_read": 200, "output": 50, "reasoning": 30} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(dims, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}

	// The provider got the client's body (chunked, as in split mode) and
	// none of tokenmeter's headers: the cluster's chain removed them after
	// the gate read them.
	up := s.Mock.Requests()
	if len(up) != 1 || string(up[0].Body) != chatBody || up[0].ContentLength != -1 {
		t.Fatalf("upstream saw %+v", up)
	}
	for k := range up[0].Header {
		if strings.HasPrefix(strings.ToLower(k), "x-tokenmeter-") {
			t.Errorf("the provider got %s: %q", k, up[0].Header.Get(k))
		}
	}
	waitFor(t, func() bool { return strings.Contains(p.Output(), `"model":"gpt-4o-mini"`) }, "access log with the model:\n"+p.Output())
}

// What differs upstream when things go wrong: every attempt of a retry
// runs the chain and is recorded; the gate's refusal is the upstream's
// answer and not retried; an unreachable tokenmeter gets the JSON 503 of
// envoy.yaml's local replies.
func TestUpstreamFilterEdges(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, UpstreamFilters: true,
		Budgets: `  - {name: one, match: {project: one}, limit: {requests: 1}, window: total}
`})
	p := s.StartProxy(withRetries(t, s.EnvoyConfig(s.TM.GRPC)))

	// A provider 503, retried once: two attempts, two records (not charged).
	resp := s.PostTo(p, chatBody, map[string]string{"x-tokenmeter-project": "retry", "x-mock-status": "503"})
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 503 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if n := len(s.Mock.Requests()); n != 2 {
		t.Fatalf("the provider got %d attempts, want 2", n)
	}
	// The abandoned attempt's observer stream ends when Envoy closes it
	// (its deferred_close_timeout, 5 s): WaitMetric waits up to 10 s.
	s.WaitMetric("tokenmeter_requests_total", labels("model", "gpt-4o-mini", "outcome", "upstream_error"), 2)

	// A refusal is final, even under a policy that retries 429.
	for i, want := range []int{200, 429} {
		resp := s.PostTo(p, chatBody, map[string]string{"x-tokenmeter-project": "one"})
		if b := testbed.ReadAll(t, resp); resp.StatusCode != want {
			t.Fatalf("request %d: status %d, want %d: %s", i, resp.StatusCode, want, b)
		}
	}
	s.WaitMetric("tokenmeter_requests_total", labels("model", "unknown", "outcome", "denied"), 1)
	if n := len(s.Mock.Requests()); n != 3 {
		t.Errorf("the provider got %d requests, want 3", n)
	}
	if v := envoyStat(t, p, "cluster.llm_upstream.upstream_rq_retry"); v != "1" {
		t.Errorf("Envoy retried %s times, want 1 (the provider's 503 only)", v)
	}

	// tokenmeter gone: the upstream gate fails closed, and the client gets
	// the same JSON 503 as from the connection manager's gate.
	s.TM.Stop(os.Interrupt)
	resp = s.PostTo(p, chatBody, map[string]string{"x-tokenmeter-project": "gone"})
	b := testbed.ReadAll(t, resp)
	if resp.StatusCode != 503 || gjson.GetBytes(b, "error.code").String() != "gate_unreachable" || resp.Header.Get("retry-after") != "1" {
		t.Fatalf("status %d, retry-after %q: %s", resp.StatusCode, resp.Header.Get("retry-after"), b)
	}
	if n := len(s.Mock.Requests()); n != 3 {
		t.Errorf("the provider got %d requests, want 3: none while tokenmeter is gone", n)
	}
}

// withRetries gives the catch-all route a retry policy that retries a 5xx
// and a 429 once, as one that falls back to another provider would.
func withRetries(t *testing.T, config []byte) []byte {
	return editRoutes(t, config, func(routes []any) []any {
		route := routes[len(routes)-1].(map[string]any)["route"].(map[string]any)
		route["retry_policy"] = map[string]any{"retry_on": "5xx,retriable-status-codes", "retriable_status_codes": []any{429}, "num_retries": 1}
		return routes
	})
}

// editRoutes edits the routes of the config's one virtual host.
func editRoutes(t *testing.T, config []byte, edit func(routes []any) []any) []byte {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	at := func(v any, path ...any) any {
		for _, p := range path {
			switch p := p.(type) {
			case string:
				v = v.(map[string]any)[p]
			case int:
				v = v.([]any)[p]
			}
		}
		return v
	}
	host := at(cfg, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config", "route_config", "virtual_hosts", 0).(map[string]any)
	host["routes"] = edit(host["routes"].([]any))
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Upstream, tokenmeter reads the path and host the router rewrote: the
// shipped /team-x/generate route needs no dialect override there, and a
// route that sends a request to Groq is told apart by Groq's host (its
// /openai/v1/chat/completions path alone reads as Azure's).
func TestUpstreamReadsTheRewrittenRequest(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, UpstreamFilters: true,
		Extra: "unpriced: {policy: allow}\nroutes:\n  - {host: api.groq.com, dialect: openai_chat, provider: groq}"})
	p := s.StartProxy(editRoutes(t, s.EnvoyConfig(s.TM.GRPC), func(routes []any) []any {
		teamX := routes[0].(map[string]any)
		if teamX["match"].(map[string]any)["path"] != "/team-x/generate" {
			t.Fatalf("first route %v, want envoy.yaml's /team-x/generate", teamX)
		}
		delete(teamX, "typed_per_filter_config")
		groq := map[string]any{"match": map[string]any{"path": "/groq"}, "route": map[string]any{"cluster": envoy.UpstreamCluster,
			"prefix_rewrite": "/openai/v1/chat/completions", "host_rewrite_literal": "api.groq.com", "timeout": "0s"}}
		return append([]any{groq}, routes...)
	}))
	for _, tt := range []struct{ path, provider string }{{"/team-x/generate", "openai"}, {"/groq", "groq"}} {
		req, err := http.NewRequest("POST", p.URL+tt.path, strings.NewReader(chatBody))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("x-tokenmeter-project", "rewrite")
		req.Header.Set("x-mock-prompt-tokens", "100")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", tt.path, resp.StatusCode, b)
		}
		// gpt-4o-mini has no Groq price: recorded unpriced, allowed.
		s.WaitMetric("tokenmeter_tokens_total", labels("project", "rewrite", "provider", tt.provider, "class", "input"), 100)
	}
}

// envoyStat reads one counter from Envoy's admin.
func envoyStat(t *testing.T, p *envoy.Proxy, name string) string {
	t.Helper()
	resp, err := http.Get(p.AdminURL + "/stats?filter=^" + name + "$")
	if err != nil {
		t.Fatal(err)
	}
	b := testbed.ReadAll(t, resp)
	v, ok := strings.CutPrefix(strings.TrimSpace(string(b)), name+": ")
	if !ok {
		t.Fatalf("no stat %s in %q", name, b)
	}
	return v
}
