package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// scrapeText is tokenmeter's /metrics as served: its size in bytes is one
// of the figures issue 12 measures.
func scrapeText(t *testing.T, s *testbed.Stack) string {
	t.Helper()
	resp, err := http.Get("http://" + s.TM.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return string(testbed.ReadAll(t, resp))
}

// seriesIn counts the samples of a scrape: every line that is not a comment.
func seriesIn(scrape string) int {
	n := 0
	for _, line := range strings.Split(scrape, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

// hostile sends n chat requests through Envoy, concurrency at a time; each
// gets the headers and model req(i) returns. It returns the count of each
// status seen.
func hostile(t *testing.T, s *testbed.Stack, n, concurrency int, req func(i int) (model string, h map[string]string)) map[int]int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()
	var (
		next     atomic.Int64
		mu       sync.Mutex
		statuses = map[int]int{}
		firstErr error
		wg       sync.WaitGroup
	)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				model, h := req(i)
				body := `{"model":"` + model + `","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
				r, err := http.NewRequest("POST", s.Proxy.URL+"/v1/chat/completions", strings.NewReader(body))
				if err == nil {
					r.Header.Set("content-type", "application/json")
					r.Header.Set("x-mock-prompt-tokens", "3")
					for k, v := range h {
						r.Header.Set(k, v)
					}
					var resp *http.Response
					if resp, err = client.Do(r); err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						mu.Lock()
						statuses[resp.StatusCode]++
						mu.Unlock()
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return statuses
}

// Issue 12, item 5, through the real Envoy: 10,000 requests, each with a
// model, project and user never seen before, under a budget on user: "*"
// and a money budget that refuses unpriced models. A third are priced, a
// third unpriced and let through, a third unpriced and denied. /metrics
// grows by a few hundred series, not tens of thousands: the model label is
// "unpriced", projects past the first 100 are "other", user is not a label,
// and the per-user budget shows 50 keys and "other".
func TestHostileLabelValuesKeepMetricsBounded(t *testing.T) {
	s := newStack(t, `
  - {name: per-user, match: {user: "*"}, limit: {tokens: 100000000}, window: day}
  - {name: paying, match: {team: paying}, limit: {money: "1000"}, window: day}`)
	before := scrapeText(t, s)
	const n = 10_000
	statuses := hostile(t, s, n, 16, func(i int) (string, map[string]string) {
		model, team := fmt.Sprintf("hostile-model-%d", i), "free"
		switch i % 3 {
		case 0:
			model = "gpt-4o-mini"
		case 2:
			team = "paying" // a money budget: the unpriced model is refused
		}
		return model, map[string]string{"x-tokenmeter-project": fmt.Sprintf("hostile-project-%d", i),
			"x-tokenmeter-user": fmt.Sprintf("hostile-user-%d", i), "x-tokenmeter-team": team}
	})
	if statuses[200] != 6667 || statuses[403] != 3333 {
		t.Fatalf("statuses %v, want 6667 × 200 and 3333 × 403 (model_unpriced)", statuses)
	}
	s.WaitMetric("tokenmeter_requests_total", labels("model", "unpriced", "outcome", "denied"), 3333)
	s.WaitMetric("tokenmeter_requests_total", labels("model", "unpriced", "outcome", "ok"), 3333)
	s.WaitMetric("tokenmeter_requests_total", labels("model", "gpt-4o-mini", "outcome", "ok"), 3334)
	after := scrapeText(t, s)
	added := seriesIn(after) - seriesIn(before)
	t.Logf("%d requests: %d series before, %d after (+%d); /metrics %d bytes before, %d after",
		n, seriesIn(before), seriesIn(after), added, len(before), len(after))
	// The bound, from the caps: 100 projects × at most 3 series (input and
	// output tokens, cost) plus the "other" ones, 51 keys × 5 budget gauges
	// and the folded count, and the fixed families that appear with the
	// first request (latency histograms, outcomes): about 650 at worst.
	// Before the caps, the same requests added 63,316.
	if added > 700 {
		t.Errorf("%d series added by %d hostile requests, want at most 700", added, n)
	}
	// Users appear only as the per-user budget's first 50 keys.
	if got := strings.Count(after, `tokenmeter_budget_spent{budget="per-user",key="user=hostile-user-`); got != 50 {
		t.Errorf("%d users in the per-user budget's gauges, want 50", got)
	}
	for _, bad := range []string{"hostile-model", `user="`, "hostile-project-9999"} {
		if strings.Contains(after, bad) {
			t.Errorf("/metrics holds %q", bad)
		}
	}
	fams := s.Metrics()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		// Every request has a project never seen: of the 6,667 let through,
		// all but the first 100 fold; the refused ones take no slot.
		{"tokenmeter_metric_label_overflow_total", labels("label", "project"), 6667 - 100},
		{"tokenmeter_metric_label_overflow_total", labels("label", "team"), 0},
		{"tokenmeter_metric_label_overflow_total", labels("label", "label_set"), 0},
		{"tokenmeter_unpriced_requests_total", labels("provider", "openai", "outcome", "denied"), 3333},
		{"tokenmeter_unpriced_requests_total", labels("provider", "openai", "outcome", "ok"), 3333},
		{"tokenmeter_denied_total", labels("budget", "paying"), 3333},
	} {
		if got, ok := testbed.Value(fams, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// The per-user budget: 50 keys and "other", whatever the store holds.
	// The paying budget has no key: every request it matched was refused
	// before it held anything.
	if got := len(fams["tokenmeter_budget_spent"].GetMetric()); got != 50+1 {
		t.Errorf("%d tokenmeter_budget_spent series, want 51", got)
	}
	if got, _ := testbed.Value(fams, "tokenmeter_budget_keys_folded", labels("budget", "per-user")); got < n/3 {
		t.Errorf("per-user budget folded %v keys, want at least %d", got, n/3)
	}
}

// The metrics section reaches the running server: user turned on with a cap
// of 10 exports 10 users and folds the other 20.
func TestMetricsSectionTurnsUserOn(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: "metrics:\n  dimensions:\n    user: {enabled: true, max_values: 10}\n"})
	statuses := hostile(t, s, 30, 4, func(i int) (string, map[string]string) {
		return "gpt-4o-mini", map[string]string{"x-tokenmeter-project": "p", "x-tokenmeter-user": fmt.Sprint("u", i)}
	})
	if statuses[200] != 30 {
		t.Fatalf("statuses %v", statuses)
	}
	s.WaitMetric("tokenmeter_metric_label_overflow_total", labels("label", "user"), 20)
	fams := s.Metrics()
	users := map[string]bool{}
	for _, m := range fams["tokenmeter_cost_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "user" {
				users[l.GetValue()] = true
			}
		}
	}
	if len(users) != 11 || !users["other"] {
		t.Fatalf("cost series by user: %v, want 10 users and other", users)
	}
}
