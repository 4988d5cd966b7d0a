package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/config"
)

// The steps of stop with nothing in flight (the e2e test drain_test.go runs
// them with streams, through Envoy): readiness fails, then each step is
// logged; a second signal cuts an hour's drain short.
func TestStopSteps(t *testing.T) {
	tests := []struct {
		name    string
		sd      config.Shutdown
		signals int
		want    []string
	}{
		{"no drain", config.Shutdown{Drain: 0, Grace: time.Hour}, 0, []string{
			`"msg":"shutdown: not ready; still serving new streams while load balancers notice","drain":"0s","grace":"1h0m0s","streams":0`,
			`"msg":"shutdown: drain over; refusing new streams, waiting for those in flight","streams":0,"grace":"1h0m0s"`,
			`"msg":"shutdown: every stream ended"`,
			`"msg":"shutdown: servers stopped; closing the ledger and the store"`,
		}},
		{"second signal", config.Shutdown{Drain: time.Hour, Grace: time.Hour}, 1, []string{
			`"msg":"shutdown: not ready; still serving new streams while load balancers notice","drain":"1h0m0s"`,
			`"msg":"shutdown: signalled again; drain cut short"`,
			`"msg":"shutdown: drain over; refusing new streams, waiting for those in flight"`,
			`"msg":"shutdown: every stream ended"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			hs := health.NewServer()
			adm := admin.New(http.NotFoundHandler(), "")
			adm.SetReady(true)
			st := stopping{grpc: grpc.NewServer(), health: hs, admin: adm, http: &http.Server{},
				streams: &streamCount{}, log: slog.New(slog.NewJSONHandler(&logs, nil))}
			hurry := make(chan os.Signal, 1)
			for range tt.signals {
				hurry <- syscall.SIGTERM
			}
			done := make(chan struct{})
			go func() { st.stop(tt.sd, hurry); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second): // a bound on a hang, not a measurement
				t.Fatalf("stop did not return\n%s", logs.String())
			}
			rec := httptest.NewRecorder()
			adm.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			h, _ := hs.Check(context.Background(), &healthpb.HealthCheckRequest{})
			if rec.Code != http.StatusServiceUnavailable || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("after stop: /readyz %d, gRPC health %v", rec.Code, h.GetStatus())
			}
			out, at := logs.String(), 0
			for _, step := range tt.want {
				i := strings.Index(out[at:], step)
				if i < 0 {
					t.Fatalf("the log lacks, after what came before, %s\n%s", step, out)
				}
				at += i + len(step)
			}
		})
	}
}
