// Package apikey attributes a request by the API key it carries. A key is
// never kept in clear: it is hashed with HMAC-SHA256 under a secret only the
// tokenmeter processes hold (attribution.api_keys.secret_env), and the
// digest is looked up in a table that maps it to a key: an id, a name and
// the dimension values (project, team, user...) its requests are charged
// to. A stolen table or store dump cannot be turned back into keys, nor
// checked against guessed keys, without that secret.
//
// Keys come from the config file (as digests, made with `tokenmeter keys
// hash`) and from the budget store, where the admin API creates, revokes and
// rotates them, so replicas sharing a store share their keys.
package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
)

// DigestPrefix names the hash in a digest's text form, so that a digest
// cannot be mistaken for a key, and another hash can follow one day.
const DigestPrefix = "hmac-sha256:"

// MinSecretBytes is the shortest secret accepted: the HMAC key is what
// keeps digests from being checked against guessed keys.
const MinSecretBytes = 32

// SecretPrefix starts every key tokenmeter creates, so that a key found in a
// log or a repository is recognisable (and scanners can be taught it).
const SecretPrefix = "tmk_"

// Digest is the keyed hash of one API key.
type Digest [sha256.Size]byte

// String is the digest's text form: "hmac-sha256:" and 64 hex digits.
func (d Digest) String() string { return DigestPrefix + hex.EncodeToString(d[:]) }

// ParseDigest reads a digest's text form.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	h, ok := strings.CutPrefix(s, DigestPrefix)
	if !ok {
		return d, fmt.Errorf("want %q and 64 hex digits (tokenmeter keys hash makes one)", DigestPrefix)
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != len(d) {
		return d, fmt.Errorf("want %q and 64 hex digits (tokenmeter keys hash makes one)", DigestPrefix)
	}
	copy(d[:], b)
	return d, nil
}

// MarshalText writes the text form, so digests are strings in JSON.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads the text form.
func (d *Digest) UnmarshalText(b []byte) error {
	v, err := ParseDigest(string(b))
	*d = v
	return err
}

// Hasher hashes keys under one secret. It is safe for concurrent use.
type Hasher struct {
	pool sync.Pool // of hash.Hash: an HMAC's setup is half its cost
}

// NewHasher returns a hasher keyed by secret.
func NewHasher(secret []byte) (*Hasher, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("the key-hashing secret is %d bytes; want at least %d (e.g. openssl rand -hex 32)", len(secret), MinSecretBytes)
	}
	key := slices.Clone(secret)
	h := &Hasher{}
	h.pool.New = func() any { return hmac.New(sha256.New, key) }
	return h, nil
}

// Hash returns key's digest.
func (h *Hasher) Hash(key string) Digest {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(key))
	var d Digest
	m.Sum(d[:0])
	h.pool.Put(m)
	return d
}

// NewSecret returns a new random key: SecretPrefix and 43 characters
// (256 bits, URL-safe base64).
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// NewID returns a new key id: "key_" and 16 lower-case hex digits. Ids are
// public: they name a key in lists, budgets and the ledger.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "key_" + hex.EncodeToString(b[:])
}

// Key is one API key as tokenmeter knows it: never the key itself.
type Key struct {
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Dimensions map[string]string `json:"dimensions,omitempty"`
	// Secrets are the digests that open the key: the current one first, then
	// those a rotation keeps valid until their Until.
	Secrets []Secret  `json:"secrets"`
	Created time.Time `json:"created,omitzero"`
	// Revoked, when set, is when the key stopped opening anything.
	Revoked time.Time `json:"revoked,omitzero"`
	// Source is "config" (the file; read-only at runtime) or "runtime".
	Source string `json:"-"`
}

// Secret is one digest that opens a key, until Until when that is set.
type Secret struct {
	Digest Digest    `json:"digest"`
	Until  time.Time `json:"until,omitzero"`
}

// Field returns what a dimension source {api_key: field} reads: the key's
// id, its name, or one of its dimension values.
func (k *Key) Field(field string) string {
	switch field {
	case "id":
		return k.ID
	case "name":
		return k.Name
	}
	return k.Dimensions[field]
}

// Status is what a lookup found.
type Status uint8

// The statuses.
const (
	Valid   Status = iota // a key in the table, open
	Missing               // the request carries no key
	Unknown               // a key the table does not hold (or a rotated-out secret)
	Revoked               // a key that was revoked
)

func (s Status) String() string {
	return [...]string{"valid", "missing", "unknown", "revoked"}[s]
}

// Policy says what happens to a request whose key is missing or unknown.
type Policy string

// The policies.
const (
	Deny Policy = "deny" // refuse it (401) in the caller's dialect
	// Attribute lets it through; the dimensions read from the key are
	// missed, so the next source of each (or "unknown") applies.
	Attribute Policy = "unknown"
)

// Config is the attribution.api_keys section.
type Config struct {
	SecretEnv  string // the environment variable that holds the HMAC secret
	SecretFile string // or the file that does
	Secret     []byte // its value, read at load
	Unknown    Policy // a key the table does not hold
	Missing    Policy // a request without a key
	Keys       []Key  // the file's keys (Source "config")
}

// Table is an immutable index of keys by digest.
type Table struct {
	byDigest map[Digest]entry
	keys     []*Key // by id
}

type entry struct {
	key   *Key
	until time.Time
}

// ErrDuplicate is returned for two keys with one id or one digest.
var ErrDuplicate = errors.New("duplicate key")

// NewTable indexes keys. Ids and digests must be unique across them.
func NewTable(keys []Key) (*Table, error) {
	t := &Table{byDigest: map[Digest]entry{}}
	ids := map[string]bool{}
	for i := range keys {
		k := &keys[i]
		if ids[k.ID] {
			return nil, fmt.Errorf("%w: id %q twice", ErrDuplicate, k.ID)
		}
		ids[k.ID] = true
		for _, s := range k.Secrets {
			if _, dup := t.byDigest[s.Digest]; dup {
				return nil, fmt.Errorf("%w: key %q has a digest another key has", ErrDuplicate, k.ID)
			}
			t.byDigest[s.Digest] = entry{key: k, until: s.Until}
		}
		t.keys = append(t.keys, k)
	}
	slices.SortFunc(t.keys, func(a, b *Key) int { return strings.Compare(a.ID, b.ID) })
	return t, nil
}

// Lookup finds the key a digest opens at now.
func (t *Table) Lookup(d Digest, now time.Time) (*Key, Status) {
	e, ok := t.byDigest[d]
	switch {
	case !ok:
		return nil, Unknown
	case !e.key.Revoked.IsZero() && !now.Before(e.key.Revoked):
		return e.key, Revoked
	case !e.until.IsZero() && !now.Before(e.until):
		// A secret rotated out: the key is still valid, this secret is
		// not, and the caller must not learn which key it was.
		return nil, Unknown
	}
	return e.key, Valid
}

// Keys returns every key, by id. They are shared: do not modify them.
func (t *Table) Keys() []*Key { return t.keys }

// Get returns the key with id, or nil.
func (t *Table) Get(id string) *Key {
	i, ok := slices.BinarySearchFunc(t.keys, id, func(k *Key, id string) int { return strings.Compare(k.ID, id) })
	if !ok {
		return nil
	}
	return t.keys[i]
}

// CheckDimensions checks that a key sets only dimensions a source reads:
// readable lists the fields some {api_key: field} source names.
func CheckDimensions(dims map[string]string, readable map[string]bool) error {
	for _, name := range slices.Sorted(maps.Keys(dims)) {
		if name == "id" || name == "name" {
			return fmt.Errorf("dimension %q: the key's own %s; name another dimension", name, name)
		}
		if !readable[name] {
			return fmt.Errorf("dimension %q: no dimension reads it (add {api_key: %s} to a dimension's from)", name, name)
		}
		if _, ok := attribution.Clean(dims[name]); !ok || strings.TrimSpace(dims[name]) == "" {
			return fmt.Errorf("dimension %q: want a value of 1 to %d bytes of UTF-8 without control characters", name, attribution.MaxValueBytes)
		}
	}
	return nil
}
