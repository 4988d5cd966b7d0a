package e2e

import (
	"testing"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// The README's promise about the demo: its first request (the same body and
// header) moves tokenmeter_cost_total for project demo by exactly
// 0.00000615: 9 input tokens × $0.15/M plus 8 output tokens × $0.60/M, at
// the prices demo/prices.yaml gives gpt-4o-mini (the stack's catalog has the
// same).
func TestReadmeDemoFirstRequest(t *testing.T) {
	s := newStack(t, "")
	resp, body := post(t, s.Proxy.URL+"/v1/chat/completions",
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`, map[string]string{"x-tokenmeter-project": "demo"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	base := []string{"project", "demo", "model", "gpt-4o-mini"}
	s.WaitMetric("tokenmeter_cost_total", labels(base...), usd("0.00000615"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 9, "output": 8} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != want {
			t.Errorf("%s tokens %v, want %v", class, v, want)
		}
	}
}
