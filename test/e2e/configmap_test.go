package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// reloadPoll is the test's reload.interval.
const reloadPoll = 200 * time.Millisecond

// The config in a Kubernetes ConfigMap volume, updated the way the kubelet
// does it (package test/configmap: the files in a new timestamped
// directory, ..data renamed over the old link), is picked up by polling
// alone: the reload is counted once, and the new budget limit is in force
// for the next requests through Envoy.
func TestConfigMapSwapReloads(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, ConfigMap: true, Extra: "reload: {interval: 200ms}",
		Budgets: "  - {name: cm, match: {project: cm}, limit: {requests: 1}, window: day}\n"})
	if link, err := os.Readlink(s.CfgPath); err != nil || link != filepath.Join("..data", "tokenmeter.yaml") {
		t.Fatalf("%s -> %q (%v): not laid out as a ConfigMap volume", s.CfgPath, link, err)
	}
	h := map[string]string{"x-tokenmeter-project": "cm"}
	post := func(want int) {
		t.Helper()
		resp := s.Post(chatBody, h)
		if b := testbed.ReadAll(t, resp); resp.StatusCode != want {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, b)
		}
	}
	post(200)
	post(429) // the limit of 1

	cfg, err := os.ReadFile(s.CfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Same length: the kubelet's swap, not a size change, is what is seen.
	s.WriteConfig(bytes.Replace(cfg, []byte("requests: 1}"), []byte("requests: 3}"), 1))
	key := labels("budget", "cm", "key", "project=cm", "window", "day")
	s.WaitMetric("tokenmeter_config_reloads_total", nil, 1)
	s.WaitMetric("tokenmeter_budget_limit", key, 3)
	post(200)
	post(200)
	post(429) // the limit of 3

	// The kubelet removed the old directory after the swap; that is no
	// change to reload. Waiting a few polls shows nothing happens.
	time.Sleep(3 * reloadPoll)
	m := s.Metrics()
	if n, _ := testbed.Value(m, "tokenmeter_config_reloads_total", nil); n != 1 {
		t.Fatalf("%v reloads, want 1", n)
	}
	if n, _ := testbed.Value(m, "tokenmeter_config_reload_errors_total", nil); n != 0 {
		t.Fatalf("%v refused reloads, want 0", n)
	}
}
