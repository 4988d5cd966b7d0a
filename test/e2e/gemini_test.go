package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// Gemini streams through Envoy, as SSE (alt=sse) and as a streamed JSON
// array. The model comes from the URL; promptTokenCount includes the cached
// tokens and thoughts are counted apart from candidates.
func TestGeminiStreamsAreMeteredExactly(t *testing.T) {
	for _, tt := range []struct{ name, query, project string }{
		{"sse", "?alt=sse", "gem-sse"},
		{"json array", "", "gem-array"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStack(t, "")
			body := `{"contents":[{"role":"user","parts":[{"text":"Stream, please."}]}]}`
			req, err := http.NewRequest("POST", s.Proxy.URL+"/v1beta/models/gemini-2.0-flash:streamGenerateContent"+tt.query, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string]string{"x-tokenmeter-project": tt.project, "x-mock-prompt-tokens": "1000",
				"x-mock-cached-tokens": "200", "x-mock-completion-tokens": "30", "x-mock-reasoning-tokens": "10"} {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			// input 1000 − 200 = 800; cost = 800×0.10 + 200×0.025 + 30×0.40 + 10×0.40 (thoughts at output) = 101 µ$.
			base := []string{"project", tt.project, "model", "gemini-2.0-flash", "provider", "google"}
			s.WaitMetric("tokenmeter_cost_total", labels(base...), usd("0.000101"))
			m := s.Metrics()
			for class, want := range map[string]float64{"input": 800, "cache_read": 200, "output": 30, "reasoning": 10} {
				if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != want {
					t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
				}
			}
		})
	}
}
