package apikey_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes: the shortest allowed

// clock is a settable clock for the registry.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// fileKeySecret opens the config file's key in these tests.
const fileKeySecret = "sk-from-the-config-file"

// newRegistry opens a registry on store with the config file's one key
// ("file-key") and the dimensions project and team readable.
func newRegistry(t *testing.T, store *badgerstore.Store, c *clock) *apikey.Registry {
	t.Helper()
	r, err := apikey.NewRegistry(testSecret, store, slog.New(slog.DiscardHandler), c.now)
	if err != nil {
		t.Fatal(err)
	}
	h, err := apikey.NewHasher(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	r.Configure([]apikey.Key{{ID: "file-key", Dimensions: map[string]string{"project": "file"},
		Secrets: []apikey.Secret{{Digest: h.Hash(fileKeySecret)}}}}, map[string]bool{"project": true, "team": true})
	if _, err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func openStore(t *testing.T, dir string) *badgerstore.Store {
	t.Helper()
	s, err := badgerstore.Open(badgerstore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// resolves checks what each secret resolves to on r: its status and, when
// valid, the key's id.
func resolves(t *testing.T, r *apikey.Registry, want map[string]apikey.Status, id string) {
	t.Helper()
	for secret, st := range want {
		k, got := r.Resolve(secret)
		if got != st {
			t.Errorf("secret %.8s…: %s, want %s", secret, got, st)
		}
		if got == apikey.Valid && k.ID != id {
			t.Errorf("secret %.8s…: key %q, want %q", secret, k.ID, id)
		}
	}
}

// One key's life over a Badger directory: created, resolved by its secret
// to its dimensions, rotated with and without a grace, seen by a second
// registry on the same store (a replica), revoked.
func TestRegistryLifecycle(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)}
	store := openStore(t, t.TempDir())
	defer store.Close()
	a, b := newRegistry(t, store, c), newRegistry(t, store, c)

	dims := map[string]string{"project": "alpha", "team": "x"}
	k, first, err := a.Create(ctx, "ci", "the CI", dims)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first, apikey.SecretPrefix) || k.Source != "runtime" || !k.Created.Equal(c.t) {
		t.Fatalf("created %+v with secret %.8s…", k, first)
	}
	got, st := a.Resolve(first)
	if st != apikey.Valid || !maps.Equal(got.Dimensions, dims) || got.Name != "the CI" {
		t.Fatalf("resolve the new secret: %v %+v", st, got)
	}
	resolves(t, a, map[string]apikey.Status{"": apikey.Missing, "tmk_guessed": apikey.Unknown, fileKeySecret: apikey.Valid}, "file-key")

	// A replica learns of the key at its refresh, not before.
	resolves(t, b, map[string]apikey.Status{first: apikey.Unknown}, "")
	if changed, err := b.Refresh(ctx); err != nil || !changed {
		t.Fatalf("refresh after create: %v %v", changed, err)
	}
	resolves(t, b, map[string]apikey.Status{first: apikey.Valid}, "ci")
	if changed, err := b.Refresh(ctx); err != nil || changed {
		t.Fatalf("a refresh with nothing new: %v %v", changed, err)
	}

	// Rotated with a grace, both secrets open the key until it ends.
	_, second, err := a.Rotate(ctx, "ci", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resolves(t, a, map[string]apikey.Status{first: apikey.Valid, second: apikey.Valid}, "ci")
	c.t = c.t.Add(time.Hour - time.Second)
	resolves(t, a, map[string]apikey.Status{first: apikey.Valid, second: apikey.Valid}, "ci")
	c.t = c.t.Add(time.Second)
	resolves(t, a, map[string]apikey.Status{first: apikey.Unknown, second: apikey.Valid}, "ci")

	// Rotated without one, the old secret stops at once.
	_, third, err := a.Rotate(ctx, "ci", 0)
	if err != nil {
		t.Fatal(err)
	}
	resolves(t, a, map[string]apikey.Status{first: apikey.Unknown, second: apikey.Unknown, third: apikey.Valid}, "ci")
	if _, err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	resolves(t, b, map[string]apikey.Status{second: apikey.Unknown, third: apikey.Valid}, "ci")

	// Revoked, the key opens nothing, here and on the replica.
	rk, err := a.Revoke(ctx, "ci")
	if err != nil || rk.Revoked.IsZero() {
		t.Fatalf("revoke: %+v %v", rk, err)
	}
	resolves(t, a, map[string]apikey.Status{third: apikey.Revoked}, "")
	if _, err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	resolves(t, b, map[string]apikey.Status{third: apikey.Revoked}, "")
	if _, _, err := a.Rotate(ctx, "ci", 0); !errors.Is(err, apikey.ErrConflict) {
		t.Fatalf("rotate a revoked key: %v, want ErrConflict", err)
	}
	if again, err := a.Revoke(ctx, "ci"); err != nil || !again.Revoked.Equal(rk.Revoked) {
		t.Fatalf("revoke twice: %v %v, want the first revocation kept", again.Revoked, err)
	}
}

// What the registry refuses, and with which error.
func TestRegistryRefuses(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)}
	store := openStore(t, t.TempDir())
	defer store.Close()
	r := newRegistry(t, store, c)
	if _, _, err := r.Create(ctx, "taken", "", nil); err != nil {
		t.Fatal(err)
	}
	noStore, err := apikey.NewRegistry(testSecret, nil, slog.New(slog.DiscardHandler), c.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		do   func() error
		want error
	}{
		{"an id taken at runtime", func() error { _, _, err := r.Create(ctx, "taken", "", nil); return err }, apikey.ErrConflict},
		{"the config file's id", func() error { _, _, err := r.Create(ctx, "file-key", "", nil); return err }, apikey.ErrConflict},
		{"revoke the config file's key", func() error { _, err := r.Revoke(ctx, "file-key"); return err }, apikey.ErrConflict},
		{"rotate the config file's key", func() error { _, _, err := r.Rotate(ctx, "file-key", 0); return err }, apikey.ErrConflict},
		{"a dimension nothing reads", func() error {
			_, _, err := r.Create(ctx, "", "", map[string]string{"colour": "red"})
			return err
		}, apikey.ErrInvalid},
		{"the key's own id as a dimension", func() error { _, _, err := r.Create(ctx, "", "", map[string]string{"id": "x"}); return err }, apikey.ErrInvalid},
		{"a blank dimension value", func() error { _, _, err := r.Create(ctx, "", "", map[string]string{"project": " "}); return err }, apikey.ErrInvalid},
		{"a bad id", func() error { _, _, err := r.Create(ctx, "a/b", "", nil); return err }, apikey.ErrInvalid},
		{"a name with a control character", func() error { _, _, err := r.Create(ctx, "", "a\x00b", nil); return err }, apikey.ErrInvalid},
		{"a negative grace", func() error { _, _, err := r.Rotate(ctx, "taken", -time.Second); return err }, apikey.ErrInvalid},
		{"revoke no such key", func() error { _, err := r.Revoke(ctx, "nope"); return err }, apikey.ErrNotFound},
		{"rotate no such key", func() error { _, _, err := r.Rotate(ctx, "nope", 0); return err }, apikey.ErrNotFound},
		{"a store without records", func() error { _, _, err := noStore.Create(ctx, "", "", nil); return err }, apikey.ErrNoRecords},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Fatalf("%v, want %v", err, tt.want)
			}
		})
	}
	if n := len(r.Table().Keys()); n != 2 {
		t.Fatalf("%d keys after the refusals, want 2 (the file's and taken)", n)
	}
}

// No secret is ever written: walk the Badger directory, open and closed,
// and read every byte. The digests are there (so the search can see what
// is stored); the secrets are not.
func TestStoreFilesHoldNoSecret(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	store := openStore(t, dir)
	r := newRegistry(t, store, c)
	var secrets []string
	for _, id := range []string{"one", "two"} {
		_, s, err := r.Create(ctx, id, "", map[string]string{"project": id})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, s)
	}
	_, s, err := r.Rotate(ctx, "one", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, s)
	if _, err := r.Revoke(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	// While open, Badger's write-ahead files hold the records uncompressed.
	pats := append(secretParts(secrets), r.Hash(secrets[0]).String())
	found := scan(t, dir, pats)
	if d := pats[len(pats)-1]; !found[d] {
		t.Fatalf("the stored digest %s is not in the files: the search cannot see records", d)
	}
	noSecrets(t, found, secrets)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	noSecrets(t, scan(t, dir, secretParts(secrets)), secrets)
}

// secretParts are the strings no file may hold: each secret, and the part
// after its prefix (an encoding that dropped "tmk_" would still leak it).
func secretParts(secrets []string) []string {
	var parts []string
	for _, s := range append(slices.Clone(secrets), fileKeySecret) {
		parts = append(parts, s, strings.TrimPrefix(s, apikey.SecretPrefix))
	}
	return parts
}

func noSecrets(t *testing.T, found map[string]bool, secrets []string) {
	t.Helper()
	for _, p := range secretParts(secrets) {
		if found[p] {
			t.Fatalf("a secret (%.8s…) is in the store's files", p)
		}
	}
}

// scan reads every byte of every file under dir and returns which of pats
// occur.
func scan(t *testing.T, dir string, pats []string) map[string]bool {
	t.Helper()
	found := map[string]bool{}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return scanFile(f, pats, found)
	})
	if err != nil || files == 0 {
		t.Fatalf("read %d files of %s: %v", files, dir, err)
	}
	return found
}

// Linux's lseek whences that find a sparse file's data and holes.
const (
	seekData = 3
	seekHole = 4
)

// scanFile notes in found which of pats f holds. An open Badger's value
// log is a sparse file of 2 GiB, so only its data is read: a hole reads as
// zeros, which hold no pattern and split none. A file system without
// SEEK_DATA has its files read whole.
func scanFile(f *os.File, pats []string, found map[string]bool) error {
	for off := int64(0); ; {
		start, err := f.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			return nil // no data after off
		}
		end := int64(-1) // to the end of the file
		if err == nil {
			if end, err = f.Seek(start, seekHole); err != nil {
				return err
			}
		} else if start, err = f.Seek(off, io.SeekStart); err != nil {
			return err
		}
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return err
		}
		var r io.Reader = f
		if end >= 0 {
			r = io.LimitReader(f, end-start)
		}
		if err := scanData(r, pats, found); err != nil || end < 0 {
			return err
		}
		off = end
	}
}

// scanData reads r in blocks, keeping the end of each before the next so
// that a pattern across two blocks is found.
func scanData(r io.Reader, pats []string, found map[string]bool) error {
	longest := 0
	for _, p := range pats {
		longest = max(longest, len(p))
	}
	const block = 1 << 20
	buf := make([]byte, longest+block)
	carry := 0
	for {
		n, err := io.ReadFull(r, buf[carry:carry+block])
		for _, p := range pats {
			found[p] = found[p] || bytes.Contains(buf[:carry+n], []byte(p))
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
		keep := min(longest-1, carry+n)
		copy(buf, buf[carry+n-keep:carry+n])
		carry = keep
	}
}

// The scan finds a pattern wherever it lies: within a block, across two,
// at the very end.
func TestScanFindsAcrossBlocks(t *testing.T) {
	const block = 1 << 20
	for _, at := range []int{0, 100, block - 3, block, 2*block - 1, 3*block - 5} {
		data := make([]byte, at+5)
		copy(data[at:], "tmk_x")
		found := map[string]bool{}
		if err := scanData(bytes.NewReader(data), []string{"tmk_x", "longer-pattern"}, found); err != nil || !found["tmk_x"] || found["longer-pattern"] {
			t.Errorf("pattern at %d: found %v, err %v", at, found, err)
		}
	}
}
