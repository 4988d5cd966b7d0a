// Package e2e runs tokenmeter behind a real Envoy: the pinned binary from
// .tools/, the envoy/envoy.yaml that ships (ports rewritten), the real
// tokenmeter binary, and the mock LLM. Under CI=true a missing Envoy fails the
// tests; elsewhere it skips them with the install command.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/mockllm"
)

var tokenmeterBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokenmeter-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tokenmeterBin = filepath.Join(dir, "tokenmeter")
	build := exec.Command("go", "build", "-race", "-o", tokenmeterBin, "../cmd/tokenmeter")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tokenmeter:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stack is one mock LLM, one tokenmeter and one Envoy.
type stack struct {
	t       *testing.T
	dir     string
	mock    *mockllm.Server
	tm      *tokenmeter
	proxy   *envoy.Proxy
	cfgPath string
}

const pricesYAML = `currency: USD
models:
  - name: gpt-4o-mini
    provider: openai
    source: https://openai.com/api/pricing
    as_of: 2025-06-01
    prices: {input: 0.15, cache_read: 0.075, output: 0.60}
  - name: o4-mini
    provider: openai
    source: https://openai.com/api/pricing
    as_of: 2025-06-01
    prices: {input: 1.10, cache_read: 0.275, output: 4.40}
`

// newStack starts everything. budgets is the YAML of the budgets list (may
// be empty); extra is appended to the config.
func newStack(t *testing.T, budgets string, extra string) *stack {
	t.Helper()
	bin, err := envoy.Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skip(err)
	}
	s := &stack{t: t, dir: t.TempDir(), mock: mockllm.New(mockllm.Options{})}
	up := httptest.NewServer(s.mock)
	t.Cleanup(up.Close)

	if err := os.WriteFile(filepath.Join(s.dir, "prices.yaml"), []byte(pricesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", admin: "127.0.0.1:0"}
store: {dir: %q}
catalog: {files: [prices.yaml]}
%s
`, filepath.Join(s.dir, "badger"), extra)
	if budgets != "" {
		cfg += "budgets:\n" + budgets
	}
	s.cfgPath = filepath.Join(s.dir, "tokenmeter.yaml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.tm = startTokenmeter(t, s.cfgPath)
	t.Cleanup(func() { s.tm.stop(os.Interrupt) })

	base, err := os.ReadFile(filepath.Join(envoy.Dir(), "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	config := envoy.Rewrite(base, envoy.Ports{Upstream: port(t, up.Listener.Addr().String()), ExtProc: port(t, s.tm.grpc)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s.proxy, err = envoy.Start(ctx, bin, s.dir, config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.proxy.Stop()
		if t.Failed() {
			t.Logf("envoy output:\n%s", s.proxy.Output())
			t.Logf("tokenmeter output:\n%s", s.tm.output())
		}
	})
	return s
}

func port(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// tokenmeter is the real binary, run as a child process.
type tokenmeter struct {
	cmd   *exec.Cmd
	grpc  string
	admin string
	out   *lockedBuffer
	done  chan struct{}
}

func startTokenmeter(t *testing.T, cfgPath string) *tokenmeter {
	t.Helper()
	cmd := exec.Command(tokenmeterBin, "serve", "--config", cfgPath, "--log-level", "debug")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tm := &tokenmeter{cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = tm.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "tokenmeter ready ") {
				ready <- sc.Text()
			}
		}
	}()
	go func() { cmd.Wait(); close(tm.done) }()
	select {
	case line := <-ready:
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "grpc="); ok {
				tm.grpc = v
			}
			if v, ok := strings.CutPrefix(f, "admin="); ok {
				tm.admin = v
			}
		}
	case <-tm.done:
		t.Fatalf("tokenmeter exited during start-up:\n%s", tm.out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("tokenmeter not ready:\n%s", tm.out.String())
	}
	return tm
}

func (tm *tokenmeter) stop(sig os.Signal) {
	select {
	case <-tm.done:
		return
	default:
	}
	tm.cmd.Process.Signal(sig)
	select {
	case <-tm.done:
	case <-time.After(10 * time.Second):
		tm.cmd.Process.Kill()
		<-tm.done
	}
}

func (tm *tokenmeter) output() string { return tm.out.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// post sends a chat request through Envoy.
func (s *stack) post(body string, headers map[string]string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest("POST", s.proxy.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// direct sends body straight to a fresh mock, for byte-for-byte comparison.
func direct(t *testing.T, body string, headers map[string]string) []byte {
	t.Helper()
	srv := httptest.NewServer(mockllm.New(mockllm.Options{}))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, resp)
}

// metrics scrapes tokenmeter's /metrics.
func (s *stack) metrics() map[string]*dto.MetricFamily {
	s.t.Helper()
	resp, err := http.Get("http://" + s.tm.admin + "/metrics")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return fams
}

// value returns the sample of family name whose labels include want, and
// whether one exists.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue(), true
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// waitMetric polls until the sample equals want: records are appended just
// after Envoy has its answer, so the client can be a hair ahead of /metrics.
// This waits for an event; it measures nothing.
func (s *stack) waitMetric(name string, labels map[string]string, want float64) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got float64
	var ok bool
	for time.Now().Before(deadline) {
		got, ok = value(s.metrics(), name, labels)
		if ok && got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
}
