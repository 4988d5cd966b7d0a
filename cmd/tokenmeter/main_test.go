package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// runCLI runs the command line as main does and returns the exit status.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = exitCode(run(context.Background(), args, &out, &errOut), &errOut)
	return code, out.String(), errOut.String()
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"version", []string{"version"}, exitOK, "tokenmeter dev\n", ""},
		{"--version", []string{"--version"}, exitOK, "tokenmeter dev\n", ""},
		{"check ok", []string{"check", "--config", "../../demo/tokenmeter.yaml"}, exitOK,
			"../../demo/tokenmeter.yaml: ok (198 priced models in USD from the built-in catalog and 1 catalog file, 3 budgets, 4 dimensions)\n", ""},
		{"check bad config names file, line, key, value, why", []string{"check", "--config", "../../internal/config/testdata/bad_window.yaml"}, exitConfig, "",
			"tokenmeter: ../../internal/config/testdata/bad_window.yaml:5: budgets[0].window: \"fortnight\": want minute, hour, day, month, week, year, total\n"},
		{"check bad catalog", []string{"check", "--config", "../../internal/config/testdata/bad_catalog_price.yaml"}, exitConfig, "",
			"tokenmeter: load catalog: ../../internal/config/testdata/negative_price.yaml:6: models[0].prices.input: \"-1\": negative; a price is zero or more\n"},
		{"missing file", []string{"check", "--config", "nope.yaml"}, exitConfig, "",
			"tokenmeter: read config: open nope.yaml: no such file or directory\n"},

		// Usage errors: status 2, the bad flag or argument named, and where the help is.
		{"no command", nil, exitConfig, "",
			"tokenmeter: expected one of \"serve\", \"check\", \"prices\", \"budgets\", \"keys\", ...\nsee \"tokenmeter --help\"\n"},
		{"unknown command", []string{"frobnicate"}, exitConfig, "",
			"tokenmeter: unexpected argument frobnicate\nsee \"tokenmeter --help\"\n"},
		{"no subcommand", []string{"prices"}, exitConfig, "",
			"tokenmeter: expected one of \"import\", \"show\", \"cost\"\nsee \"tokenmeter prices --help\"\n"},
		{"unknown subcommand", []string{"usage", "summary"}, exitConfig, "",
			"tokenmeter: unexpected argument summary\nsee \"tokenmeter usage --help\"\n"},
		{"stray argument", []string{"check", "--config", "../../demo/tokenmeter.yaml", "extra"}, exitConfig, "",
			"tokenmeter: unexpected argument extra\nsee \"tokenmeter check --help\"\n"},
		{"unknown flag", []string{"check", "--confg", "x.yaml"}, exitConfig, "",
			"tokenmeter: unknown flag --confg, did you mean \"--config\"?\nsee \"tokenmeter check --help\"\n"},
		{"a flag of a sibling", []string{"usage", "statement", "--from", "2026-11-01"}, exitConfig, "",
			"tokenmeter: unknown flag --from\nsee \"tokenmeter usage statement --help\"\n"},
		{"a long flag with one dash", []string{"check", "-config", "x.yaml"}, exitConfig, "",
			"tokenmeter: unknown flag -c, did you mean \"-h\"?\n-config: a long flag takes two dashes, --config\nsee \"tokenmeter check --help\"\n"},
		{"missing argument", []string{"prices", "show"}, exitConfig, "",
			"tokenmeter: expected \"<model>\"\nsee \"tokenmeter prices show --help\"\n"},
		{"missing argument of budgets delete", []string{"budgets", "delete"}, exitConfig, "",
			"tokenmeter: expected \"<name>\"\nsee \"tokenmeter budgets delete --help\"\n"},
		{"missing argument of keys revoke", []string{"keys", "revoke"}, exitConfig, "",
			"tokenmeter: expected \"<id>\"\nsee \"tokenmeter keys revoke --help\"\n"},
		{"missing flag", []string{"prices", "cost", "--model", "gpt-4o"}, exitConfig, "",
			"tokenmeter: missing flags: --usage=SPEC\nsee \"tokenmeter prices cost --help\"\n"},
		{"missing flag value", []string{"serve", "--config"}, exitConfig, "",
			"tokenmeter: --config: expected string value but got \"EOL\" (<EOL>)\nsee \"tokenmeter serve --help\"\n"},
		{"bad flag value", []string{"serve", "--log-level", "loud"}, exitConfig, "",
			"tokenmeter: --log-level: slog: level string \"loud\": unknown name\nsee \"tokenmeter serve --help\"\n"},
		{"budgets set without a definition", []string{"budgets", "set", "rt"}, exitConfig, "",
			"tokenmeter: budgets set: want the definition as DEFINITION or in --file FILE, one of the two\nsee \"tokenmeter budgets set --help\"\n"},
		{"budgets set with two definitions", []string{"budgets", "set", "rt", "{}", "--file", "rt.json"}, exitConfig, "",
			"tokenmeter: budgets set: want the definition as DEFINITION or in --file FILE, one of the two\nsee \"tokenmeter budgets set --help\"\n"},
		{"help for no such command", []string{"help", "frobnicate"}, exitConfig, "",
			"tokenmeter: unexpected argument frobnicate\nsee \"tokenmeter --help\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.code, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if stderr != tt.stderr {
				t.Errorf("stderr %q, want %q", stderr, tt.stderr)
			}
		})
	}
}

// Help is asked for, not a mistake: status 0, on stdout, at every level,
// and each command lists its own flags and no other's.
func TestHelp(t *testing.T) {
	admin := []string{"--admin", "--token-env"}
	tests := []struct {
		command string
		usage   string // the help's first line
		flags   []string
	}{
		{"", "Usage: tokenmeter <command> [flags]", nil},
		{"serve", "Usage: tokenmeter serve [flags]", []string{"--config", "--log-level", "--cpuprofile"}},
		{"check", "Usage: tokenmeter check [flags]", []string{"--config"}},
		{"prices", "Usage: tokenmeter prices <command> [flags]", nil},
		{"prices import", "Usage: tokenmeter prices import --from=FORMAT <file> [flags]", []string{"--from", "--as-of", "--out"}},
		{"prices show", "Usage: tokenmeter prices show <model> [flags]", []string{"--config", "--provider", "--at"}},
		{"prices cost", "Usage: tokenmeter prices cost --model=M --usage=SPEC [flags]",
			[]string{"--config", "--provider", "--at", "--model", "--usage", "--service-tier"}},
		{"budgets", "Usage: tokenmeter budgets <command> [flags]", nil},
		{"budgets list", "Usage: tokenmeter budgets list [flags]", append(admin, "--json")},
		{"budgets set", "Usage: tokenmeter budgets set <name> [<definition>] [flags]", append(admin, "--file")},
		{"budgets delete", "Usage: tokenmeter budgets delete <name> [flags]", admin},
		{"budgets reset", "Usage: tokenmeter budgets reset <name> [flags]", append(admin, "--key")},
		{"keys", "Usage: tokenmeter keys <command> [flags]", nil},
		{"keys create", "Usage: tokenmeter keys create [flags]", append(admin, "--id", "--name", "--dimension", "--json")},
		{"keys list", "Usage: tokenmeter keys list [flags]", append(admin, "--json")},
		{"keys revoke", "Usage: tokenmeter keys revoke <id> [flags]", admin},
		{"keys rotate", "Usage: tokenmeter keys rotate <id> [flags]", append(admin, "--grace", "--json")},
		{"keys hash", "Usage: tokenmeter keys hash [flags]", []string{"--secret-env", "--secret-file"}},
		{"usage", "Usage: tokenmeter usage <command> [flags]", nil},
		{"usage report", "Usage: tokenmeter usage report [flags]",
			append(admin, "--config", "--from", "--to", "--group-by", "--bucket", "--filter", "--tz", "--json")},
		{"usage statement", "Usage: tokenmeter usage statement [flags]", append(admin, "--config", "--month", "--dimension", "--value", "--tz", "--json", "--format", "--out")},
		{"usage export", "Usage: tokenmeter usage export [flags]", append(admin, "--config", "--from", "--to", "--format", "--out", "--tz")},
		{"version", "Usage: tokenmeter version [flags]", nil},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			words := strings.Fields(tt.command)
			code, stdout, stderr := runCLI(append(words, "--help")...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if first, _, _ := strings.Cut(stdout, "\n"); first != tt.usage {
				t.Errorf("first line %q, want %q", first, tt.usage)
			}
			if got, want := helpFlags(stdout), append([]string{"--help"}, tt.flags...); !slices.Equal(got, want) {
				t.Errorf("flags %q, want %q:\n%s", got, want, stdout)
			}
			// -h, and "help COMMAND", print the same.
			for _, args := range [][]string{append(words, "-h"), append([]string{"help"}, words...)} {
				code, out, errOut := runCLI(args...)
				if code != exitOK || out != stdout || errOut != "" {
					t.Errorf("%q: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
				}
			}
		})
	}
}

// helpFlags lists the flags a help text describes, in order: the lines of
// its Flags section, "-h, --help" or "--name=PLACEHOLDER  text".
func helpFlags(help string) []string {
	var flags []string
	for line := range strings.Lines(help) {
		line = strings.TrimPrefix(strings.TrimSpace(line), "-h, ")
		if !strings.HasPrefix(line, "--") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "=")
		flags = append(flags, name)
	}
	return flags
}

// The defaults scripts rely on: a flag left out means what it meant before.
func TestDefaults(t *testing.T) {
	parse := func(args ...string) *cli {
		t.Helper()
		var c cli
		p, err := newParser(context.Background(), &c, io.Discard, io.Discard, func(int) { t.Fatalf("%q: exit", args) })
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Parse(args); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return &c
	}
	const adminURL, tokenEnv = "http://127.0.0.1:9464", "TOKENMETER_ADMIN_TOKEN"
	if c := parse("serve").Serve; c.Config != "tokenmeter.yaml" || c.LogLevel != slog.LevelInfo || c.CPUProfile != "" {
		t.Errorf("serve: %+v", c)
	}
	if c := parse("check").Check; c.Config != "tokenmeter.yaml" {
		t.Errorf("check: %+v", c)
	}
	if c := parse("prices", "show", "m").Prices.Show; c.lookupFlags != (lookupFlags{}) {
		t.Errorf("prices show: %+v", c)
	}
	if c := parse("budgets", "list").Budgets.List; c.Admin != adminURL || c.TokenEnv != tokenEnv || c.JSON {
		t.Errorf("budgets list: %+v", c)
	}
	if c := parse("budgets", "reset", "b").Budgets.Reset; c.Admin != adminURL || c.TokenEnv != tokenEnv || c.Key != "" {
		t.Errorf("budgets reset: %+v", c)
	}
	if c := parse("usage", "export").Usage.Export; c.Admin != adminURL || c.Format != "csv" || c.Out != "" || c.From != "" {
		t.Errorf("usage export: %+v", c)
	}
	if c := parse("usage", "report").Usage.Report; c.Bucket != "" || c.GroupBy != "" || c.Filter != nil || c.JSON {
		t.Errorf("usage report: %+v", c)
	}
}
