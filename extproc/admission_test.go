package extproc

import (
	"context"
	"fmt"
	"github.com/tokenmeter/tokenmeter/internal/metering"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// A $0.01/day budget on project tight, gpt-4o at the built-in prices: any
// request that may write 4,096 output tokens ($0.04096) is refused.
const tightConfig = `catalog: {builtin: true}
budgets:
  - {name: tight, match: {project: tight}, limit: {money: "0.01"}, window: day}
`

// gateRequest plays one pipelined gate stream and returns its answers.
func gateRequest(t *testing.T, s *Server, project, body string) *fakeStream {
	t.Helper()
	return play(t, s, context.Canceled, asGate(
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", project),
		chunk(body, true))...)
}

func immediateStatus(fs *fakeStream) int {
	for _, r := range fs.sent {
		if ir := r.GetImmediateResponse(); ir != nil {
			return int(ir.GetStatus().GetCode())
		}
	}
	return 0
}

func spentReserved(t *testing.T, s *Server, budget string) (spent, reserved int64) {
	t.Helper()
	st, err := s.Snapshot().Limiter.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st {
		if b.Budget.Name == budget {
			spent += b.Counter.Spent
			reserved += b.Counter.Reserved
		}
	}
	return spent, reserved
}

// A body the gate cannot parse fully is never admitted more cheaply than a
// valid one: it is reserved on a worst case (one token per body byte,
// default_max_tokens of output), and when no model can be read the
// unpriced-model policy applies.
func TestMalformedBodiesCannotSkipAdmission(t *testing.T) {
	valid := `{"model":"gpt-4o","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]}`
	for _, tt := range []struct{ name, body string }{
		{"valid", valid},
		{"nan", `{"model":"gpt-4o","temperature":NaN,"messages":[{"role":"user","content":"hi"}]}`},
		{"infinity", `{"model":"gpt-4o","top_p":Infinity,"messages":[{"role":"user","content":"hi"}]}`},
		{"bom", "\ufeff" + valid},
		{"trailing_bytes", valid + `}}garbage`},
		{"truncated", valid[:40]},
		{"no_model", `{"messages":[{"role":"user","content":"hi"}]}`},
		{"not_json", `model=gpt-4o&prompt=hi`},
		{"empty", ``},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, sink, _ := serverOn(t, tightConfig, memStore(t))
			fs := gateRequest(t, s, "tight", tt.body)
			if st := immediateStatus(fs); st != 429 && st != 403 {
				t.Fatalf("status %d, want a refusal (429, or 403 for an unreadable model); answers %v", st, fs.sent)
			}
			if len(sink.recs) != 1 || sink.recs[0].Outcome != ledger.Denied {
				t.Fatalf("records %+v", sink.recs)
			}
			if spent, reserved := spentReserved(t, s, "tight"); spent != 0 || reserved != 0 {
				t.Fatalf("spent %d reserved %d", spent, reserved)
			}
		})
	}
}

// With no money budget in the way, an unreadable body passes through
// unchanged; the record says why and is never "ok at cost 0" for a model
// the catalog does not know.
func TestUnknownModelIsNeverFree(t *testing.T) {
	s, sink, _ := serverOn(t, tightConfig, memStore(t))
	gate := gateRequest(t, s, "free", `{"messages":[{"role":"user","content":"hi"}]}`)
	if immediateStatus(gate) != 0 {
		t.Fatalf("refused without a budget: %v", gate.sent)
	}
	play(t, s, context.Canceled, asObserver(handoffIn(t, gate), headers(false),
		respHeaders(false, ":status", "200", "content-type", "application/json"),
		respBody(`{"model":"mystery-model-9","usage":{"prompt_tokens":10,"completion_tokens":5}}`, true))...)
	if len(sink.recs) != 1 {
		t.Fatalf("%d records", len(sink.recs))
	}
	r := sink.recs[0]
	if r.Priced || r.Reason != reason.UnpricedModel || r.Cost != 0 || r.Usage.Get(usage.Input) != 10 {
		t.Fatalf("record %+v", r)
	}
}

// A handoff no observer claims is settled at its estimate and recorded
// unobserved when the deadline passes; an observer that comes after that
// records nothing more.
func TestUnobservedHandoffIsSettled(t *testing.T) {
	cfg := "catalog: {builtin: true}\nbudgets:\n  - {name: b, match: {project: p}, limit: {money: \"10\"}, window: day}\n"
	s, sink, _ := serverOn(t, cfg, memStore(t))
	gate := gateRequest(t, s, "p", `{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"12345678"}]}`)
	if _, reserved := spentReserved(t, s, "b"); reserved == 0 {
		t.Fatal("nothing reserved")
	}
	s.sweep(context.Background(), time.Now()) // before the deadline: nothing
	if len(sink.recs) != 0 {
		t.Fatalf("swept early: %+v", sink.recs)
	}
	s.sweep(context.Background(), time.Now().Add(11*time.Second))
	if len(sink.recs) != 1 {
		t.Fatalf("%d records", len(sink.recs))
	}
	r := sink.recs[0]
	// (8+3)/4 = 2 input tokens × $2.5/M + 100 × $10/M = 0.000005 + 0.001.
	if r.Outcome != ledger.Unobserved || r.Reason != reason.NoObserver || r.Cost != money.MustParse("0.001005") ||
		!r.Outcome.Charged() || r.EstimateMethod != metering.EstimateReservation {
		t.Fatalf("record %+v", r)
	}
	if spent, reserved := spentReserved(t, s, "b"); spent != int64(money.MustParse("0.001005")) || reserved != 0 {
		t.Fatalf("spent %d reserved %d", spent, reserved)
	}
	// The observer turns up after all: it must not record twice.
	play(t, s, context.Canceled, asObserver(handoffIn(t, gate), headers(false),
		respHeaders(false, ":status", "200", "content-type", "application/json"),
		respBody(jsonResp, true))...)
	if len(sink.recs) != 1 {
		t.Fatalf("%d records after a late observer", len(sink.recs))
	}
}

// Across replicas on one store the observer's claim and the gate's sweeper
// race for the handoff; exactly one of them records it.
func TestHandoffClaimedOnceAcrossReplicas(t *testing.T) {
	body := `{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"12345678"}]}`
	obsMsgs := func(gate *fakeStream) []*extprocv3.ProcessingRequest {
		return asObserver(handoffIn(t, gate), headers(false),
			respHeaders(false, ":status", "200", "content-type", "application/json"), respBody(jsonResp, true))
	}
	for _, observerFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("observer_first=%v", observerFirst), func(t *testing.T) {
			store := memStore(t)
			gateSrv, gateSink, _ := serverOn(t, tightConfig, store)
			obsSrv, obsSink, _ := serverOn(t, tightConfig, store)
			gate := gateRequest(t, gateSrv, "p", body)
			if observerFirst {
				play(t, obsSrv, context.Canceled, obsMsgs(gate)...)
				gateSrv.sweep(context.Background(), time.Now().Add(time.Minute))
			} else {
				gateSrv.sweep(context.Background(), time.Now().Add(time.Minute))
				play(t, obsSrv, context.Canceled, obsMsgs(gate)...)
			}
			n := len(gateSink.recs) + len(obsSink.recs)
			if n != 1 {
				t.Fatalf("%d records (gate's replica %d, observer's %d)", n, len(gateSink.recs), len(obsSink.recs))
			}
			if observerFirst != (len(obsSink.recs) == 1) {
				t.Fatalf("the wrong side recorded: gate's %+v, observer's %+v", gateSink.recs, obsSink.recs)
			}
		})
	}
}

// cancelOnSend is a stream Envoy cancels as tokenmeter's answer goes out:
// its message_timeout fired as the answer was in flight.
type cancelOnSend struct {
	*fakeStream
	cancel context.CancelFunc
}

func (c *cancelOnSend) Send(r *extprocv3.ProcessingResponse) error {
	c.cancel()
	return c.fakeStream.Send(r)
}

// cancelOnReserve is a store during whose reservation Envoy cancels the
// gate's stream: its message_timeout fired while tokenmeter decided.
type cancelOnReserve struct {
	ratelimit.Store
	cancel context.CancelFunc
}

func (c *cancelOnReserve) Reserve(ctx context.Context, l ratelimit.Lease, h []ratelimit.Hold) (ratelimit.ReserveResult, error) {
	c.cancel()
	return c.Store.Reserve(ctx, l, h)
}

// When Envoy stops waiting for the gate, the request holds nothing and is
// recorded once: a stream already cancelled reserves nothing; one cancelled
// while tokenmeter decided sends nothing, releases its hold and records a
// gate timeout, also for a refusal the client never saw. An answer that
// went out as Envoy cancelled cannot be told from one Envoy used (Envoy
// also closes a stream it is done with), so if no observer comes it is
// charged at its estimate, never guessed free.
func TestGateTimeout(t *testing.T) {
	body := `{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"12345678"}]}`
	cfg := "catalog: {builtin: true}\nbudgets:\n  - {name: b, match: {project: p}, limit: {money: \"10\"}, window: day}\n" +
		"  - {name: none, match: {project: none}, limit: {money: \"0.000001\"}, window: day}\n"
	gate := func(ctx context.Context, project string) *fakeStream {
		return &fakeStream{ctx: ctx, err: context.Canceled, in: asGate(
			headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", project),
			chunk(body, true))}
	}
	for _, tt := range []struct {
		name, project string
		when          string // cancelled: before, reserve, send
		outcome       ledger.Outcome
		reason        reason.Reason
		spent         int64
	}{
		{"cancelled_before_the_decision", "p", "before", ledger.GateTimeout, reason.StreamCancelled, 0},
		{"cancelled_while_deciding", "p", "reserve", ledger.GateTimeout, reason.AnswerLate, 0},
		{"refusal_nobody_saw", "none", "reserve", ledger.GateTimeout, reason.AnswerLate, 0},
		// 2 input tokens × $2.5/M + 100 × $10/M.
		{"cancelled_as_the_answer_went_out", "p", "send", ledger.Unobserved, reason.NoObserver, int64(money.MustParse("0.001005"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var store ratelimit.Store = memStore(t)
			if tt.when == "reserve" {
				store = &cancelOnReserve{Store: store, cancel: cancel}
			}
			s, sink, _ := serverOn(t, cfg, store)
			switch tt.when {
			case "before":
				cancel()
				_ = s.Process(gate(ctx, tt.project))
			case "reserve":
				_ = s.Process(gate(ctx, tt.project))
			case "send":
				_ = s.Process(&cancelOnSend{fakeStream: gate(ctx, tt.project), cancel: cancel})
			}
			s.sweep(context.Background(), time.Now().Add(time.Minute))
			if len(sink.recs) != 1 || sink.recs[0].Outcome != tt.outcome || sink.recs[0].Reason != tt.reason {
				t.Fatalf("records %+v", sink.recs)
			}
			if spent, reserved := spentReserved(t, s, "b"); spent != tt.spent || reserved != 0 {
				t.Fatalf("spent %d reserved %d", spent, reserved)
			}
		})
	}
}

// A decision that comes past the gate deadline is refused as overloaded,
// in the caller's dialect, and counted.
func TestGateDeadlineOverloaded(t *testing.T) {
	s, sink, obs := serverOn(t, "catalog: {builtin: true}\nextproc: {gate_deadline: 1ns}\n", memStore(t))
	fs := gateRequest(t, s, "p", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
	ir := fs.sent[len(fs.sent)-1].GetImmediateResponse()
	if ir.GetStatus().GetCode() != 503 || !strings.Contains(string(ir.GetBody()), `"code":"tokenmeter_overloaded"`) {
		t.Fatalf("answer %v", fs.sent)
	}
	if len(sink.recs) != 1 || sink.recs[0].Outcome != ledger.Denied || sink.recs[0].Reason != reason.Overloaded || obs.phases["overloaded"] != 1 {
		t.Fatalf("records %+v, observer %v", sink.recs, obs.phases)
	}
}

// A body whose content-length is over max_message_bytes is refused at the
// headers, before Envoy buffers a byte of it; a chunked one as soon as the
// held bytes pass the limit.
func TestTooLarge(t *testing.T) {
	cfg := "catalog: {builtin: true}\nextproc: {max_message_bytes: 1048576}\n"
	t.Run("content_length", func(t *testing.T) {
		s, sink, _ := serverOn(t, cfg, memStore(t))
		fs := play(t, s, context.Canceled, asGate(headers(false, ":path", "/v1/chat/completions", ":method", "POST",
			"content-length", "1048577"))...)
		if immediateStatus(fs) != 413 || len(sink.recs) != 1 || sink.recs[0].Reason != reason.RequestTooLarge {
			t.Fatalf("answers %v records %+v", fs.sent, sink.recs)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		s, sink, _ := serverOn(t, cfg, memStore(t))
		big := strings.Repeat("x", 600<<10)
		fs := play(t, s, context.Canceled, asGate(headers(false, ":path", "/v1/chat/completions", ":method", "POST"),
			chunk(big, false), chunk(big, false))...)
		if immediateStatus(fs) != 413 || len(sink.recs) != 1 || sink.recs[0].Reason != reason.RequestTooLarge {
			t.Fatalf("answers %d records %+v", len(fs.sent), sink.recs)
		}
	})
}

// Which outcomes carry a charge is the outcome's alone.
func TestOutcomeCharged(t *testing.T) {
	for _, o := range ledger.Outcomes {
		want := map[ledger.Outcome]bool{ledger.OK: true, ledger.Estimated: true, ledger.Partial: true,
			ledger.ProviderError: true, ledger.Unobserved: true}[o]
		if o.Charged() != want {
			t.Errorf("%s charged %v", o, o.Charged())
		}
	}
}

// observerDuringSend is a gate stream whose answer reaches Envoy, and the
// observer's claim reaches tokenmeter, before Send returns.
type observerDuringSend struct {
	*fakeStream
	t   *testing.T
	srv *Server
}

func (o *observerDuringSend) Send(r *extprocv3.ProcessingResponse) error {
	if h := r.GetDynamicMetadata().GetFields()[HandoffNamespace].GetStructValue(); h != nil {
		play(o.t, o.srv, context.Canceled, asObserver(h, headers(false),
			respHeaders(false, ":status", "200", "content-type", "application/json"), respBody(jsonResp, true))...)
	}
	return o.fakeStream.Send(r)
}

// The handoff is in the gate's table before its answer can reach the
// observer: an observer that claims it at once records it, and the sweeper
// finds nothing to settle (found as 7 unobserved records in 10,000 through
// Envoy when the table was filled after Send).
func TestObserverClaimsBeforeSendReturns(t *testing.T) {
	s, sink, _ := serverOn(t, tightConfig, memStore(t))
	fs := &fakeStream{ctx: context.Background(), err: context.Canceled, in: asGate(
		headers(false, ":path", "/v1/chat/completions", ":method", "POST", "x-tokenmeter-project", "p"),
		chunk(`{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, true))}
	_ = s.Process(&observerDuringSend{fakeStream: fs, t: t, srv: s})
	s.sweep(context.Background(), time.Now().Add(time.Minute))
	if len(sink.recs) != 1 || sink.recs[0].Outcome != ledger.OK {
		t.Fatalf("records %+v", sink.recs)
	}
}
