package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
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

type fakeBudgets struct{ put []byte }

func (f *fakeBudgets) List(context.Context) ([]BudgetInfo, error) {
	return []BudgetInfo{{Name: "b", Source: "runtime", Unit: "tokens", Limit: "10", Period: "day", Keys: []KeyStatus{}}}, nil
}
func (f *fakeBudgets) Put(_ context.Context, name string, def []byte) (BudgetInfo, error) {
	f.put = def
	switch name {
	case "bad":
		return BudgetInfo{}, fmt.Errorf("%w: window: wrong", ErrInvalid)
	case "file":
		return BudgetInfo{}, fmt.Errorf("%w: defined in the config file", ErrConflict)
	}
	return BudgetInfo{Name: name}, nil
}
func (f *fakeBudgets) Delete(_ context.Context, name string) error {
	return fmt.Errorf("%w: %q", ErrNotFound, name)
}
func (f *fakeBudgets) Reset(context.Context, string, string) error { return errors.New("store down") }

// The budget API needs the token like /metrics, and maps errors to statuses.
func TestBudgetAPI(t *testing.T) {
	s := New(http.NotFoundHandler(), "s3cret").WithBudgets(&fakeBudgets{})
	for _, tt := range []struct {
		method, path, auth, body string
		status                   int
		want                     string
	}{
		{"GET", "/v1/budgets", "", "", 401, ""},
		{"GET", "/v1/budgets", "Bearer s3cret", "", 200, `"name": "b"`},
		{"GET", "/v1/budgets/b", "Bearer s3cret", "", 200, `"source": "runtime"`},
		{"GET", "/v1/budgets/nope", "Bearer s3cret", "", 404, `no such budget`},
		{"PUT", "/v1/budgets/x", "", `{}`, 401, ""},
		{"PUT", "/v1/budgets/x", "Bearer s3cret", `{}`, 200, `"name": "x"`},
		{"PUT", "/v1/budgets/bad", "Bearer s3cret", `{}`, 400, `invalid budget: window: wrong`},
		{"PUT", "/v1/budgets/file", "Bearer s3cret", `{}`, 409, `defined in the config file`},
		{"PUT", "/v1/budgets/x", "Bearer s3cret", strings.Repeat("x", 70<<10), 413, `at most 64 KiB`},
		{"DELETE", "/v1/budgets/x", "Bearer s3cret", "", 404, `no such budget: \"x\"`},
		{"POST", "/v1/budgets/x/reset", "Bearer s3cret", "", 500, `store down`},
	} {
		r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("%s %s: %d %s, want %d containing %q", tt.method, tt.path, w.Code, w.Body, tt.status, tt.want)
		}
	}
}
