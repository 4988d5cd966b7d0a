package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// A gzip-compressed SSE stream, flushed per event as real servers do, is
// decompressed incrementally by tokenmeter: exact usage, and the client gets
// the compressed bytes untouched.
func TestGzipStreamIsMetered(t *testing.T) {
	s := newStack(t, "")
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"compress me"}]}`
	h := map[string]string{"x-tokenmeter-project": "gz", "x-mock-gzip": "true",
		"x-mock-prompt-tokens": "321", "x-mock-completion-tokens": "64", "x-mock-cached-tokens": "21"}
	req, err := http.NewRequest("POST", s.Proxy.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	// Ask for gzip explicitly, so the transport hands back the raw bytes.
	req.Header.Set("accept-encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := testbed.ReadAll(t, resp)
	if resp.Header.Get("content-encoding") != "gzip" {
		t.Fatalf("content-encoding %q", resp.Header.Get("content-encoding"))
	}
	up := s.Mock.Requests()[0].Body
	if want := testbed.Direct(t, string(up), map[string]string{"x-mock-gzip": "true", "accept-encoding": "gzip",
		"x-mock-prompt-tokens": "321", "x-mock-completion-tokens": "64", "x-mock-cached-tokens": "21"}); !bytes.Equal(got, want) {
		t.Fatalf("compressed stream changed in transit (%d vs %d bytes)", len(got), len(want))
	}
	// 300×0.15 + 21×0.075 + 64×0.60 = 45 + 1.575 + 38.4 = 84.975 µ$.
	base := []string{"project", "gz", "model", "gpt-4o-mini"}
	s.WaitMetric("tokenmeter_cost_total", labels(base...), usd("0.000084975"))
	m := s.Metrics()
	for class, want := range map[string]float64{"input": 300, "cache_read": 21, "output": 64} {
		if v, _ := testbed.Value(m, "tokenmeter_tokens_total", labels(append(base, "class", class)...)); v != want {
			t.Errorf("tokens{class=%s} = %v, want %v", class, v, want)
		}
	}
}
