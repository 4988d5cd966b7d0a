package extproc

import (
	"context"
	"errors"
	"io"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"

	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/reason"
)

// A mode follows one ext_proc stream in one of the three roles a tokenmeter
// filter plays in Envoy: the gate and the observer of split mode
// (handoff.go), or the inline filter that sees both. The stream loop
// (Server.serve) is the same for all three; the request and response
// reading they share is the exchange's.
type mode interface {
	// process handles one message and returns its answers (none while an
	// answer is held for the body, never any for an observer) and the phase
	// to time ("" for none).
	process(ctx context.Context, req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, string)
	// sent says whether the answers went out; false: Envoy will never use
	// them (its stream was cancelled, or Send failed).
	sent(ctx context.Context, ok bool)
	// done reports that nothing tokenmeter needs will come on the stream.
	done() bool
	// ended is told the stream ended before done: eof when Envoy closed it
	// as finished with the request, false when it was cancelled.
	ended(ctx context.Context, eof bool)
}

// modeFor picks the mode of a stream from its first message. A filter that
// sends no response body leaves the response to an observer: it is a gate.
// Without protocol_config (older Envoys) the stream is inline.
func (s *Server) modeFor(ctx context.Context, req *extprocv3.ProcessingRequest) mode {
	if req.GetObservabilityMode() {
		return &observer{srv: s}
	}
	x := newExchange(s, s.snap.Load())
	x.arrived = time.Now()
	pc := req.GetProtocolConfig()
	x.pipelined = pc.GetSendBodyWithoutWaitingForHeaderResponse() && pc.GetRequestBodyMode() == filterv3.ProcessingMode_STREAMED
	// An Envoy route can name its dialect (ExtProcPerRoute
	// grpc_initial_metadata); it then wins over the path.
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(DialectMetadataKey); len(v) > 0 {
			x.dialectName = v[0]
		}
	}
	if pc != nil && pc.GetResponseBodyMode() == filterv3.ProcessingMode_NONE {
		return &gate{x: x}
	}
	return &inline{x: x}
}

// serve runs a stream: every message gets its answers at once; accounting
// that Envoy need not wait for (settling budgets, records) runs after they
// are sent.
func (s *Server) serve(ctx context.Context, stream extprocv3.ExternalProcessor_ProcessServer, m mode, req *extprocv3.ProcessingRequest) error {
	// Settling must finish even when Envoy cancels the stream; one context
	// for the stream rather than one per message.
	settleCtx := context.WithoutCancel(ctx)
	for {
		start := time.Now()
		answers, phase := m.process(ctx, req)
		if ctx.Err() != nil && len(answers) > 0 {
			// Envoy gave up while tokenmeter decided: nothing it sends now
			// is used.
			m.sent(settleCtx, false)
			return streamEnd(ctx, ctx.Err())
		}
		for _, r := range answers {
			if err := stream.Send(r); err != nil {
				m.sent(settleCtx, false)
				return err
			}
		}
		if phase != "" {
			s.observer.ObservePhase(phase, time.Since(start))
		}
		m.sent(settleCtx, true)
		if m.done() {
			return nil
		}
		var err error
		if req, err = stream.Recv(); err != nil {
			// EOF: Envoy is done with the request (for instance it needed no
			// response body). Anything else: the client or Envoy went away.
			m.ended(settleCtx, errors.Is(err, io.EOF))
			return streamEnd(ctx, err)
		}
	}
}

// inline is the one filter that sees the request and the response, and
// answers both.
type inline struct{ x *exchange }

func (m *inline) process(ctx context.Context, req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, string) {
	out, phase := m.x.handle(ctx, req)
	m.x.settleFirst(ctx)
	return out, phase
}

func (m *inline) sent(ctx context.Context, ok bool) {
	if !ok {
		m.x.notSent(ctx)
		return
	}
	m.x.afterSend(ctx)
}

// done is false: Envoy closes the stream when the response ends.
func (m *inline) done() bool                          { return false }
func (m *inline) ended(ctx context.Context, eof bool) { m.x.abort(ctx, eof) }

// gate sees the request, decides, and hands the admitted request to an
// observer in its last answer (handoff.go). Once the answer is sent, the
// request is the observer's (or, past the deadline, the sweeper's:
// awaiting.go), and the stream ends.
type gate struct {
	x          *exchange
	handingOff bool // the answer being sent carries the handoff
}

func (m *gate) process(ctx context.Context, req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, string) {
	x := m.x
	out, phase := x.handle(ctx, req)
	if r := x.decision; r != nil && !x.closed {
		x.decision = nil
		r.DynamicMetadata = x.handoffMetadata()
		m.handingOff = true
		// In the table before the answer goes out: Envoy may pass the
		// request to the observer, and the observer claim it, before Send
		// even returns.
		if d := x.snap.Config.ObserverDeadline; d > 0 {
			x.srv.await(x.rec.RequestID, x, x.srv.now().Add(d))
		}
	}
	x.settleFirst(ctx)
	return out, phase
}

func (m *gate) sent(ctx context.Context, ok bool) {
	x := m.x
	handingOff := m.handingOff
	m.handingOff = false
	if ok {
		if handingOff {
			x.closed = true // the observer's now
		}
		x.afterSend(ctx)
		return
	}
	if handingOff {
		if x.srv.takeLocal(x.rec.RequestID) || x.snap.Config.ObserverDeadline <= 0 {
			x.rec.Outcome, x.rec.Reason = ledger.GateTimeout, reason.AnswerLate
			x.finish(nil)
		} else {
			x.closed = true // an observer claimed it after all: it records it
		}
	}
	x.notSent(ctx)
}

// done once decided: nothing more will come that tokenmeter needs, so the
// stream ends rather than hold its slot in Envoy's cluster for as long as
// the response streams. Envoy takes a close as the end of processing.
func (m *gate) done() bool                          { return m.x.closed }
func (m *gate) ended(ctx context.Context, eof bool) { m.x.abort(ctx, eof) }

// observer reads the response of a request a gate admitted, in Envoy's
// observability mode: it answers nothing and Envoy never waits for it. Its
// stream opens at the request headers; the gate's handoff comes with the
// first message that follows the gate's answer.
type observer struct {
	srv    *Server
	x      *exchange // nil until the handoff arrives
	giveUp bool      // nothing to observe: end the stream
}

func (m *observer) process(ctx context.Context, req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, string) {
	if m.x == nil && !m.start(ctx, req) {
		return nil, ""
	}
	return nil, m.x.observe(req)
}

// start resumes the gate's request from the handoff in req, and claims it.
// false: not yet (no handoff so far), or never (giveUp).
func (m *observer) start(ctx context.Context, req *extprocv3.ProcessingRequest) bool {
	s := m.srv
	h := handoffOf(req)
	if h == nil {
		// The response began and no gate admitted this request (not a
		// metered API, or denied): nothing to observe.
		_, headers := req.Request.(*extprocv3.ProcessingRequest_RequestHeaders)
		m.giveUp = !headers
		return false
	}
	snap := s.snap.Load()
	if snap.Config.SettleBeforeResponse {
		s.warnOnce.Do(func() {
			s.log.Warn("store.settle_before_response cannot hold an answer in split mode: the observer reads the response " +
				"without Envoy waiting; run tokenmeter as one inline filter (envoy/inline-filter.yaml) for it")
		})
	}
	x, err := s.resume(snap, h)
	if err != nil {
		// The gate's sweeper settles it at its deadline.
		s.observer.ParseError("handoff", string(reason.BadHandoff))
		s.log.Error("observer cannot resume the gate's request", "err", err)
		m.giveUp = true
		return false
	}
	if !s.claim(context.WithoutCancel(ctx), snap, x.rec.RequestID) {
		// Finished already: the gate's sweeper gave up waiting.
		m.giveUp = true
		return false
	}
	m.x = x
	return true
}

func (m *observer) sent(ctx context.Context, _ bool) {
	if m.x != nil {
		m.x.afterSend(ctx)
	}
}

func (m *observer) done() bool { return m.giveUp || (m.x != nil && m.x.closed) }

// ended: Envoy closes an observer's stream when the HTTP stream ends;
// without a complete response, the client left (an upstream failure would
// have sent a response, Envoy's own).
func (m *observer) ended(ctx context.Context, _ bool) {
	if m.x != nil {
		m.x.abort(ctx, false)
	}
}
