package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// Bedrock InvokeModel for a model that is not Claude (here Meta Llama)
// reports its usage only in the X-Amzn-Bedrock-*-Token-Count response
// headers. In split mode the observer sees only the headers envoy.yaml
// forwards (extproc.ObserverHeaders, derived from what the dialects
// declare); before issue 12 those were missing, and such a request was
// recorded `estimated` from bytes/4: 12 input and 32 output tokens,
// $0.00003168, for this one instead of 1,000 and 20, $0.0007344. Both
// modes must now record it exactly.
func TestBedrockInvokeUsageHeadersAreExact(t *testing.T) {
	bothModes(t, bedrockInvokeUsageHeadersAreExact)
}

func bedrockInvokeUsageHeadersAreExact(t *testing.T, inline bool) {
	s := testbed.New(t, testbed.Options{Bin: bin, Inline: inline})
	// Priced by the built-in catalog at $0.72 per million, input and output.
	const model = "meta.llama3-3-70b-instruct-v1:0"
	body := `{"prompt":"<|begin_of_text|>Tell me about usage headers.","max_gen_len":64}`
	req, err := http.NewRequest("POST", s.Proxy.URL+"/model/"+model+"/invoke", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"x-tokenmeter-project": "llama", "x-mock-prompt-tokens": "1000",
		"x-mock-completion-tokens": "20"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 || resp.Header.Get("x-amzn-bedrock-input-token-count") != "1000" {
		t.Fatalf("status %d, input header %q: %q", resp.StatusCode, resp.Header.Get("x-amzn-bedrock-input-token-count"), b)
	}
	// cost = (1000 + 20) × 0.72 / 10⁶ = 0.0007344.
	base := []string{"project", "llama", "model", model, "provider", "bedrock"}
	s.WaitMetric("tokenmeter_cost_total", labels(base...), usd("0.0007344"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 1000, "output": 20} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
	if v, _ := testbed.Value(m, "tokenmeter_requests_total", labels("model", model, "outcome", "ok")); v != 1 {
		t.Errorf("requests{outcome=ok} = %v, want 1 (the usage came from the headers, not an estimate)", v)
	}
}
