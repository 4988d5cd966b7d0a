// Command tokenmeter is the Envoy ext_proc server that meters LLM traffic.
//
//	tokenmeter serve   --config FILE   run the server
//	tokenmeter check   --config FILE   validate the config and its price catalogs
//	tokenmeter prices  import|show|cost   convert, inspect and try prices
//	tokenmeter budgets list|set|delete|reset   manage a running server's budgets
//	tokenmeter usage   report|statement|export   read a running server's ledger
//	tokenmeter version                 print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // budget time zones work on hosts (and images) without a zoneinfo database
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

// flagError is a flag set's parse error: help asked for (-h, --help) ends
// the command with status 0; anything else is a usage error.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err.Error()}
}

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// configError marks an invalid config (exit status 2).
type configError struct{ err error }

func (c configError) Error() string { return c.err.Error() }
func (c configError) Unwrap() error { return c.err }

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		// -h or --help: the flag set printed the command's help.
		return exitOK
	}
	fmt.Fprintln(stderr, "tokenmeter:", err)
	var ue usageError
	var ce configError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		return exitConfig
	}
	return exitFail
}

const usageText = `usage: tokenmeter <command> [flags]

commands:
  serve   --config FILE   run the ext_proc server
  check   --config FILE   validate the config and its price catalogs
  prices  import --from litellm FILE   convert a LiteLLM price file to a catalog
  prices  show MODEL | cost --model M --usage ...   a resolved price, a usage priced by hand
  budgets list | set | delete | reset   budgets of a running tokenmeter, through its admin API
  usage   report | statement | export   the stored ledger of a running tokenmeter
  version                 print the version`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usageText}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "prices":
		return prices(args[1:], stdout, stderr)
	case "budgets":
		return budgetsCmd(ctx, args[1:], stdout, stderr)
	case "usage":
		return usageCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "tokenmeter", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usageText)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q\n%s", args[0], usageText)}
}
