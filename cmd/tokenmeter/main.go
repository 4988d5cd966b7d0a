// Command tokenmeter is the Envoy ext_proc server that meters LLM traffic.
//
//	tokenmeter serve   --config FILE   run the server
//	tokenmeter check   --config FILE   validate the config and its price catalogs
//	tokenmeter prices  import|show|cost   convert, inspect and try prices
//	tokenmeter budgets list|set|delete|reset   manage a running server's budgets
//	tokenmeter keys    create|list|revoke|rotate|hash   manage the API keys requests are attributed by
//	tokenmeter usage   report|statement|export   read a running server's ledger
//	tokenmeter version                 print the version
//
// The command line is declared with github.com/alecthomas/kong: each command
// is a struct whose tagged fields are its flags and arguments and whose Run
// method does the work, so a command's flags, its help and its code stay in
// one file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	_ "time/tzdata" // budget time zones work on hosts (and images) without a zoneinfo database

	"github.com/alecthomas/kong"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFail   = 1
	exitConfig = 2 // usage errors and invalid config
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// cli is the whole command line.
type cli struct {
	Serve   serveCmd   `cmd:"" help:"Run the ext_proc server."`
	Check   checkCmd   `cmd:"" help:"Validate the config and its price catalogs; exit 2 on error."`
	Prices  pricesCmd  `cmd:"" help:"Convert, inspect and try prices."`
	Budgets budgetsCmd `cmd:"" help:"Budgets of a running tokenmeter, through its admin API."`
	Keys    keysCmd    `cmd:"" help:"API keys requests are attributed by, through the admin API; digests for the config file."`
	Usage   usageCmd   `cmd:"" help:"The stored ledger of a running tokenmeter, through its admin API."`
	Version versionCmd `cmd:"" help:"Print the version."`
	Help    helpCmd    `cmd:"" hidden:"" help:"Show the help of a command."`

	// --version, as "version": the form many tools take.
	VersionFlag kong.VersionFlag `name:"version" hidden:"" help:"Print the version."`
}

// stdio is what a command writes to; run's, never the process's.
type stdio struct{ out, err io.Writer }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// kong ends the process after printing help or the version; we note the
	// status it asks for instead, so that run returns and its caller (main,
	// or a test) decides.
	var exit *int
	parser, err := newParser(ctx, &cli{}, stdout, stderr, func(code int) { exit = &code })
	if err != nil {
		// The struct tags are wrong: a bug, which every test of run finds.
		return fmt.Errorf("command line: %w", err)
	}
	kctx, err := parser.Parse(args)
	if exit != nil {
		// Help or the version was printed. kong goes on parsing after its
		// exit hook returns, so a missing argument of the command whose help
		// was asked for may have been reported too; that is not a mistake.
		return exitRequest(*exit)
	}
	if err != nil {
		return parseError(err, args)
	}
	return kctx.Run()
}

// newParser is the kong parser of c. It writes to stdout and stderr, calls
// exit instead of os.Exit, and binds ctx and the two writers for the
// commands' Run methods.
func newParser(ctx context.Context, c *cli, stdout, stderr io.Writer, exit func(int)) (*kong.Kong, error) {
	return kong.New(c,
		kong.Name("tokenmeter"),
		kong.Description("The Envoy ext_proc server that meters LLM traffic, and the tools around it."),
		kong.Writers(stdout, stderr),
		kong.Exit(exit),
		kong.Vars{"version": "tokenmeter " + version, "usage_classes": classList()},
		kong.BindTo(ctx, (*context.Context)(nil)),
		kong.Bind(stdio{out: stdout, err: stderr}),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
}

// parseError turns kong's error about the command line into a usage error
// that says where the command's help is.
func parseError(err error, args []string) error {
	msg := err.Error()
	if hint := oneDashHint(msg, args); hint != "" {
		msg += "\n" + hint
	}
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		path := "tokenmeter"
		if node := pe.Context.Selected(); node != nil {
			path = node.FullPath()
		}
		msg += fmt.Sprintf("\nsee %q", path+" --help")
	}
	return usageError{msg}
}

// oneDashHint explains kong's "unknown flag -c" when the argument was a long
// flag written with one dash ("-config"), which the flag package this CLI
// used before kong accepted.
func oneDashHint(msg string, args []string) string {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(name) > 1 &&
			strings.HasPrefix(msg, "unknown flag -"+name[:1]) {
			return fmt.Sprintf("%s: a long flag takes two dashes, --%s", a, name)
		}
	}
	return ""
}

// exitRequest is kong asking to end with a status after printing what was
// asked for (help, the version): nothing more is printed.
type exitRequest int

func (e exitRequest) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// configError marks an invalid config (exit status 2).
type configError struct{ err error }

func (c configError) Error() string { return c.err.Error() }
func (c configError) Unwrap() error { return c.err }

func exitCode(err error, stderr io.Writer) int {
	var er exitRequest
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &er):
		return int(er)
	}
	fmt.Fprintln(stderr, "tokenmeter:", err)
	var ue usageError
	var ce configError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		return exitConfig
	}
	return exitFail
}

type versionCmd struct{}

func (versionCmd) Run(s stdio) error {
	_, err := fmt.Fprintln(s.out, "tokenmeter", version)
	return err
}

// helpCmd keeps "tokenmeter help [COMMAND...]" working, as "--help" after the
// command does.
type helpCmd struct {
	Command []string `arg:"" optional:"" help:"The command, e.g. prices cost."`
}

func (h helpCmd) Run(kctx *kong.Context) error {
	tctx, err := kong.Trace(kctx.Kong, h.Command)
	if err != nil {
		return usageError{err.Error()}
	}
	if tctx.Error != nil {
		return usageError{tctx.Error.Error() + "\nsee \"tokenmeter --help\""}
	}
	return tctx.PrintUsage(false)
}
