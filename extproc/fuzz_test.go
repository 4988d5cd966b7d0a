package extproc

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
)

// fuzzConfig puts every fuzzed request under budgets of each unit, so that
// every admitted request holds a reservation the fuzzer can check is
// released or settled; "capped" can be exhausted before the request (the
// precheck's deny), and a large estimate is refused by "spend".
const fuzzConfig = `catalog: {files: [testdata/prices.yaml]}
budgets:
  - {name: spend, limit: {money: "5"}, window: day}
  - {name: tokens, limit: {tokens: 1000000}, window: day}
  - {name: inflight, limit: {concurrent: 1}}
  - {name: capped, match: {project: capped}, limit: {requests: 1}, window: day}
`

// fuzzBed is FuzzProcess's server, built once per fuzz process: parsing the
// configuration (the built-in catalog) and opening a store took tens of
// milliseconds an exec, which held the fuzzer to about 10 execs a second.
// Each exec starts from an empty store, an empty sink and a clock a minute
// on, so that no state leaks from one exec into the next (the prompt table
// forgets what is older than 10 s).
type fuzzBed struct {
	srv   *Server
	sink  *fakeSink
	store *fakeStore
	clock atomic.Int64 // Unix nanoseconds
}

var (
	fuzzBedOnce sync.Once
	fuzzBedErr  error
	theFuzzBed  *fuzzBed
)

func newFuzzBed(t *testing.T) *fuzzBed {
	t.Helper()
	fuzzBedOnce.Do(func() {
		cfg, err := config.Parse("fuzz.yaml", []byte(fuzzConfig))
		if err != nil {
			fuzzBedErr = err
			return
		}
		b := &fuzzBed{sink: &fakeSink{}}
		b.clock.Store(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).UnixNano())
		b.store = newFakeStore(b.now)
		obs := &fakeObserver{parse: map[string]int{}, phases: map[string]int{}}
		log := slog.New(slog.DiscardHandler)
		b.srv = NewServer(NewSnapshot(cfg, b.store, b.now), b.sink, obs, log, b.now)
		theFuzzBed = b
	})
	if fuzzBedErr != nil {
		t.Fatal(fuzzBedErr)
	}
	b := theFuzzBed
	b.clock.Add(int64(time.Minute))
	b.store.clear()
	b.sink.mu.Lock()
	b.sink.recs = b.sink.recs[:0]
	b.sink.mu.Unlock()
	return b
}

func (b *fuzzBed) now() time.Time { return time.Unix(0, b.clock.Load()).UTC() }

// Fuzz modes, from FuzzProcess's mode byte.
const (
	fuzzSplit    = 1 << 0 // a gate and an observer (handoff.go), else one inline filter
	fuzzExhaust  = 1 << 1 // spend budget "capped" before the request
	fuzzCanceled = 1 << 2 // the streams end cancelled (the client left), else at EOF
	// fuzzNoObserver: the observer never comes (its cluster is down); the
	// gate's sweeper must settle and record the request.
	fuzzNoObserver = 1 << 3
)

// fuzzMessages builds the messages order names, by its value mod 4: 0
// request headers, 1 request body (a chunk that does not end the body when
// bit 2 is set), 2 response headers, 3 response body. The last message ends
// the stream.
func fuzzMessages(order []byte, project, reqB, respB, ctype, status string) []*extprocv3.ProcessingRequest {
	var msgs []*extprocv3.ProcessingRequest
	for i, o := range order {
		eos := i == len(order)-1
		switch o % 4 {
		case 0:
			msgs = append(msgs, headers(eos, ":path", "/v1/chat/completions", ":method", "POST", "content-length", status, "x-tokenmeter-project", project))
		case 1:
			msgs = append(msgs, chunk(reqB, eos || o&4 == 0))
		case 2:
			msgs = append(msgs, respHeaders(eos, ":status", status, "content-type", ctype, "content-length", status))
		case 3:
			msgs = append(msgs, respBody(respB, eos))
		}
	}
	return msgs
}

// FuzzProcess feeds arbitrary message sequences and bodies through the
// exchange, inline or as a gate and its observer: nothing that arrives from
// Envoy may panic the server; every stream that carried a message yields
// exactly one record (Envoy opens a stream with its first message; one
// without is no request), in the outcome vocabulary; every reservation is
// settled or released by the time the streams end; every answer marshals.
func FuzzProcess(f *testing.F) {
	f.Add(byte(0), []byte{0, 1, 2, 3, 3}, "p", `{"model":"gpt-4o-mini","stream":true}`, "data: {\"usage\":{\"prompt_tokens\":1}}\n\n", "text/event-stream", "200")
	f.Add(byte(0), []byte{2, 0, 3, 1}, "", `{`, `{"usage":`, "application/json", "abc")
	f.Add(byte(0), []byte{0, 0, 1, 1, 2, 2}, "", `null`, "\x00\xff", "", "-1")
	f.Add(byte(0), []byte{0, 1, 2, 3}, "p", "{\"model\":\"a\xffb\"}", "{\"model\":\"\xc3\",\"usage\":{\"prompt_tokens\":1}}", "application/json", "200")
	f.Add(byte(fuzzSplit), []byte{0, 1, 2, 3}, "p", `{"model":"gpt-4o-mini","max_tokens":10,"messages":[]}`, jsonResp, "application/json", "200")
	f.Add(byte(fuzzSplit|fuzzCanceled), []byte{0, 5, 1, 2, 3}, "p", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		`data: {"model":"gpt-4o-mini","choices":[{"delta":{"content":"abcdefgh"}}]}`+"\n\n", "text/event-stream", "200")
	f.Add(byte(fuzzExhaust), []byte{0, 1, 2, 3}, "capped", `{"model":"gpt-4o-mini","messages":[]}`, jsonResp, "application/json", "200")
	f.Add(byte(fuzzSplit|fuzzNoObserver), []byte{0, 1, 2, 3}, "p", `{"model":"gpt-4o-mini","max_tokens":10,"messages":[]}`, jsonResp, "application/json", "200")
	f.Add(byte(fuzzSplit|fuzzExhaust), []byte{0, 1, 2, 3}, "capped", `{"model":"gpt-4o-mini","messages":[]}`, jsonResp, "application/json", "200")
	f.Add(byte(0), []byte{0, 1, 2, 3}, "p", `{"model":"gpt-4o-mini","max_tokens":100000000,"messages":[]}`, jsonResp, "application/json", "200")
	f.Fuzz(func(t *testing.T, mode byte, order []byte, project, reqB, respB, ctype, status string) {
		b := newFuzzBed(t)
		if mode&fuzzExhaust != 0 {
			b.exhaust(t)
		}
		end := io.EOF
		if mode&fuzzCanceled != 0 {
			end = context.Canceled
		}
		msgs := fuzzMessages(order, project, reqB, respB, ctype, status)
		var sent []*extprocv3.ProcessingResponse
		var streams int // requests that reached tokenmeter: 0 or 1
		if mode&fuzzSplit != 0 {
			sent, streams = b.split(msgs, end, mode&fuzzNoObserver == 0)
		} else {
			fs := &fakeStream{ctx: context.Background(), in: msgs, err: end}
			b.srv.Process(fs)
			sent, streams = fs.sent, min(len(msgs), 1)
		}
		// A handoff no observer claimed is settled by the gate's sweeper
		// (awaiting.go); it runs here, on the bed's clock, rather than in
		// its goroutine in the middle of a later exec.
		b.srv.sweep(context.Background(), b.now().Add(time.Hour))
		b.check(t, streams, sent)
	})
}

// exhaust spends budget "capped" with one ordinary request.
func (b *fuzzBed) exhaust(t *testing.T) {
	fs := &fakeStream{ctx: context.Background(), err: io.EOF, in: []*extprocv3.ProcessingRequest{
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "capped"),
		reqBody(`{"model":"gpt-4o-mini","messages":[]}`),
		respHeaders(false, ":status", "200", "content-type", "application/json"),
		respBody(jsonResp, true),
	}}
	b.srv.Process(fs)
	b.sink.mu.Lock()
	defer b.sink.mu.Unlock()
	if len(b.sink.recs) != 1 || b.sink.recs[0].Outcome != ledger.OK {
		t.Fatalf("the request that spends budget capped: records %+v", b.sink.recs)
	}
	b.sink.recs = b.sink.recs[:0]
}

// split plays msgs as Envoy's two filters see them: the request's messages
// to the gate, then, when the gate handed the request off, the response's
// to the observer, after the request headers that open its stream.
func (b *fuzzBed) split(msgs []*extprocv3.ProcessingRequest, end error, observer bool) ([]*extprocv3.ProcessingResponse, int) {
	var gateMsgs, obsMsgs []*extprocv3.ProcessingRequest
	for _, m := range msgs {
		switch m.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders, *extprocv3.ProcessingRequest_RequestBody:
			gateMsgs = append(gateMsgs, m)
		default:
			obsMsgs = append(obsMsgs, m)
		}
	}
	if len(gateMsgs) == 0 {
		// Envoy opens the gate's stream at the request headers: a response
		// alone never reaches tokenmeter.
		return nil, 0
	}
	gateMsgs[0].ProtocolConfig = gateConfig
	gate := &fakeStream{ctx: context.Background(), in: gateMsgs, err: end}
	b.srv.Process(gate)
	var h *structpb.Struct
	for _, r := range gate.sent {
		if v := r.GetDynamicMetadata().GetFields()[HandoffNamespace].GetStructValue(); v != nil {
			h = v
		}
	}
	if h == nil || !observer {
		return gate.sent, 1
	}
	obs := &fakeStream{ctx: context.Background(), err: end,
		in: asObserver(h, append([]*extprocv3.ProcessingRequest{headers(false, ":path", "/v1/chat/completions")}, obsMsgs...)...)}
	b.srv.Process(obs)
	return append(gate.sent, obs.sent...), 1
}

// check holds the invariants of one request; n is 1 when it reached
// tokenmeter, 0 when Envoy sent no message.
func (b *fuzzBed) check(t *testing.T, n int, sent []*extprocv3.ProcessingResponse) {
	b.sink.mu.Lock()
	recs := b.sink.recs
	b.sink.mu.Unlock()
	if len(recs) != n {
		t.Fatalf("%d records for %d request", len(recs), n)
	}
	if leases, reserved := b.store.held(); leases != 0 || reserved != 0 {
		t.Fatalf("%d leases still held, %d reserved, after the request ended", leases, reserved)
	}
	if b.store.badSettle != 0 {
		t.Fatalf("%d settles named other holds than their reservation's", b.store.badSettle)
	}
	// Every answer must reach Envoy: a response that cannot be marshalled
	// (say, invalid UTF-8 in metadata) would fail the stream.
	for _, r := range sent {
		if _, err := proto.Marshal(r); err != nil {
			t.Fatalf("response does not marshal: %v", err)
		}
	}
	if n == 0 {
		return
	}
	r := recs[0]
	if !slices.Contains(ledger.Outcomes[:], r.Outcome) {
		t.Fatalf("outcome %q is not in the vocabulary", r.Outcome)
	}
	for _, v := range []string{r.Model, r.ResponseModel, string(r.Reason)} {
		if !utf8.ValidString(v) {
			t.Fatalf("record holds invalid UTF-8 %q", v)
		}
	}
	if r.Cost < 0 {
		t.Fatalf("negative cost %s", r.Cost)
	}
}

// FuzzProcess's lease check can fail: a gate whose observer never comes
// leaves its reservation held until the sweeper settles it at the observer
// deadline, and the bed sees it; with the observer, the same request holds
// nothing.
func TestFuzzBedSeesAHeldReservation(t *testing.T) {
	body := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[]}`
	msgs := func() []*extprocv3.ProcessingRequest {
		return fuzzMessages([]byte{0, 1, 2, 3}, "p", body, jsonResp, "application/json", "200")
	}
	b := newFuzzBed(t)
	gate := &fakeStream{ctx: context.Background(), in: asGate(msgs()[:2]...), err: io.EOF}
	b.srv.Process(gate)
	// spend, tokens and inflight: one hold each.
	if leases, reserved := b.store.held(); leases != 1 || reserved == 0 || b.store.reserves != 1 {
		t.Fatalf("gate alone: %d leases, %d reserved, %d reserves; want 1 lease held", leases, reserved, b.store.reserves)
	}
	b.srv.sweep(context.Background(), b.now().Add(time.Hour))
	if leases, reserved := b.store.held(); leases != 0 || reserved != 0 || len(b.sink.recs) != 1 || b.sink.recs[0].Outcome != ledger.Unobserved {
		t.Fatalf("gate alone, swept: %d leases, %d reserved, records %+v", leases, reserved, b.sink.recs)
	}
	b = newFuzzBed(t)
	if _, n := b.split(msgs(), io.EOF, true); n != 1 {
		t.Fatalf("split saw %d requests", n)
	}
	if leases, reserved := b.store.held(); leases != 0 || reserved != 0 || b.store.reserves != 1 || b.store.badSettle != 0 || len(b.sink.recs) != 1 || b.sink.recs[0].Outcome != ledger.OK {
		t.Fatalf("gate and observer: %d leases, %d reserved, %d reserves, records %+v", leases, reserved, b.store.reserves, b.sink.recs)
	}
}

// Every Fuzz function in the tree is run by make fuzz-smoke and fuzz-long:
// a target missing from the Makefile's FUZZ_TARGETS would never run.
func TestEveryFuzzTargetIsRun(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FUZZ_TARGETS \?=((?:.*\\\n)*.*)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no FUZZ_TARGETS in the Makefile")
	}
	listed := map[string]bool{}
	for _, f := range strings.Fields(strings.ReplaceAll(string(m[1]), "\\\n", " ")) {
		listed[f] = true
	}
	fuzzFunc := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(f \*testing\.F\)`)
	found := map[string]bool{}
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir // .tools, .fuzz, .git
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range fuzzFunc.FindAllSubmatch(src, -1) {
			found["./"+filepath.ToSlash(filepath.Dir(strings.TrimPrefix(path, "../")))+"/:"+string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for f := range found {
		if !listed[f] {
			t.Errorf("%s is not in the Makefile's FUZZ_TARGETS", f)
		}
	}
	for f := range listed {
		if !found[f] {
			t.Errorf("FUZZ_TARGETS lists %s, which does not exist", f)
		}
	}
	if len(found) < 30 {
		t.Fatalf("found only %d fuzz targets: %v", len(found), found)
	}
}
