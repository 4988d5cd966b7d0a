// Package admin is tokenmeter's HTTP side: Prometheus metrics, health and
// readiness, the budget API (/v1/budgets), the API keys' (/v1/keys) and the
// ledger's (/v1/usage). When a bearer token is configured, everything except
// the health probes requires it.
package admin

import (
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/tokenmeter/tokenmeter/internal/statement"
)

// Server is the admin HTTP handler.
type Server struct {
	mux   *http.ServeMux
	token string
	ready atomic.Bool
	// statements gives the statement document's settings at each request
	// (WithStatements): a reload changes taxes and rates.
	statements func() statement.Settings
}

// New builds the admin handler. metrics serves /metrics; token, when not
// empty, is the bearer token required on everything but the probes. Use
// WithBudgets to serve the budget API.
func New(metrics http.Handler, token string) *Server {
	s := &Server{mux: http.NewServeMux(), token: token}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	s.mux.Handle("GET /metrics", s.auth(metrics))
	s.uiRoutes()
	return s
}

// WithBudgets serves /v1/budgets over b.
func (s *Server) WithBudgets(b Budgets) *Server {
	s.budgetRoutes(b)
	return s
}

// SetReady flips /readyz: ready once the gRPC listener is bound, not ready
// while shutting down so load balancers drain first.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) auth(h http.Handler) http.Handler {
	if s.token == "" {
		return h
	}
	want := []byte("Bearer " + s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokenmeter"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
