package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// A soft threshold crossed through Envoy reaches a webhook once, with the
// exact spend, and the next threshold arrives when it is crossed in turn.
func TestThresholdAlertsReachWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body %s: %v", b, err)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer hook.Close()
	s := testbed.New(t, testbed.Options{Bin: bin,
		Budgets: `
  - {name: tokens, match: {project: alert}, limit: {tokens: 1000}, window: day, alert_at: [50, 100]}`,
		Extra: "alerts:\n  interval: 1s\n  webhooks:\n    - {name: test, url: \"" + hook.URL + "/hook\"}\n",
	})
	body := `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
	h := map[string]string{"x-tokenmeter-project": "alert", "x-mock-prompt-tokens": "300", "x-mock-completion-tokens": "100"}
	wait := func(n int) []map[string]any {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			c := append([]map[string]any(nil), got...)
			mu.Unlock()
			if len(c) >= n {
				return c
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("webhook received %d alerts, want %d", len(got), n)
		return nil
	}
	for i := 0; i < 2; i++ {
		if resp := s.Post(body, h); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, testbed.ReadAll(t, resp))
		} else {
			testbed.ReadAll(t, resp)
		}
	}
	first := wait(1)[0]
	if first["threshold_percent"] != 50.0 || first["spent"] != "800" || first["limit"] != "1000" || first["budget"] != "tokens" ||
		first["counter_key"] != "project=alert" || first["kind"] != "budget_threshold" {
		t.Fatalf("first alert %v", first)
	}
	if resp := s.Post(body, h); resp.StatusCode != 200 {
		t.Fatalf("third request: %d", resp.StatusCode)
	} else {
		testbed.ReadAll(t, resp)
	}
	all := wait(2)
	if second := all[1]; second["threshold_percent"] != 100.0 || second["spent"] != "1200" {
		t.Fatalf("second alert %v", second)
	}
	time.Sleep(2500 * time.Millisecond) // two more checks: nothing is sent again
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d alerts, want 2: %v", len(got), got)
	}
}
