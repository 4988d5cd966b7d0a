// Package testbed runs the whole stack for end-to-end tests and benchmarks:
// the mock LLM, the real tokenmeter binary, and the pinned Envoy on the
// envoy/envoy.yaml that ships (ports rewritten), optionally beside a bare
// Envoy without the ext_proc filter. A missing Envoy fails the test with the
// install command (make tools): never a skip.
//
// The shipped configs remove a client's x-tokenmeter-* headers before any
// filter runs, and most tests attribute requests by sending them (standing
// in for an Envoy that sets them from a trusted source); so a Stack runs
// envoy.TrustClientHeaders of its config, which drops only that removal,
// unless Options.AsShipped.
package testbed

import (
	"bufio"
	"bytes"
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
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/test/configmap"
	"github.com/tokenmeter/tokenmeter/test/mockllm"
)

// T is what testbed needs of a test: *testing.T and *testing.B satisfy it,
// and a program (bench/cmd/tmbench) can implement it, which testing.TB's
// private method forbids. Fatal and Fatalf must not return (testing's stop
// the goroutine; a program's may panic).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

// Build compiles tokenmeter into dir and returns the binary's path. race
// builds it with the race detector (tests); benchmarks build it plain.
func Build(dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "tokenmeter")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/tokenmeter/tokenmeter/cmd/tokenmeter")...)
	cmd.Dir = envoy.Dir()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build tokenmeter: %w\n%s", err, out)
	}
	return bin, nil
}

// Stack is one mock LLM, one tokenmeter and one Envoy in front of it.
type Stack struct {
	t       T
	Dir     string
	Mock    *mockllm.Server
	TM      *Tokenmeter
	Proxy   *envoy.Proxy // Envoy with the ext_proc filter
	Bare    *envoy.Proxy // Envoy without it, when Options.Bare
	CfgPath string
	bin     string
	envoy   string // the Envoy binary
	upPort  int    // the mock provider's port
	args    []string
	inline  bool
	up      bool
	shipped bool // Options.AsShipped
	// configMap is the ConfigMap volume's directory, with Options.ConfigMap.
	configMap string
	arrange   Arrangement
	// Listener is the name of the Envoys' listener for clients
	// (envoy.StartListener): envoy.Listener, or the Arrangement's.
	Listener string
}

// Arrangement builds the Envoy config a Stack runs instead of the shipped
// envoy.yaml, in front of the mock provider on upstreamPort and tokenmeter
// on extProcPort, and names its listener for clients.
// envoygateway.Arrangement is one: what Envoy Gateway makes of
// deploy/envoy-gateway.
type Arrangement func(upstreamPort, extProcPort int) (config []byte, listener string, err error)

// Options shape a Stack.
type Options struct {
	Bin string // the tokenmeter binary (from Build)
	// ServeArgs are added to `tokenmeter serve` (after --config and
	// --log-level debug, so a later --log-level wins), e.g. a CPU profile
	// for benchmarks. Restart keeps them; replicas do not get them.
	ServeArgs []string
	// Upstream, when set, wraps the mock provider's handler, e.g. to
	// timestamp what the provider sends.
	Upstream func(http.Handler) http.Handler
	Budgets  string // YAML of the budgets list; may be empty
	Extra    string // more top-level config YAML
	Store    string // more keys of the store section, e.g. "settle_before_response: true"
	// Redis, when set, is the address of a Redis the stack's tokenmeters
	// share their budgets in (store type redis) instead of Badger.
	Redis string
	Bare  bool // also start an Envoy without the ext_proc filter
	// Inline runs tokenmeter as one ext_proc filter (envoy.Inline) instead
	// of the gate and observer of the shipped envoy.yaml.
	Inline bool
	// UpstreamFilters runs tokenmeter's gate and observer in the provider
	// cluster's filter chain (envoy.Upstream, envoy/upstream-filter.yaml)
	// instead of the connection manager's. Not with Inline.
	UpstreamFilters bool
	// ConfigMap lays the config and the catalog out as a Kubernetes
	// ConfigMap volume (package test/configmap): symlinks into ..data, a
	// symlink to a timestamped directory. WriteConfig then updates it as the
	// kubelet does.
	ConfigMap bool
	// Arrangement, when set, builds the Envoy config instead of envoy.yaml
	// (not with Inline).
	Arrangement Arrangement
	// AsShipped runs the config as it ships (the ports aside), which
	// removes the client's x-tokenmeter-* request headers before any filter:
	// the client's attribution headers are then ignored. By default a Stack
	// runs envoy.TrustClientHeaders of it, which believes them.
	AsShipped bool
	Mock      mockllm.Options
}

// PricesYAML is the catalog every stack loads.
const PricesYAML = `currency: USD
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
  - name: claude-sonnet-4
    provider: anthropic
    source: https://www.anthropic.com/pricing
    as_of: 2025-06-01
    prices: {input: 3.00, cache_read: 0.30, cache_write: 3.75, cache_write_1h: 6.00, output: 15.00}
  - name: gemini-2.0-flash
    provider: google
    source: https://ai.google.dev/gemini-api/docs/pricing
    as_of: 2025-06-01
    prices: {input: 0.10, cache_read: 0.025, output: 0.40}
  - name: anthropic.claude-3-5-haiku-20241022-v1:0
    provider: bedrock
    source: https://aws.amazon.com/bedrock/pricing/
    as_of: 2025-06-01
    prices: {input: 0.80, cache_read: 0.08, cache_write: 1.00, cache_write_1h: 1.60, output: 4.00}
`

// New starts everything and stops it when the test ends.
func New(t T, o Options) *Stack {
	t.Helper()
	bin, err := envoy.Binary()
	if err != nil {
		t.Fatal(err) // a missing real part is never a silent skip
	}
	if o.Inline && o.UpstreamFilters {
		t.Fatal("testbed: Inline and UpstreamFilters are two places for tokenmeter; pick one")
	}
	s := &Stack{t: t, Dir: t.TempDir(), Mock: mockllm.New(o.Mock), bin: o.Bin, envoy: bin, args: o.ServeArgs, inline: o.Inline,
		up: o.UpstreamFilters, shipped: o.AsShipped, arrange: o.Arrangement, Listener: envoy.Listener}
	if o.Arrangement != nil {
		s.Listener = "" // the arrangement's, from its first config
		if o.Inline || o.UpstreamFilters {
			t.Fatal("testbed: Arrangement with Inline or UpstreamFilters")
		}
	}
	var h http.Handler = s.Mock
	if o.Upstream != nil {
		h = o.Upstream(h)
	}
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)

	cfg := fmt.Sprintf(`listen: {grpc: "127.0.0.1:0", admin: "127.0.0.1:0"}
store: {dir: %q%s}
catalog: {files: [prices.yaml]}
%s
%s
%s
`, filepath.Join(s.Dir, "badger"), prefixed(", ", o.Store)+redisStore(o.Redis), ledgerSection(o.Extra, filepath.Join(s.Dir, "ledger")),
		shutdownSection(o.Extra), o.Extra)
	if o.Budgets != "" {
		cfg += "budgets:\n" + o.Budgets
	}
	s.CfgPath = filepath.Join(s.Dir, "tokenmeter.yaml")
	if o.ConfigMap {
		s.configMap = filepath.Join(s.Dir, "configmap")
		if err := os.Mkdir(s.configMap, 0o700); err != nil {
			t.Fatal(err)
		}
		s.CfgPath = filepath.Join(s.configMap, "tokenmeter.yaml")
	} else if err := os.WriteFile(filepath.Join(s.Dir, "prices.yaml"), []byte(PricesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	s.WriteConfig([]byte(cfg))
	s.TM = StartTokenmeter(t, o.Bin, s.CfgPath, o.ServeArgs...)
	t.Cleanup(func() { s.TM.Stop(os.Interrupt) }) // the one running at the end, after any Restart

	s.upPort = port(t, up.Listener.Addr().String())
	config := s.EnvoyConfig(s.TM.GRPC)
	s.Proxy = s.startEnvoy(filepath.Join(s.Dir, "with"), config)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("envoy output:\n%s", s.Proxy.Output())
			t.Logf("tokenmeter output:\n%s", s.TM.Output())
		}
	})
	if o.Bare {
		bare, err := envoy.WithoutExtProc(config)
		if err != nil {
			t.Fatal(err)
		}
		s.Bare = s.startEnvoy(filepath.Join(s.Dir, "bare"), bare)
	}
	return s
}

// startEnvoy runs the stack's Envoy on config in dir until the test ends.
func (s *Stack) startEnvoy(dir string, config []byte) *envoy.Proxy {
	s.t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := envoy.StartListener(ctx, s.envoy, dir, config, s.Listener)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(p.Stop)
	return p
}

func port(t T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Tokenmeter is the real binary, run as a child process.
type Tokenmeter struct {
	GRPC  string // bound ext_proc address
	Admin string // bound admin address
	cmd   *exec.Cmd
	out   *envoy.OutputBuffer
	done  chan struct{}
}

// StartTokenmeter runs bin on cfgPath, with args added to `serve`, and
// returns once it reports ready.
func StartTokenmeter(t T, bin, cfgPath string, args ...string) *Tokenmeter {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--config", cfgPath, "--log-level", "debug"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	tm := &Tokenmeter{cmd: cmd, out: &envoy.OutputBuffer{}, done: make(chan struct{})}
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
				tm.GRPC = v
			}
			if v, ok := strings.CutPrefix(f, "admin="); ok {
				tm.Admin = v
			}
		}
	case <-tm.done:
		t.Fatalf("tokenmeter exited during start-up:\n%s", tm.out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("tokenmeter not ready:\n%s", tm.out.String())
	}
	return tm
}

// Stop signals the process (os.Interrupt for a graceful stop, os.Kill for a
// crash) and waits for it.
func (tm *Tokenmeter) Stop(sig os.Signal) {
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

// shutdownSection stops a test's tokenmeter at once (no drain: there is no
// load balancer to leave) and cuts streams after 5 s, as before shutdown was
// configurable, unless the test's extra config has a shutdown section of
// its own.
func shutdownSection(extra string) string {
	if strings.Contains(extra, "shutdown:") {
		return ""
	}
	return "shutdown: {drain: 0s, grace: 5s}"
}

// WriteConfig replaces the stack's config file with data: in place, or with
// Options.ConfigMap as the kubelet updates a ConfigMap volume (the catalog
// beside it unchanged). tokenmeter notices at its next reload.interval poll,
// or at once on SIGHUP.
func (s *Stack) WriteConfig(data []byte) {
	s.t.Helper()
	var err error
	if s.configMap != "" {
		err = configmap.Write(s.configMap, map[string][]byte{"tokenmeter.yaml": data, "prices.yaml": []byte(PricesYAML)})
	} else {
		err = os.WriteFile(s.CfgPath, data, 0o600)
	}
	if err != nil {
		s.t.Fatal(err)
	}
}

// ledgerSection keeps each stack's ledger in its own directory, unless the
// test's extra config has a ledger section of its own.
func ledgerSection(extra, dir string) string {
	if strings.Contains(extra, "ledger:") {
		return ""
	}
	return fmt.Sprintf("ledger: {dir: %q}", dir)
}

func redisStore(addr string) string {
	if addr == "" {
		return ""
	}
	return fmt.Sprintf(", type: redis, redis: {addrs: [%q]}", addr)
}

// Replica is one more tokenmeter, with an Envoy of its own in front of it,
// on the stack's config and provider: with Options.Redis, replicas share the
// stack's budgets.
type Replica struct {
	TM    *Tokenmeter
	Proxy *envoy.Proxy
}

// AddReplica starts a Replica; it stops when the test ends.
func (s *Stack) AddReplica() *Replica {
	s.t.Helper()
	// Each replica keeps a ledger of its own (Badger locks its directory);
	// the rest of the config, Redis included, is shared.
	cfg, err := os.ReadFile(s.CfgPath)
	if err != nil {
		s.t.Fatal(err)
	}
	dir := s.t.TempDir()
	cfg = bytes.Replace(cfg, []byte(strconv.Quote(filepath.Join(s.Dir, "ledger"))), []byte(strconv.Quote(filepath.Join(dir, "ledger"))), 1)
	path := filepath.Join(dir, "tokenmeter.yaml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prices.yaml"), []byte(PricesYAML), 0o600); err != nil {
		s.t.Fatal(err)
	}
	r := &Replica{TM: StartTokenmeter(s.t, s.bin, path)}
	s.t.Cleanup(func() { r.TM.Stop(os.Interrupt) })
	r.Proxy = s.startEnvoy(s.t.TempDir(), s.EnvoyConfig(r.TM.GRPC))
	return r
}

// SharedProxy starts one more Envoy whose tokenmeter cluster balances over
// this stack's tokenmeter and the replicas' (round robin, per ext_proc
// stream): a request's gate and observer streams then land on different
// replicas. It stops when the test ends.
func (s *Stack) SharedProxy(replicas ...*Replica) *envoy.Proxy {
	s.t.Helper()
	config := s.EnvoyConfig(s.TM.GRPC)
	first := fmt.Sprintf("port_value: %d }\n", port(s.t, s.TM.GRPC))
	i := bytes.Index(config, []byte(first))
	if i < 0 {
		s.t.Fatalf("no tokenmeter endpoint %q in the envoy config", first)
	}
	// The endpoint's YAML, from its "- endpoint:" line, repeated per replica.
	start := bytes.LastIndex(config[:i], []byte("- endpoint:"))
	start = bytes.LastIndexByte(config[:start], '\n') + 1
	end := i + len(first)
	endpoint := string(config[start:end])
	var more strings.Builder
	for _, r := range replicas {
		more.WriteString(strings.Replace(endpoint, first, fmt.Sprintf("port_value: %d }\n", port(s.t, r.TM.GRPC)), 1))
	}
	config = append(config[:end:end], append([]byte(more.String()), config[end:]...)...)
	return s.startEnvoy(s.t.TempDir(), config)
}

// StartProxy starts one more Envoy on config (for example EnvoyConfig's,
// edited by a test); it stops when the test ends.
func (s *Stack) StartProxy(config []byte) *envoy.Proxy {
	s.t.Helper()
	return s.startEnvoy(s.t.TempDir(), config)
}

// EnvoyConfig is the shipped envoy.yaml pointed at the mock and at the
// tokenmeter listening on grpcAddr, inline or upstream when the stack is;
// or the stack's Arrangement's config. Unless Options.AsShipped, it trusts
// the client's attribution headers (envoy.TrustClientHeaders).
func (s *Stack) EnvoyConfig(grpcAddr string) []byte {
	s.t.Helper()
	config := s.shippedConfig(grpcAddr)
	if s.shipped {
		return config
	}
	config, err := envoy.TrustClientHeaders(config)
	if err != nil {
		s.t.Fatal(err)
	}
	return config
}

// shippedConfig is EnvoyConfig as shipped.
func (s *Stack) shippedConfig(grpcAddr string) []byte {
	s.t.Helper()
	if s.arrange != nil {
		config, listener, err := s.arrange(s.upPort, port(s.t, grpcAddr))
		if err != nil {
			s.t.Fatal(err)
		}
		if s.Listener == "" {
			s.Listener = listener
		} else if listener != s.Listener {
			s.t.Fatalf("the arrangement's listener is %q, and then %q", s.Listener, listener)
		}
		return config
	}
	base, err := os.ReadFile(filepath.Join(envoy.Dir(), "envoy.yaml"))
	if err != nil {
		s.t.Fatal(err)
	}
	config := envoy.Rewrite(base, envoy.Ports{Upstream: s.upPort, ExtProc: port(s.t, grpcAddr)})
	switch {
	case s.inline:
		config, err = envoy.Inline(config)
	case s.up:
		config, err = envoy.Upstream(config)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return config
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// Restart stops tokenmeter with sig (os.Kill for a crash) and starts it
// again on the same gRPC port, so the Envoys' cluster finds it, with the same
// config and store.
func (s *Stack) Restart(sig os.Signal) {
	s.t.Helper()
	s.TM.Stop(sig)
	cfg, err := os.ReadFile(s.CfgPath)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte(`grpc: "127.0.0.1:0"`), []byte(`grpc: "`+s.TM.GRPC+`"`), 1)
	s.WriteConfig(cfg)
	s.TM = StartTokenmeter(s.t, s.bin, s.CfgPath, s.args...)
}

// Signal sends sig to the process (syscall.SIGHUP reloads its config).
func (tm *Tokenmeter) Signal(sig os.Signal) error { return tm.cmd.Process.Signal(sig) }

// Exited is closed once the process has exited.
func (tm *Tokenmeter) Exited() <-chan struct{} { return tm.done }

// PID is the process id, for reading its CPU time and memory from /proc.
func (tm *Tokenmeter) PID() int { return tm.cmd.Process.Pid }

// Output is what the process logged.
func (tm *Tokenmeter) Output() string { return tm.out.String() }

// Post sends a chat request through the Envoy with tokenmeter.
func (s *Stack) Post(body string, headers map[string]string) *http.Response {
	return s.PostTo(s.Proxy, body, headers)
}

// PostTo sends a chat request through p.
func (s *Stack) PostTo(p *envoy.Proxy, body string, headers map[string]string) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest("POST", p.URL+"/v1/chat/completions", strings.NewReader(body))
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

// ReadAll reads and closes a response body.
func ReadAll(t T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Direct sends body straight to a fresh mock, for byte-for-byte comparison.
func Direct(t T, body string, headers map[string]string) []byte {
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
	return ReadAll(t, resp)
}

// Metrics scrapes tokenmeter's /metrics.
func (s *Stack) Metrics() map[string]*dto.MetricFamily {
	s.t.Helper()
	return MetricsAt(s.t, s.TM.Admin)
}

// MetricsAt scrapes the tokenmeter whose admin listener is at addr.
func MetricsAt(t T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// Value returns the sample of family name whose labels include want, and
// whether one exists.
func Value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		if !hasLabels(m, want) {
			continue
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

// Sum adds every counter or gauge sample of family name whose labels
// include want.
func Sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		if hasLabels(m, want) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// WaitMetric polls until the sample equals want: records are appended just
// after Envoy has its answer, so the client can be a hair ahead of /metrics.
// This waits for an event; it measures nothing.
func (s *Stack) WaitMetric(name string, labels map[string]string, want float64) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got float64
	var ok bool
	for time.Now().Before(deadline) {
		got, ok = Value(s.Metrics(), name, labels)
		if ok && got == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
}
