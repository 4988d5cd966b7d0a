package admin_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// The console's files are served to anyone (they hold no data) under a
// policy that lets them load only this server's scripts; its config, like
// every /v1 endpoint, needs the token.
func TestConsoleRoutes(t *testing.T) {
	book, err := usagedb.Open(usagedb.Options{InMemory: true, Dimensions: []string{"project", "team"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer book.Close()
	srv := httptest.NewServer(admin.New(http.NotFoundHandler(), "s3cret").WithUsage(usagedb.Ledger{Store: book}, nil))
	defer srv.Close()
	for _, c := range []struct {
		path, token string
		status      int
		ctype, body string
	}{
		{"/", "", 200, "text/html; charset=utf-8", `<script src="/ui/console.js">`},
		{"/ui", "", 200, "text/html; charset=utf-8", `id="view-statement"`},
		{"/ui/console.js", "", 200, "text/javascript; charset=utf-8", "function decCmp"},
		{"/ui/views.js", "", 200, "text/javascript; charset=utf-8", "async function download"},
		{"/ui/console.css", "", 200, "text/css; charset=utf-8", "--focus"},
		{"/v1/console/config", "", 401, "", ""},
		{"/v1/console/config", "s3cret", 200, "application/json", `"dimensions": [
    "project",
    "team"
  ]`},
	} {
		t.Run(c.path+" "+c.token, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if c.ctype != "" && resp.Header.Get("Content-Type") != c.ctype {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), c.ctype)
			}
			if !strings.Contains(string(b), c.body) {
				t.Errorf("the body lacks %q:\n%.300s", c.body, b)
			}
			if strings.HasPrefix(c.path, "/ui") || c.path == "/" {
				if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
					t.Errorf("Content-Security-Policy %q", csp)
				}
			}
		})
	}
}
