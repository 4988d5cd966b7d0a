package apikey_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

// call sends one request to the admin API and decodes its answer into out.
func call(t *testing.T, srv http.Handler, method, path, body string, out any) int {
	t.Helper()
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	if strings.Contains(w.Body.String(), apikey.DigestPrefix) {
		t.Fatalf("%s %s shows a digest: %s", method, path, w.Body)
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, w.Code, w.Body, err)
		}
	}
	return w.Code
}

type withSecret struct {
	Key    admin.KeyInfo `json:"key"`
	Secret string        `json:"secret"`
}

// The admin API over a real registry: a key created through it opens its
// dimensions with the secret it answered; rotation and revocation show in
// what it lists, which never holds a digest.
func TestAPIOverRegistry(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)}
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	r := newRegistry(t, store, c)
	srv := admin.New(http.NotFoundHandler(), "").WithKeys(&apikey.API{Registry: r})

	var created withSecret
	if code := call(t, srv, "POST", "/v1/keys", `{"id":"ci","name":"CI","dimensions":{"project":"alpha"}}`, &created); code != 201 {
		t.Fatalf("create: %d", code)
	}
	want := admin.KeyInfo{ID: "ci", Name: "CI", Dimensions: map[string]string{"project": "alpha"}, Source: "runtime",
		Created: c.t, Status: admin.KeyActive, Secrets: admin.Secrets{Open: 1}}
	if !equalInfo(created.Key, want) {
		t.Fatalf("created %+v, want %+v", created.Key, want)
	}
	if k, st := r.Resolve(created.Secret); st != apikey.Valid || k.Dimensions["project"] != "alpha" {
		t.Fatalf("the answered secret resolves to %v %+v", st, k)
	}

	var rotated withSecret
	if code := call(t, srv, "POST", "/v1/keys/ci/rotate", `{"grace":"1h"}`, &rotated); code != 200 {
		t.Fatalf("rotate: %d", code)
	}
	want.Secrets = admin.Secrets{Open: 2, Until: []time.Time{c.t.Add(time.Hour)}}
	if !equalInfo(rotated.Key, want) || rotated.Secret == created.Secret {
		t.Fatalf("rotated %+v, want %+v", rotated.Key, want)
	}
	c.t = c.t.Add(time.Hour)
	var got admin.KeyInfo
	call(t, srv, "GET", "/v1/keys/ci", "", &got)
	want.Secrets = admin.Secrets{Open: 1}
	if !equalInfo(got, want) {
		t.Fatalf("after the grace %+v, want %+v", got, want)
	}

	if code := call(t, srv, "POST", "/v1/keys/ci/revoke", "", &got); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	want.Status, want.Revoked, want.Secrets = admin.KeyRevoked, c.t, admin.Secrets{}
	if !equalInfo(got, want) {
		t.Fatalf("revoked %+v, want %+v", got, want)
	}

	var list struct{ Keys []admin.KeyInfo }
	call(t, srv, "GET", "/v1/keys", "", &list)
	fileKey := admin.KeyInfo{ID: "file-key", Dimensions: map[string]string{"project": "file"}, Source: "config",
		Status: admin.KeyActive, Secrets: admin.Secrets{Open: 1}}
	if len(list.Keys) != 2 || !equalInfo(list.Keys[0], want) || !equalInfo(list.Keys[1], fileKey) {
		t.Fatalf("list %+v", list.Keys)
	}
}

func equalInfo(a, b admin.KeyInfo) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// Every registry error reaches the admin API as the one it maps to a
// status, with the registry's message; no registry at all is "off".
func TestAPIErrors(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)}
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	api := &apikey.API{Registry: newRegistry(t, store, c)}
	off := &apikey.API{}
	for _, tt := range []struct {
		name string
		err  error
		want error
		msg  string
	}{
		{"invalid", third(api.Create(ctx, "a/b", "", nil)), admin.ErrKeyInvalid, `invalid key: id "a/b"`},
		{"not found", second(api.Get(ctx, "nope")), admin.ErrKeyNotFound, `no such key: "nope"`},
		{"not found on revoke", second(api.Revoke(ctx, "nope")), admin.ErrKeyNotFound, `no such key: "nope"`},
		{"conflict", second(api.Revoke(ctx, "file-key")), admin.ErrKeyConflict, `key conflict: key "file-key" is in the config file`},
		{"off: list", second(off.List(ctx)), admin.ErrKeysOff, "API keys are off (attribution.api_keys is not set)"},
		{"off: get", second(off.Get(ctx, "x")), admin.ErrKeysOff, "API keys are off"},
		{"off: create", third(off.Create(ctx, "", "", nil)), admin.ErrKeysOff, "API keys are off"},
		{"off: revoke", second(off.Revoke(ctx, "x")), admin.ErrKeysOff, "API keys are off"},
		{"off: rotate", third(off.Rotate(ctx, "x", 0)), admin.ErrKeysOff, "API keys are off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) || !strings.HasPrefix(tt.err.Error(), tt.msg) {
				t.Fatalf("%v, want %v starting %q", tt.err, tt.want, tt.msg)
			}
		})
	}
	noStore, err := apikey.NewRegistry(testSecret, nil, nil, c.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := (&apikey.API{Registry: noStore}).Create(ctx, "", "", nil); !errors.Is(err, admin.ErrNoRecords) {
		t.Fatalf("a store without records: %v", err)
	}
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }
