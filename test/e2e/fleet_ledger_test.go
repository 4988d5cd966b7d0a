package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
	"github.com/tokenmeter/tokenmeter/ratelimit/redisstore/redistest"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// Three tokenmeters on one Postgres ledger and one Redis, behind one Envoy
// that balances every ext_proc stream over them (a request's gate and its
// observer usually land on different replicas): concurrent requests of two
// projects, one of them capped by a shared budget. Each replica's statement
// for alpha equals the sum of the alpha requests the clients were answered
// 200, to the nano-unit; capped's refusals are counted, never billed; every
// request is in the ledger exactly once.
func TestThreeReplicasOneStatement(t *testing.T) {
	dsn := pgtest.StartServer(t).Database(t)
	t.Setenv("TOKENMETER_TEST_LEDGER_DSN", dsn)
	s := testbed.New(t, testbed.Options{Bin: bin, Redis: redistest.Start(t, false),
		Extra:   "ledger: {type: postgres, postgres: {dsn_env: TOKENMETER_TEST_LEDGER_DSN}}",
		Budgets: "  - {name: capped, match: {project: capped}, limit: {requests: 5}, window: month}\n"})
	r1, r2 := s.AddReplica(), s.AddReplica()
	proxy := s.SharedProxy(r1, r2)

	const requests, workers = 120, 8
	var mu sync.Mutex
	var want money.Amount // alpha's answered requests, at gpt-4o-mini's $0.15/M in, $0.60/M out
	var alpha, capped, refused int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				project, in, out := "alpha", 100+i*7, 10+i%23
				if i%4 == 3 {
					project = "capped"
				}
				req, _ := http.NewRequest("POST", proxy.URL+"/v1/chat/completions", strings.NewReader(chatBody))
				req.Header.Set("content-type", "application/json")
				req.Header.Set("x-tokenmeter-project", project)
				req.Header.Set("x-mock-prompt-tokens", fmt.Sprint(in))
				req.Header.Set("x-mock-completion-tokens", fmt.Sprint(out))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				switch {
				case resp.StatusCode == 200 && project == "alpha":
					alpha++
					want += money.Amount(int64(in)*150 + int64(out)*600) // nano-USD, exact
				case resp.StatusCode == 200:
					capped++
				case resp.StatusCode == 429 && project == "capped":
					refused++
				default:
					t.Errorf("request %d (%s): status %d", i, project, resp.StatusCode)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range requests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if t.Failed() || alpha != 90 || capped != 5 || refused != 25 {
		t.Fatalf("answered: alpha %d, capped %d, refused %d; want 90, 5, 25", alpha, capped, refused)
	}

	now := time.Now()
	for i, admin := range []string{s.TM.Admin, r1.TM.Admin, r2.TM.Admin} {
		st := waitStatement(t, admin, now, "alpha", alpha)
		if st.Total != want.String() || st.Requests != alpha || st.Denied != 0 {
			t.Fatalf("replica %d: alpha's statement: %d requests, %d denied, total %s; the clients were answered %d, total %s",
				i, st.Requests, st.Denied, st.Total, alpha, want)
		}
		c := waitStatement(t, admin, now, "capped", capped)
		if c.Requests != capped || c.Denied != refused {
			t.Fatalf("replica %d: capped's statement: %d served, %d denied; want %d, %d", i, c.Requests, c.Denied, capped, refused)
		}
	}
	t.Logf("120 requests over 3 replicas: alpha %d served, total %s USD exactly; capped %d served, %d denied", alpha, want, capped, refused)

	store, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, Dimensions: []string{"project", "team", "user"}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ids := map[string]bool{}
	err = store.Export(context.Background(), now.Add(-time.Hour), now.Add(time.Hour), func(rec *ledger.Record) error {
		if ids[rec.RequestID] {
			t.Errorf("record %s stored twice", rec.RequestID)
		}
		ids[rec.RequestID] = true
		return nil
	})
	if err != nil || len(ids) != requests {
		t.Fatalf("%d records in Postgres (%v), want %d", len(ids), err, requests)
	}
}

type fleetStatement struct {
	Requests, Denied int64
	Total            string
}

// waitStatement reads the month's statement for project value from one
// replica's admin API until it shows served requests (records are written
// after the answers).
func waitStatement(t *testing.T, admin string, now time.Time, value string, served int64) fleetStatement {
	t.Helper()
	url := fmt.Sprintf("http://%s/v1/usage/statement?month=%s&dimension=project&value=%s", admin, now.UTC().Format("2006-01"), value)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Statements []fleetStatement }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err == nil && len(body.Statements) == 1 && body.Statements[0].Requests == served {
			return body.Statements[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("statement for %s from %s: %+v (%v), want %d served", value, admin, body.Statements, err, served)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
