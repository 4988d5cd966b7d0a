package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/envoy"
	"github.com/tokenmeter/tokenmeter/ratelimit/redisstore/redistest"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// keysAttribution charges each request to its API key's project, and names
// the key, so that a budget can hold per key.
const keysAttribution = `attribution:
  api_keys: {secret_env: TM_E2E_KEY_SECRET, unknown: deny, missing: deny}
  dimensions:
    - name: project
      from: [{api_key: project}]
    - name: api_key
      from: [{api_key: id}]
`

// keysSecret is the hashing secret the keys tests run tokenmeter with.
const keysSecret = "e2e-secret-0123456789abcdefghijklmnopqrstuvwxyz"

type createdKey struct {
	Key struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	} `json:"key"`
	Secret string `json:"secret"`
}

// adminCall sends a JSON call to the admin API and decodes its answer.
func adminCall(t *testing.T, s *testbed.Stack, method, path, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.TM.Admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data := testbed.ReadAll(t, resp)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
}

// Through the real Envoy on the shipped config: a key created through the
// admin API is attributed (its project, its id) whatever header the client
// forges, is held to its own budget, and is refused once revoked; a rotated
// key's old secret is refused and its new one works; no key reaches a log,
// the metrics, the ledger or the store's files in clear.
func TestAPIKeyThroughEnvoy(t *testing.T) {
	t.Setenv("TM_E2E_KEY_SECRET", keysSecret)
	s := testbed.New(t, testbed.Options{Bin: bin, AsShipped: true, Extra: keysAttribution,
		Budgets: "  - {name: per-key, match: {api_key: \"*\"}, limit: {requests: 3}, window: day}\n"})
	var alpha, beta createdKey
	adminCall(t, s, "POST", "/v1/keys", `{"name":"alpha app","dimensions":{"project":"alpha"}}`, 201, &alpha)
	adminCall(t, s, "POST", "/v1/keys", `{"id":"beta","dimensions":{"project":"beta"}}`, 201, &beta)
	if !strings.HasPrefix(alpha.Secret, "tmk_") || alpha.Key.ID == "" || beta.Key.ID != "beta" {
		t.Fatalf("created %+v and %+v", alpha, beta)
	}
	const chat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`
	send := func(hdrs map[string]string, want int) string {
		t.Helper()
		resp, body := post(t, s.Proxy.URL+"/v1/chat/completions", chat, hdrs)
		if resp.StatusCode != want {
			t.Fatalf("%v: status %d, want %d: %s", redact(hdrs), resp.StatusCode, want, body)
		}
		return body
	}
	bearer := func(k string) map[string]string {
		return map[string]string{"authorization": "Bearer " + k, "x-tokenmeter-project": "victim"}
	}

	for range 3 {
		send(bearer(alpha.Secret), 200)
	}
	if body := send(bearer(alpha.Secret), 429); !strings.Contains(body, "per-key") {
		t.Fatalf("fourth request of alpha refused by %s, want budget per-key", body)
	}
	send(bearer(beta.Secret), 200) // beta's own budget is untouched

	adminCall(t, s, "POST", "/v1/keys/"+alpha.Key.ID+"/revoke", ``, 200, nil)
	if body := send(bearer(alpha.Secret), 401); !strings.Contains(body, "revoked") {
		t.Fatalf("a revoked key: %s", body)
	}
	var rotated createdKey
	adminCall(t, s, "POST", "/v1/keys/beta/rotate", `{}`, 200, &rotated)
	send(bearer(beta.Secret), 401)
	send(bearer(rotated.Secret), 200)
	send(map[string]string{"x-tokenmeter-project": "alpha"}, 401)
	// Gemini carries its key in the query string too.
	resp, body := post(t, s.Proxy.URL+"/v1beta/models/gemini-2.0-flash:generateContent?key="+rotated.Secret,
		`{"contents":[{"parts":[{"text":"hello"}]}]}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("gemini ?key=: status %d: %s", resp.StatusCode, body)
	}

	// The mock answers 8 output tokens a request: 3 of alpha's went
	// through, 2 of beta's chats (before and after the rotation) and its
	// Gemini call, the third of its 3.
	out := func(project, key, model string) map[string]string {
		return map[string]string{"project": project, "api_key": key, "model": model, "class": "output"}
	}
	s.WaitMetric("tokenmeter_tokens_total", out("alpha", alpha.Key.ID, "gpt-4o-mini"), 24)
	s.WaitMetric("tokenmeter_tokens_total", out("beta", "beta", "gpt-4o-mini"), 16)
	s.WaitMetric("tokenmeter_tokens_total", out("beta", "beta", "gemini-2.0-flash"), 8)
	for why, n := range map[string]float64{"revoked": 1, "unknown": 1, "missing": 1} {
		s.WaitMetric("tokenmeter_api_key_refusals_total", map[string]string{"reason": why}, n)
	}
	fams := s.Metrics()
	if v := testbed.Sum(fams, "tokenmeter_tokens_total", map[string]string{"project": "victim"}); v != 0 {
		t.Fatalf("%v tokens charged to the forged project", v)
	}
	secrets := []string{alpha.Secret, beta.Secret, rotated.Secret}
	noSecretIn(t, secrets, "tokenmeter's log", []byte(s.TM.Output()))
	noSecretIn(t, secrets, "Envoy's log", []byte(s.Proxy.Output()))
	noSecretIn(t, secrets, "/metrics", scrape(t, "http://"+s.TM.Admin+"/metrics"))
	day := time.Now().UTC()
	export := scrape(t, "http://"+s.TM.Admin+"/v1/usage/export?format=jsonl&from="+day.Format("2006-01-02")+"&to="+day.AddDate(0, 0, 1).Format("2006-01-02"))
	if !bytes.Contains(export, []byte(alpha.Key.ID)) {
		t.Fatalf("the ledger export does not name key %s:\n%s", alpha.Key.ID, export)
	}
	noSecretIn(t, secrets, "the ledger export", export)
	var keys struct{ Keys []json.RawMessage }
	adminCall(t, s, "GET", "/v1/keys", ``, 200, &keys)
	list, _ := json.Marshal(keys)
	noSecretIn(t, secrets, "GET /v1/keys", list)
	s.TM.Stop(os.Interrupt) // the store's and the ledger's files, flushed
	_ = filepath.WalkDir(s.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		noSecretIn(t, secrets, path, data)
		return nil
	})
}

// noSecretIn fails when data holds any of secrets.
func noSecretIn(t *testing.T, secrets []string, where string, data []byte) {
	t.Helper()
	for _, k := range secrets {
		if bytes.Contains(data, []byte(k)) {
			t.Errorf("%s holds an API key in clear", where)
		}
	}
}

func scrape(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v: %s", url, resp.StatusCode, err, data)
	}
	return data
}

// redact keeps a test's failure message free of keys.
func redact(h map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if k == "authorization" {
			v = "Bearer …"
		}
		out[k] = v
	}
	return out
}

// credentialInjector is docs/security.md's filter: after the gate, it puts
// the provider's key in the Authorization header, from a secret Envoy holds,
// in place of the caller's tokenmeter key. (The docs read the secret over
// SDS from a file; a static one here, as a bootstrap without a node id
// cannot use SDS.)
const credentialInjector = `name: envoy.filters.http.credential_injector
typed_config:
  "@type": type.googleapis.com/envoy.extensions.filters.http.credential_injector.v3.CredentialInjector
  overwrite: true
  credential:
    name: envoy.http.injected_credentials.generic
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.http.injected_credentials.generic.v3.Generic
      credential: {name: openai-key}
      header: Authorization
`

// providerKey is the provider's key as Envoy holds it: a static secret.
const providerKey = `static_resources:
  secrets:
  - name: openai-key
    generic_secret: {secret: {inline_string: "Bearer sk-provider-key"}}
`

// A key tokenmeter made (tmk_...) is for tokenmeter only: with the
// credential injector after the gate, the request is attributed by the
// caller's key and the provider receives its own key, never the caller's.
func TestVirtualKeyNeverReachesProvider(t *testing.T) {
	t.Setenv("TM_E2E_KEY_SECRET", keysSecret)
	seen := make(chan string, 16)
	s := testbed.New(t, testbed.Options{Bin: bin, AsShipped: true, Extra: keysAttribution,
		Upstream: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen <- r.Header.Get("authorization")
				h.ServeHTTP(w, r)
			})
		}})
	cfg, err := envoy.WithFilterBeforeRouter(s.EnvoyConfig(s.TM.GRPC), []byte(credentialInjector))
	if err != nil {
		t.Fatal(err)
	}
	// The secret goes first under static_resources, at its keys' indent.
	_, rest, ok := bytes.Cut(cfg, []byte("\nstatic_resources:\n"))
	if !ok {
		t.Fatal("no static_resources in the config")
	}
	indent := string(rest[:len(rest)-len(bytes.TrimLeft(rest, " "))])
	secret := strings.ReplaceAll(strings.TrimPrefix(providerKey, "static_resources:\n"), "\n  ", "\n"+indent)
	cfg = bytes.Replace(cfg, []byte("\nstatic_resources:\n"), []byte("\nstatic_resources:\n"+indent+strings.TrimPrefix(secret, "  ")), 1)
	p := s.StartProxy(cfg)
	var k createdKey
	adminCall(t, s, "POST", "/v1/keys", `{"id":"app","dimensions":{"project":"alpha"}}`, 201, &k)
	resp := s.PostTo(p, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`,
		map[string]string{"authorization": "Bearer " + k.Secret})
	if body := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := <-seen; got != "Bearer sk-provider-key" {
		t.Fatalf("the provider got Authorization %q, want its own key", strings.Replace(got, k.Secret, "<the caller's tmk_ key>", 1))
	}
	s.WaitMetric("tokenmeter_tokens_total", map[string]string{"project": "alpha", "api_key": "app", "class": "output"}, 8)
}

// Replicas on one Redis share their keys: a key made through one replica's
// admin API opens the others within reload.interval, and a revocation
// through another closes it everywhere.
func TestAPIKeysAcrossReplicas(t *testing.T) {
	t.Setenv("TM_E2E_KEY_SECRET", keysSecret)
	s := testbed.New(t, testbed.Options{Bin: bin, AsShipped: true, Redis: redistest.Start(t, false),
		Extra: keysAttribution + "reload: {interval: 100ms}\n"})
	r1 := s.AddReplica()
	var k createdKey
	adminCall(t, s, "POST", "/v1/keys", `{"id":"shared","dimensions":{"project":"alpha"}}`, 201, &k)
	const chat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`
	until := func(p *envoy.Proxy, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, body := post(t, p.URL+"/v1/chat/completions", chat, map[string]string{"authorization": "Bearer " + k.Secret})
			if resp.StatusCode == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	until(r1.Proxy, 200)
	req, err := http.NewRequest("POST", "http://"+r1.TM.Admin+"/v1/keys/shared/revoke", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke through the replica: %v %v", resp, err)
	}
	resp.Body.Close()
	until(r1.Proxy, 401) // at once where it was revoked
	until(s.Proxy, 401)  // within the interval on the other
}
