package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/estimate"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// Bedrock ConverseStream through Envoy: a binary AWS event-stream whose usage
// comes in the final metadata event. The model is the path's modelId.
// Bedrock's counts are additive (input excludes cache reads and writes).
func TestBedrockConverseStreamIsMeteredExactly(t *testing.T) {
	s := newStack(t, "")
	const model = "anthropic.claude-3-5-haiku-20241022-v1:0"
	body := `{"messages":[{"role":"user","content":[{"text":"Tell me about event streams."}]}]}`
	req, err := http.NewRequest("POST", s.Proxy.URL+"/model/"+model+"/converse-stream", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"x-tokenmeter-project": "bedrock", "x-mock-prompt-tokens": "5000",
		"x-mock-cached-tokens": "1000", "x-mock-cache-write-tokens": "2000", "x-mock-cache-write-1h-tokens": "300",
		"x-mock-completion-tokens": "20"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 || resp.Header.Get("content-type") != "application/vnd.amazon.eventstream" {
		t.Fatalf("status %d, content-type %q: %q", resp.StatusCode, resp.Header.Get("content-type"), b)
	}
	// input = 5000 − 1000 − 2000 − 300 = 1700.
	// cost = 1700×0.80 + 1000×0.08 + 2000×1.00 + 300×1.60 + 20×4.00 = 4000 µ$.
	base := []string{"project", "bedrock", "model", model, "provider", "bedrock"}
	s.WaitMetric("tokenmeter_cost_total", labels(base...), usd("0.004"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 1700, "cache_read": 1000, "cache_write": 2000, "cache_write_1h": 300, "output": 20} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
}

// A ConverseStream that fails mid-stream (a modelStreamErrorException after
// three words) reports no usage: its usage comes in the final metadata
// event. It is recorded provider_error and charged for what streamed: the
// prompt and the three words, estimated, at the model's prices.
func TestBedrockErrorAfterOutputIsChargedForWhatStreamed(t *testing.T) {
	s := newStack(t, "")
	const model = "anthropic.claude-3-5-haiku-20241022-v1:0"
	prompt := "Tell me about event streams."
	body := `{"messages":[{"role":"user","content":[{"text":"` + prompt + `"}]}]}`
	req, err := http.NewRequest("POST", s.Proxy.URL+"/model/"+model+"/converse-stream", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"x-tokenmeter-project": "bedrock-err", "x-mock-completion-tokens": "20",
		"x-mock-error-event-after": "3"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), "modelStreamErrorException") {
		t.Fatalf("status %d: %q", resp.StatusCode, b)
	}
	text := mockllm.ReplyText(3)
	in, _ := estimate.Tokens(model, []byte(prompt), int64(len(prompt)))
	out, _ := estimate.Tokens(model, []byte(text), int64(len(text)))
	if out == 0 {
		t.Fatal("nothing to charge for the streamed text")
	}
	// $0.80 and $4.00 per million: nano-dollars 800 and 4,000 a token.
	cost := money.Amount(in*800 + out*4000)
	base := []string{"project", "bedrock-err", "model", model, "provider", "bedrock"}
	s.WaitMetric("tokenmeter_requests_total", labels("provider", "bedrock", "model", model, "outcome", "provider_error"), 1)
	s.WaitMetric("tokenmeter_cost_total", labels(base...), cost.Units())
	m := s.Metrics()
	for class, want := range map[string]int64{"input": in, "output": out} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != float64(want) {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
}
