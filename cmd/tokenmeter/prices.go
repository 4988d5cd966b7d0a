package main

import (
	"fmt"
	"os"
	"time"

	"github.com/tokenmeter/tokenmeter/pricing/litellm"
)

// pricesCmd is "prices import|show|cost".
type pricesCmd struct {
	Import pricesImportCmd `cmd:"" help:"Convert a LiteLLM price file to a catalog."`
	Show   pricesShowCmd   `cmd:"" help:"The entry a model resolves to, and where each price comes from."`
	Cost   pricesCostCmd   `cmd:"" help:"Price a usage given by hand."`
}

// pricesImportCmd is "prices import". Only LiteLLM's format is read so far;
// --from is required so that other formats can follow without changing its
// meaning.
type pricesImportCmd struct {
	From string `name:"from" required:"" enum:"litellm" placeholder:"FORMAT" help:"Source format: ${enum}."`
	AsOf string `name:"as-of" placeholder:"YYYY-MM-DD" help:"The date the prices were read (default: the file's modification date)."`
	Out  string `name:"out" placeholder:"FILE" help:"Write the catalog to FILE instead of stdout."`
	File string `arg:"" name:"file" help:"LiteLLM's model_prices_and_context_window.json."`
}

func (*pricesImportCmd) Help() string {
	return "Converts LiteLLM's model_prices_and_context_window.json to a price catalog " +
		"(stdout, or --out FILE) and reports what it left out, and why, on stderr."
}

func (c *pricesImportCmd) Run(s stdio) error {
	var asOf time.Time
	if c.AsOf != "" {
		var err error
		if asOf, err = time.Parse(time.DateOnly, c.AsOf); err != nil {
			return usageError{fmt.Sprintf("prices import: --as-of %q: want YYYY-MM-DD", c.AsOf)}
		}
	}
	catalog, report, err := litellm.Load(c.File, asOf)
	if err == nil || report.Read > 0 {
		fmt.Fprint(s.err, report.String())
	}
	if err != nil {
		return err
	}
	if c.Out == "" {
		_, err = s.out.Write(catalog)
		return err
	}
	return os.WriteFile(c.Out, catalog, 0o644)
}
