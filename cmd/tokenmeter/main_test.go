package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{"version", []string{"version"}, exitOK, "tokenmeter dev\n", ""},
		{"check ok", []string{"check", "--config", "../../demo/tokenmeter.yaml"}, exitOK,
			"../../demo/tokenmeter.yaml: ok (198 priced models in USD from the built-in catalog and 1 catalog file, 2 budgets, 3 dimensions)\n", ""},
		{"check bad config names file, line, key, value, why", []string{"check", "--config", "../../internal/config/testdata/bad_window.yaml"}, exitConfig, "",
			`tokenmeter: ../../internal/config/testdata/bad_window.yaml:5: budgets[0].window: "fortnight": want minute, hour, day, month, week, year, total`},
		{"check bad catalog", []string{"check", "--config", "../../internal/config/testdata/bad_catalog_price.yaml"}, exitConfig, "",
			`models[0].prices.input: "-1": negative; a price is zero or more`},
		{"missing file", []string{"check", "--config", "nope.yaml"}, exitConfig, "", "read config: open nope.yaml"},
		{"unknown command", []string{"frobnicate"}, exitConfig, "", `unknown command "frobnicate"`},
		{"no command", nil, exitConfig, "", "usage: tokenmeter"},
		{"stray argument", []string{"check", "--config", "../../demo/tokenmeter.yaml", "extra"}, exitConfig, "", "unexpected argument extra"},
		// Help is asked for, not a mistake: status 0, each command its own flags.
		{"help", []string{"--help"}, exitOK, usageText + "\n", ""},
		{"check help", []string{"check", "--help"}, exitOK, "", "-config"},
		{"serve help", []string{"serve", "-h"}, exitOK, "", "-log-level"},
		{"prices show help", []string{"prices", "show", "--help"}, exitOK, "", "-provider"},
		{"prices cost help", []string{"prices", "cost", "--help"}, exitOK, "", "-usage"},
		{"prices import help", []string{"prices", "import", "--help"}, exitOK, "", "-from"},
		{"budgets help", []string{"budgets", "list", "--help"}, exitOK, "", "-admin"},
		{"usage help", []string{"usage", "report", "--help"}, exitOK, "", "-from"},
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

// Each usage subcommand's help lists its own flags, not its siblings'.
func TestUsageSubcommandHelp(t *testing.T) {
	for _, tt := range []struct {
		sub      string
		has, not []string
	}{
		{"report", []string{"-from", "-group-by", "-json"}, []string{"-month", "-format"}},
		{"statement", []string{"-month", "-dimension", "-json"}, []string{"-from", "-group-by"}},
		{"export", []string{"-from", "-format", "-out"}, []string{"-month", "-json"}},
	} {
		var stdout, stderr bytes.Buffer
		if code := exitCode(run(context.Background(), []string{"usage", tt.sub, "--help"}, &stdout, &stderr), &stderr); code != exitOK {
			t.Fatalf("%s: exit %d", tt.sub, code)
		}
		// The flag package writes "  -name type" or, for a bool, "  -name".
		lists := func(f string) bool {
			return strings.Contains(stderr.String(), "  "+f+" ") || strings.Contains(stderr.String(), "  "+f+"\n")
		}
		for _, f := range tt.has {
			if !lists(f) {
				t.Errorf("%s help lacks %s:\n%s", tt.sub, f, stderr.String())
			}
		}
		for _, f := range tt.not {
			if lists(f) {
				t.Errorf("%s help lists %s:\n%s", tt.sub, f, stderr.String())
			}
		}
	}
}
