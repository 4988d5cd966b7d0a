package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// The floor: what the ext_proc protocol alone costs. A third Envoy, from the
// same config as the one in front of tokenmeter (envoy.yaml, or the
// scenario's arrangement's), talks to a server that
// does nothing but answer as tokenmeter's gate and observer do (the same
// messages, the same gRPC library, its own process), and is measured against
// the bare Envoy like tokenmeter is. tokenmeter's own share of the added
// latency is what it adds beyond the floor.

const noopReady = "noop ext_proc ready "

// noopMain serves the no-op ext_proc server on addr until killed.
func noopMain(addr string, stdout io.Writer) int {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tmbench:", err)
		return 1
	}
	g := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(g, noop{})
	fmt.Fprintln(stdout, noopReady+l.Addr().String())
	if err := g.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, "tmbench:", err)
		return 1
	}
	return 0
}

type noop struct {
	extprocv3.UnimplementedExternalProcessorServer
}

// The no-op answers. They are never changed, so every stream shares them.
var (
	headersAnswer = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	bodyAnswer    = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	respHeaders   = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	respBody      = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
)

// Process answers like tokenmeter, minus the work: an observer's messages go
// unanswered and its stream ends with the response; a gate whose body
// follows without waiting gets the headers' answer when the body ends, then
// one answer per chunk, and its stream ends once the request is answered.
func (noop) Process(s extprocv3.ExternalProcessor_ProcessServer) error {
	pipelined, gate := false, false
	holding, held := false, 0 // the headers' answer waits; body chunks held with it
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		if req.GetObservabilityMode() {
			if b, ok := req.Request.(*extprocv3.ProcessingRequest_ResponseBody); ok && b.ResponseBody.GetEndOfStream() {
				return nil
			}
			continue
		}
		if pc := req.GetProtocolConfig(); pc != nil {
			pipelined = pc.GetSendBodyWithoutWaitingForHeaderResponse() && pc.GetRequestBodyMode() == filterv3.ProcessingMode_STREAMED
			gate = pc.GetResponseBodyMode() == filterv3.ProcessingMode_NONE
		}
		var out []*extprocv3.ProcessingResponse
		requestDone := false
		switch r := req.Request.(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			requestDone = r.RequestHeaders.GetEndOfStream()
			if pipelined && !requestDone {
				holding = true
				continue
			}
			out = append(out, headersAnswer)
		case *extprocv3.ProcessingRequest_RequestBody:
			requestDone = r.RequestBody.GetEndOfStream()
			if holding {
				if held++; !requestDone {
					continue
				}
				out = append(out, headersAnswer)
				for range held {
					out = append(out, bodyAnswer)
				}
				holding, held = false, 0
			} else {
				out = append(out, bodyAnswer)
			}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			out = append(out, respHeaders)
		case *extprocv3.ProcessingRequest_ResponseBody:
			out = append(out, respBody)
		default:
			continue
		}
		for _, r := range out {
			if err := s.Send(r); err != nil {
				return nil
			}
		}
		if gate && requestDone {
			return nil // no response phase follows
		}
	}
}

// startNoop runs this program as the no-op server and returns its address,
// its pid and how to stop it (also done when the scenario's scope ends).
func startNoop(r *runner) (string, int, func()) {
	self, err := os.Executable()
	if err != nil {
		r.Fatal(err)
	}
	cmd := exec.Command(self, "-noop-extproc", "127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cmd.Process.Kill(); cmd.Wait() }) }
	r.Cleanup(stop)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), noopReady); ok {
				ready <- a
			}
		}
	}()
	select {
	case a := <-ready:
		return a, cmd.Process.Pid, stop
	case <-time.After(30 * time.Second):
		r.Fatal("the no-op ext_proc server did not start")
	}
	return "", 0, stop
}

// floor measures the no-op server's Envoy against the bare one, one client,
// as oneClient measures tokenmeter's.
func (e *env) floor(r *runner, o *outcome, s *testbed.Stack, pr procs, d *driver) {
	addr, pid, stopNoop := startNoop(r)
	defer stopNoop() // nothing of the floor runs during the later phases
	dir := filepath.Join(r.TempDir(), "floor")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.Fatal(err)
	}
	p, err := envoy.StartListener(context.Background(), e.envoyBin, dir, s.EnvoyConfig(addr), s.Listener)
	if err != nil {
		r.Fatal(err)
	}
	defer p.Stop()
	envoyPid, err := envoyPID("floor")
	if err != nil {
		r.Fatal(err)
	}
	fp := procs{tm: pid, envoy: [2]int{pr.envoy[bare], envoyPid}, self: pr.self}
	fd := newDriver(d.sc, s.Bare.URL, p.URL, d.flushes)
	fd.noop = true
	defer fd.close()
	pairs := o.one.N[bare]
	strict(r, "floor warm-up", measure(r, fp, cpu{}, 0, func() []result { return fd.closedLoop(min(pairs, e.set.warm)) }))
	idle := idleCPU(r, fp, e.set.idle)
	o.floor = measure(r, fp, idle, 0, func() []result { return fd.closedLoop(pairs) })
	strict(r, "floor", o.floor)
	e.logf("%s: floor (no-op ext_proc server): added p50 %s p99 %s, %.0f µs CPU/request in the no-op server", o.sc.Name,
		added(o.floor.addedP50()), added(o.floor.addedP99()), o.floor.tmPerReq())
}
