package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/pricing"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// readmeRequest is one of the demo's curl commands as the README writes it.
type readmeRequest struct {
	path, header, body string
}

var (
	curlLine   = regexp.MustCompile(`curl -sN? '?localhost:10000([^' ]+)'? -H '([^']+)'\s*\\?\s*-d '([^']+)'`)
	modelField = regexp.MustCompile(`"model":"([^"]+)"|models/([^:]+):`)
	// The figure the README promises for its first request.
	firstFigure = regexp.MustCompile(`up\s+by\s+exactly\s+([0-9.]+):`)
)

// readmeRequests reads the demo's requests from README.md, so that the test
// runs what a newcomer pastes.
func readmeRequests(t *testing.T) ([]readmeRequest, money.Amount) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	fig := firstFigure.FindStringSubmatch(string(doc))
	if fig == nil {
		t.Fatal("README.md no longer says what the first request costs (\"up by exactly ...:\")")
	}
	joined := strings.ReplaceAll(string(doc), "\\\n", "")
	var out []readmeRequest
	for _, m := range curlLine.FindAllStringSubmatch(joined, -1) {
		out = append(out, readmeRequest{path: m[1], header: m[2], body: m[3]})
	}
	if len(out) != 4 {
		t.Fatalf("found %d demo requests in README.md, want the 4 it shows", len(out))
	}
	return out, money.MustParse(fig[1])
}

// The README's promises about the demo, each request as it writes it:
//   - every request is answered (200) and metered for project demo;
//   - the mock answers every prompt with the same eight words (8 output
//     tokens);
//   - the first request moves tokenmeter_cost_total by exactly the figure
//     it gives (0.00000615: 9 input tokens × $0.15/M plus 8 output tokens
//     × $0.60/M);
//   - the others by their own models' prices: each model's cost equals its
//     tokens priced at the demo config's catalog (demo/tokenmeter.yaml,
//     the built-in catalog and demo/prices.yaml), which must price these
//     models as the test stack's catalog does.
func TestReadmeDemo(t *testing.T) {
	demo, err := config.Load(filepath.Join("..", "..", "demo", "tokenmeter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stackCfg := filepath.Join(t.TempDir(), "stack.yaml")
	if err := os.WriteFile(filepath.Join(filepath.Dir(stackCfg), "prices.yaml"), []byte(testbed.PricesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stackCfg, []byte("catalog: {builtin: false, files: [prices.yaml]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stack, err := config.Load(stackCfg)
	if err != nil {
		t.Fatal(err)
	}

	s := demoStack(t)
	want := map[string]money.Amount{} // cumulative cost per model
	requests, first := readmeRequests(t)
	for i, r := range requests {
		name, value, _ := strings.Cut(r.header, ": ")
		resp, body := post(t, s.Proxy.URL+r.path, r.body, map[string]string{name: value})
		if resp.StatusCode != 200 {
			t.Fatalf("request %d (%s): status %d: %s", i+1, r.path, resp.StatusCode, body)
		}
		m := modelField.FindStringSubmatch(r.body + " " + r.path)
		model := m[1] + m[2]
		if i == 0 {
			checkEightWords(t, body)
		}
		before := want[model]
		want[model] = before + demoCost(t, s, demo, stack, model, before)
		if i == 0 && want[model] != first {
			t.Fatalf("the first request cost %s, the README says %s", want[model], first)
		}
	}
}

// The README's promise that a client cannot pick a project: without a
// known key the demo answers 401 whatever x-tokenmeter-project says, and
// with the key a forged project header changes nothing.
func TestReadmeDemoCannotBeSpoofed(t *testing.T) {
	s := demoStack(t)
	requests, _ := readmeRequests(t)
	r := requests[0]
	for _, hdrs := range []map[string]string{
		{"x-tokenmeter-project": "demo"},
		{"x-tokenmeter-project": "demo", "authorization": "Bearer tmk_guessed_key"},
	} {
		resp, body := post(t, s.Proxy.URL+r.path, r.body, hdrs)
		if resp.StatusCode != 401 || !strings.Contains(body, "invalid_api_key") {
			t.Fatalf("%v: status %d, want 401 invalid_api_key: %s", hdrs, resp.StatusCode, body)
		}
	}
	name, value, _ := strings.Cut(r.header, ": ")
	if resp, body := post(t, s.Proxy.URL+r.path, r.body, map[string]string{name: value, "x-tokenmeter-project": "victim"}); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := s.Metrics()
		// The mock answers 8 output tokens.
		demo, _ := testbed.Value(fams, "tokenmeter_tokens_total", map[string]string{"project": "demo", "class": "output"})
		if victim := testbed.Sum(fams, "tokenmeter_tokens_total", map[string]string{"project": "victim"}); victim != 0 {
			t.Fatalf("%v tokens charged to the forged project", victim)
		}
		if demo == 8 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v output tokens charged to project demo, want 8", demo)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// demoStack is the test stack (the test catalog) on the shipped envoy.yaml
// with the demo config's attribution: its API keys, hashed under its
// secret file.
func demoStack(t *testing.T) *testbed.Stack {
	t.Helper()
	demoDir, err := filepath.Abs(filepath.Join("..", "..", "demo"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(demoDir, "tokenmeter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	attr := topLevel(t, string(cfg), "attribution")
	// The secret file is relative to the demo config; the stack's config is elsewhere.
	attr = secretFile.ReplaceAllString(attr, "${1}"+demoDir+"/$2")
	return testbed.New(t, testbed.Options{Bin: bin, AsShipped: true, Extra: attr})
}

var secretFile = regexp.MustCompile(`(secret_file: )(\S+)`)

// topLevel returns the top-level key's block of a YAML file, as written.
func topLevel(t *testing.T, doc, key string) string {
	t.Helper()
	var out []string
	in := false
	for _, line := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(line, key+":"):
			in = true
		case in && line != "" && line[0] != ' ' && line[0] != '#':
			in = false
		}
		if in {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s: in the demo config", key)
	}
	return strings.Join(out, "\n") + "\n"
}

// demoCost waits for model's cost to move past before and returns by how
// much, after checking it is the model's tokens priced by the demo's
// catalog, and that the stack's catalog gives the same.
func demoCost(t *testing.T, s *testbed.Stack, demo, stack *config.Config, model string, before money.Amount) money.Amount {
	t.Helper()
	base := map[string]string{"project": "demo", "model": model}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams := s.Metrics()
		got, _ := testbed.Value(fams, "tokenmeter_cost_total", base)
		if got > before.Units() || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fams := s.Metrics()
	var u usage.Usage
	for _, c := range []usage.Class{usage.Input, usage.Output} {
		l := map[string]string{"project": "demo", "model": model, "class": c.String()}
		n, _ := testbed.Value(fams, "tokenmeter_tokens_total", l)
		u.Set(c, int64(n))
	}
	if u.Get(usage.Output)%8 != 0 {
		t.Errorf("%s: %d output tokens; the mock answers eight words a request", model, u.Get(usage.Output))
	}
	var costs [2]money.Amount
	var err error
	for i, cfg := range []*config.Config{demo, stack} {
		e, ok := cfg.Catalog.LookupAnyProvider(model, time.Now())
		if !ok {
			t.Fatalf("%s: no price in %s", model, cfg.File)
		}
		if costs[i], err = e.Cost(&u, pricing.CostOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := testbed.Value(fams, "tokenmeter_cost_total", base)
	if costs[0] != costs[1] || got != costs[0].Units() {
		t.Fatalf("%s: cost_total %v for %d in, %d out; the demo's catalog prices them at %s, the test stack's at %s",
			model, got, u.Get(usage.Input), u.Get(usage.Output), costs[0], costs[1])
	}
	return costs[0] - before
}

func checkEightWords(t *testing.T, body string) {
	t.Helper()
	var r struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Choices) != 1 {
		t.Fatalf("answer %s: %v", body, err)
	}
	if n := len(strings.Fields(r.Choices[0].Message.Content)); n != 8 {
		t.Fatalf("the mock answered %d words (%q); the README says eight", n, r.Choices[0].Message.Content)
	}
}
