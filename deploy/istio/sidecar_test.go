package istio

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	networkingapi "istio.io/api/networking/v1alpha3"

	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

func usd(s string) float64 { return money.MustParse(s).Units() }

// call is one metered request and what must come of it.
type call struct {
	name, host, path, body string
	headers                map[string]string
	model, provider        string
	tokens                 map[string]float64
	cost                   string // this model's total so far
	remaining              string // the team's daily requests budget after this one
}

// The sidecar EnvoyFilter, applied to a sidecar's outbound listener built as
// Istio builds it, on the real Envoy in front of the real tokenmeter: calls
// to the providers are metered exactly and attributed to the workload (not
// to what the application claims), carry the budget feedback headers, and
// reach the provider without tokenmeter's headers; a body over Envoy's
// default 1 MiB buffer is metered (the listener patch); another port-80
// service is not touched at all.
func TestSidecarMetersProviderCalls(t *testing.T) {
	// What Istio's injector puts in the sidecar's environment.
	t.Setenv("ISTIO_META_WORKLOAD_NAME", "chatbot")
	t.Setenv("POD_NAMESPACE", "team-a")
	m := startMesh(t, sidecarShape(t))
	forged := map[string]string{"x-tokenmeter-project": "forged", "x-tokenmeter-team": "forged", "x-tokenmeter-user": "mallory"}
	with := func(h map[string]string) map[string]string {
		out := map[string]string{}
		for _, src := range []map[string]string{forged, h} {
			for k, v := range src {
				out[k] = v
			}
		}
		return out
	}
	dims := []string{"project", "chatbot", "team", "team-a"}

	tests := []call{
		{
			// prompt 1200 of which 200 cached; completion 80 of which 30
			// reasoning: 1000×0.15 + 200×0.075 + 50×0.60 + 30×0.60 = 213 µ$.
			name: "openai chat", host: "api.openai.com", path: "/v1/chat/completions",
			body:    `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the cost of a token?"}]}`,
			headers: map[string]string{"x-mock-prompt-tokens": "1200", "x-mock-cached-tokens": "200", "x-mock-completion-tokens": "50", "x-mock-reasoning-tokens": "30"},
			model:   "gpt-4o-mini", provider: "openai",
			tokens: map[string]float64{"input": 1000, "cache_read": 200, "output": 50, "reasoning": 30},
			cost:   "0.000213", remaining: "99",
		},
		{
			// 10×3.00 + 5×15.00 = 105 µ$.
			name: "anthropic messages", host: "api.anthropic.com", path: "/v1/messages",
			body:    `{"model":"claude-sonnet-4","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`,
			headers: map[string]string{"anthropic-version": "2023-06-01", "x-mock-prompt-tokens": "10", "x-mock-completion-tokens": "5"},
			model:   "claude-sonnet-4", provider: "anthropic",
			tokens: map[string]float64{"input": 10, "output": 5},
			cost:   "0.000105", remaining: "98",
		},
		{
			// Two MiB of prompt: over Envoy's default listener buffer (1 MiB),
			// within the sidecar patch's 17 MiB, so the gate reads it all.
			// 1000×0.15 + 100×0.60 = 210 µ$, after the first call's 213.
			name: "openai chat, 2 MiB body", host: "api.openai.com", path: "/v1/chat/completions",
			body:    `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`,
			headers: map[string]string{"x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "100"},
			model:   "gpt-4o-mini", provider: "openai",
			tokens: map[string]float64{"input": 2000, "cache_read": 200, "output": 150, "reasoning": 30},
			cost:   "0.000423", remaining: "97",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m.t = t
			m.checkMetered(tt, with(tt.headers), dims)
		})
	}
	t.Run("another port-80 service is left alone", func(t *testing.T) {
		m.t = t
		m.checkUntouched(tests[0].body, forged)
	})
	// Last: with tokenmeter gone, the gate fails closed with envoy.yaml's
	// JSON answer, and the other service still works.
	t.Run("tokenmeter down", func(t *testing.T) {
		m.t = t
		m.tm.Stop(os.Interrupt)
		resp, got := m.post("api.openai.com", "/v1/chat/completions", tests[0].body, nil)
		if resp.StatusCode != 503 || resp.Header.Get("retry-after") != "1" || gjson.Get(got, "error.code").String() != "gate_unreachable" {
			t.Errorf("provider call with tokenmeter down: %d %v %s, want 503 gate_unreachable", resp.StatusCode, resp.Header, got)
		}
		if resp, got := m.post("other.internal", "/v1/chat/completions", tests[0].body, nil); resp.StatusCode != 200 {
			t.Errorf("other.internal with tokenmeter down: %d %.300s, want 200: it never waits for the gate", resp.StatusCode, got)
		}
	})
}

// Without the sidecar's listener patch, Envoy's default 1 MiB buffer stops
// reading a 2 MiB body the gate is still waiting for: the gate times out
// (a 504 with envoy.yaml's JSON answer, from the HCM patch). What the
// listener patch is for, shown.
func TestSidecarWithoutListenerPatchStallsLargeBodies(t *testing.T) {
	s := sidecarShape(t)
	s.omit = func(p *networkingapi.EnvoyFilter_EnvoyConfigObjectPatch) bool {
		return p.GetApplyTo() == networkingapi.EnvoyFilter_LISTENER
	}
	m := startMesh(t, s)
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`
	resp, got := m.post("api.openai.com", "/v1/chat/completions", body, nil)
	if resp.StatusCode != 504 || gjson.Get(got, "error.code").String() != "gate_timeout" {
		t.Fatalf("status %d %.300s, want 504 gate_timeout", resp.StatusCode, got)
	}
	if n := len(m.up.mock.Requests()); n != 0 {
		t.Fatalf("the provider saw %d requests", n)
	}
}

// checkMetered sends tt with headers: it is answered, with the feedback
// headers; it reaches the provider as the client sent it, less tokenmeter's
// headers; and it is metered exactly, attributed to dims.
func (m *meshRun) checkMetered(tt call, headers map[string]string, dims []string) {
	t := m.t
	t.Helper()
	before := len(m.up.mock.Requests())
	resp, got := m.post(tt.host, tt.path, tt.body, headers)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %.300s", resp.StatusCode, got)
	}
	if b := resp.Header.Get("x-tokenmeter-budget"); b != "team-daily" || resp.Header.Get("x-tokenmeter-budget-remaining") != tt.remaining {
		t.Errorf("feedback headers: budget %q remaining %q, want team-daily %s", b, resp.Header.Get("x-tokenmeter-budget-remaining"), tt.remaining)
	}
	reqs := m.up.mock.Requests()
	if len(reqs) != before+1 {
		t.Fatalf("the provider saw %d requests, want %d", len(reqs), before+1)
	}
	last := reqs[len(reqs)-1]
	if !bytes.Equal(last.Body, []byte(tt.body)) {
		t.Errorf("the provider got a body of %d bytes, want the client's %d", len(last.Body), len(tt.body))
	}
	for k := range last.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-tokenmeter-") {
			t.Errorf("the provider got %s: %q", k, last.Header.Get(k))
		}
	}
	if hosts := m.up.seen(); hosts[len(hosts)-1] != tt.host {
		t.Errorf("the provider was called as %q, want %q", hosts[len(hosts)-1], tt.host)
	}
	model := append(append([]string(nil), dims...), "model", tt.model, "provider", tt.provider)
	m.waitMetric("tokenmeter_cost_total", labels(append(model, "currency", "USD")...), usd(tt.cost))
	for class, want := range tt.tokens {
		if v := m.metric("tokenmeter_tokens_total", labels(append(model, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
}

// checkUntouched sends a chat request to other.internal, a port-80 service
// that is not a provider: it passes, unmetered, with the client's headers.
func (m *meshRun) checkUntouched(body string, forged map[string]string) {
	t := m.t
	t.Helper()
	requests := func() float64 {
		return testbed.Sum(testbed.MetricsAt(t, m.tm.Admin), "tokenmeter_requests_total", nil)
	}
	before := requests()
	resp, got := m.post("other.internal", "/v1/chat/completions", body, forged)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %.300s", resp.StatusCode, got)
	}
	if resp.Header.Get("x-tokenmeter-budget") != "" {
		t.Errorf("feedback header on a service tokenmeter does not meter: %q", resp.Header.Get("x-tokenmeter-budget"))
	}
	reqs := m.up.mock.Requests()
	if h := reqs[len(reqs)-1].Header.Get("x-tokenmeter-project"); h != "forged" {
		t.Errorf("x-tokenmeter-project reached other.internal as %q, want the client's, untouched", h)
	}
	if hosts := m.up.seen(); hosts[len(hosts)-1] != "other.internal" {
		t.Errorf("other.internal was called as %q", hosts[len(hosts)-1])
	}
	if after := requests(); after != before {
		t.Errorf("tokenmeter recorded %v requests for other.internal", after-before)
	}
}
