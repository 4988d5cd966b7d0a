package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// cli runs the tokenmeter binary against the stack's admin API.
func cli(t *testing.T, adminAddr string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--admin", "http://"+adminAddr)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A budget created at runtime with the CLI applies to the next request
// through Envoy, shows its status, resets, survives a restart, and goes away
// when deleted. A budget of the config file cannot be replaced.
func TestRuntimeBudgetsThroughCLI(t *testing.T) {
	s := newStack(t, `
  - {name: from-file, match: {project: file}, limit: {requests: 100}, window: day}`)
	out, err := cli(t, s.TM.Admin, "budgets", "set", "rt", `{"match":{"project":"rt"},"limit":{"requests":2},"window":"day"}`)
	if err != nil || out != "budget rt set: 2 requests per day\n" {
		t.Fatalf("set: %v %q", err, out)
	}
	h := map[string]string{"x-tokenmeter-project": "rt"}
	for i, want := range []int{200, 200, 429} {
		resp := s.Post(chatBody, h)
		body := testbed.ReadAll(t, resp)
		if resp.StatusCode != want {
			t.Fatalf("request %d: %d, want %d: %s", i, resp.StatusCode, want, body)
		}
		if want == 429 && resp.Header.Get("x-tokenmeter-budget") != "rt" {
			t.Fatalf("denied by %q", resp.Header.Get("x-tokenmeter-budget"))
		}
	}
	list := func() map[string]admin.BudgetInfo {
		t.Helper()
		out, err := cli(t, s.TM.Admin, "budgets", "list", "--json")
		if err != nil {
			t.Fatalf("list: %v %s", err, out)
		}
		var got struct{ Budgets []admin.BudgetInfo }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("list output %s: %v", out, err)
		}
		m := map[string]admin.BudgetInfo{}
		for _, b := range got.Budgets {
			m[b.Name] = b
		}
		return m
	}
	b := list()["rt"]
	if b.Source != "runtime" || len(b.Keys) != 1 || b.Keys[0].Key != "project=rt" || b.Keys[0].Spent != "2" || b.Keys[0].Remaining != "0" {
		t.Fatalf("status of rt: %+v", b)
	}
	if f := list()["from-file"]; f.Source != "config" {
		t.Fatalf("from-file: %+v", f)
	}
	if out, err := cli(t, s.TM.Admin, "budgets", "set", "from-file", `{"limit":{"requests":1},"window":"day"}`); err == nil ||
		!strings.Contains(out, "defined in the config file") {
		t.Fatalf("replacing a file budget: %v %s", err, out)
	}
	if out, err := cli(t, s.TM.Admin, "budgets", "set", "bad", `{"limit":{"requests":1},"window":"fortnight"}`); err == nil ||
		!strings.Contains(out, `window: "fortnight": want minute, hour, day, month, week, year, total`) {
		t.Fatalf("an invalid definition: %v %s", err, out)
	}

	if out, err := cli(t, s.TM.Admin, "budgets", "reset", "rt", "--key", "project=rt"); err != nil {
		t.Fatalf("reset: %v %s", err, out)
	}
	if resp := s.Post(chatBody, h); resp.StatusCode != 200 {
		t.Fatalf("after reset: %d %s", resp.StatusCode, testbed.ReadAll(t, resp))
	} else {
		testbed.ReadAll(t, resp)
	}

	// The definition is in the store: a restart keeps it. The kill waits for
	// the request above to be settled (it settles just after its answer:
	// the documented loss window, which e2e/crash_test.go measures).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b := list()["rt"]; len(b.Keys) == 1 && b.Keys[0].Spent == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the request after the reset was never settled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Restart(os.Kill)
	if b := list()["rt"]; b.Source != "runtime" || len(b.Keys) != 1 || b.Keys[0].Spent != "1" {
		t.Fatalf("after restart: %+v", b)
	}
	if out, err := cli(t, s.TM.Admin, "budgets", "delete", "rt"); err != nil || out != "budget rt deleted\n" {
		t.Fatalf("delete: %v %q", err, out)
	}
	for i := 0; i < 3; i++ {
		if resp := s.Post(chatBody, h); resp.StatusCode != 200 {
			t.Fatalf("after delete, request %d: %d", i, resp.StatusCode)
		} else {
			testbed.ReadAll(t, resp)
		}
	}
	if _, ok := list()["rt"]; ok {
		t.Fatal("rt still listed after delete")
	}
}
