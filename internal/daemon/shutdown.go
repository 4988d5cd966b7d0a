package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/config"
)

// adminShutdownTimeout bounds the admin server's close, after the streams:
// its requests (a scrape, a budget call) are short.
const adminShutdownTimeout = 2 * time.Second

// streamCount counts the ext_proc streams in flight, for the shutdown's
// log lines. Health checks are not counted: they are not traffic.
type streamCount struct{ n atomic.Int64 }

func (c *streamCount) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if info.FullMethod != extprocv3.ExternalProcessor_Process_FullMethodName {
		return h(srv, ss)
	}
	c.n.Add(1)
	defer c.n.Add(-1)
	return h(srv, ss)
}

// stopping is what a shutdown takes down.
type stopping struct {
	grpc    *grpc.Server
	health  *health.Server
	admin   *admin.Server
	http    *http.Server
	streams *streamCount
	log     *slog.Logger
}

// until waits for ctx to end (SIGTERM) or a server to fail, then stops with
// the shutdown section of the config in force at that moment.
func (s stopping) until(ctx context.Context, errc <-chan error, shutdown func() config.Shutdown) error {
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	sd := shutdown()
	if runErr != nil {
		// A listener failed: there is nothing to drain; the streams in
		// flight still get their grace.
		sd.Drain = 0
	}
	signalled, release := hurry()
	defer release()
	s.stop(sd, signalled)
	return runErr
}

// stop takes tokenmeter out of service the way a rolling update needs it
// (docs/deploy.md, "Rolling updates"), logging each step:
//
//  1. readiness fails at once (/readyz 503, gRPC health NOT_SERVING), so
//     Kubernetes takes the pod out of its endpoints and health-checking
//     Envoys mark it down;
//  2. for sd.Drain new streams are still served: until that news has
//     reached every Envoy, some still open streams here, and refusing them
//     would fail requests (the gate fails closed);
//  3. then new streams are refused (the listener closes, open connections
//     get GOAWAY) and those in flight get up to sd.Grace to end;
//  4. the rest are cut: each records as partial, with what it had read.
//
// A signal on hurry (a second SIGTERM or Ctrl-C) skips what is left of the
// drain and the grace.
func (s stopping) stop(sd config.Shutdown, hurry <-chan os.Signal) {
	s.admin.SetReady(false)
	s.health.Shutdown()
	s.log.Info("shutdown: not ready; still serving new streams while load balancers notice",
		"drain", sd.Drain.String(), "grace", sd.Grace.String(), "streams", s.streams.n.Load())
	if !wait(sd.Drain, hurry) {
		s.log.Warn("shutdown: signalled again; drain cut short")
	}
	s.log.Info("shutdown: drain over; refusing new streams, waiting for those in flight",
		"streams", s.streams.n.Load(), "grace", sd.Grace.String())
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	timer := time.NewTimer(sd.Grace)
	defer timer.Stop()
	select {
	case <-done:
		s.log.Info("shutdown: every stream ended")
	case <-timer.C:
		s.cut("shutdown: grace over; cutting the streams still open")
	case <-hurry:
		s.cut("shutdown: signalled again; cutting the streams still open")
	}
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("shutdown: admin server", "err", err)
	}
	s.log.Info("shutdown: servers stopped; closing the ledger and the store")
}

// cut ends the streams still open; Stop returns once their handlers have
// (grpc.WaitForHandlers), each having recorded its request as partial.
func (s stopping) cut(msg string) {
	s.log.Warn(msg, "streams", s.streams.n.Load())
	s.grpc.Stop()
}

// wait waits d, or until hurry receives; it reports whether d passed.
func wait(d time.Duration, hurry <-chan os.Signal) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-hurry:
		return false
	}
}

// hurry delivers a second SIGTERM or SIGINT: the first ended Run's context
// (cmd/tokenmeter's signal.NotifyContext); one more means "stop now", as
// someone at a terminal expects of a second Ctrl-C. Call release when the
// stop is over.
func hurry() (c <-chan os.Signal, release func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}
