package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"
)

// Keys is what the /v1/keys endpoints act on: the API keys requests are
// attributed by. An implementation never hands the API a key's digests,
// only what KeyInfo shows; a secret leaves it once, from Create or Rotate.
type Keys interface {
	List(ctx context.Context) ([]KeyInfo, error)
	Get(ctx context.Context, id string) (KeyInfo, error)
	// Create makes a key (a new id when id is empty) and returns its secret.
	Create(ctx context.Context, id, name string, dims map[string]string) (KeyInfo, string, error)
	Revoke(ctx context.Context, id string) (KeyInfo, error)
	// Rotate gives key id a new secret; the old ones keep working for grace.
	Rotate(ctx context.Context, id string, grace time.Duration) (KeyInfo, string, error)
}

// Errors a Keys implementation returns (wrapped, with its own message) for
// the API to map to statuses; anything else is a 500. They are apart from
// the budget errors so that a message never says "budget" about a key.
var (
	ErrKeyInvalid  = errors.New("invalid key")                       // 400; the message says why
	ErrKeyNotFound = errors.New("no such key")                       // 404
	ErrKeyConflict = errors.New("key conflict")                      // 409: the config file's key, a taken id, a revoked key
	ErrNoRecords   = errors.New("the budget store cannot keep keys") // 501
	// ErrKeysOff is a 404 too, but one that says why: the server has no
	// key table at all, which is a setting, not a missing key.
	ErrKeysOff = errors.New("API keys are off: attribution.api_keys is not configured")
)

// KeyInfo is one API key as the API shows it: never the key, never a
// digest of it.
type KeyInfo struct {
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Dimensions map[string]string `json:"dimensions"`
	Source     string            `json:"source"` // "config" (the file; read-only here) or "runtime"
	// Created is when a runtime key was made; a config file's key has none.
	Created time.Time `json:"created,omitzero"`
	Revoked time.Time `json:"revoked,omitzero"`
	Status  string    `json:"status"` // "active" or "revoked"
	Secrets Secrets   `json:"secrets"`
}

// Secrets says how many secrets open a key now, and until when those a
// rotation keeps open for its grace still work.
type Secrets struct {
	Open  int         `json:"open"`
	Until []time.Time `json:"until,omitempty"`
}

// The key statuses.
const (
	KeyActive  = "active"
	KeyRevoked = "revoked"
)

// maxKeyBody bounds a key request's body: it is an id, a name and a few
// dimensions, well under a kilobyte.
const maxKeyBody = 64 << 10

// createKey is POST /v1/keys's body.
type createKey struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Dimensions map[string]string `json:"dimensions"`
}

// rotateKey is POST /v1/keys/{id}/rotate's body.
type rotateKey struct {
	Grace string `json:"grace"` // a Go duration; "" is 0
}

// keySecret is the answer that carries a secret: the only two.
type keySecret struct {
	Key    KeyInfo `json:"key"`
	Secret string  `json:"secret"`
}

// WithKeys serves /v1/keys over k.
func (s *Server) WithKeys(k Keys) *Server {
	handle := func(pattern string, h http.HandlerFunc) { s.mux.Handle(pattern, s.auth(h)) }
	handle("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		list, err := k.List(r.Context())
		if err != nil {
			keyError(w, err)
			return
		}
		if list == nil {
			list = []KeyInfo{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"keys": list})
	})
	handle("GET /v1/keys/{id}", func(w http.ResponseWriter, r *http.Request) {
		ki, err := k.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			keyError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ki)
	})
	handle("POST /v1/keys", func(w http.ResponseWriter, r *http.Request) {
		var body createKey
		if !readKeyBody(w, r, &body) {
			return
		}
		ki, secret, err := k.Create(r.Context(), body.ID, body.Name, body.Dimensions)
		if err != nil {
			keyError(w, err)
			return
		}
		writeSecret(w, http.StatusCreated, keySecret{Key: ki, Secret: secret})
	})
	handle("POST /v1/keys/{id}/revoke", func(w http.ResponseWriter, r *http.Request) {
		ki, err := k.Revoke(r.Context(), r.PathValue("id"))
		if err != nil {
			keyError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, ki)
	})
	handle("POST /v1/keys/{id}/rotate", func(w http.ResponseWriter, r *http.Request) {
		var body rotateKey
		if !readKeyBody(w, r, &body) {
			return
		}
		var grace time.Duration
		if body.Grace != "" {
			var err error
			if grace, err = time.ParseDuration(body.Grace); err != nil {
				keyError(w, fmt.Errorf("%w: grace %q: want a duration such as 1h or 30m", ErrKeyInvalid, body.Grace))
				return
			}
		}
		ki, secret, err := k.Rotate(r.Context(), r.PathValue("id"), grace)
		if err != nil {
			keyError(w, err)
			return
		}
		writeSecret(w, http.StatusOK, keySecret{Key: ki, Secret: secret})
	})
	return s
}

// readKeyBody decodes a key request's JSON body into v, refusing unknown
// fields (a misspelt "dimension" must not create a key without dimensions)
// and anything after the object. An empty body is an empty object: every
// field is optional. It writes the error and reports false when it fails.
func readKeyBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxKeyBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return true
	}
	if err == nil {
		if err = dec.Decode(new(json.RawMessage)); errors.Is(err, io.EOF) {
			return true
		}
		if err == nil {
			err = errors.New("want one JSON object, got more")
		}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "a key request is at most 64 KiB"})
		return false
	}
	keyError(w, fmt.Errorf("%w: body: %s", ErrKeyInvalid, jsonProblem(err)))
	return false
}

// jsonProblem words a decoding error for the caller, who knows the API's
// field names, not the Go types behind them.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		want := te.Type.String()
		switch te.Type.Kind() {
		case reflect.String:
			want = "a string"
		case reflect.Map:
			want = "an object of strings"
		}
		return fmt.Sprintf("%s: want %s, not a JSON %s", te.Field, want, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// writeSecret writes an answer that holds a secret, which no cache may keep.
func writeSecret(w http.ResponseWriter, status int, v keySecret) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, v)
}

func keyError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrKeyInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, ErrKeyNotFound), errors.Is(err, ErrKeysOff):
		status = http.StatusNotFound
	case errors.Is(err, ErrKeyConflict):
		status = http.StatusConflict
	case errors.Is(err, ErrNoRecords):
		status = http.StatusNotImplemented
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
