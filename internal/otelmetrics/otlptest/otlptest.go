// Package otlptest is an in-process OTLP metrics receiver for tests: the
// collector's MetricsService over gRPC and its HTTP endpoint (POST
// /v1/metrics, protobuf), both on ephemeral loopback ports, keeping every
// request it is sent. It is the OTLP protocol's own server side (the
// generated service of go.opentelemetry.io/proto/otlp), lighter than a
// collector and just as strict about the wire format.
package otlptest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Receiver keeps what exporters send it.
type Receiver struct {
	colmetricpb.UnimplementedMetricsServiceServer

	mu       sync.Mutex
	requests []*colmetricpb.ExportMetricsServiceRequest
	headers  []map[string]string // per request: lower-case name → first value
	arrived  chan struct{}       // closed and replaced on every request

	grpcAddr string
	httpURL  string
}

// Start serves both protocols until the test ends.
func Start(tb testing.TB) *Receiver {
	tb.Helper()
	r := &Receiver{arrived: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("otlptest: listen: %v", err)
	}
	g := grpc.NewServer()
	colmetricpb.RegisterMetricsServiceServer(g, r)
	go g.Serve(l)
	tb.Cleanup(g.Stop)
	r.grpcAddr = l.Addr().String()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/metrics", r.serveHTTP)
	h := httptest.NewServer(mux)
	tb.Cleanup(h.Close)
	r.httpURL = h.URL
	return r
}

// GRPCEndpoint is the gRPC receiver's URL (plaintext): http://127.0.0.1:PORT.
func (r *Receiver) GRPCEndpoint() string { return "http://" + r.grpcAddr }

// HTTPEndpoint is the HTTP receiver's base URL; it serves /v1/metrics.
func (r *Receiver) HTTPEndpoint() string { return r.httpURL }

// Export implements the gRPC MetricsService.
func (r *Receiver) Export(ctx context.Context, req *colmetricpb.ExportMetricsServiceRequest) (*colmetricpb.ExportMetricsServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h := map[string]string{}
	for k, v := range md {
		if len(v) > 0 {
			h[k] = v[0]
		}
	}
	r.keep(req, h)
	return &colmetricpb.ExportMetricsServiceResponse{}, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "content-type "+ct+": want application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	msg := &colmetricpb.ExportMetricsServiceRequest{}
	if err := proto.Unmarshal(body, msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h := map[string]string{}
	for k, v := range req.Header {
		h[strings.ToLower(k)] = v[0]
	}
	r.keep(msg, h)
	out, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (r *Receiver) keep(req *colmetricpb.ExportMetricsServiceRequest, h map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	r.headers = append(r.headers, h)
	close(r.arrived)
	r.arrived = make(chan struct{})
}

// Requests returns every export request received so far, in order.
func (r *Receiver) Requests() []*colmetricpb.ExportMetricsServiceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// Headers returns the headers (gRPC metadata) of each request, lower-case.
func (r *Receiver) Headers() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.headers)
}

// Wait returns once at least n requests have arrived, or fails the test
// after timeout.
func (r *Receiver) Wait(tb testing.TB, n int, timeout time.Duration) []*colmetricpb.ExportMetricsServiceRequest {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		got, arrived := len(r.requests), r.arrived
		r.mu.Unlock()
		if got >= n {
			return r.Requests()
		}
		select {
		case <-arrived:
		case <-deadline:
			tb.Fatalf("otlptest: %d export requests after %s, want %d", got, timeout, n)
		}
	}
}

// Metric finds the metric called name in req (the last one, should several
// scopes carry it); nil when none does.
func Metric(req *colmetricpb.ExportMetricsServiceRequest, name string) *metricpb.Metric {
	var found *metricpb.Metric
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() == name {
					found = m
				}
			}
		}
	}
	return found
}

// Attrs flattens OTLP attributes into a map of their values as text
// (strings as they are, other kinds in fmt's words), so a test compares
// whole attribute sets at once.
func Attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = value(kv.GetValue())
	}
	return out
}

func value(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	}
	return v.String()
}
