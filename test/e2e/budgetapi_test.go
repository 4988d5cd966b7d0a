package e2e

import (
	"encoding/json"
	"fmt"
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
	checkBudgetStatus(t, s)
	checkBudgetRefusals(t, s)

	if out, err := cli(t, s.TM.Admin, "budgets", "reset", "rt", "--key", "project=rt"); err != nil {
		t.Fatalf("reset: %v %s", err, out)
	}
	postOK(t, s, h, "after reset")

	// The definition is in the store: a restart keeps it. The kill waits for
	// the request above to be settled (it settles just after its answer:
	// the documented loss window, which e2e/crash_test.go measures).
	waitSpent(t, s, "rt", "1")
	s.Restart(os.Kill)
	if b := listBudgets(t, s)["rt"]; b.Source != "runtime" || len(b.Keys) != 1 || b.Keys[0].Spent != "1" {
		t.Fatalf("after restart: %+v", b)
	}
	if out, err := cli(t, s.TM.Admin, "budgets", "delete", "rt"); err != nil || out != "budget rt deleted\n" {
		t.Fatalf("delete: %v %q", err, out)
	}
	for i := 0; i < 3; i++ {
		postOK(t, s, h, fmt.Sprintf("after delete, request %d", i))
	}
	if _, ok := listBudgets(t, s)["rt"]; ok {
		t.Fatal("rt still listed after delete")
	}
}

// listBudgets runs budgets list and returns its budgets by name.
func listBudgets(t *testing.T, s *testbed.Stack) map[string]admin.BudgetInfo {
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

// checkBudgetStatus: rt, from the runtime, has spent its 2 requests on its
// one key; from-file is the config's.
func checkBudgetStatus(t *testing.T, s *testbed.Stack) {
	t.Helper()
	b := listBudgets(t, s)["rt"]
	if b.Source != "runtime" || len(b.Keys) != 1 || b.Keys[0].Key != "project=rt" || b.Keys[0].Spent != "2" || b.Keys[0].Remaining != "0" {
		t.Fatalf("status of rt: %+v", b)
	}
	if f := listBudgets(t, s)["from-file"]; f.Source != "config" {
		t.Fatalf("from-file: %+v", f)
	}
}

// checkBudgetRefusals: a budget of the config file cannot be replaced, and
// an invalid definition is refused with the config's reason.
func checkBudgetRefusals(t *testing.T, s *testbed.Stack) {
	t.Helper()
	if out, err := cli(t, s.TM.Admin, "budgets", "set", "from-file", `{"limit":{"requests":1},"window":"day"}`); err == nil ||
		!strings.Contains(out, "defined in the config file") {
		t.Fatalf("replacing a file budget: %v %s", err, out)
	}
	if out, err := cli(t, s.TM.Admin, "budgets", "set", "bad", `{"limit":{"requests":1},"window":"fortnight"}`); err == nil ||
		!strings.Contains(out, `window: "fortnight": want minute, hour, day, month, week, year, total`) {
		t.Fatalf("an invalid definition: %v %s", err, out)
	}
}

// postOK sends a chat request with headers h, which must be answered 200.
func postOK(t *testing.T, s *testbed.Stack, h map[string]string, what string) {
	t.Helper()
	resp := s.Post(chatBody, h)
	body := testbed.ReadAll(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", what, resp.StatusCode, body)
	}
}

// waitSpent waits up to 10 seconds for budget name's one key to have spent
// spent: its requests settle just after their answers.
func waitSpent(t *testing.T, s *testbed.Stack, name, spent string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b := listBudgets(t, s)[name]; len(b.Keys) == 1 && b.Keys[0].Spent == spent {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("budget %s never spent %s: a request was never settled", name, spent)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
