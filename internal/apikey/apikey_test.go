package apikey_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
)

func hasher(t *testing.T) *apikey.Hasher {
	t.Helper()
	h, err := apikey.NewHasher(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A digest's text form reads back to the same digest, in JSON too; what is
// not one is refused with the way to make one.
func TestDigestText(t *testing.T) {
	d := hasher(t).Hash("sk-1")
	s := d.String()
	if !strings.HasPrefix(s, apikey.DigestPrefix) || len(s) != len(apikey.DigestPrefix)+64 {
		t.Fatalf("text form %q", s)
	}
	back, err := apikey.ParseDigest(s)
	if err != nil || back != d {
		t.Fatalf("ParseDigest(%q) = %v, %v", s, back, err)
	}
	js, err := json.Marshal(apikey.Secret{Digest: d})
	if err != nil || string(js) != `{"digest":"`+s+`"}` {
		t.Fatalf("JSON %s %v", js, err)
	}
	var sec apikey.Secret
	if err := json.Unmarshal(js, &sec); err != nil || sec.Digest != d {
		t.Fatalf("JSON back: %v %v", sec.Digest, err)
	}
	hex := strings.TrimPrefix(s, apikey.DigestPrefix)
	for _, bad := range []string{"", hex, "sha256:" + hex, apikey.DigestPrefix + hex[:62], apikey.DigestPrefix + hex + "00",
		apikey.DigestPrefix + "zz" + hex[2:], strings.ToUpper(apikey.DigestPrefix) + hex} {
		if _, err := apikey.ParseDigest(bad); err == nil || !strings.Contains(err.Error(), "tokenmeter keys hash") {
			t.Errorf("ParseDigest(%q): %v, want a refusal naming tokenmeter keys hash", bad, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"digest":"sk-in-clear"}`), &sec); err == nil {
		t.Error("a key in clear where a digest belongs was read")
	}
}

// The secret keys the hash: too short a secret is refused, and the same
// key under another secret has another digest.
func TestHasher(t *testing.T) {
	if _, err := apikey.NewHasher(testSecret[:apikey.MinSecretBytes-1]); err == nil || !strings.Contains(err.Error(), "31 bytes; want at least 32") {
		t.Fatalf("a 31-byte secret: %v", err)
	}
	h := hasher(t)
	other, err := apikey.NewHasher([]byte(strings.Repeat("z", apikey.MinSecretBytes)))
	if err != nil {
		t.Fatal(err)
	}
	again := hasher(t) // a second hasher on the same secret: nothing random goes in
	if h.Hash("sk-1") != again.Hash("sk-1") || h.Hash("sk-1") == h.Hash("sk-2") || h.Hash("sk-1") == other.Hash("sk-1") {
		t.Fatal("digests are not a keyed function of the key")
	}
	s := apikey.NewSecret()
	if !strings.HasPrefix(s, apikey.SecretPrefix) || len(s) != len(apikey.SecretPrefix)+43 || s == apikey.NewSecret() {
		t.Fatalf("NewSecret %q", s)
	}
	if id := apikey.NewID(); apikey.CheckID(id) != nil || len(id) != len("key_")+16 {
		t.Fatalf("NewID %q", id)
	}
}

// A lookup finds a key's current secret, a rotated secret until its end,
// a revoked key from its revocation on, and nothing for anything else,
// without saying which key a rotated-out secret was.
func TestTableLookup(t *testing.T) {
	h := hasher(t)
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	table, err := apikey.NewTable([]apikey.Key{
		{ID: "b", Secrets: []apikey.Secret{{Digest: h.Hash("b-new")}, {Digest: h.Hash("b-old"), Until: now.Add(time.Minute)}}},
		{ID: "a", Secrets: []apikey.Secret{{Digest: h.Hash("a")}}},
		{ID: "c", Secrets: []apikey.Secret{{Digest: h.Hash("c")}}, Revoked: now},
		{ID: "d", Secrets: []apikey.Secret{{Digest: h.Hash("d")}}, Revoked: now.Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		key    string
		at     time.Time
		status apikey.Status
		id     string
	}{
		{"a", now, apikey.Valid, "a"},
		{"b-new", now, apikey.Valid, "b"},
		{"b-old", now.Add(time.Minute - time.Nanosecond), apikey.Valid, "b"},
		{"b-old", now.Add(time.Minute), apikey.Unknown, ""},
		{"c", now, apikey.Revoked, "c"},
		{"c", now.Add(-time.Second), apikey.Valid, "c"},
		{"d", now, apikey.Valid, "d"},
		{"d", now.Add(time.Hour), apikey.Revoked, "d"},
		{"nope", now, apikey.Unknown, ""},
	} {
		k, st := table.Lookup(h.Hash(tt.key), tt.at)
		id := ""
		if k != nil {
			id = k.ID
		}
		if st != tt.status || id != tt.id {
			t.Errorf("%s at %s: %s %q, want %s %q", tt.key, tt.at.Format(time.TimeOnly), st, id, tt.status, tt.id)
		}
	}
	var ids []string
	for _, k := range table.Keys() {
		ids = append(ids, k.ID)
	}
	if strings.Join(ids, ",") != "a,b,c,d" || table.Get("c") == nil || table.Get("e") != nil {
		t.Fatalf("keys %v; Get(c) %v", ids, table.Get("c"))
	}
	for name, keys := range map[string][]apikey.Key{
		"one id twice":     {{ID: "a", Secrets: []apikey.Secret{{Digest: h.Hash("1")}}}, {ID: "a", Secrets: []apikey.Secret{{Digest: h.Hash("2")}}}},
		"one digest twice": {{ID: "a", Secrets: []apikey.Secret{{Digest: h.Hash("1")}}}, {ID: "b", Secrets: []apikey.Secret{{Digest: h.Hash("1")}}}},
	} {
		if _, err := apikey.NewTable(keys); !errors.Is(err, apikey.ErrDuplicate) {
			t.Errorf("%s: %v, want ErrDuplicate", name, err)
		}
	}
}
