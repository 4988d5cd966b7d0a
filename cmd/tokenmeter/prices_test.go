package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const excerpt = "../../pricing/litellm/testdata/model_prices_excerpt.json"

func TestPricesImport(t *testing.T) {
	golden, err := os.ReadFile("../../pricing/litellm/testdata/expected_catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{"to stdout", []string{"prices", "import", "--from", "litellm", "--as-of", "2026-11-01", excerpt},
			exitOK, string(golden), "37 entries read: 24 models written"},
		{"flags after the file", []string{"prices", "import", excerpt, "--from", "litellm", "--as-of", "2026-11-01"},
			exitOK, string(golden), "fields not written"},
		{"no subcommand", []string{"prices"}, exitConfig, "", "tokenmeter: expected one of \"import\", \"show\", \"cost\"\nsee \"tokenmeter prices --help\"\n"},
		{"unknown subcommand", []string{"prices", "export"}, exitConfig, "",
			"tokenmeter: unexpected argument export, did you mean \"import\"?\nsee \"tokenmeter prices --help\"\n"},
		{"no --from", []string{"prices", "import", excerpt}, exitConfig, "", "tokenmeter: missing flags: --from=FORMAT\n"},
		{"unknown --from", []string{"prices", "import", "--from", "openrouter", excerpt}, exitConfig, "",
			`tokenmeter: --from must be one of "litellm" but got "openrouter"` + "\n"},
		{"no file", []string{"prices", "import", "--from", "litellm"}, exitConfig, "", "tokenmeter: expected \"<file>\"\n"},
		{"two files", []string{"prices", "import", "--from", "litellm", excerpt, excerpt}, exitConfig, "", "tokenmeter: unexpected argument " + excerpt + "\n"},
		{"bad date", []string{"prices", "import", "--from", "litellm", "--as-of", "1 Nov 2026", excerpt}, exitConfig, "",
			`--as-of "1 Nov 2026": want YYYY-MM-DD`},
		{"unknown flag", []string{"prices", "import", "--form", "litellm", excerpt}, exitConfig, "", "tokenmeter: unknown flag --form, did you mean \"--from\"?\n"},
		{"unreadable file", []string{"prices", "import", "--from", "litellm", "--as-of", "2026-11-01", "nope.json"}, exitFail, "",
			"open nope.json"},
		{"not LiteLLM's format", []string{"prices", "import", "--from", "litellm", "--as-of", "2026-11-01", "../../demo/tokenmeter.yaml"},
			exitFail, "", "reading JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := exitCode(run(context.Background(), tt.args, &stdout, &stderr), &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Fatalf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderrIn) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tt.stderrIn)
			}
		})
	}
}

func TestPricesImportOut(t *testing.T) {
	out := filepath.Join(t.TempDir(), "catalog.yaml")
	var stdout, stderr bytes.Buffer
	args := []string{"prices", "import", "--from", "litellm", "--as-of", "2026-11-01", "--out", out, excerpt}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v; stderr %s", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing: the catalog goes to --out", stdout.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("../../pricing/litellm/testdata/expected_catalog.yaml")
	if !bytes.Equal(got, want) {
		t.Errorf("--out wrote:\n%s", got)
	}
}
