// Package extproc is the Envoy external-processing gRPC service. Envoy opens
// one stream per HTTP request; an exchange follows that request through its
// headers and bodies, admits it against budgets, reads its usage, and hands a
// ledger.Record to the sinks when it ends.
package extproc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"github.com/tokenmeter/tokenmeter/internal/reason"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/dialect"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// Snapshot is everything one request needs from configuration. It is
// immutable; a reload swaps in a new one and requests in flight keep theirs.
type Snapshot struct {
	Config    *config.Config
	Limiter   *ratelimit.Limiter
	Extractor *attribution.Extractor
	Dialects  *dialect.Registry
	// Claims decides which process finishes a handoff whose observer may
	// run on another replica (awaiting.go); nil when the store keeps no
	// records.
	Claims claimer
	// Keys resolves the API key a request carries; nil when
	// attribution.api_keys is off (Config.APIKeys holds its policies).
	Keys Keys
}

// Keys resolves a request's API key (package apikey's Registry). Revoking,
// creating or rotating a key changes what it resolves at once, without a new
// snapshot.
type Keys interface {
	Resolve(credential string) (*apikey.Key, apikey.Status)
}

// NewSnapshot compiles c over a budget store.
func NewSnapshot(c *config.Config, store ratelimit.Store, now func() time.Time) *Snapshot {
	claims, _ := store.(claimer)
	return &Snapshot{
		Claims:    claims,
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
	// Overloaded counts a request refused because its decision came past
	// the gate deadline.
	Overloaded()
}

// DialectMetadataKey is the gRPC metadata key by which an Envoy route names
// the dialect of its requests.
const DialectMetadataKey = "x-tokenmeter-dialect"

// FilterMetadataKey is the gRPC metadata key (the filter's
// grpc_service.initial_metadata) by which Envoy says which tokenmeter filter
// opened a stream: "gate", "observer" or "inline". It travels in the
// stream's headers, so tokenmeter knows a gate's stream even when Envoy
// cancels it before tokenmeter could read its first message (a gate frozen
// past message_timeout), and still records the request.
const FilterMetadataKey = "x-tokenmeter-filter"

// Server implements the ext_proc ExternalProcessor service.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	snap     atomic.Pointer[Snapshot]
	sink     ledger.Sink
	observer Observer
	log      *slog.Logger
	now      func() time.Time
	prompts  *prompts  // handed-off prompts, until their observers take them
	awaiting *awaiting // handoffs, until their observers claim them
	idPrefix string    // random per server: record and handoff ids (newRecordID)
	ids      atomic.Uint64
	warnOnce sync.Once
}

// The prompt table's bounds: an observer takes its prompt within
// milliseconds of the gate's answer, or never (it runs in another process).
const (
	promptTableBytes = 64 << 20
	promptTableTTL   = 10 * time.Second
)

// NewServer builds a server. now is the clock (time.Now in production).
func NewServer(snap *Snapshot, sink ledger.Sink, observer Observer, log *slog.Logger, now func() time.Time) *Server {
	s := &Server{sink: sink, observer: observer, log: log, now: now, prompts: newPrompts(promptTableBytes, promptTableTTL), awaiting: newAwaiting()}
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	s.idPrefix = hex.EncodeToString(b[:])
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
// message, in the mode its first message names (mode.go).
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ctx := stream.Context()
	req, err := stream.Recv()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.lostBeforeReading(ctx)
		}
		return streamEnd(ctx, err)
	}
	return s.serve(ctx, stream, s.modeFor(ctx, req), req)
}

// lostBeforeReading records a gate's request whose stream Envoy cancelled
// before tokenmeter read its first message: Envoy answered the client
// itself and never called the provider. Nothing is known of the request
// but that it was one; an observer's stream needs no record (its gate
// makes it).
func (s *Server) lostBeforeReading(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(FilterMetadataKey); len(v) == 0 || (v[0] != "gate" && v[0] != "inline") {
		return
	}
	snap := s.snap.Load()
	x := newExchange(s, snap)
	x.rec.RequestID = s.newRecordID()
	x.rec.Outcome, x.rec.Reason = ledger.GateTimeout, reason.StreamCancelled
	x.finish(nil)
	x.afterSend(context.WithoutCancel(ctx))
}

// streamEnd is Process's result once Recv fails: a stream Envoy closed or
// cancelled ended normally.
func streamEnd(ctx context.Context, err error) error {
	if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || ctx.Err() != nil {
		return nil
	}
	return err
}
