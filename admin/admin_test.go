package admin

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAuthAndProbes(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("m")) })
	tests := []struct {
		name   string
		token  string
		path   string
		auth   string
		ready  bool
		status int
	}{
		{"metrics open without token", "", "/metrics", "", false, 200},
		{"metrics needs token", "s3cret", "/metrics", "", false, 401},
		{"wrong token", "s3cret", "/metrics", "Bearer nope", false, 401},
		{"right token", "s3cret", "/metrics", "Bearer s3cret", false, 200},
		{"healthz needs no token", "s3cret", "/healthz", "", false, 200},
		{"readyz before ready", "s3cret", "/readyz", "", false, 503},
		{"readyz when ready", "s3cret", "/readyz", "", true, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(metrics, tt.token)
			s.SetReady(tt.ready)
			r := httptest.NewRequest("GET", tt.path, nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
		})
	}
}
