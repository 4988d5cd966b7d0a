package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

func post(t *testing.T, url, body string, h map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(testbed.ReadAll(t, resp))
}

// Through Envoy: an RPM limit tells admitted callers what is left in
// OpenAI's x-ratelimit-* headers, and refuses the next one in the caller's
// own dialect (here Anthropic's), before the provider sees it.
func TestRateLimitHeadersAndDialectDeny(t *testing.T) {
	s := newStack(t, `
  - {name: rpm, match: {project: rl}, limit: {requests: 2}, rolling: 1m}
  - {name: daily, match: {project: rl}, limit: {tokens: 100000}, window: day}
  - {name: gem, match: {project: gm}, limit: {requests: 1}, window: day}`)
	body := `{"model":"claude-sonnet-4","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`
	h := map[string]string{"x-tokenmeter-project": "rl", "anthropic-version": "2023-06-01", "x-mock-prompt-tokens": "10", "x-mock-completion-tokens": "5"}
	for i, wantLeft := range []string{"1", "0"} {
		resp, got := post(t, s.Proxy.URL+"/v1/messages", body, h)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, got)
		}
		for k, want := range map[string]string{
			"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": wantLeft, "x-ratelimit-reset-requests": "1s",
			"x-tokenmeter-budget": "daily",
		} {
			if v := resp.Header.Get(k); v != want {
				t.Errorf("request %d: %s = %q, want %q", i, k, v, want)
			}
		}
	}
	resp, got := post(t, s.Proxy.URL+"/v1/messages", body, h)
	want := `{"type":"error","error":{"type":"rate_limit_error","message":"tokenmeter: budget \"rpm\" is exhausted for project=rl (limit 2 requests per rolling 1m0s); retry in 1s"}}`
	if resp.StatusCode != 429 || got != want || resp.Header.Get("retry-after") != "1" || resp.Header.Get("x-tokenmeter-budget") != "rpm" {
		t.Fatalf("third request: %d %v\n%s\nwant %s", resp.StatusCode, resp.Header, got, want)
	}
	if n := len(s.Mock.Requests()); n != 2 {
		t.Fatalf("the provider saw %d requests, want 2", n)
	}

	// Gemini callers get Google's error shape.
	gbody := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	gh := map[string]string{"x-tokenmeter-project": "gm"}
	url := s.Proxy.URL + "/v1beta/models/gemini-2.0-flash:generateContent"
	if resp, got := post(t, url, gbody, gh); resp.StatusCode != 200 {
		t.Fatalf("first gemini request: %d %s", resp.StatusCode, got)
	}
	resp, got = post(t, url, gbody, gh)
	if resp.StatusCode != 429 || !strings.HasPrefix(got, `{"error":{"code":429,"message":"tokenmeter: budget \"gem\" is exhausted`) || !strings.HasSuffix(got, `"status":"RESOURCE_EXHAUSTED"}}`) {
		t.Fatalf("second gemini request: %d %s", resp.StatusCode, got)
	}
}
