package istio

import (
	"strings"
	"testing"
)

// The gateway EnvoyFilters on the real Envoy: an egress gateway's and an
// ingress gateway's HTTPS listener for the providers, built as Istio builds
// them (in clear here: Istio's mTLS and the Gateway's certificate are not
// part of what the patches change), patched, in front of tokenmeter. A call
// is metered exactly, carries the feedback headers, and the client's
// attribution headers are not believed: without a peer certificate (egress)
// or a JWT (ingress) the request is attributed to no one.
func TestGatewaysMeterProviderCalls(t *testing.T) {
	for _, s := range []shape{egressShape(t), ingressShape(t)} {
		t.Run(s.name, func(t *testing.T) {
			m := startMesh(t, s)
			host := s.vhosts[0].domains[0]
			body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the cost of a token?"}]}`
			resp, got := m.post(host, "/v1/chat/completions", body, map[string]string{
				"x-tokenmeter-project": "forged", "x-tokenmeter-team": "forged",
				"x-mock-prompt-tokens": "1200", "x-mock-cached-tokens": "200", "x-mock-completion-tokens": "50", "x-mock-reasoning-tokens": "30",
			})
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %.300s", resp.StatusCode, got)
			}
			if resp.Header.Get("x-tokenmeter-budget") != "team-daily" || resp.Header.Get("x-tokenmeter-budget-remaining") != "99" {
				t.Errorf("feedback headers %v", resp.Header)
			}
			if hosts := m.up.seen(); len(hosts) != 1 || hosts[0] != "api.openai.com" {
				t.Errorf("the provider was called as %q, want api.openai.com", hosts)
			}
			// The forged headers stop at the gateway, as the ones it sets do.
			for _, r := range m.up.mock.Requests() {
				for k := range r.Header {
					if strings.HasPrefix(strings.ToLower(k), "x-tokenmeter-") {
						t.Errorf("the provider got %s: %q", k, r.Header.Get(k))
					}
				}
			}
			// 1000×0.15 + 200×0.075 + 50×0.60 + 30×0.60 = 213 µ$.
			m.waitMetric("tokenmeter_cost_total", labels("project", "unknown", "team", "unknown", "model", "gpt-4o-mini", "provider", "openai", "currency", "USD"), usd("0.000213"))
		})
	}
}
