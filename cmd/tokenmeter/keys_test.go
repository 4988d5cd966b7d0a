package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

func TestKeys(t *testing.T) {
	// The API's JSON as it comes, without a final newline.
	const created = `{"key":{"id":"ci","name":"CI","dimensions":{"project":"alpha","team":"x"},"source":"runtime",` +
		`"created":"2026-11-02T10:00:00Z","status":"active","secrets":{"open":1}},"secret":"tmk_new"}`
	const listed = `{"keys":[` +
		`{"id":"ci","name":"CI","dimensions":{"team":"x","project":"alpha"},"source":"runtime","created":"2026-11-02T10:00:00Z","status":"revoked","revoked":"2026-11-03T09:00:00Z","secrets":{"open":0}},` +
		`{"id":"file-key","dimensions":{},"source":"config","status":"active","secrets":{"open":1}}]}`
	const rotated = `{"key":{"id":"ci","dimensions":{},"source":"runtime","status":"active",` +
		`"secrets":{"open":3,"until":["2026-11-02T10:30:00Z","2026-11-02T11:00:00Z"]}},"secret":"tmk_rotated"}`
	api := newAdminAPI(t, map[string]string{
		"POST /v1/keys":            created,
		"GET /v1/keys":             listed,
		"POST /v1/keys/ci/revoke":  `{"id":"ci","dimensions":{},"source":"runtime","status":"revoked","revoked":"2026-11-03T09:00:00Z","secrets":{"open":0}}`,
		"POST /v1/keys/ci/rotate":  rotated,
		"POST /v1/keys/ci2/rotate": `{"key":{"id":"ci2","dimensions":{},"source":"runtime","status":"active","secrets":{"open":1}},"secret":"tmk_r2"}`,
	})
	t.Setenv("TM_TEST_TOKEN", "s3cret")
	tests := []apiCase{
		{"create prints the secret once, and says so", []string{"create", "--id", "ci", "--name", "CI", "--dimension", "project=alpha", "--dimension", "team=x"}, exitOK,
			"key ci created (project=alpha, team=x)\nsecret: tmk_new\n" +
				"This secret will not be shown again: store it now (tokenmeter keeps only its digest).\n", "",
			`POST /v1/keys auth= {"id":"ci","name":"CI","dimensions":{"project":"alpha","team":"x"}}`},
		{"create with nothing but the defaults", []string{"create", "--token-env", "TM_TEST_TOKEN"}, exitOK,
			"key ci created (project=alpha, team=x)\nsecret: tmk_new\n" +
				"This secret will not be shown again: store it now (tokenmeter keeps only its digest).\n", "",
			`POST /v1/keys auth=Bearer s3cret {}`},
		{"create --json prints the answer, secret included", []string{"create", "--dimension", "project=a=b", "--json"}, exitOK,
			created + "\n", "", `POST /v1/keys auth= {"dimensions":{"project":"a=b"}}`},
		{"create refuses a dimension without a value", []string{"create", "--dimension", "project"}, exitConfig,
			"", "tokenmeter: --dimension \"project\": want NAME=VALUE, e.g. project=alpha\n", ""},
		{"create refuses a dimension twice", []string{"create", "--dimension", "project=a", "--dimension", "project=b"}, exitConfig,
			"", "tokenmeter: --dimension project: given twice\n", ""},
		{"list as a table", []string{"list"}, exitOK,
			"ID        NAME  STATUS   SOURCE   DIMENSIONS            CREATED\n" +
				"ci        CI    revoked  runtime  project=alpha,team=x  2026-11-02T10:00:00Z\n" +
				"file-key  -     active   config   -                     -\n", "", "GET /v1/keys auth= "},
		{"list --json", []string{"list", "--json"}, exitOK, listed + "\n", "", "GET /v1/keys auth= "},
		{"revoke", []string{"revoke", "ci"}, exitOK, "key ci revoked at 2026-11-03T09:00:00Z\n", "", "POST /v1/keys/ci/revoke auth= "},
		{"rotate with a grace says until when the old secret works", []string{"rotate", "ci", "--grace", "1h"}, exitOK,
			"key ci rotated\nsecret: tmk_rotated\n" +
				"This secret will not be shown again: store it now (tokenmeter keeps only its digest).\n" +
				"The old secret works until 2026-11-02T11:00:00Z.\n", "", `POST /v1/keys/ci/rotate auth= {"grace":"1h0m0s"}`},
		{"rotate without one", []string{"rotate", "ci2"}, exitOK,
			"key ci2 rotated\nsecret: tmk_r2\n" +
				"This secret will not be shown again: store it now (tokenmeter keeps only its digest).\n" +
				"The old secret no longer works.\n", "", `POST /v1/keys/ci2/rotate auth= {"grace":"0s"}`},
		{"rotate --json", []string{"rotate", "ci", "--json"}, exitOK, rotated + "\n", "", `POST /v1/keys/ci/rotate auth= {"grace":"0s"}`},
		{"rotate refuses a grace that is no duration", []string{"rotate", "ci", "--grace", "an hour"}, exitConfig, "",
			"tokenmeter: --grace: expected duration but got \"an hour\": time: invalid duration \"an hour\"\nsee \"tokenmeter keys rotate --help\"\n", ""},
		{"the API's error", []string{"revoke", "nope"}, exitFail, "", "tokenmeter: admin API: no budget \"nope\"\n",
			"POST /v1/keys/nope/revoke auth= "},
	}
	runAPICases(t, api, "keys", tests)
}

// keys hash prints what the server's table holds for a key: its digest
// under the secret the variable names. It reads the key from stdin, and
// refuses what would make a digest no server matches.
func TestKeysHash(t *testing.T) {
	secret := strings.Repeat("s", apikey.MinSecretBytes)
	h, err := apikey.NewHasher([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	digest := h.Hash("tmk_the-key").String()
	t.Setenv("TOKENMETER_KEY_SECRET", secret)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TM_TEST_OTHER_SECRET", strings.Repeat("o", 40))
	t.Setenv("TM_TEST_SHORT_SECRET", "short")
	t.Setenv("TM_TEST_EMPTY_SECRET", "")
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		stdout      string
		stderr      string
	}{
		{"a key", "tmk_the-key\n", nil, exitOK, digest + "\n", ""},
		{"without a newline, with spaces around", "  tmk_the-key", nil, exitOK, digest + "\n", ""},
		{"a CRLF line", "tmk_the-key\r\n", nil, exitOK, digest + "\n", ""},
		{"another secret, another digest", "tmk_the-key\n", []string{"--secret-env", "TM_TEST_OTHER_SECRET"}, exitOK, "", ""},
		{"a short secret", "tmk_the-key\n", []string{"--secret-env", "TM_TEST_SHORT_SECRET"}, exitConfig, "",
			"tokenmeter: keys hash: TM_TEST_SHORT_SECRET: the key-hashing secret is 5 bytes; want at least 32 (e.g. openssl rand -hex 32)\n"},
		{"no secret", "tmk_the-key\n", []string{"--secret-env", "TM_TEST_EMPTY_SECRET"}, exitConfig, "",
			"tokenmeter: keys hash: TM_TEST_EMPTY_SECRET is empty or unset; set it to the secret the server hashes keys with (its attribution.api_keys.secret_env)\n"},
		{"the secret from a file", "tmk_the-key\n", []string{"--secret-file", secretFile}, exitOK, digest + "\n", ""},
		{"no such file", "tmk_the-key\n", []string{"--secret-file", secretFile + ".missing"}, exitConfig, "",
			"tokenmeter: keys hash: open " + secretFile + ".missing: no such file or directory\n"},
		{"no key", "\n", nil, exitConfig, "", "tokenmeter: keys hash: no key on stdin; e.g. tokenmeter keys hash < key.txt\n"},
		{"two keys", "tmk_a\ntmk_b\n", nil, exitConfig, "", "tokenmeter: keys hash: stdin holds more than one line; want one key\n"},
		{"too much", strings.Repeat("k", 64<<10+1), nil, exitConfig, "", "tokenmeter: keys hash: stdin holds more than 64 KiB; want one key\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withStdin(t, tt.stdin)
			code, stdout, stderr := runCLI(append([]string{"keys", "hash"}, tt.args...)...)
			if tt.name == "another secret, another digest" {
				// Only that it is a digest, and not the default secret's.
				if _, err := apikey.ParseDigest(strings.TrimSpace(stdout)); err != nil || strings.Contains(stdout, digest) {
					t.Fatalf("stdout %q: %v", stdout, err)
				}
				tt.stdout = stdout
			}
			if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
				t.Fatalf("exit %d, want %d\nstdout %q\nwant   %q\nstderr %q\nwant   %q", code, tt.code, stdout, tt.stdout, stderr, tt.stderr)
			}
			if strings.Contains(stdout+stderr, "the-key") {
				t.Fatal("the key is printed")
			}
		})
	}
}

// withStdin makes os.Stdin a file holding text for the rest of the test.
func withStdin(t *testing.T, text string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = old; f.Close() })
}

// The commands and the real admin API agree: a key created by the CLI
// opens its dimensions with the secret it printed, rotate and revoke reach
// it, and keys hash makes the digest the server's registry makes.
func TestKeysAgainstTheAdminAPI(t *testing.T) {
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	secret := strings.Repeat("s", apikey.MinSecretBytes)
	reg, err := apikey.NewRegistry([]byte(secret), store, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	reg.Configure(nil, map[string]bool{"project": true})
	srv := httptest.NewServer(admin.New(http.NotFoundHandler(), "s3cret").WithKeys(&apikey.API{Registry: reg}))
	defer srv.Close()
	t.Setenv("TOKENMETER_ADMIN_TOKEN", "s3cret")
	keys := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(append(append([]string{"keys"}, args...), "--admin", srv.URL)...)
		if code != exitOK {
			t.Fatalf("keys %v: exit %d: %s", args, code, stderr)
		}
		return stdout
	}
	var created keyAndSecret
	if err := json.Unmarshal([]byte(keys("create", "--id", "ci", "--dimension", "project=alpha", "--json")), &created); err != nil {
		t.Fatal(err)
	}
	if k, st := reg.Resolve(created.Secret); st != apikey.Valid || k.Dimensions["project"] != "alpha" {
		t.Fatalf("the printed secret resolves to %v %+v", st, k)
	}
	if out := keys("list"); !strings.Contains(out, "ci  -     active  runtime  project=alpha") {
		t.Fatalf("list:\n%s", out)
	}
	out := keys("rotate", "ci", "--grace", "1h")
	newSecret, _, _ := strings.Cut(strings.SplitN(out, "secret: ", 2)[1], "\n")
	for s, want := range map[string]apikey.Status{created.Secret: apikey.Valid, newSecret: apikey.Valid} {
		if _, st := reg.Resolve(s); st != want {
			t.Fatalf("after rotate, %.8s… is %s", s, st)
		}
	}
	keys("revoke", "ci")
	if _, st := reg.Resolve(newSecret); st != apikey.Revoked {
		t.Fatalf("after revoke, the new secret is %s", st)
	}
	t.Setenv("TOKENMETER_KEY_SECRET", secret)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withStdin(t, newSecret+"\n")
	code, stdout, stderr := runCLI("keys", "hash")
	if want := reg.Hash(newSecret).String() + "\n"; code != exitOK || stdout != want {
		t.Fatalf("keys hash: exit %d %q %s, want %q", code, stdout, stderr, want)
	}
}
