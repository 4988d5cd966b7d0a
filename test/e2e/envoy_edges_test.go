package e2e

import (
	"bytes"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// attributionHeaders are the default dimensions' headers, which the shipped
// envoy.yaml removes before the upstream (envoy/harness_test.go holds the
// list to the config).
var attributionHeaders = map[string]string{
	"x-tokenmeter-project": "alpha", "x-tokenmeter-team": "search", "x-tokenmeter-user": "ann",
}

// The provider never receives tokenmeter's attribution headers, while the
// request is still attributed: the ledger record has the project, team and
// user. Other headers reach the provider as sent.
func TestAttributionHeadersStayAtEnvoy(t *testing.T) { bothModes(t, attributionHeadersStayAtEnvoy) }

func attributionHeadersStayAtEnvoy(t *testing.T, inline bool) {
	s := testbed.New(t, testbed.Options{Bin: bin, Inline: inline})
	h := map[string]string{"x-client-trace": "kept", "x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "50"}
	for k, v := range attributionHeaders {
		h[k] = v
	}
	resp := s.Post(chatBody, h)
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	up := s.Mock.Requests()
	if len(up) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(up))
	}
	for k := range attributionHeaders {
		if v, ok := up[0].Header[http.CanonicalHeaderKey(k)]; ok {
			t.Errorf("the provider received %s: %q", k, v)
		}
	}
	if v := up[0].Header.Get("x-client-trace"); v != "kept" {
		t.Errorf("the provider received x-client-trace %q, want it as sent", v)
	}

	recs := exported(t, s, 1)
	r := recs[0]
	// gpt-4o-mini: 1000 input at 0.15 + 50 output at 0.60 per million.
	if r.Dimensions.Get("project") != "alpha" || r.Dimensions.Get("team") != "search" || r.Dimensions.Get("user") != "ann" ||
		r.Outcome != ledger.OK || r.Cost.String() != "0.00018" {
		t.Fatalf("record %+v: want alpha/search/ann, ok, 0.00018", r)
	}
}

// exported polls the stack's ledger export until it holds n records of the
// last hour and returns them.
func exported(t *testing.T, s *testbed.Stack, n int) []*ledger.Record {
	t.Helper()
	now := time.Now().UTC()
	from, to := now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	var recs []*ledger.Record
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := cli(t, s.TM.Admin, "usage", "export", "--from", from, "--to", to, "--format", "csv")
		if err != nil {
			t.Fatalf("export: %v %s", err, out)
		}
		if recs, err = usagedb.ReadCSV(strings.NewReader(out)); err != nil {
			t.Fatalf("export does not read back: %v\n%s", err, out)
		}
		if len(recs) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(recs) != n {
		t.Fatalf("%d records in the ledger, want %d", len(recs), n)
	}
	return recs
}

// wantUnavailable checks Envoy's own answer for a gate that could not
// decide: the status, JSON in OpenAI's error shape (which Anthropic's SDK
// reads too), a retry-after, and no call to the provider.
func wantUnavailable(t *testing.T, s *testbed.Stack, resp *http.Response, status int, code string) {
	t.Helper()
	body := testbed.ReadAll(t, resp)
	if resp.StatusCode != status || resp.Header.Get("content-type") != "application/json" || resp.Header.Get("retry-after") != "1" {
		t.Fatalf("status %d, content-type %q, retry-after %q; want %d, application/json, 1: %s",
			resp.StatusCode, resp.Header.Get("content-type"), resp.Header.Get("retry-after"), status, body)
	}
	j := gjson.ParseBytes(body)
	if !gjson.ValidBytes(body) || j.Get("type").String() != "error" || j.Get("error.type").String() != "tokenmeter_unavailable" ||
		j.Get("error.code").String() != code || !strings.Contains(j.Get("error.message").String(), "not sent to the provider") {
		t.Fatalf("body %s: want {type: error, error: {type: tokenmeter_unavailable, code: %s, message}}", body, code)
	}
	if n := len(s.Mock.Requests()); n != 0 {
		t.Fatalf("the provider saw %d requests, want none", n)
	}
}

// tokenmeter down: the gate fails closed, and the client gets a 503 with a
// JSON error it can act on instead of Envoy's empty 500.
func TestGateUnreachableAnswersJSON(t *testing.T) { bothModes(t, gateUnreachableAnswersJSON) }

func gateUnreachableAnswersJSON(t *testing.T, inline bool) {
	s := testbed.New(t, testbed.Options{Bin: bin, Inline: inline})
	s.TM.Stop(os.Interrupt) // its gRPC port is closed now
	wantUnavailable(t, s, s.Post(chatBody, attributionHeaders), http.StatusServiceUnavailable, "gate_unreachable")
	// Anthropic's API gets the same answer (its SDK reads error.type and
	// error.message under a top-level "type": "error").
	resp, err := http.Post(s.Proxy.URL+"/v1/messages", "application/json",
		strings.NewReader(`{"model":"claude-sonnet-4","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	wantUnavailable(t, s, resp, http.StatusServiceUnavailable, "gate_unreachable")
}

// tokenmeter frozen past the gate's message_timeout (2 s): Envoy answers the
// client itself, a 504 in JSON.
func TestGateTimeoutAnswersJSON(t *testing.T) {
	s := newStack(t, "")
	if err := s.TM.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer s.TM.Signal(syscall.SIGCONT)
	// The stop takes effect asynchronously here (a request sent at once was
	// still served): wait until the kernel reports the process stopped.
	waitFor(t, func() bool { return procState(s.TM.PID()) == 'T' }, "tokenmeter stopped")
	resp := s.Post(chatBody, attributionHeaders)
	wantUnavailable(t, s, resp, http.StatusGatewayTimeout, "gate_timeout")
}

// procState is the state letter of /proc/<pid>/stat ('T' when stopped), 0
// when it cannot be read.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// The local reply mappers shape only Envoy's ext_proc failures: a
// provider's own error statuses and tokenmeter's denials (already in the
// caller's dialect) reach the client byte for byte.
func TestErrorsNotRewritten(t *testing.T) {
	s := newStack(t, `
  - {name: two-a-day, match: {project: capped}, limit: {requests: 2}, window: day}`)
	for _, status := range []string{"500", "429", "503"} {
		h := map[string]string{"x-mock-status": status}
		resp := s.Post(chatBody, h)
		got := testbed.ReadAll(t, resp)
		want := testbed.Direct(t, chatBody, h)
		if resp.Status[:3] != status || string(got) != string(want) || resp.Header.Get("retry-after") != "" {
			t.Errorf("provider %s: client got %d (retry-after %q) %s, want the provider's %s",
				status, resp.StatusCode, resp.Header.Get("retry-after"), got, want)
		}
	}
	h := map[string]string{"x-tokenmeter-project": "capped"}
	for i := range 2 {
		if resp := s.Post(chatBody, h); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, testbed.ReadAll(t, resp))
		}
	}
	resp := s.Post(chatBody, h)
	body := testbed.ReadAll(t, resp)
	j := gjson.ParseBytes(body)
	if resp.StatusCode != 429 || j.Get("error.type").String() != "budget_exceeded" || j.Get("type").Exists() ||
		!strings.Contains(j.Get("error.message").String(), `budget "two-a-day" is exhausted`) {
		t.Fatalf("tokenmeter's deny was rewritten: %d %s", resp.StatusCode, body)
	}
}
