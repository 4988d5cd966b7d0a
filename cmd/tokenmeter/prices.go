package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tokenmeter/tokenmeter/pricing/litellm"
)

const pricesUsage = `usage: tokenmeter prices import --from litellm [--as-of YYYY-MM-DD] [--out FILE] FILE
       tokenmeter prices show [--config FILE] [--provider P] [--at INSTANT] MODEL
       tokenmeter prices cost --model M --usage input=1000,output=200 [--service-tier T] [--config FILE]

Converts LiteLLM's model_prices_and_context_window.json to a price catalog
(stdout, or --out FILE) and reports what it left out, and why, on stderr.`

// prices runs "prices import|show|cost".
func prices(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "show":
			return pricesShow(args[1:], stdout, stderr)
		case "cost":
			return pricesCost(args[1:], stdout, stderr)
		}
	}
	return pricesImport(args, stdout, stderr)
}

// pricesImport runs "prices import". Only LiteLLM's format is read so far;
// --from is required so that other formats can follow without changing its
// meaning.
func pricesImport(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		return usageError{pricesUsage}
	}
	fs := flag.NewFlagSet("prices import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "source format: litellm")
	asOfText := fs.String("as-of", "", "the date the prices were read, YYYY-MM-DD (default: the file's modification date)")
	out := fs.String("out", "", "write the catalog to `FILE` instead of stdout")
	files, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case *from == "":
		return usageError{"prices import: --from is required (litellm)\n" + pricesUsage}
	case *from != "litellm":
		return usageError{fmt.Sprintf("prices import: unknown --from %q; want litellm", *from)}
	case len(files) != 1:
		return usageError{"prices import: want exactly one FILE\n" + pricesUsage}
	}
	var asOf time.Time
	if *asOfText != "" {
		if asOf, err = time.Parse(time.DateOnly, *asOfText); err != nil {
			return usageError{fmt.Sprintf("prices import: --as-of %q: want YYYY-MM-DD", *asOfText)}
		}
	}
	catalog, report, err := litellm.Load(files[0], asOf)
	if err == nil || report.Read > 0 {
		fmt.Fprint(stderr, report.String())
	}
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(catalog)
		return err
	}
	return os.WriteFile(*out, catalog, 0o644)
}

// parseInterspersed parses flags that may come before or after the
// positional arguments ("import FILE --out x.yaml" as well as "import --out
// x.yaml FILE"), which the flag package alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(err)
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
