package main

import (
	"github.com/tokenmeter/tokenmeter/internal/config"
)

// configFlag is the --config of serve and check, which need a config file
// (prices show and cost fall back to the built-in catalog: see lookupFlags).
type configFlag struct {
	Config string `name:"config" default:"tokenmeter.yaml" placeholder:"FILE" help:"Config file (default: ${default})."`
}

// load reads and validates the file --config names.
func (c configFlag) load() (*config.Config, error) {
	cfg, err := config.Load(c.Config)
	if err != nil {
		return nil, configError{err}
	}
	return cfg, nil
}
