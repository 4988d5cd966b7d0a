package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPricesShowAndCost(t *testing.T) {
	const cfg = "../../demo/tokenmeter.yaml"
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings, in order
		stderr string
	}{
		{"show resolves a dated snapshot and says where each price comes from",
			[]string{"prices", "show", "--config", cfg, "gpt-4o-mini-2024-07-18"}, exitOK,
			[]string{"resolves to gpt-4o-mini (provider openai)", "defined at ../../demo/prices.yaml:6", "input           0.15\n",
				"cache_write     0.15 (defaults to input)", "reasoning       0.6 (defaults to output)", "audio_input     no price"}, ""},
		{"cost is exact", []string{"prices", "cost", "--config", cfg, "--model", "gpt-4o-mini", "--usage", "input=1000,cache_read=500,output=200"},
			exitOK, []string{"0.0003075 USD\n"}, ""},
		{"an unknown service tier is priced at base and says so",
			[]string{"prices", "cost", "--config", cfg, "--model", "o4-mini", "--usage", "input=1000,reasoning=300,output=200", "--service-tier", "batch"},
			exitOK, []string{"0.0033 USD\n"}, `service tier "batch"`},
		{"units without a unit price are refused, not guessed",
			[]string{"prices", "cost", "--config", cfg, "--model", "gpt-4o", "--usage", "characters=10"}, exitFail, nil, "no price for this usage"},
		{"unknown model", []string{"prices", "show", "--config", cfg, "mystery"}, exitFail, nil, `"mystery" (provider "") has no price`},
		{"bad usage", []string{"prices", "cost", "--config", cfg, "--model", "gpt-4o", "--usage", "inptu=3"}, exitConfig, nil, `unknown class "inptu"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := exitCode(run(context.Background(), tt.args, &stdout, &stderr), &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			out := stdout.String()
			for _, want := range tt.stdout {
				i := strings.Index(out, want)
				if i < 0 {
					t.Fatalf("stdout lacks %q:\n%s", want, out)
				}
				out = out[i+len(want):]
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
		})
	}
}

// Without --config, show and cost read tokenmeter.yaml in the working
// directory, or the built-in catalog when there is none: prices can be
// looked up before any config is written.
func TestPricesWithoutConfigFlag(t *testing.T) {
	t.Run("no tokenmeter.yaml: the built-in catalog", func(t *testing.T) {
		t.Chdir(t.TempDir())
		code, stdout, stderr := runCLI("prices", "show", "gpt-4o", "--at", "2026-01-01T00:00:00Z")
		if code != exitOK || stderr != "" {
			t.Fatalf("show: exit %d, stderr %q", code, stderr)
		}
		for _, want := range []string{"gpt-4o resolves to gpt-4o (provider openai)\n  defined at builtin (", "  per million tokens, USD:\n",
			"    input           2.5\n", "    output          10\n"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("show lacks %q:\n%s", want, stdout)
			}
		}
		// 1000 × $2.50/M + 200 × $10/M
		code, stdout, stderr = runCLI("prices", "cost", "--model", "gpt-4o", "--usage", "input=1000,output=200")
		if code != exitOK || stdout != "0.0045 USD\n" || stderr != "" {
			t.Fatalf("cost: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("tokenmeter.yaml in the working directory", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		writeFile(t, filepath.Join(dir, "tokenmeter.yaml"), "catalog: {builtin: false, files: [prices.yaml]}\n")
		writeFile(t, filepath.Join(dir, "prices.yaml"), `currency: USD
models:
  - name: house-model
    source: https://example.com/prices
    as_of: 2026-01-01
    prices: {input: 1, output: 3}
`)
		code, stdout, stderr := runCLI("prices", "cost", "--model", "house-model", "--usage", "input=1000000,output=1000000")
		if code != exitOK || stdout != "4 USD\n" || stderr != "" {
			t.Fatalf("cost: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		code, stdout, stderr = runCLI("prices", "show", "gpt-4o")
		want := "tokenmeter: model \"gpt-4o\" (provider \"\") has no price in the catalog at "
		if code != exitFail || stdout != "" || !strings.HasPrefix(stderr, want) {
			t.Fatalf("show of a model the file lacks: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
