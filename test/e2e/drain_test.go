package e2e

import (
	"bufio"
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenmeter/tokenmeter/internal/estimate"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// The drain test's timings, short through the config (shutdown.drain and
// shutdown.grace); the defaults are 5 s and 20 s.
const (
	testDrain = 3 * time.Second
	testGrace = 8 * time.Second
	// The long stream: 10 words, 500 ms between its 14 events (role, words,
	// finish, usage, [DONE]): 6.5 s, of which more than 5 s (the fixed grace
	// tokenmeter had before) come after the SIGTERM.
	longWords, chunkDelayMs = 10, 500
)

// A rolling update's SIGTERM (docs/deploy.md, "Rolling updates"), through
// the real binary and Envoy: readiness fails at once (/readyz and gRPC
// health); a request that arrives during the drain is served and metered;
// after the drain a new request is refused; a stream longer than 5 s that
// was in flight at the SIGTERM runs to its end and is recorded exactly; one
// still open when the grace ends is cut, recorded partial, and the process
// exits then.
func TestSIGTERMDrainsThenStops(t *testing.T) {
	s := testbed.New(t, testbed.Options{Bin: bin, Extra: "shutdown: {drain: 3s, grace: 8s}"})
	prompt := "Tell me everything, slowly."
	long := openStream(t, s, "long", prompt, longWords, map[string]string{"x-mock-prompt-tokens": "1000"})
	cut := openStream(t, s, "cut", prompt, 100, nil) // 50 s: far past drain and grace
	defer cut.cancel()

	sigterm := time.Now()
	if err := s.TM.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	checkNotReady(t, s)
	if time.Since(sigterm) >= testDrain {
		t.Fatalf("readiness took %v to fail, past the drain", time.Since(sigterm))
	}
	// Still served during the drain, and metered.
	resp := s.Post(chatBody, map[string]string{"x-tokenmeter-project": "draining",
		"x-mock-prompt-tokens": "100", "x-mock-completion-tokens": "5"})
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("a request during the drain: %d %s", resp.StatusCode, b)
	}
	if time.Since(sigterm) >= testDrain {
		t.Fatalf("the request during the drain ended %v after the SIGTERM, past the drain: the test proves nothing", time.Since(sigterm))
	}

	// After the drain: refused. The gate fails closed, so Envoy answers 503.
	waitFor(t, func() bool { return strings.Contains(s.TM.Output(), "shutdown: drain over") }, "the drain's end logged")
	resp = s.Post(chatBody, map[string]string{"x-tokenmeter-project": "refused"})
	if b := testbed.ReadAll(t, resp); resp.StatusCode != 503 || !strings.Contains(string(b), "gate_unreachable") {
		t.Fatalf("a request after the drain: %d %s, want 503 gate_unreachable", resp.StatusCode, b)
	}

	// The long stream ends whole, more than 5 s after the SIGTERM.
	r := <-long.done
	if r.err != nil || !r.sawDone || r.words != longWords {
		t.Fatalf("the long stream: %d words, [DONE] %v, err %v", r.words, r.sawDone, r.err)
	}
	if d := r.at.Sub(sigterm); d <= 5*time.Second {
		t.Fatalf("the long stream ended %v after the SIGTERM; it must outlast the old fixed 5 s", d)
	}

	// The process exits when the grace is over, not before, and soon after.
	select {
	case <-s.TM.Exited():
	case <-time.After(testDrain + testGrace + 10*time.Second):
		t.Fatalf("still running %v after the SIGTERM", time.Since(sigterm))
	}
	if d := time.Since(sigterm); d < testDrain+testGrace-200*time.Millisecond || d > testDrain+testGrace+5*time.Second {
		t.Fatalf("exited %v after the SIGTERM, want about drain+grace = %v", d, testDrain+testGrace)
	}
	cutText := cut.textSoFar()
	cut.cancel()
	checkShutdownLog(t, s.TM.Output())
	checkDrainRecords(t, filepath.Join(s.Dir, "ledger"), prompt, cutText)
}

// checkNotReady waits (briefly: "at once") for /readyz to answer 503 and
// gRPC health to say NOT_SERVING.
func checkNotReady(t *testing.T, s *testbed.Stack) {
	t.Helper()
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + s.TM.Admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	}, "/readyz 503")
	conn, err := grpc.NewClient(s.TM.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("gRPC health during the drain: %v, %v; want NOT_SERVING", h.GetStatus(), err)
	}
}

// checkShutdownLog: each step logged, in order, with the ext_proc streams
// open then: the two observers at the end of the drain (a gate's stream
// ends once it has answered, but it may still be closing at the SIGTERM),
// the cut one's at the end of the grace.
func checkShutdownLog(t *testing.T, out string) {
	t.Helper()
	at := 0
	for _, step := range []string{
		`"msg":"shutdown: not ready; still serving new streams while load balancers notice","drain":"3s","grace":"8s","streams":`,
		`"msg":"shutdown: drain over; refusing new streams, waiting for those in flight","streams":2,"grace":"8s"`,
		`"msg":"shutdown: grace over; cutting the streams still open","streams":1`,
		`"msg":"shutdown: servers stopped; closing the ledger and the store"`,
	} {
		i := strings.Index(out[at:], step)
		if i < 0 {
			t.Fatalf("the log lacks, after what came before, %s\n%s", step, out)
		}
		at += i + len(step)
	}
}

// checkDrainRecords reads the ledger the stopped process left: the long
// stream and the request during the drain exactly, the cut stream partial.
func checkDrainRecords(t *testing.T, dir, prompt, cutText string) {
	t.Helper()
	db, err := usagedb.Open(usagedb.Options{Dir: dir, Dimensions: []string{"project", "team", "user"}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs := map[string]*ledger.Record{}
	now := time.Now()
	err = db.Export(context.Background(), now.Add(-time.Hour), now.Add(time.Hour), func(r *ledger.Record) error {
		recs[r.Dimensions.Get("project")] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("records of projects %v, want long, draining and cut (the refused request never reached tokenmeter)", recs)
	}
	// gpt-4o-mini: input 0.15, output 0.60 per million.
	for _, w := range []struct {
		project       string
		input, output int64
		cost          string
	}{
		{"long", 1000, longWords, "0.000156"},
		{"draining", 100, 5, "0.000018"},
	} {
		r := recs[w.project]
		if r.Outcome != ledger.OK || r.Usage.Get(usage.Input) != w.input || r.Usage.Get(usage.Output) != w.output ||
			r.Cost != money.MustParse(w.cost) || r.Currency != "USD" {
			t.Errorf("%s: outcome %s, input %d, output %d, cost %s %s; want ok, %d, %d, %s USD", w.project, r.Outcome,
				r.Usage.Get(usage.Input), r.Usage.Get(usage.Output), r.Cost, r.Currency, w.input, w.output, w.cost)
		}
	}
	// The cut stream: the prompt estimated from its text (BPE, exact), the
	// output from the text the observer had read when it was cut: at least
	// a word, at most what the client had by the exit.
	r := recs["cut"]
	in, _ := estimate.Tokens("gpt-4o-mini", []byte(prompt), int64(len(prompt)))
	most, _ := estimate.Tokens("gpt-4o-mini", []byte(cutText), int64(len(cutText)))
	if out := r.Usage.Get(usage.Output); r.Outcome != ledger.Partial || r.Reason != reason.StreamCut ||
		r.Usage.Get(usage.Input) != in || out < 1 || out > most {
		t.Errorf("cut: outcome %s, reason %s, input %d, output %d; want partial, stream_cut, %d, 1 to %d",
			r.Outcome, r.Reason, r.Usage.Get(usage.Input), out, in, most)
	}
}

// stream is a streamed chat completion being read.
type stream struct {
	first  chan struct{} // closed at the first event
	done   chan streamEnd
	cancel context.CancelFunc
	text   chan string // the text so far, on request
}

type streamEnd struct {
	words   int
	sawDone bool
	err     error
	at      time.Time
}

// openStream starts a streamed request of words words, chunkDelayMs apart,
// reads it in the background, and returns once its first event arrived.
func openStream(t *testing.T, s *testbed.Stack, project, prompt string, words int, headers map[string]string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	body := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`
	req, _ := http.NewRequestWithContext(ctx, "POST", s.Proxy.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-tokenmeter-project", project)
	req.Header.Set("x-mock-chunk-delay-ms", strconv.Itoa(chunkDelayMs))
	req.Header.Set("x-mock-completion-tokens", strconv.Itoa(words))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("%s: status %d: %s", project, resp.StatusCode, testbed.ReadAll(t, resp))
	}
	st := &stream{first: make(chan struct{}), done: make(chan streamEnd, 1), cancel: cancel, text: make(chan string)}
	go st.read(resp)
	select {
	case <-st.first:
	case end := <-st.done:
		cancel()
		t.Fatalf("%s: ended before its first event: %+v", project, end)
	}
	return st
}

func (st *stream) read(resp *http.Response) {
	defer resp.Body.Close()
	lines := make(chan string)
	errc := make(chan error, 1)
	go func() {
		rd := bufio.NewReader(resp.Body)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				errc <- err
				return
			}
			lines <- line
		}
	}()
	var end streamEnd
	var text strings.Builder
	var first sync.Once
	for {
		select {
		case st.text <- text.String():
		case err := <-errc:
			if err.Error() != "EOF" {
				end.err = err
			}
			end.at = time.Now()
			st.done <- end
			return
		case line := <-lines:
			data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
			if !ok {
				continue
			}
			first.Do(func() { close(st.first) })
			if data == "[DONE]" {
				end.sawDone = true
				continue
			}
			if c := gjson.Get(data, "choices.0.delta.content").String(); c != "" {
				end.words++
				text.WriteString(c)
			}
		}
	}
}

// textSoFar is the text the client has read.
func (st *stream) textSoFar() string {
	select {
	case s := <-st.text:
		return s
	case end := <-st.done:
		st.done <- end
		return ""
	}
}
