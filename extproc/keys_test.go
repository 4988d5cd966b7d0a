package extproc

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/reason"
)

const keysConfig = `catalog: {builtin: true}
attribution:
  api_keys: {secret_env: TM_TEST_KEY_SECRET, unknown: %s, missing: %s}
  dimensions:
    - name: project
      from: [{api_key: project}, {header: x-tokenmeter-project}]
    - name: api_key
      from: [{api_key: id}]
`

// A gate decides on the key each API carries: a valid key's dimensions
// win over a client's header, a revoked key is always refused, and a
// missing or unknown one as its policy says; the key is never in the
// record or the answer.
func TestKeyAttribution(t *testing.T) {
	t.Setenv("TM_TEST_KEY_SECRET", strings.Repeat("k", 32))
	const chat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name, policy string // policy: unknown and missing
		revoke       bool
		hdrs         func(secret string) []string
		path         string
		status       int // 0: admitted
		project, key string
		why          reason.Reason
	}{
		{"bearer", "deny", false, func(s string) []string {
			return []string{"authorization", "Bearer " + s, "x-tokenmeter-project", "victim"}
		},
			"/v1/chat/completions", 0, "alpha", "k1", ""},
		{"anthropic x-api-key", "deny", false, func(s string) []string { return []string{"x-api-key", s} },
			"/v1/messages", 0, "alpha", "k1", ""},
		{"gemini query", "deny", false, func(s string) []string { return nil },
			"/v1beta/models/gemini-2.0-flash:generateContent?key=SECRET", 0, "alpha", "k1", ""},
		{"azure api-key", "deny", false, func(s string) []string { return []string{"api-key", s} },
			"/openai/deployments/d/chat/completions?api-version=2024-10-21", 0, "alpha", "k1", ""},
		{"anthropic key in the wrong header", "deny", false, func(s string) []string { return []string{"x-goog-api-key", s} },
			"/v1/messages", 401, "unknown", "unknown", reason.KeyMissing},
		{"revoked", "unknown", true, func(s string) []string { return []string{"authorization", "Bearer " + s} },
			"/v1/chat/completions", 401, "unknown", "unknown", reason.KeyRevoked},
		{"unknown, deny", "deny", false, func(string) []string { return []string{"authorization", "Bearer tmk_forged"} },
			"/v1/chat/completions", 401, "unknown", "unknown", reason.KeyUnknown},
		{"unknown, attributed", "unknown", false, func(string) []string {
			return []string{"authorization", "Bearer tmk_forged", "x-tokenmeter-project", "p"}
		}, "/v1/chat/completions", 0, "p", "unknown", ""},
		{"missing, deny", "deny", false, func(string) []string { return nil }, "/v1/chat/completions", 401, "unknown", "unknown", reason.KeyMissing},
		{"missing, attributed", "unknown", false, func(string) []string { return nil }, "/v1/chat/completions", 0, "unknown", "unknown", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, sink, _ := serverOn(t, strings.ReplaceAll(strings.Replace(keysConfig, "%s", tt.policy, 1), "%s", tt.policy), memStore(t))
			snap := s.Snapshot()
			reg, err := apikey.NewRegistry([]byte(strings.Repeat("k", 32)), memStore(t), slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
			if err != nil {
				t.Fatal(err)
			}
			reg.Configure(nil, attribution.KeyFields(snap.Config.Dimensions))
			ctx := context.Background()
			_, secret, err := reg.Create(ctx, "k1", "", map[string]string{"project": "alpha"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.revoke {
				if _, err := reg.Revoke(ctx, "k1"); err != nil {
					t.Fatal(err)
				}
			}
			next := *snap
			next.Keys = reg
			s.Swap(&next)

			kv := append([]string{":path", strings.ReplaceAll(tt.path, "SECRET", secret), ":method", "POST"}, tt.hdrs(secret)...)
			fs := play(t, s, context.Canceled, asGate(headers(false, kv...), chunk(chat, true))...)
			if st := immediateStatus(fs); st != tt.status {
				t.Fatalf("status %d, want %d; answers %v", st, tt.status, fs.sent)
			}
			for _, r := range fs.sent {
				if strings.Contains(r.String(), secret) {
					t.Fatalf("an answer holds the key: %v", r)
				}
			}
			var rec ledger.Record
			if tt.status != 0 {
				if len(sink.recs) != 1 {
					t.Fatalf("%d records, want 1", len(sink.recs))
				}
				rec = sink.recs[0]
				if rec.Outcome != ledger.Denied || rec.Reason != tt.why {
					t.Fatalf("record %s/%s, want denied/%s", rec.Outcome, rec.Reason, tt.why)
				}
			} else {
				play(t, s, io.EOF, asObserver(handoffIn(t, fs), respHeaders(false, ":status", "200", "content-type", "application/json"),
					respBody(`{"model":"gpt-4o-mini","usage":{"prompt_tokens":9,"completion_tokens":8}}`, true))...)
				if len(sink.recs) != 1 {
					t.Fatalf("%d records, want 1", len(sink.recs))
				}
				rec = sink.recs[0]
			}
			if got := rec.Dimensions.Get("project") + "|" + rec.Dimensions.Get("api_key"); got != tt.project+"|"+tt.key {
				t.Fatalf("attributed to %s, want %s|%s", got, tt.project, tt.key)
			}
		})
	}
}
