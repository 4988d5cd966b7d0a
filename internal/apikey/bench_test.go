package apikey

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// BenchmarkResolve is what key attribution adds to a request's gate: read
// the key from the headers, hash it, look it up, among 10,000 keys.
func BenchmarkResolve(b *testing.B) {
	secret := []byte(strings.Repeat("s", 32))
	reg, err := NewRegistry(secret, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]Key, 10000)
	for i := range keys {
		keys[i] = Key{ID: fmt.Sprintf("k%d", i), Dimensions: map[string]string{"project": "p"},
			Secrets: []Secret{{Digest: reg.Hash(fmt.Sprintf("tmk_key_%d", i))}}}
	}
	reg.Configure(keys, map[string]bool{"project": true})
	hdr := func(name string) string {
		if name == "authorization" {
			return "Bearer tmk_key_5000"
		}
		return ""
	}
	b.ReportAllocs()
	for b.Loop() {
		if k, st := reg.Resolve(Read("openai", hdr, "/v1/chat/completions")); st != Valid || k.ID != "k5000" {
			b.Fatalf("%v %v", k, st)
		}
	}
}
