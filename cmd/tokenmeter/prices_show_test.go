package main

import (
	"bytes"
	"context"
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
		// No --config and no tokenmeter.yaml here: the built-in catalog.
		{"show without a config reads the built-in catalog", []string{"prices", "show", "gpt-4o"}, exitOK,
			[]string{"resolves to gpt-4o (provider openai)"}, ""},
		{"cost without a config reads the built-in catalog", []string{"prices", "cost", "--model", "gpt-4o", "--usage", "input=1000,output=200"},
			exitOK, []string{"0.0045 USD\n"}, ""}, // 1000 × $2.50/M + 200 × $10/M
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
