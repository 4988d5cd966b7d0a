package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// Budgets is what the /v1/budgets endpoints act on.
type Budgets interface {
	List(ctx context.Context) ([]BudgetInfo, error)
	Put(ctx context.Context, name string, def []byte) (BudgetInfo, error)
	Delete(ctx context.Context, name string) error
	// Reset zeroes a budget's counters in every window: one key's, or all
	// when key is empty.
	Reset(ctx context.Context, name, key string) error
}

// Errors a Budgets implementation returns for the API to map to statuses;
// anything else is a 500.
var (
	ErrInvalid  = errors.New("invalid budget")  // 400; the message says why
	ErrNotFound = errors.New("no such budget")  // 404
	ErrConflict = errors.New("budget conflict") // 409: the name belongs to the config file
)

// BudgetInfo is one budget as the API shows it: its definition and the
// status of each of its keys in the current window. Amounts are exact
// decimal strings (money) or integers as strings (counts), never floats.
type BudgetInfo struct {
	Name   string `json:"name"`
	Source string `json:"source"` // "config" (the file; read-only here) or "runtime"
	// Definition is a runtime budget's definition as it was given.
	Definition json.RawMessage `json:"definition,omitempty"`
	Unit       string          `json:"unit"`               // money, tokens, requests, concurrent
	Currency   string          `json:"currency,omitempty"` // money budgets
	Limit      string          `json:"limit"`              // the default for keys without a limit of their own
	Period     string          `json:"period"`             // day, rolling 1m0s, in flight...
	Shadow     bool            `json:"shadow,omitempty"`
	// AlertAt are the budget's alert thresholds, in percent of the limit.
	AlertAt []int       `json:"alert_at,omitempty"`
	Keys    []KeyStatus `json:"keys"`
}

// KeyStatus is one counter key of a budget in its current window.
type KeyStatus struct {
	Key       string    `json:"key"`
	Limit     string    `json:"limit"` // the key's own limit, or the budget's default
	Spent     string    `json:"spent"`
	Reserved  string    `json:"reserved"`
	Remaining string    `json:"remaining"`
	ResetsAt  time.Time `json:"resets_at"`
	// Projected is the spend expected by the window's end at the last 7
	// days' run rate; empty until the first forecast.
	Projected string `json:"projected,omitempty"`
	// Crossed lists the thresholds of AlertAt that Spent has reached, as
	// the alerts count them; computed here, in integers, so that a page
	// never compares money in floating point.
	Crossed []int `json:"thresholds_crossed,omitempty"`
}

// maxDefinition bounds a PUT body: a budget definition is a few hundred bytes.
const maxDefinition = 64 << 10

func (s *Server) budgetRoutes(b Budgets) {
	s.mux.Handle("GET /v1/budgets", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := b.List(r.Context())
		if err != nil {
			apiError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"budgets": list})
	})))
	s.mux.Handle("GET /v1/budgets/{name}", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list, err := b.List(r.Context())
		if err != nil {
			apiError(w, err)
			return
		}
		for _, bi := range list {
			if bi.Name == r.PathValue("name") {
				writeJSON(w, http.StatusOK, bi)
				return
			}
		}
		apiError(w, ErrNotFound)
	})))
	s.mux.Handle("PUT /v1/budgets/{name}", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		def, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDefinition))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "a budget definition is at most 64 KiB"})
			return
		}
		bi, err := b.Put(r.Context(), r.PathValue("name"), def)
		if err != nil {
			apiError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, bi)
	})))
	s.mux.Handle("DELETE /v1/budgets/{name}", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := b.Delete(r.Context(), r.PathValue("name")); err != nil {
			apiError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})))
	s.mux.Handle("POST /v1/budgets/{name}/reset", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := b.Reset(r.Context(), r.PathValue("name"), r.URL.Query().Get("key")); err != nil {
			apiError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})))
}

func apiError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrConflict):
		status = http.StatusConflict
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client may be gone; nothing to do about it
}
