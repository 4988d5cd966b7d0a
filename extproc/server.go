// Package extproc is the Envoy external-processing gRPC service. Envoy opens
// one stream per HTTP request; an exchange follows that request through its
// headers and bodies, admits it against budgets, reads its usage, and hands a
// ledger.Record to the sinks when it ends.
package extproc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenmeter/tokenmeter/attribution"
	"github.com/tokenmeter/tokenmeter/config"
	"github.com/tokenmeter/tokenmeter/dialect"
	"github.com/tokenmeter/tokenmeter/ledger"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Snapshot is everything one request needs from configuration. It is
// immutable; a reload swaps in a new one and requests in flight keep theirs.
type Snapshot struct {
	Config    *config.Config
	Limiter   *ratelimit.Limiter
	Extractor *attribution.Extractor
	Dialects  *dialect.Registry
}

// NewSnapshot compiles c over a budget store.
func NewSnapshot(c *config.Config, store ratelimit.Store, now func() time.Time) *Snapshot {
	return &Snapshot{
		Config:    c,
		Limiter:   ratelimit.New(c.Budgets, store, ratelimit.Options{Now: now, Currency: c.Catalog.Currency(), FX: c.FX}),
		Extractor: attribution.NewExtractor(c.Dimensions),
		Dialects:  dialect.DefaultRegistry(),
	}
}

// Observer receives the counts that are not part of a record. The metrics
// package implements it; tests use a fake.
type Observer interface {
	ObservePhase(phase string, d time.Duration)
	ParseError(dialect, reason string)
	InvalidAttribution(dimension string)
	StoreError(op string)
	// ShadowDenied counts a request a shadow budget would have denied.
	ShadowDenied(budget string)
	// StoreUnavailable counts a request a budget could not check because its
	// store failed: let through (fail open) or denied (fail closed).
	StoreUnavailable(budget string, denied bool)
}

// DialectMetadataKey is the gRPC metadata key by which an Envoy route names
// the dialect of its requests.
const DialectMetadataKey = "x-tokenmeter-dialect"

// Server implements the ext_proc ExternalProcessor service.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	snap     atomic.Pointer[Snapshot]
	sink     ledger.Sink
	observer Observer
	log      *slog.Logger
	now      func() time.Time
}

// NewServer builds a server. now is the clock (time.Now in production).
func NewServer(snap *Snapshot, sink ledger.Sink, observer Observer, log *slog.Logger, now func() time.Time) *Server {
	s := &Server{sink: sink, observer: observer, log: log, now: now}
	s.snap.Store(snap)
	return s
}

// Swap installs a new snapshot for requests that start after it.
func (s *Server) Swap(snap *Snapshot) { s.snap.Store(snap) }

// Snapshot returns the current snapshot.
func (s *Server) Snapshot() *Snapshot { return s.snap.Load() }

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) {
	extprocv3.RegisterExternalProcessorServer(g, s)
}

// Process implements the ext_proc stream: one HTTP request, message by
// message. Every message gets an answer at once; accounting that Envoy need
// not wait for (settling budgets, records) runs after the answer is sent.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	x := newExchange(s, s.snap.Load())
	// An Envoy route can name its dialect (ExtProcPerRoute
	// grpc_initial_metadata); it then wins over the path.
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(DialectMetadataKey); len(v) > 0 {
			x.dialectName = v[0]
		}
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			// EOF: Envoy is done with the request (for instance it needed no
			// response body). Anything else: the client or Envoy went away.
			x.abort(ctx, errors.Is(err, io.EOF))
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
				return nil
			}
			return err
		}
		start := time.Now()
		resp, phase := x.handle(ctx, req)
		if resp == nil {
			// A message tokenmeter did not ask for (trailers): let it pass.
			resp = passThrough(req)
		}
		if x.snap.Config.SettleBeforeResponse {
			// Durability over latency: the charge is on disk before Envoy
			// can release the answer, so a crash cannot lose a charge whose
			// answer the client got.
			x.afterSend(context.WithoutCancel(ctx))
		}
		if err := stream.Send(resp); err != nil {
			x.abort(ctx, false)
			return err
		}
		s.observer.ObservePhase(phase, time.Since(start))
		x.afterSend(context.WithoutCancel(ctx))
		if x.closed {
			// Keep reading until Envoy ends the stream, but nothing more
			// will be metered.
			continue
		}
	}
}
