package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeBlock returns the first fenced block of README.md after the line
// that contains marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("README.md has no %q", marker)
	}
	_, block, ok := strings.Cut(after, "```\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatalf("README.md has no code block after %q", marker)
	}
	return block
}

var readmeFlag = regexp.MustCompile(`--[a-z][a-z-]*`)

// Every command line the README shows is one the CLI has: the command
// exists, and each flag written beside it is one of its own (its --help
// lists it).
func TestReadmeCommandLines(t *testing.T) {
	lines := strings.Split(strings.TrimSpace(readmeBlock(t, "## The command line")), "\n")
	if len(lines) < 10 {
		t.Fatalf("read %d command lines from the README", len(lines))
	}
	for _, line := range lines {
		words := strings.Fields(strings.SplitN(line, "#", 2)[0])
		var cmd []string
		for _, w := range words[1:] {
			if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") || strings.ToUpper(w) == w || strings.ContainsAny(w, "'{.") {
				break
			}
			cmd = append(cmd, w)
		}
		t.Run(strings.Join(cmd, "_"), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := run(context.Background(), append(cmd, "--help"), &out, &errOut); exitCode(err, &errOut) != exitOK {
				t.Fatalf("%v --help: %v %s", cmd, err, errOut.String())
			}
			for _, f := range readmeFlag.FindAllString(line, -1) {
				if !strings.Contains(out.String(), f) {
					t.Errorf("the README writes %s for %q; its help does not list it:\n%s", f, strings.Join(cmd, " "), out.String())
				}
			}
		})
	}
}

// The README's `check` example is what check prints, byte for byte, for
// the fixture that makes both mistakes (testdata/readme).
func TestReadmeCheckExample(t *testing.T) {
	block := readmeBlock(t, "`check` lists every problem in one run")
	cmdLine, want, _ := strings.Cut(block, "\n")
	args := strings.Fields(strings.TrimPrefix(cmdLine, "$ tokenmeter "))
	t.Chdir(filepath.Join("testdata", "readme"))
	var out, errOut bytes.Buffer
	code := exitCode(run(context.Background(), args, &out, &errOut), &errOut)
	if code != exitConfig || errOut.String() != want {
		t.Fatalf("check exited %d and printed\n%s\nthe README shows\n%s", code, errOut.String(), want)
	}
}

// The versions the README names are the ones the repository pins: Go in
// go.mod, Envoy in the Makefile.
func TestReadmeVersions(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	readme, gomod, mk := read("README.md"), read("go.mod"), read("Makefile")
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	envoyVer := regexp.MustCompile(`(?m)^ENVOY_VERSION\s*:=\s*(\S+)`).FindStringSubmatch(mk)
	if goVer == nil || envoyVer == nil {
		t.Fatal("go.mod's go line or the Makefile's ENVOY_VERSION is gone")
	}
	for _, want := range []string{"`go.mod` (" + goVer[1] + ")", "Envoy **" + envoyVer[1] + "**"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not say %s", want)
		}
	}
}
