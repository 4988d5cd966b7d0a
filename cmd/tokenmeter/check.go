package main

import (
	"fmt"
)

// checkCmd validates a config and its catalogs without serving, for CI and
// for a reload dry run. Every problem is listed, one a line.
type checkCmd struct {
	configFlag
}

func (c *checkCmd) Run(s stdio) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	sources := fmt.Sprintf("%d catalog files", len(cfg.CatalogFiles))
	if len(cfg.CatalogFiles) == 1 {
		sources = "1 catalog file"
	}
	if cfg.BuiltinCatalog {
		sources = "the built-in catalog and " + sources
	}
	_, err = fmt.Fprintf(s.out, "%s: ok (%d priced models in %s from %s, %d budgets, %d dimensions)\n",
		cfg.File, cfg.Catalog.Len(), cfg.Catalog.Currency(), sources, len(cfg.Budgets), len(cfg.Dimensions))
	return err
}
