package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/tokenmeter/tokenmeter/internal/cloudevents"
	"github.com/tokenmeter/tokenmeter/internal/cloudevents/cetest"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// Two chat requests through the real Envoy, with the real binary sending
// its records as CloudEvents (ledger.cloudevents) to an in-process
// receiver: two events, decoded by the CloudEvents SDK, each with its
// request's id, its project as subject, and the exact tokens and cost.
func TestCloudEventsOfTwoRequests(t *testing.T) {
	rcv := cetest.Start(t)
	t.Setenv("TOKENMETER_E2E_CE_AUTH", "Bearer om-e2e")
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: fmt.Sprintf(`ledger:
  dir: %q
  cloudevents:
    url: %q
    headers_env: {Authorization: TOKENMETER_E2E_CE_AUTH}
    subject: project
    batch_size: 10
    flush_interval: 100ms
`, filepath.Join(t.TempDir(), "ledger"), rcv.URL)})

	wants := []struct {
		project, team string
		tokens        map[string]int64
		cost          string
	}{
		{"alpha", "search", map[string]int64{"input": 1000, "cache_read": 200, "output": 50, "reasoning": 30, "total": 1280}, "0.000213"},
		{"beta", "ads", map[string]int64{"input": 300, "cache_read": 0, "output": 20, "reasoning": 0, "total": 320}, "0.000057"},
	}
	headers := []map[string]string{
		{"x-mock-prompt-tokens": "1200", "x-mock-cached-tokens": "200", "x-mock-completion-tokens": "50", "x-mock-reasoning-tokens": "30"},
		{"x-mock-prompt-tokens": "300", "x-mock-completion-tokens": "20"},
	}
	start := time.Now()
	for i, w := range wants {
		h := headers[i]
		h["x-tokenmeter-project"], h["x-tokenmeter-team"], h["x-tokenmeter-user"] = w.project, w.team, "ann"
		resp := s.Post(chatBody, h)
		if got := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, got)
		}
	}
	events := rcv.WaitEvents(t, 2, 10*time.Second)
	s.WaitMetric("tokenmeter_cloudevents_events_total", labels("result", "sent"), 2)
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	slices.SortFunc(events, func(a, b event.Event) int {
		if a.Subject() < b.Subject() {
			return -1
		}
		return 1
	})
	if events[0].ID() == "" || events[0].ID() == events[1].ID() {
		t.Errorf("ids %q and %q: want two distinct request ids", events[0].ID(), events[1].ID())
	}
	for i, w := range wants {
		checkEvent(t, events[i], w.project, w.team, w.cost, w.tokens, start)
	}
	for _, h := range rcv.Headers() {
		if h.Get("Authorization") != "Bearer om-e2e" || h.Get("Content-Type") != cloudevents.ContentTypeBatch {
			t.Errorf("request headers %v", h)
		}
	}
	if p := rcv.Problems(); len(p) > 0 {
		t.Errorf("the receiver could not read: %v", p)
	}
}

// checkEvent holds one event to its request: attributes, exact tokens and
// exact cost.
func checkEvent(t *testing.T, e event.Event, project, team, cost string, tokens map[string]int64, start time.Time) {
	t.Helper()
	if e.Subject() != project || e.Source() != "tokenmeter" || e.Type() != "tokenmeter.request" ||
		e.Time().Before(start.Add(-time.Second)) || e.Time().After(time.Now()) {
		t.Errorf("%s: subject %q source %q type %q time %v", project, e.Subject(), e.Source(), e.Type(), e.Time())
	}
	var d cloudevents.Data
	if err := e.DataAs(&d); err != nil {
		t.Fatal(err)
	}
	for class, n := range tokens {
		if d.Tokens[class] != n {
			t.Errorf("%s: %s tokens %d, want %d", project, class, d.Tokens[class], n)
		}
	}
	if d.Cost != cost || d.ListCost != cost || d.Currency != "USD" || !d.Priced || !d.Charged ||
		d.Outcome != "ok" || d.Model != "gpt-4o-mini" || d.Provider != "openai" || d.Dimensions["team"] != team {
		t.Errorf("%s: data %+v", project, d)
	}
}

// Records still queued when tokenmeter stops (their batch waits for a
// flush_interval that never comes) are sent by the graceful stop, after the
// last stream ended.
func TestCloudEventsSentAtShutdown(t *testing.T) {
	rcv := cetest.Start(t)
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: fmt.Sprintf(`ledger:
  dir: %q
  cloudevents: {url: %q, flush_interval: 1h}
`, filepath.Join(t.TempDir(), "ledger"), rcv.URL)})
	for _, project := range []string{"alpha", "beta", "gamma"} {
		resp := s.Post(chatBody, map[string]string{"x-tokenmeter-project": project})
		if got := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
	}
	s.WaitMetric("tokenmeter_cloudevents_queue_length", nil, 3)
	if n := rcv.Requests(); n != 0 {
		t.Fatalf("%d requests before the stop, want none (flush_interval 1h)", n)
	}
	s.TM.Stop(os.Interrupt)
	events := rcv.Events()
	if len(events) != 3 || rcv.Requests() != 1 {
		t.Fatalf("%d events in %d requests after the stop, want 3 in one batch; tokenmeter said:\n%s",
			len(events), rcv.Requests(), s.TM.Output())
	}
}
