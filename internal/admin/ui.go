package admin

import (
	"embed"
	"net/http"
)

// ui holds the console: hand-written HTML, CSS and JavaScript, no build
// step. The page holds no data: it calls /v1/* from the browser with the
// bearer token the user types when one is configured, so serving the files
// needs no auth (a browser's navigation could not send the token anyway).
//
//go:embed ui/index.html ui/console.css ui/console.js ui/views.js ui/burndown.js
var ui embed.FS

// uiFiles maps each path the page loads to its file and type.
var uiFiles = map[string][2]string{
	"/ui/console.css": {"ui/console.css", "text/css; charset=utf-8"},
	"/ui/console.js":  {"ui/console.js", "text/javascript; charset=utf-8"},
	"/ui/views.js":    {"ui/views.js", "text/javascript; charset=utf-8"},
	"/ui/burndown.js": {"ui/burndown.js", "text/javascript; charset=utf-8"},
}

func (s *Server) uiRoutes() {
	file := func(name, ctype string) http.HandlerFunc {
		body, err := ui.ReadFile(name)
		if err != nil {
			panic(err) // embedded at build time: a missing file is a build error, not traffic
		}
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ctype)
			// The page runs only its own scripts and talks only to this server.
			w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Write(body)
		}
	}
	page := file("ui/index.html", "text/html; charset=utf-8")
	s.mux.HandleFunc("GET /{$}", page)
	s.mux.HandleFunc("GET /ui", page)
	for path, f := range uiFiles {
		s.mux.HandleFunc("GET "+path, file(f[0], f[1]))
	}
}
