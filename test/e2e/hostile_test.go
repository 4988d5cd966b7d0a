package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit/redisstore/redistest"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// waitSum polls until testbed.Sum equals want. It waits for an event (records
// are appended after Envoy has its answer; a sweeper settles after its
// deadline); it measures nothing.
func waitSum(t *testing.T, admin, name string, labels map[string]string, want float64) {
	t.Helper()
	var got float64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if got = testbed.Sum(testbed.MetricsAt(t, admin), name, labels); got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
}

// fire sends n requests at once and returns their statuses and bodies.
func fire(t *testing.T, url string, n int, req func(i int) *http.Request) ([]int, []string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	statuses, bodies := make([]int, n), make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Do(req(i))
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[i], bodies[i] = resp.StatusCode, string(b)
		}()
	}
	wg.Wait()
	return statuses, bodies
}

func chatRequest(url, body string, h map[string]string) *http.Request {
	r, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	r.Header.Set("content-type", "application/json")
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return r
}

// Item 1 of issue 12: a body the gate cannot fully parse used to skip
// admission. Through Envoy, against $0.01 a day and a reservation of
// 20,000 output tokens ($0.012), each variant is refused before the
// provider is called, and nothing is spent.
func TestMalformedBodiesHoldTheBudget(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: "extproc: {default_max_tokens: 20000}", Budgets: `
  - {name: cent, match: {project: "*"}, limit: {money: "0.01"}, window: day}`})
	valid := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	for _, tt := range []struct{ name, body string }{
		{"valid", valid},
		{"nan", `{"model":"gpt-4o-mini","temperature":NaN,"messages":[{"role":"user","content":"hi"}]}`},
		{"infinity", `{"model":"gpt-4o-mini","top_p":Infinity,"messages":[{"role":"user","content":"hi"}]}`},
		{"bom", "\ufeff" + valid},
		{"trailing", valid + `]]`},
		{"truncated", valid[:35]},
		{"no_model", `{"messages":[{"role":"user","content":"hi"}]}`},
	} {
		resp, body := post(t, s.Proxy.URL+"/v1/chat/completions", tt.body, map[string]string{
			"x-tokenmeter-project": tt.name, "x-mock-prompt-tokens": "10", "x-mock-completion-tokens": "5"})
		if resp.StatusCode != 429 && resp.StatusCode != 403 {
			t.Errorf("%s: %d %s, want a refusal", tt.name, resp.StatusCode, body)
		}
	}
	if n := len(s.Mock.Requests()); n != 0 {
		t.Fatalf("the provider saw %d requests", n)
	}
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", labels("outcome", "denied"), 7)
	fams := s.Metrics()
	if spent := testbed.Sum(fams, "tokenmeter_budget_spent", labels("budget", "cent")); spent != 0 {
		t.Fatalf("spent %v", spent)
	}
}

// Strict admission: 200 concurrent adversarial requests, each reporting as
// many prompt tokens as its body has bytes (the most a byte-level BPE
// tokenizer can make) and max_tokens of output, against $1. Every reserve
// is then an upper bound, so the budget cannot be overshot however the
// requests interleave: on Badger and on Redis. The default estimate admits
// them all and overshoots; the figures are logged.
func TestStrictAdmissionNeverOvershoots(t *testing.T) {
	for _, store := range []string{"badger", "redis"} {
		for _, mode := range []string{"strict", "estimate"} {
			t.Run(store+"/"+mode, func(t *testing.T) { strictAdmission(t, store, mode, 1) })
		}
	}
	// Honest traffic, about four bytes a token: what strict admission costs
	// in requests admitted near the limit (logged, for docs/budgets.md).
	for _, mode := range []string{"strict", "estimate"} {
		t.Run("honest/"+mode, func(t *testing.T) { strictAdmission(t, "badger", mode, 4) })
	}
}

// strictAdmission fires 200 concurrent requests reporting len(body)/
// bytesPerToken prompt tokens against $1.
func strictAdmission(t *testing.T, store, mode string, bytesPerToken int) {
	const requests = 200
	o := testbed.Options{Bin: plainBin(t), Extra: "extproc: {admission: " + mode + "}", Budgets: `
  - {name: dollar, match: {project: adv}, limit: {money: "1"}, window: day}`,
		// The provider takes its time, so every request is in flight at once.
		Upstream: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(2 * time.Second)
				h.ServeHTTP(w, r)
			})
		}}
	if store == "redis" {
		o.Redis = redistest.Start(t, false)
	}
	s := testbed.New(t, o)
	body := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("a ", 20000) + `"}]}`
	prompt := len(body) / bytesPerToken
	h := map[string]string{"x-tokenmeter-project": "adv", "x-mock-prompt-tokens": fmt.Sprint(prompt), "x-mock-completion-tokens": "10"}
	statuses, bodies := fire(t, s.Proxy.URL, requests, func(int) *http.Request { return chatRequest(s.Proxy.URL, body, h) })
	count := map[int]int{}
	for i, st := range statuses {
		count[st]++
		if st != 200 && st != 429 {
			t.Errorf("request %d: %d %.200s", i, st, bodies[i])
		}
	}
	admitted := count[200]
	// Each: len(body) prompt tokens × $0.15/M + 10 × $0.60/M.
	// Nano-units: $0.15 per million tokens is 150 nano-dollars a token.
	each := money.Amount(int64(prompt)*150 + 10*600)
	want := money.Amount(int64(admitted) * int64(each))
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", labels("outcome", "ok"), float64(admitted))
	waitSum(t, s.TM.Admin, "tokenmeter_budget_reserved", labels("budget", "dollar"), 0)
	spent := testbed.Sum(s.Metrics(), "tokenmeter_budget_spent", labels("budget", "dollar"))
	t.Logf("%s on %s, %d bytes a token: %d of %d admitted, spent $%v of $1 (each $%s)", mode, store, bytesPerToken, admitted, requests, spent, each)
	if bytesPerToken > 1 {
		return
	}
	if mode == "estimate" && want <= money.MustParse("1") {
		t.Fatalf("the default estimate should overshoot this adversary: spent %s", want)
	}
	if spent != want.Units() {
		t.Fatalf("spent %v, want %d × %s = %s", spent, admitted, each, want)
	}
	if mode == "strict" && want > money.MustParse("1") {
		t.Fatalf("strict admission overshot: %s", want)
	}
	if mode == "strict" && admitted != int(money.MustParse("1")/each) {
		t.Fatalf("strict admitted %d, want exactly as many as fit: %d", admitted, money.MustParse("1")/each)
	}
}

// Item 2: Envoy stops waiting for a frozen gate (message_timeout) and
// answers 504. When tokenmeter thaws, none of those requests holds budget,
// and each is recorded once, as a gate timeout.
func TestGateFrozenPastMessageTimeout(t *testing.T) {
	const requests = 20
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: "extproc: {observer_deadline: 1s}", Budgets: `
  - {name: frozen, match: {project: frz}, limit: {money: "10"}, window: day}`})
	body := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	h := map[string]string{"x-tokenmeter-project": "frz"}
	if err := s.TM.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return procState(s.TM.PID()) == 'T' }, "tokenmeter stopped")
	statuses, bodies := fire(t, s.Proxy.URL, requests, func(int) *http.Request { return chatRequest(s.Proxy.URL, body, h) })
	if err := s.TM.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for i, st := range statuses {
		if st != 504 {
			t.Fatalf("request %d: %d %s, want Envoy's 504", i, st, bodies[i])
		}
	}
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", nil, requests)
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", labels("outcome", "gate_timeout"), requests)
	waitSum(t, s.TM.Admin, "tokenmeter_budget_reserved", labels("budget", "frozen"), 0)
	waitSum(t, s.TM.Admin, "tokenmeter_budget_spent", labels("budget", "frozen"), 0)
	if n := len(s.Mock.Requests()); n != 0 {
		t.Fatalf("the provider saw %d requests", n)
	}
}

// unsized hides a reader's length, so the client sends it chunked.
type unsized struct{ io.Reader }

// Item 3: a body over max_message_bytes (16 MiB) gets 413 in the caller's
// dialect and a record, at the headers when it is sized, once the held
// bytes pass the limit when it is chunked; never a 504. A body under the
// limit is served.
func TestLargeBodies(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin})
	big := func(n int) []byte {
		prefix, suffix := `{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"`, `"}]}`
		return []byte(prefix + strings.Repeat("a", n-len(prefix)-len(suffix)) + suffix)
	}
	for _, tt := range []struct {
		name    string
		size    int
		chunked bool
		want    int
	}{
		{"4MiB", 4 << 20, false, 200},
		{"20MiB", 20 << 20, false, 413},
		{"40MiB", 40 << 20, false, 413},
		{"20MiB_chunked", 20 << 20, true, 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(big(tt.size))
			if tt.chunked {
				r = unsized{r}
			}
			req, _ := http.NewRequest("POST", s.Proxy.URL+"/v1/chat/completions", r)
			req.Header.Set("content-type", "application/json")
			req.Header.Set("x-tokenmeter-project", "big")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b := testbed.ReadAll(t, resp)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d %.200s, want %d", resp.StatusCode, b, tt.want)
			}
			if tt.want == 413 && !strings.Contains(string(b), `"code":"request_too_large"`) {
				t.Fatalf("body %s", b)
			}
		})
	}
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", labels("outcome", "denied"), 3)
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", nil, 4)
}

// observerOn points the shipped config's observer filter at its own
// cluster, at addr's port, leaving the gate where it was.
func observerOn(t *testing.T, config []byte, port int) []byte {
	t.Helper()
	var root map[string]any
	if err := yaml.Unmarshal(config, &root); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["name"] == envoy.ObserverFilter {
				grpc := v["typed_config"].(map[string]any)["grpc_service"].(map[string]any)
				grpc["envoy_grpc"].(map[string]any)["cluster_name"] = "tokenmeter_observer"
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(root)
	res := root["static_resources"].(map[string]any)
	res["clusters"] = append(res["clusters"].([]any), map[string]any{
		"name": "tokenmeter_observer", "type": "STATIC", "connect_timeout": "0.25s",
		"typed_extension_protocol_options": map[string]any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
			"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
			"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}}}},
		"load_assignment": map[string]any{"cluster_name": "tokenmeter_observer", "endpoints": []any{map[string]any{
			"lb_endpoints": []any{map[string]any{"endpoint": map[string]any{"address": map[string]any{
				"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}}}}}}}},
	})
	out, err := yaml.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Item 4: with the observer's stream lost (its cluster down), requests
// still pass, and each is settled at its estimate and recorded unobserved
// once the deadline passes: nothing escapes the budget, nothing is left
// held.
func TestObserverDownEveryRequestRecorded(t *testing.T) {
	const requests = 10
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: "extproc: {observer_deadline: 1s}", Budgets: `
  - {name: obs, match: {project: od}, limit: {money: "10"}, window: day}`})
	proxy := s.StartProxy(observerOn(t, s.EnvoyConfig(s.TM.GRPC), closedPort(t)))
	body := `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"12345678"}]}`
	h := map[string]string{"x-tokenmeter-project": "od", "x-mock-prompt-tokens": "5", "x-mock-completion-tokens": "5"}
	statuses, bodies := fire(t, proxy.URL, requests, func(int) *http.Request { return chatRequest(proxy.URL, body, h) })
	for i, st := range statuses {
		if st != 200 {
			t.Fatalf("request %d: %d %s", i, st, bodies[i])
		}
	}
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", labels("outcome", "unobserved"), requests)
	waitSum(t, s.TM.Admin, "tokenmeter_budget_reserved", labels("budget", "obs"), 0)
	// The estimate: (8+3)/4 = 2 prompt tokens × $0.15/M + 100 × $0.60/M.
	waitSum(t, s.TM.Admin, "tokenmeter_budget_spent", labels("budget", "obs"), money.Amount(requests*(2*150+100*600)).Units())
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", nil, requests)
	if !strings.Contains(s.TM.Output(), "admitted requests had no observer by the deadline") {
		t.Fatalf("the sweep was not logged:\n%s", s.TM.Output())
	}
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

// A burst of 1,000 concurrent requests to a provider that takes a second:
// the gate answers each within
// Envoy's message_timeout, or refuses it as overloaded (503 in the caller's
// dialect) past extproc.gate_deadline, and never leaves Envoy to answer
// 504. Every request ends in one record and no hold is left. It runs a
// build without the race detector, whose 5-10× slowdown is not what a
// burst test is about; the figures (statuses, the gate_wait phase) are
// logged.
func TestBurstOfAThousand(t *testing.T) {
	const requests = 1000
	s := testbed.New(t, testbed.Options{Bin: plainBin(t), Budgets: `
  - {name: burst, match: {project: burst}, limit: {money: "100"}, window: day}`,
		// A provider that takes a second: every gate and observer stream is
		// open at once (2,000 ext_proc streams).
		Upstream: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(time.Second)
				h.ServeHTTP(w, r)
			})
		}})
	body := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}`
	h := map[string]string{"x-tokenmeter-project": "burst", "x-mock-prompt-tokens": "5", "x-mock-completion-tokens": "5"}
	statuses, bodies := fire(t, s.Proxy.URL, requests, func(int) *http.Request { return chatRequest(s.Proxy.URL, body, h) })
	count := map[int]int{}
	for i, st := range statuses {
		count[st]++
		switch st {
		case 200:
		case 503:
			if !strings.Contains(bodies[i], `"code":"tokenmeter_overloaded"`) {
				t.Errorf("request %d: 503 %s", i, bodies[i])
			}
		default:
			t.Errorf("request %d: %d %.200s", i, st, bodies[i])
		}
	}
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", nil, requests)
	waitSum(t, s.TM.Admin, "tokenmeter_requests_total", labels("outcome", "ok"), float64(count[200]))
	waitSum(t, s.TM.Admin, "tokenmeter_budget_reserved", labels("budget", "burst"), 0)
	fams := s.Metrics()
	var wait *dto.Histogram
	for _, m := range fams["tokenmeter_extproc_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetValue() == "gate_wait" {
				wait = m.GetHistogram()
			}
		}
	}
	t.Logf("statuses %v; gate_wait: %d decisions, mean %.0f µs", count, wait.GetSampleCount(),
		1e6*wait.GetSampleSum()/float64(max(wait.GetSampleCount(), 1)))
}

var plain struct {
	sync.Once
	bin string
	err error
}

// plainBin builds tokenmeter without the race detector, once per run.
func plainBin(t *testing.T) string {
	t.Helper()
	plain.Do(func() {
		dir, err := os.MkdirTemp("", "tokenmeter-plain")
		if err != nil {
			plain.err = err
			return
		}
		plain.bin, plain.err = testbed.Build(dir, false)
	})
	if plain.err != nil {
		t.Fatal(plain.err)
	}
	return plain.bin
}
