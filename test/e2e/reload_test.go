package e2e

import (
	"bytes"
	"os"
	"syscall"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// A changed config is applied without a restart (SIGHUP here; polling does
// the same), and a broken one is refused, counted, and the old one kept.
func TestConfigReload(t *testing.T) {
	s := newStack(t, `  - {name: reloadable, match: {project: r}, limit: {requests: 3}, window: day}
`)
	h := map[string]string{"x-tokenmeter-project": "r"}
	if resp := s.Post(chatBody, h); resp.StatusCode != 200 || testbed.ReadAll(t, resp) == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	key := labels("budget", "reloadable", "key", "project=r", "window", "day")
	s.WaitMetric("tokenmeter_budget_limit", key, 3)

	orig, err := os.ReadFile(s.CfgPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		if err := os.WriteFile(s.CfgPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.TM.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	write(bytes.Replace(orig, []byte("requests: 3"), []byte("requests: 5"), 1))
	s.WaitMetric("tokenmeter_config_reloads_total", nil, 1)
	s.WaitMetric("tokenmeter_budget_limit", key, 5)

	write(bytes.Replace(orig, []byte("window: day"), []byte("window: fortnight"), 1))
	s.WaitMetric("tokenmeter_config_reload_errors_total", nil, 1)
	s.WaitMetric("tokenmeter_budget_limit", key, 5)
	waitFor(t, func() bool {
		return bytes.Contains([]byte(s.TM.Output()), []byte(`budgets[0].window: \"fortnight\": want minute, hour, day, month, week, year, total`))
	}, "the refused reload logged with file, key, value and reason")
	// The running config still admits requests under the limit of 5.
	for i := 0; i < 4; i++ {
		resp := s.Post(chatBody, h)
		if testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("request %d after a refused reload: %d", i+2, resp.StatusCode)
		}
	}
}
