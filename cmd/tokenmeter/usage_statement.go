package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
)

// document writes the statement as the admin API renders it (HTML, or a
// PDF printed by the server's Chromium) to --out, or HTML to stdout. A
// failed transfer leaves no file behind: a partial statement must not look
// whole.
func (c *usageStatementCmd) document(ctx context.Context, s stdio, client *adminClient, q url.Values) (err error) {
	if c.JSON {
		return usageError{"--json and --format " + c.Format + " are exclusive"}
	}
	q.Set("format", c.Format)
	path := "/v1/usage/statement?" + q.Encode()
	if c.Out == "" {
		if c.Format == "pdf" {
			return usageError{"--format pdf needs --out FILE"}
		}
		return client.stream(ctx, path, s.out)
	}
	f, err := os.Create(c.Out)
	if err != nil {
		return fmt.Errorf("statement: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("statement: %w", cerr)
		}
		if err != nil {
			os.Remove(c.Out)
		}
	}()
	return client.stream(ctx, path, f)
}
