package apikey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// kind is the record kind runtime keys are stored under, by id.
const kind = "apikey"

// Errors the registry returns for the admin API to map to statuses.
var (
	ErrInvalid   = errors.New("invalid key")                                        // 400
	ErrNotFound  = errors.New("no such key")                                        // 404
	ErrConflict  = errors.New("key conflict")                                       // 409
	ErrNoRecords = errors.New("the budget store cannot keep keys")                  // 501
	ErrDisabled  = errors.New("API keys are off (attribution.api_keys is not set)") // 404
)

// Registry holds the key table: the config file's keys and those created at
// runtime, kept in the budget store. Lookups read an immutable Table
// swapped on every change, so they never wait for a write.
type Registry struct {
	store  ratelimit.Records // nil: the store keeps no records
	log    *slog.Logger
	now    func() time.Time
	hasher *Hasher

	mu       sync.Mutex // orders writes
	file     []Key
	readable map[string]bool
	runtime  map[string]Key // by id, as stored
	raw      map[string][]byte
	table    atomic.Pointer[Table]
}

// NewRegistry builds a registry whose digests are made with secret.
func NewRegistry(secret []byte, store ratelimit.Records, log *slog.Logger, now func() time.Time) (*Registry, error) {
	h, err := NewHasher(secret)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{store: store, log: log, now: now, hasher: h, runtime: map[string]Key{}}
	t, _ := NewTable(nil)
	r.table.Store(t)
	return r, nil
}

// Configure installs the config file's keys and the fields its dimensions
// read ({api_key: field}), which a created key's dimensions must be among.
func (r *Registry) Configure(file []Key, readable map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.file = make([]Key, len(file))
	for i, k := range file {
		k.Source = "config"
		r.file[i] = k
	}
	r.readable = readable
	r.rebuild()
}

// Resolve looks up the key a request carries ("" when it carries none).
func (r *Registry) Resolve(credential string) (*Key, Status) {
	if credential == "" {
		return nil, Missing
	}
	return r.table.Load().Lookup(r.hasher.Hash(credential), r.now())
}

// Hash returns a key's digest under this registry's secret.
func (r *Registry) Hash(credential string) Digest { return r.hasher.Hash(credential) }

// Table is the current table.
func (r *Registry) Table() *Table { return r.table.Load() }

// rebuild indexes the file's keys and the runtime ones. A runtime key that
// collides with a file key (id or digest) is left out and logged: the file
// wins. Called with mu held.
func (r *Registry) rebuild() {
	keys := slices.Clone(r.file)
	t, err := NewTable(keys)
	if err != nil {
		// Config checks ids and digests; a collision here is a bug.
		r.log.Error("API key table", "err", err)
		t, _ = NewTable(nil)
		keys = nil
	}
	for _, id := range slices.Sorted(maps.Keys(r.runtime)) {
		next, err := NewTable(append(slices.Clone(keys), r.runtime[id]))
		if err != nil {
			r.log.Error("runtime API key left out", "key", id, "err", err)
			continue
		}
		keys, t = append(keys, r.runtime[id]), next
	}
	r.table.Store(t)
}

// Refresh re-reads the runtime keys from the store, so that keys created,
// revoked or rotated on another replica apply here. It reports whether
// they changed.
func (r *Registry) Refresh(ctx context.Context) (bool, error) {
	if r.store == nil {
		return false, nil
	}
	raw, err := r.store.ListRecords(ctx, kind)
	if err != nil {
		return false, fmt.Errorf("API keys: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.raw != nil && maps.EqualFunc(raw, r.raw, bytes.Equal) {
		return false, nil
	}
	keys := make(map[string]Key, len(raw))
	for id, data := range raw {
		var k Key
		if err := json.Unmarshal(data, &k); err != nil || k.ID != id || len(k.Secrets) == 0 {
			r.log.Error("stored API key left out: unreadable", "key", id, "err", err)
			continue
		}
		k.Source = "runtime"
		keys[id] = k
	}
	r.raw, r.runtime = raw, keys
	r.rebuild()
	return true, nil
}

// Create makes a key with id (a new one when empty), name and dimensions,
// stores it, and returns it with its secret: the only time the secret
// exists outside the caller.
func (r *Registry) Create(ctx context.Context, id, name string, dims map[string]string) (Key, string, error) {
	if id == "" {
		id = NewID()
	}
	if err := r.check(id, name, dims); err != nil {
		return Key{}, "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.table.Load().Get(id) != nil {
		return Key{}, "", fmt.Errorf("%w: key %q exists", ErrConflict, id)
	}
	secret := NewSecret()
	k := Key{ID: id, Name: name, Dimensions: dims, Secrets: []Secret{{Digest: r.hasher.Hash(secret)}},
		Created: r.now().UTC().Truncate(time.Second), Source: "runtime"}
	if err := r.put(ctx, k); err != nil {
		return Key{}, "", err
	}
	return k, secret, nil
}

// Revoke stops key id from opening anything, at once here and within the
// reload interval on replicas. Revoking a revoked key changes nothing.
func (r *Registry) Revoke(ctx context.Context, id string) (Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, err := r.runtimeKey(id)
	if err != nil || !k.Revoked.IsZero() {
		return k, err
	}
	k.Revoked = r.now().UTC()
	return k, r.put(ctx, k)
}

// Rotate gives key id a new secret, returned once. The old secrets keep
// working for grace (0: not at all), so callers can change over; the key's
// id, dimensions and budgets stay.
func (r *Registry) Rotate(ctx context.Context, id string, grace time.Duration) (Key, string, error) {
	if grace < 0 {
		return Key{}, "", fmt.Errorf("%w: grace %s: want 0 or more", ErrInvalid, grace)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k, err := r.runtimeKey(id)
	if err != nil {
		return Key{}, "", err
	}
	if !k.Revoked.IsZero() {
		return Key{}, "", fmt.Errorf("%w: key %q is revoked", ErrConflict, id)
	}
	now := r.now().UTC()
	end := now.Add(grace)
	secret := NewSecret()
	secrets := []Secret{{Digest: r.hasher.Hash(secret)}}
	for _, s := range k.Secrets {
		if s.Until.IsZero() || s.Until.After(end) {
			s.Until = end
		}
		if s.Until.After(now) {
			secrets = append(secrets, s) // still open for the grace
		}
	}
	k.Secrets = secrets
	return k, secret, r.put(ctx, k)
}

// runtimeKey returns the runtime key id. Called with mu held.
func (r *Registry) runtimeKey(id string) (Key, error) {
	if k, ok := r.runtime[id]; ok {
		return k, nil
	}
	if r.table.Load().Get(id) != nil {
		return Key{}, fmt.Errorf("%w: key %q is in the config file; change it there", ErrConflict, id)
	}
	return Key{}, fmt.Errorf("%w: %q", ErrNotFound, id)
}

// put stores k and installs it. Called with mu held.
func (r *Registry) put(ctx context.Context, k Key) error {
	if r.store == nil {
		return ErrNoRecords
	}
	data, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("API key %q: %w", k.ID, err)
	}
	if err := r.store.PutRecord(ctx, kind, k.ID, data); err != nil {
		return fmt.Errorf("API key %q: %w", k.ID, err)
	}
	if r.raw == nil {
		r.raw = map[string][]byte{}
	}
	r.runtime[k.ID], r.raw[k.ID] = k, data
	r.rebuild()
	return nil
}

// check validates a new key's id, name and dimensions.
func (r *Registry) check(id, name string, dims map[string]string) error {
	if err := CheckID(id); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, ok := attribution.Clean(name); !ok {
		return fmt.Errorf("%w: name: at most %d bytes of UTF-8 without control characters", ErrInvalid, attribution.MaxValueBytes)
	}
	r.mu.Lock()
	readable := r.readable
	r.mu.Unlock()
	if err := CheckDimensions(dims, readable); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// CheckID checks a key id: 1 to 64 of [A-Za-z0-9_.-].
func CheckID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("id %q: want 1 to 64 characters", id)
	}
	if strings.Trim(id, ".") == "" {
		// "." and ".." would be rewritten out of /v1/keys/{id} paths.
		return fmt.Errorf("id %q: want more than dots", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return fmt.Errorf("id %q: want letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}
