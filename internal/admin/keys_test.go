package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeKeys answers by id: "k1" exists, "file" is the config file's, "gone"
// is not there, "down" fails as a broken store would; "bad" is refused as
// invalid and "nostore" as a store without records. It records the last
// create and rotate it was asked for.
type fakeKeys struct {
	created string
	grace   time.Duration
}

var created = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func k1() KeyInfo {
	return KeyInfo{ID: "k1", Name: "ci", Dimensions: map[string]string{"project": "alpha"}, Source: "runtime",
		Created: created, Status: KeyActive, Secrets: Secrets{Open: 1}}
}

func (f *fakeKeys) fail(id string) error {
	switch id {
	case "file":
		return fmt.Errorf("%w: key %q is in the config file; change it there", ErrKeyConflict, id)
	case "gone":
		return fmt.Errorf("%w: %q", ErrKeyNotFound, id)
	case "bad":
		return fmt.Errorf("%w: dimension \"colour\": no dimension reads it", ErrKeyInvalid)
	case "nostore":
		return ErrNoRecords
	case "off":
		return ErrKeysOff
	case "down":
		return errors.New("store down")
	}
	return nil
}

func (f *fakeKeys) List(context.Context) ([]KeyInfo, error) { return []KeyInfo{k1()}, nil }

func (f *fakeKeys) Get(_ context.Context, id string) (KeyInfo, error) {
	if id != "k1" {
		return KeyInfo{}, f.fail("gone")
	}
	return k1(), nil
}

func (f *fakeKeys) Create(_ context.Context, id, name string, dims map[string]string) (KeyInfo, string, error) {
	f.created = fmt.Sprintf("%s|%s|%v", id, name, dims)
	if err := f.fail(id); err != nil {
		return KeyInfo{}, "", err
	}
	ki := k1()
	ki.ID = id
	return ki, "tmk_new", nil
}

func (f *fakeKeys) Revoke(_ context.Context, id string) (KeyInfo, error) {
	if err := f.fail(id); err != nil {
		return KeyInfo{}, err
	}
	ki := k1()
	ki.Status, ki.Revoked, ki.Secrets = KeyRevoked, created.Add(time.Hour), Secrets{}
	return ki, nil
}

func (f *fakeKeys) Rotate(_ context.Context, id string, grace time.Duration) (KeyInfo, string, error) {
	f.grace = grace
	if err := f.fail(id); err != nil {
		return KeyInfo{}, "", err
	}
	ki := k1()
	ki.Secrets = Secrets{Open: 2, Until: []time.Time{created.Add(grace)}}
	return ki, "tmk_rotated", nil
}

// The key API needs the token like /metrics, maps every error to its
// status, refuses what it cannot read, and shows a secret only in the
// answers of create and rotate.
func TestKeyAPI(t *testing.T) {
	const auth = "Bearer s3cret"
	for _, tt := range []struct {
		name, method, path, auth, body string
		status                         int
		want                           string
	}{
		{"list needs the token", "GET", "/v1/keys", "", "", 401, "unauthorized"},
		{"create needs the token", "POST", "/v1/keys", "", `{}`, 401, "unauthorized"},
		{"revoke needs the token", "POST", "/v1/keys/k1/revoke", "Bearer nope", "", 401, "unauthorized"},
		{"list", "GET", "/v1/keys", auth, "", 200, `"keys": [
    {
      "id": "k1",
      "name": "ci",
      "dimensions": {
        "project": "alpha"
      },
      "source": "runtime",
      "created": "2026-11-02T10:00:00Z",
      "status": "active",
      "secrets": {
        "open": 1
      }
    }
  ]`},
		{"get", "GET", "/v1/keys/k1", auth, "", 200, `"id": "k1"`},
		{"get unknown", "GET", "/v1/keys/nope", auth, "", 404, `no such key: \"gone\"`},
		{"create", "POST", "/v1/keys", auth, `{"id":"k2","name":"ci","dimensions":{"project":"alpha"}}`, 201, `"secret": "tmk_new"`},
		{"create with an empty body", "POST", "/v1/keys", auth, "", 201, `"secret": "tmk_new"`},
		{"create, invalid", "POST", "/v1/keys", auth, `{"id":"bad"}`, 400, `invalid key: dimension \"colour\"`},
		{"create, taken", "POST", "/v1/keys", auth, `{"id":"file"}`, 409, `in the config file`},
		{"create, no records", "POST", "/v1/keys", auth, `{"id":"nostore"}`, 501, `cannot keep keys`},
		{"create, keys off", "POST", "/v1/keys", auth, `{"id":"off"}`, 404, `attribution.api_keys is not configured`},
		{"create, store down", "POST", "/v1/keys", auth, `{"id":"down"}`, 500, `store down`},
		{"an unknown field is named", "POST", "/v1/keys", auth, `{"dimension":{"project":"x"}}`, 400, `invalid key: body: unknown field \"dimension\"`},
		{"a wrong type is named", "POST", "/v1/keys", auth, `{"dimensions":{"project":1}}`, 400, `body: dimensions: want a string, not a JSON number`},
		{"not JSON", "POST", "/v1/keys", auth, `id=k2`, 400, `invalid key: body: invalid character`},
		{"two objects", "POST", "/v1/keys", auth, `{} {}`, 400, `want one JSON object, got more`},
		{"a stray brace", "POST", "/v1/keys", auth, `{}}`, 400, `invalid key: body: invalid character '}'`},
		{"too big", "POST", "/v1/keys", auth, `{"name":"` + strings.Repeat("x", 70<<10) + `"}`, 413, `at most 64 KiB`},
		{"revoke", "POST", "/v1/keys/k1/revoke", auth, "", 200, `"status": "revoked"`},
		{"revoke unknown", "POST", "/v1/keys/gone/revoke", auth, "", 404, `no such key`},
		{"revoke the file's", "POST", "/v1/keys/file/revoke", auth, "", 409, `change it there`},
		{"rotate", "POST", "/v1/keys/k1/rotate", auth, `{"grace":"1h"}`, 200, `"until": [
        "2026-11-02T11:00:00Z"
      ]
    }
  },
  "secret": "tmk_rotated"`},
		{"rotate without a body", "POST", "/v1/keys/k1/rotate", auth, "", 200, `"secret": "tmk_rotated"`},
		{"rotate, bad grace", "POST", "/v1/keys/k1/rotate", auth, `{"grace":"an hour"}`, 400, `grace \"an hour\": want a duration`},
		{"rotate, unknown field", "POST", "/v1/keys/k1/rotate", auth, `{"grace":"1h","keep":true}`, 400, `unknown field \"keep\"`},
		{"rotate unknown", "POST", "/v1/keys/gone/rotate", auth, "", 404, `no such key`},
		{"rotate the file's", "POST", "/v1/keys/file/rotate", auth, "", 409, `key conflict: key \"file\"`},
		{"no such route", "DELETE", "/v1/keys/k1", auth, "", 405, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeKeys{}
			s := New(http.NotFoundHandler(), "s3cret").WithKeys(f)
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) {
				t.Fatalf("%s %s: %d %s, want %d containing %q", tt.method, tt.path, w.Code, w.Body, tt.status, tt.want)
			}
			secret := strings.Contains(w.Body.String(), `"secret"`)
			if secret != (w.Code < 300 && (tt.method == "POST" && !strings.HasSuffix(tt.path, "/revoke"))) {
				t.Errorf("a secret in %s %s's answer: %v", tt.method, tt.path, secret)
			}
			if secret && w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("an answer with a secret may be cached: Cache-Control %q", w.Header().Get("Cache-Control"))
			}
		})
	}
}

// What the body says reaches the implementation: the fields of a create,
// a rotation's grace (0 when not given).
func TestKeyAPIPassesTheBody(t *testing.T) {
	f := &fakeKeys{}
	s := New(http.NotFoundHandler(), "").WithKeys(f)
	for _, tt := range []struct{ path, body string }{
		{"/v1/keys", `{"id":"k2","name":"ci","dimensions":{"project":"alpha","team":"x"}}`},
		{"/v1/keys/k1/rotate", `{"grace":"90m"}`},
	} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("POST", tt.path, strings.NewReader(tt.body)))
		if w.Code >= 300 {
			t.Fatalf("POST %s: %d %s", tt.path, w.Code, w.Body)
		}
	}
	if want := "k2|ci|map[project:alpha team:x]"; f.created != want || f.grace != 90*time.Minute {
		t.Fatalf("created %q, grace %s; want %q, 1h30m", f.created, f.grace, want)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("POST", "/v1/keys/k1/rotate", nil))
	if w.Code != 200 || f.grace != 0 {
		t.Fatalf("rotate without a body: %d, grace %s; want 200, 0s", w.Code, f.grace)
	}
}
