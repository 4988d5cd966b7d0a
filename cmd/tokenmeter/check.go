package main

import (
	"fmt"
	"io"
)

// check validates a config and its catalogs without serving, for CI and for
// a reload dry run. Every problem is listed, one a line.
func check(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig("check", args, stderr, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d priced models in %s, %d budgets, %d dimensions)\n",
		cfg.File, cfg.Catalog.Len(), cfg.Catalog.Currency(), len(cfg.Budgets), len(cfg.Dimensions))
	return nil
}
