package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// An Anthropic Messages stream through Envoy. Its message_delta repeats the
// input and cache fields (cumulative, as the API documents): counted once.
// Cache writes are split into 5-minute and 1-hour parts, priced apart.
func TestAnthropicStreamIsMeteredExactly(t *testing.T) {
	s := newStack(t, "")
	body := `{"model":"claude-sonnet-4","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Count the tokens."}]}`
	h := map[string]string{"x-tokenmeter-project": "anth", "anthropic-version": "2023-06-01",
		"x-mock-prompt-tokens": "2000", "x-mock-cached-tokens": "500",
		"x-mock-cache-write-tokens": "300", "x-mock-cache-write-1h-tokens": "200",
		"x-mock-completion-tokens": "40", "x-mock-delta-full-usage": "true"}
	req, err := http.NewRequest("POST", s.Proxy.URL+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 || !bytes.Contains(got, []byte("event: message_delta")) {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	// Anthropic needs no injection: the upstream gets the client's bytes.
	if up := s.Mock.Requests()[0]; string(up.Body) != body {
		t.Fatalf("request body changed: %s", up.Body)
	}
	// input = 2000 − 500 − 300 − 200 = 1000.
	// cost = 1000×3 + 500×0.30 + 300×3.75 + 200×6 + 40×15 = 6075 µ$.
	base := []string{"project", "anth", "model", "claude-sonnet-4", "provider", "anthropic"}
	s.WaitMetric("tokenmeter_cost_total", labels(base...), usd("0.006075"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 1000, "cache_read": 500, "cache_write": 300, "cache_write_1h": 200, "output": 40} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
	if _, ok := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", "reasoning")...)); ok {
		t.Errorf("Anthropic reports no reasoning count; none may be invented")
	}
}

// An error event under HTTP 200 ends the stream: a provider error, charged
// for the usage reported before it.
func TestAnthropicErrorEventUnder200(t *testing.T) {
	s := newStack(t, "")
	body := `{"model":"claude-sonnet-4","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest("POST", s.Proxy.URL+"/v1/messages", strings.NewReader(body))
	req.Header.Set("x-tokenmeter-project", "anth-err")
	req.Header.Set("x-mock-prompt-tokens", "100")
	req.Header.Set("x-mock-error-event-after", "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 || !bytes.Contains(got, []byte("event: error")) {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	// message_start reported 100 input tokens and 1 output token before the error.
	base := []string{"project", "anth-err", "model", "claude-sonnet-4"}
	s.WaitMetric("tokenmeter_tokens_total", labels(append(base, "class", "input")...), 100)
	s.WaitMetric("tokenmeter_requests_total", labels("model", "claude-sonnet-4", "outcome", "provider_error"), 1)
	if v, ok := testbed.Value(s.Metrics(), "tokenmeter_parse_errors_total", labels("dialect", "anthropic_messages")); ok {
		t.Errorf("a provider's error event is not a parse error: %v", v)
	}
}
