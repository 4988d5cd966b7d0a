package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var (
	windowStart = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	windowEnd   = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	alertAt     = time.Date(2026, 11, 17, 14, 3, 5, 0, time.UTC)
)

func sampleAlert() Alert {
	return Alert{
		Kind:        KindBudgetThreshold,
		Key:         "budget=team-a|key=project=demo|window=2026-11-01T00:00:00Z|threshold=80",
		Budget:      "team-a",
		CounterKey:  "project=demo",
		Threshold:   80,
		Spent:       "80.25",
		Limit:       "100",
		Unit:        "money",
		Currency:    "USD",
		WindowStart: windowStart,
		WindowEnd:   windowEnd,
		At:          alertAt,
		Message:     "Budget team-a for project=demo has used 80% of its monthly limit.",
	}
}

// sleeps records what the sender asked to wait, and never waits.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

// logBuffer is a goroutine-safe sink for a debug-level slog logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	var b logBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// request is what a test server saw.
type request struct {
	method string
	header http.Header
	body   []byte
}

// recorder is a test server that answers with a script of responses (the
// last one repeats) and records every request.
type recorder struct {
	mu       sync.Mutex
	script   []func(http.ResponseWriter)
	requests []request
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	n := len(rec.requests)
	rec.requests = append(rec.requests, request{r.Method, r.Header.Clone(), body})
	var respond func(http.ResponseWriter)
	if len(rec.script) > 0 {
		respond = rec.script[min(n, len(rec.script)-1)]
	}
	rec.mu.Unlock()
	if respond == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	respond(w)
}

func (rec *recorder) got() []request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.requests)
}

func status(code int, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// deliverOnce runs one synchronous delivery to the sender's only target: the
// retry logic without the queue, so tests need no waiting.
func deliverOnce(t *testing.T, s *Sender, a Alert) outcome {
	t.Helper()
	if len(s.targets) != 1 {
		t.Fatalf("%d targets, want 1", len(s.targets))
	}
	return s.deliver(context.Background(), s.targets[0], a, s.maxAttempts)
}

// runSender starts Run and returns a stop function that cancels it and waits
// for it to return (registered as cleanup too; calling it twice is fine).
func runSender(t *testing.T, s *Sender) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func TestBodyGolden(t *testing.T) {
	tests := []struct {
		format Format
		golden string
	}{
		{FormatJSON, "alert.json"},
		{FormatSlack, "slack.json"},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			rec := &recorder{}
			srv := serve(t, rec)
			s := New(Options{Targets: []Target{{Name: "t", URL: srv.URL + "/hook", Format: tt.format,
				Headers: map[string]string{"Authorization": "Bearer xyz", "User-Agent": "overridden"}}}})
			if got := deliverOnce(t, s, sampleAlert()); got != delivered {
				t.Fatalf("outcome %d, want delivered", got)
			}
			reqs := rec.got()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			for k, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "tokenmeter-webhook",
				"Authorization": "Bearer xyz"} {
				if got := r.header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if r.method != http.MethodPost {
				t.Errorf("method %s, want POST", r.method)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, r.body, "", "  "); err != nil {
					t.Fatal(err)
				}
				pretty.WriteByte('\n')
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The golden file is indented for review; the wire body is compact.
			var want bytes.Buffer
			if err := json.Compact(&want, golden); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.body, want.Bytes()) {
				t.Errorf("body\n got %s\nwant %s", r.body, want.Bytes())
			}
		})
	}
}

func TestJSONBodyOptionalFields(t *testing.T) {
	body, err := encode(FormatJSON, Alert{Kind: KindAnomaly, Message: "odd"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"threshold_percent", "window_start", "window_end", "at"} {
		if v, ok := got[k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
	if len(got) != 14 {
		t.Errorf("%d fields, want all 14 always present: %s", len(got), body)
	}
}

func TestSlackText(t *testing.T) {
	tests := []struct {
		name string
		a    Alert
		want string
	}{
		{"tokens threshold", Alert{Kind: KindBudgetThreshold, Budget: "b", CounterKey: "team=x", Threshold: 50,
			Spent: "500", Limit: "1000", Unit: "tokens"},
			"[tokenmeter] budget b (team=x): 50% of limit reached; spent 500 of 1000 tokens"},
		{"projected overrun", Alert{Kind: KindProjectedOverrun, Budget: "b", Spent: "3", Limit: "10", Unit: "money",
			Currency: "EUR", Message: "At this rate the limit is reached on 2026-11-20."},
			"[tokenmeter] budget b: projected to overrun its limit; spent 3 of 10 EUR — At this rate the limit is reached on 2026-11-20."},
		{"anomaly without budget", Alert{Kind: KindAnomaly, Message: "spend 12x the hourly mean"},
			"[tokenmeter] anomaly detected — spend 12x the hourly mean"},
		{"unknown kind", Alert{Kind: "custom", Budget: "b"}, "[tokenmeter] budget b: custom"},
		{"escaped and one line", Alert{Kind: KindAnomaly, Budget: "<!channel>", Message: "a & b\r\nc\nd"},
			"[tokenmeter] budget &lt;!channel&gt;: anomaly detected — a &amp; b c d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := slackText(tt.a); got != tt.want {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	now := time.Date(2026, 11, 17, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		script      []func(http.ResponseWriter)
		backoff     time.Duration
		attempts    int // want
		sleeps      []time.Duration
		outcome     outcome
		sent, fails uint64
	}{
		{"500 then success", []func(http.ResponseWriter){status(500), status(200)},
			0, 2, []time.Duration{time.Second}, delivered, 1, 0},
		{"429 honors Retry-After seconds", []func(http.ResponseWriter){status(429, "Retry-After", "7"), status(204)},
			0, 2, []time.Duration{7 * time.Second}, delivered, 1, 0},
		{"503 honors Retry-After date", []func(http.ResponseWriter){
			status(503, "Retry-After", now.Add(30*time.Second).Format(http.TimeFormat)), status(200)},
			0, 2, []time.Duration{30 * time.Second}, delivered, 1, 0},
		{"Retry-After capped", []func(http.ResponseWriter){status(429, "Retry-After", "3600"), status(200)},
			0, 2, []time.Duration{time.Minute}, delivered, 1, 0},
		{"unreadable Retry-After falls back to backoff", []func(http.ResponseWriter){
			status(429, "Retry-After", "soon"), status(200)},
			0, 2, []time.Duration{time.Second}, delivered, 1, 0},
		{"Retry-After ignored on 500", []func(http.ResponseWriter){status(500, "Retry-After", "7"), status(200)},
			0, 2, []time.Duration{time.Second}, delivered, 1, 0},
		{"400 is final", []func(http.ResponseWriter){status(400)},
			0, 1, nil, failed, 0, 1},
		{"redirect is not followed", []func(http.ResponseWriter){status(302, "Location", "/elsewhere")},
			0, 1, nil, failed, 0, 1},
		{"gives up after MaxAttempts", []func(http.ResponseWriter){status(500)},
			0, 5, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}, failed, 0, 1},
		{"first backoff capped too", []func(http.ResponseWriter){status(500), status(200)},
			5 * time.Minute, 2, []time.Duration{time.Minute}, delivered, 1, 0},
		{"backoff capped at a minute", []func(http.ResponseWriter){status(502)},
			20 * time.Second, 5, []time.Duration{20 * time.Second, 40 * time.Second, time.Minute, time.Minute}, failed, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{script: tt.script}
			srv := serve(t, rec)
			var sl sleeps
			log, _ := newLogger()
			s := New(Options{Targets: []Target{{Name: "t", URL: srv.URL}}, Backoff: tt.backoff,
				Sleep: sl.sleep, Logger: log, Now: func() time.Time { return now }})
			if got := deliverOnce(t, s, sampleAlert()); got != tt.outcome {
				t.Errorf("outcome %d, want %d", got, tt.outcome)
			}
			if got := len(rec.got()); got != tt.attempts {
				t.Errorf("%d attempts, want %d", got, tt.attempts)
			}
			if got := sl.got(); !slices.Equal(got, tt.sleeps) {
				t.Errorf("sleeps %v, want %v", got, tt.sleeps)
			}
			st := s.Stats()
			if st.Sent != tt.sent || st.Failed != tt.fails {
				t.Errorf("stats %+v, want sent %d failed %d", st, tt.sent, tt.fails)
			}
		})
	}
}

// hijack answers with raw bytes, or closes the connection, for responses no
// well-behaved server sends.
func hijack(raw string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err) // test server setup, not the code under test
		}
		buf.WriteString(raw)
		buf.Flush()
		conn.Close()
	}
}

func TestWeirdResponses(t *testing.T) {
	huge := func(w http.ResponseWriter) {
		w.WriteHeader(200)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 64 { // 4 MiB, far past the drain cap
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name     string
		respond  func(http.ResponseWriter)
		outcome  outcome
		attempts int
	}{
		{"huge body", huge, delivered, 1},
		{"garbage status line", hijack("HTTP/1.1 abc\r\n\r\n"), failed, 2},
		{"connection closed before answering", hijack(""), failed, 2},
		{"body cut short", hijack("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"), delivered, 1},
		{"status 599", status(599), failed, 2},
		{"status 299", status(299), delivered, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{script: []func(http.ResponseWriter){tt.respond}}
			srv := serve(t, rec)
			var sl sleeps
			log, _ := newLogger()
			s := New(Options{Targets: []Target{{Name: "t", URL: srv.URL}}, MaxAttempts: 2, Sleep: sl.sleep, Logger: log})
			if got := deliverOnce(t, s, sampleAlert()); got != tt.outcome {
				t.Errorf("outcome %d, want %d", got, tt.outcome)
			}
			if got := len(rec.got()); got != tt.attempts {
				t.Errorf("%d attempts, want %d", got, tt.attempts)
			}
		})
	}
}

func TestNetworkErrorRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now: connection refused
	var sl sleeps
	log, _ := newLogger()
	s := New(Options{Targets: []Target{{Name: "t", URL: url}}, MaxAttempts: 3, Sleep: sl.sleep, Logger: log})
	if got := deliverOnce(t, s, sampleAlert()); got != failed {
		t.Fatalf("outcome %d, want failed", got)
	}
	if got, want := sl.got(), []time.Duration{time.Second, 2 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("sleeps %v, want %v", got, want)
	}
	if st := s.Stats(); st.Failed != 1 {
		t.Errorf("stats %+v, want 1 failed", st)
	}
}

func TestSecretsNotLogged(t *testing.T) {
	const path, query, header = "/services/T000/B000/PATHSECRET", "token=QUERYSECRET", "Bearer HEADERSECRET"
	failing := serve(t, &recorder{script: []func(http.ResponseWriter){status(500)}})
	refused := httptest.NewServer(http.NotFoundHandler())
	refused.Close()
	log, logs := newLogger()
	var sl sleeps
	s := New(Options{
		Targets: []Target{
			{Name: "failing", URL: failing.URL + path + "?" + query, Headers: map[string]string{"Authorization": header}},
			{Name: "refused", URL: refused.URL + path + "?" + query, Headers: map[string]string{"Authorization": header}},
			{Name: "invalid", URL: "ftp://host" + path + "?" + query},
		},
		MaxAttempts: 2, Sleep: sl.sleep, Logger: log,
	})
	for _, tg := range s.targets {
		if got := s.deliver(context.Background(), tg, sampleAlert(), s.maxAttempts); got != failed {
			t.Errorf("%s: outcome %d, want failed", tg.Name, got)
		}
	}
	out := logs.String()
	for _, secret := range []string{"PATHSECRET", "QUERYSECRET", "HEADERSECRET", "/services/"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"target=failing", "status=500", "host=" + failing.URL, "target=refused",
		"webhook target skipped", "target=invalid"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestDedup(t *testing.T) {
	rec := &recorder{}
	srv := serve(t, rec)
	now := alertAt
	s := New(Options{Targets: []Target{{Name: "t", URL: srv.URL}}, Now: func() time.Time { return now }})
	a := sampleAlert()
	if !s.Send(a) {
		t.Fatal("first Send refused")
	}
	if s.Send(a) {
		t.Error("second Send of the same key accepted")
	}
	other := a
	other.Key += "|other"
	if !s.Send(other) {
		t.Error("Send of another key refused")
	}
	if st := s.Stats(); st.Deduplicated != 1 {
		t.Errorf("stats %+v, want 1 deduplicated", st)
	}
	// The key expires with its window: the next window's crossing is news.
	now = windowEnd
	if !s.Send(a) {
		t.Error("Send after the window ended refused")
	}
	// Run on an ended context only drains: every queued alert, once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx)
	if got := len(rec.got()); got != 3 {
		t.Errorf("%d deliveries, want 3", got)
	}
	if st := s.Stats(); st.Sent != 3 {
		t.Errorf("stats %+v, want 3 sent", st)
	}
}

func TestSeenKeys(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k := newSeenKeys(2)
	k.add("a", t0.Add(time.Hour))
	k.add("b", t0.Add(2*time.Hour))
	k.add("c", t0.Add(3*time.Hour)) // at the cap: evicts "a", the first to expire
	tests := []struct {
		key  string
		at   time.Time
		want bool
	}{
		{"a", t0, false},
		{"b", t0, true},
		{"c", t0, true},
		{"b", t0.Add(2 * time.Hour), false}, // expired at its expiry instant
		{"c", t0.Add(2 * time.Hour), true},
		{"c", t0.Add(3 * time.Hour), false},
	}
	for _, tt := range tests {
		if got := k.seen(tt.key, tt.at); got != tt.want {
			t.Errorf("seen(%s, %v) = %v, want %v", tt.key, tt.at, got, tt.want)
		}
	}
	if len(k.expires) != 0 || len(k.order) != 0 {
		t.Errorf("left %d keys, %d heap entries; want none", len(k.expires), len(k.order))
	}
}

// blocker is a target that holds every request until released.
type blocker struct {
	arrived chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{arrived: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.arrived <- struct{}{}
	select {
	case <-b.release:
	case <-r.Context().Done():
	}
}

func TestQueueFull(t *testing.T) {
	b := newBlocker()
	srv := serve(t, b)
	log, _ := newLogger()
	s := New(Options{Targets: []Target{{Name: "slow", URL: srv.URL}}, QueueSize: 1, Logger: log})
	stop := runSender(t, s)

	send := func(key string) bool {
		a := sampleAlert()
		a.Key = key
		return s.Send(a)
	}
	if !send("1") {
		t.Fatal("Send 1 refused")
	}
	<-b.arrived // the worker holds alert 1 in flight; the queue is empty
	if !send("2") {
		t.Fatal("Send 2 refused with room in the queue")
	}
	if send("3") {
		t.Fatal("Send 3 accepted with the queue full")
	}
	if st := s.Stats(); st.Dropped != 1 {
		t.Errorf("stats %+v, want 1 dropped", st)
	}
	// A dropped alert's key is not remembered: it can be offered again.
	if send("3") {
		t.Error("Send 3 accepted with the queue still full")
	}
	if st := s.Stats(); st.Dropped != 2 || st.Deduplicated != 0 {
		t.Errorf("stats %+v, want 2 dropped, 0 deduplicated", st)
	}

	close(b.release)
	stop()
	// Stats, not the server's count: stop may cut a delivery after the
	// server answered and before the client read it; the drain then sends
	// it again (at least once, never lost).
	if st := s.Stats(); st.Sent != 2 {
		t.Errorf("stats %+v, want 2 sent", st)
	}
	// After Run, Send drops rather than queueing for nobody.
	if send("4") {
		t.Error("Send after Run accepted")
	}
	if st := s.Stats(); st.Dropped != 3 {
		t.Errorf("stats %+v, want 3 dropped", st)
	}
}

func TestSlowTargetDoesNotHoldOthers(t *testing.T) {
	hung := newBlocker()
	hungSrv := serve(t, hung)
	got := make(chan []byte, 1)
	fast := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- body
	}))
	log, _ := newLogger()
	s := New(Options{Targets: []Target{{Name: "hung", URL: hungSrv.URL}, {Name: "fast", URL: fast.URL, Format: FormatSlack}},
		Logger: log})
	stop := runSender(t, s)
	if !s.Send(sampleAlert()) {
		t.Fatal("Send refused")
	}
	<-hung.arrived
	body := <-got // would hang (and the test time out) if "hung" held "fast" back
	if !bytes.Contains(body, []byte(`"text"`)) {
		t.Errorf("fast target got %s", body)
	}
	close(hung.release)
	stop()
	if st := s.Stats(); st.Sent != 2 {
		t.Errorf("stats %+v, want 2 sent", st)
	}
}

func TestDrainGivesOneAttempt(t *testing.T) {
	rec := &recorder{script: []func(http.ResponseWriter){status(500)}}
	srv := serve(t, rec)
	var sl sleeps
	log, _ := newLogger()
	s := New(Options{Targets: []Target{{Name: "t", URL: srv.URL}}, Sleep: sl.sleep, Logger: log})
	s.Send(sampleAlert())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx)
	if got := len(rec.got()); got != 1 {
		t.Errorf("%d attempts, want 1 while draining", got)
	}
	if len(sl.got()) != 0 {
		t.Errorf("slept %v while draining", sl.got())
	}
	if st := s.Stats(); st.Failed != 1 {
		t.Errorf("stats %+v, want 1 failed", st)
	}
}

func TestInterruptedDeliveryIsDrained(t *testing.T) {
	rec := &recorder{script: []func(http.ResponseWriter){status(500), status(200)}}
	srv := serve(t, rec)
	ctx, cancel := context.WithCancel(context.Background())
	// Shutdown arrives during the backoff after the first attempt.
	sleep := func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}
	log, _ := newLogger()
	s := New(Options{Targets: []Target{{Name: "t", URL: srv.URL}}, Sleep: sleep, Logger: log})
	s.Send(sampleAlert())
	s.Run(ctx)
	if got := len(rec.got()); got != 2 {
		t.Errorf("%d attempts, want 2 (one live, one in the drain)", got)
	}
	if st := s.Stats(); st.Sent != 1 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v, want 1 sent", st)
	}
}

func TestSendWithoutTargets(t *testing.T) {
	s := New(Options{})
	if s.Send(sampleAlert()) {
		t.Error("Send with no targets accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx) // returns
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"", FormatJSON, false},
		{"json", FormatJSON, false},
		{"slack", FormatSlack, false},
		{"Slack", "", true},
		{"teams", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseFormat(%q) = %q, %v", tt.in, got, err)
			}
			if err != nil && !errors.Is(err, ErrInvalidTarget) {
				t.Errorf("error %v does not wrap ErrInvalidTarget", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		target  Target
		wantErr string // substring; "" = valid
	}{
		{"https slack", Target{URL: "https://hooks.slack.com/services/T/B/x", Format: FormatSlack}, ""},
		{"http with port and auth header", Target{URL: "http://127.0.0.1:9/hook",
			Headers: map[string]string{"Authorization": "Bearer t"}}, ""},
		{"relative", Target{URL: "/hook"}, "scheme"},
		{"no host", Target{URL: "http:///hook"}, "host"},
		{"ftp", Target{URL: "ftp://example.com/x"}, "scheme"},
		{"empty", Target{}, "scheme"},
		{"unparsable", Target{URL: "http://h/%zzSECRET"}, "does not parse"},
		{"unknown format", Target{URL: "https://x", Format: "xml"}, "unknown format"},
		{"bad header name", Target{URL: "https://x", Headers: map[string]string{"X Bad": "v"}}, "header name"},
		{"header injection", Target{URL: "https://x", Headers: map[string]string{"X-A": "v\r\nX-B: SECRET"}}, "line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.target.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidTarget) {
				t.Errorf("error %v does not wrap ErrInvalidTarget", err)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error quotes a secret: %v", err)
			}
		})
	}
}
