package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/ratelimit/redisstore/redistest"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// Three tokenmeter replicas, each behind its own Envoy, share one Redis: 200
// concurrent requests spread over them spend at most the budget, not three
// times it.
func TestReplicasShareOneBudget(t *testing.T) {
	const (
		requests, workers = 200, 24
		cost              = "0.000021" // 100 prompt × 0.15 + 10 output × 0.60, per million
	)
	s := testbed.New(t, testbed.Options{Bin: bin, Redis: redistest.Start(t, false), Budgets: `
  - {name: shared, match: {project: shared}, limit: {money: "0.001"}, window: day}`})
	r1, r2 := s.AddReplica(), s.AddReplica()
	proxies := []*envoy.Proxy{s.Proxy, r1.Proxy, r2.Proxy}
	// The prompt is long enough that its bytes/4 estimate (110 tokens) covers
	// the 100 tokens the mock reports: the reservation is never short.
	body := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("a", 440) + `"}]}`
	var next atomic.Int64
	var admitted [3]atomic.Int64
	var denied atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= requests {
					return
				}
				p := int(i % 3)
				req, _ := http.NewRequest("POST", proxies[p].URL+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("content-type", "application/json")
				req.Header.Set("x-tokenmeter-project", "shared")
				req.Header.Set("x-mock-prompt-tokens", "100")
				req.Header.Set("x-mock-completion-tokens", "10")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					admitted[p].Add(1)
				case 429:
					denied.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	total := admitted[0].Load() + admitted[1].Load() + admitted[2].Load()
	var sum money.Sum
	sum.AddEach(total, money.MustParse(cost))
	spent, err := sum.Amount()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("admitted %d (per replica %d/%d/%d), denied %d: spent %s of 0.001",
		total, admitted[0].Load(), admitted[1].Load(), admitted[2].Load(), denied.Load(), spent)
	if total+denied.Load() != requests {
		t.Fatalf("%d answered, want %d", total+denied.Load(), requests)
	}
	// 47 × 0.000021 = 0.000987 is the most that fits; the reservations of
	// requests in flight (0.0000225 each) can only make it fewer.
	if total > 47 || total < 30 {
		t.Fatalf("admitted %d, want between 30 and 47", total)
	}
	for i := range admitted {
		if admitted[i].Load() == 0 {
			t.Fatalf("replica %d admitted nothing: the test did not spread the load", i)
		}
	}
	// Every replica reads the same counter, equal to what was admitted.
	for _, admin := range []string{s.TM.Admin, r1.TM.Admin, r2.TM.Admin} {
		m := testbed.MetricsAt(t, admin)
		if v, _ := testbed.Value(m, "tokenmeter_budget_spent", labels("budget", "shared")); v != spent.Units() {
			t.Fatalf("counter at %s: %v, want %s", admin, v, spent)
		}
	}
}

// One Envoy balances its ext_proc streams over two replicas sharing Redis,
// so a request's gate and observer often run on different replicas: the
// observer settles the gate's reservation from the handoff alone. Every
// request is charged exactly once, nothing stays held, and every request is
// recorded once, by one replica or the other.
func TestGateAndObserverOnDifferentReplicas(t *testing.T) {
	const requests = 40
	s := testbed.New(t, testbed.Options{Bin: bin, Redis: redistest.Start(t, false), Budgets: `
  - {name: toks, match: {project: across}, limit: {tokens: 1000000}, window: day}`})
	r := s.AddReplica()
	p := s.SharedProxy(r)
	body := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	for i := 0; i < requests; i++ {
		resp := s.PostTo(p, body, map[string]string{"x-tokenmeter-project": "across", "x-mock-prompt-tokens": "100", "x-mock-completion-tokens": "10"})
		if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d %s", i, resp.StatusCode, b)
		}
	}
	key := labels("budget", "toks", "key", "project=across")
	s.WaitMetric("tokenmeter_budget_spent", key, requests*110)
	s.WaitMetric("tokenmeter_budget_reserved", key, 0)

	// Records: one per request, split over the replicas. Messages: the gates'
	// request bodies and the observers' response bodies land unevenly on
	// the two, which is what makes this a test of the handoff.
	var recorded float64
	var crossed bool
	for _, admin := range []string{s.TM.Admin, r.TM.Admin} {
		m := testbed.MetricsAt(t, admin)
		n, _ := testbed.Value(m, "tokenmeter_requests_total", labels("outcome", "ok"))
		recorded += n
		if phaseCount(m, "request_body") != phaseCount(m, "response_body") {
			crossed = true
		}
	}
	if recorded != requests {
		t.Fatalf("%v records over both replicas, want %d", recorded, requests)
	}
	if !crossed {
		t.Fatal("every request's gate and observer ran on the same replica: the test proved nothing")
	}
}

// phaseCount is how many ext_proc messages of phase a tokenmeter handled.
func phaseCount(m map[string]*dto.MetricFamily, phase string) uint64 {
	for _, s := range m["tokenmeter_extproc_duration_seconds"].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "phase" && l.GetValue() == phase {
				return s.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}
