package apikey

import (
	"strings"
	"testing"
)

// FuzzRead: whatever a client puts in the headers and the query, reading
// its key never panics, and what it returns came from the request.
func FuzzRead(f *testing.F) {
	f.Add("openai", "Bearer tmk_abc", "", "/v1/chat/completions")
	f.Add("bedrock", "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00", "", "/model/m/converse")
	f.Add("google", "", "k", "/v1beta/models/g:generateContent?key=abc&alt=sse")
	f.Add("google", "", "", "/x?key=%zz;key=a")
	f.Add("", "bearer", "x", "?")
	f.Fuzz(func(t *testing.T, provider, auth, other, path string) {
		hdr := func(name string) string {
			if name == "authorization" {
				return auth
			}
			return other
		}
		got := Read(provider, hdr, path)
		if got != "" && !strings.Contains(auth+other+path, got) && !strings.Contains(path, "%") && !strings.Contains(path, "+") {
			t.Fatalf("read %q, which the request does not hold", got)
		}
	})
}
