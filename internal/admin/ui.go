package admin

import (
	_ "embed"
	"net/http"
)

// page is the read-only web page for people without Grafana. It holds no
// data: it calls /v1/usage and /v1/budgets from the browser, with the bearer
// token the user types when one is configured, so serving it needs no auth.
//
//go:embed ui/index.html
var page []byte

func (s *Server) uiRoutes() {
	serve := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// The page runs only its own inline script and talks only to this server.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(page)
	}
	s.mux.HandleFunc("GET /{$}", serve)
	s.mux.HandleFunc("GET /ui", serve)
}
