package main

import (
	"flag"
	"io"

	"github.com/tokenmeter/tokenmeter/internal/config"
)

// loadConfig parses the shared --config flag and loads the file it names.
func loadConfig(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*config.Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "tokenmeter.yaml", "config `file`")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, flagError(err)
	}
	if fs.NArg() > 0 {
		return nil, usageError{"unexpected argument " + fs.Arg(0)}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return nil, configError{err}
	}
	return cfg, nil
}
