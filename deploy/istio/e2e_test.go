package istio

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

var bin string // the tokenmeter binary, built once

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokenmeter-istio")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Built without -race: these tests prove configuration through the
	// real Envoy, not concurrency (test/e2e builds it with -race for that).
	bin, err = testbed.Build(dir, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tokenmeterConfig budgets every team by requests a day, so that each
// metered answer carries the budget feedback headers.
const tokenmeterConfig = `listen: {grpc: "127.0.0.1:0", admin: "127.0.0.1:0"}
store: {dir: %q}
ledger: {dir: %q}
catalog: {files: [prices.yaml]}
budgets:
  - {name: team-daily, match: {team: "*"}, limit: {requests: 100}, window: day}
`

// upstream is the mock provider behind every cluster of the mesh, recording
// the Host each request arrived with.
type upstream struct {
	mock *mockllm.Server
	mu   sync.Mutex
	// hosts, one per request, in order.
	hosts []string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hosts = append(u.hosts, r.Host)
	u.mu.Unlock()
	u.mock.ServeHTTP(w, r)
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.hosts...)
}

// meshRun is one Istio-shaped Envoy, patched by its EnvoyFilter, in front of
// the real tokenmeter and the mock provider.
type meshRun struct {
	t     *testing.T
	up    *upstream
	tm    *testbed.Tokenmeter
	proxy *envoy.Proxy
}

func startMesh(t *testing.T, s shape) *meshRun {
	t.Helper()
	envoyBin, err := envoy.Binary()
	if err != nil {
		t.Fatal(err) // a missing real part fails; make tools installs it
	}
	dir := t.TempDir()
	up := &upstream{mock: mockllm.New(mockllm.Options{})}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)

	if err := os.WriteFile(filepath.Join(dir, "prices.yaml"), []byte(testbed.PricesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tokenmeter.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(tokenmeterConfig, filepath.Join(dir, "badger"), filepath.Join(dir, "ledger"))), 0o600); err != nil {
		t.Fatal(err)
	}
	tm := testbed.StartTokenmeter(t, bin, cfg)
	t.Cleanup(func() { tm.Stop(os.Interrupt) })

	l := patched(t, s)
	config, err := bootstrap(l, s, srv.Listener.Addr().String(), tm.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proxy, err := envoy.Start(ctx, envoyBin, dir, config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("envoy output:\n%s\ntokenmeter output:\n%s", proxy.Output(), tm.Output())
		}
	})
	return &meshRun{t: t, up: up, tm: tm, proxy: proxy}
}

// post sends body to path on the proxy with the given Host.
func (m *meshRun) post(host, path, body string, headers map[string]string) (*http.Response, string) {
	m.t.Helper()
	req, err := http.NewRequest("POST", m.proxy.URL+path, strings.NewReader(body))
	if err != nil {
		m.t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		m.t.Fatal(err)
	}
	return resp, string(b)
}

// waitMetric polls tokenmeter's /metrics until the sample equals want: the
// observer settles just after Envoy has the answer. It waits for an event
// and measures nothing.
func (m *meshRun) waitMetric(name string, labels map[string]string, want float64) {
	m.t.Helper()
	var got float64
	var ok bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, ok = testbed.Value(testbed.MetricsAt(m.t, m.tm.Admin), name, labels); ok && got == want {
			return
		}
	}
	m.t.Fatalf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
}

// metric reads one sample now.
func (m *meshRun) metric(name string, labels map[string]string) float64 {
	m.t.Helper()
	v, _ := testbed.Value(testbed.MetricsAt(m.t, m.tm.Admin), name, labels)
	return v
}

func labels(kv ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
