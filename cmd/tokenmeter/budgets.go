package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
)

const budgetsUsage = `usage: tokenmeter budgets <list|set|delete|reset> [flags]

  list   [--json]                       every budget and the status of its keys
  set    NAME (--file FILE | DEFINITION) create or replace a runtime budget; DEFINITION is
                                        JSON in the config's budget schema, e.g.
                                        '{"match":{"team":"x"},"limit":{"money":"50"},"window":"month"}'
  delete NAME                           delete a runtime budget
  reset  NAME [--key KEY]               zero a budget's counters (one key, or all)

` + adminFlagsUsage

// budgetsCmd talks to a running tokenmeter's admin API.
func budgetsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{budgetsUsage}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("budgets "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := adminFlags(fs)
	asJSON := fs.Bool("json", false, "list: print the API's JSON")
	file := fs.String("file", "", "set: read the definition from `file` (- for stdin)")
	key := fs.String("key", "", "reset: only this counter key, e.g. project=demo")
	// Flags may follow the positional NAME, as people type them.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return flagError(err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	c := client()
	switch {
	case sub == "list" && len(pos) == 0:
		return c.list(ctx, stdout, *asJSON)
	case sub == "set" && (len(pos) == 1 && *file != "" || len(pos) == 2 && *file == ""):
		var def []byte
		var err error
		switch {
		case *file == "-":
			def, err = io.ReadAll(os.Stdin)
		case *file != "":
			def, err = os.ReadFile(*file)
		default:
			def = []byte(pos[1])
		}
		if err != nil {
			return fmt.Errorf("read definition: %w", err)
		}
		def, err = withName(def, pos[0])
		if err != nil {
			return usageError{err.Error()}
		}
		var bi admin.BudgetInfo
		if err := c.do(ctx, "PUT", "/v1/budgets/"+url.PathEscape(pos[0]), def, &bi); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "budget %s set: %s %s per %s\n", bi.Name, bi.Limit, unitLabel(bi), bi.Period)
		return nil
	case sub == "delete" && len(pos) == 1:
		if err := c.do(ctx, "DELETE", "/v1/budgets/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "budget %s deleted\n", pos[0])
		return nil
	case sub == "reset" && len(pos) == 1:
		path := "/v1/budgets/" + url.PathEscape(pos[0]) + "/reset"
		if *key != "" {
			path += "?key=" + url.QueryEscape(*key)
		}
		if err := c.do(ctx, "POST", path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "budget %s reset\n", pos[0])
		return nil
	}
	return usageError{budgetsUsage}
}

// withName puts name into a definition that has none, and refuses one that
// names another budget.
func withName(def []byte, name string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(def, &m); err != nil {
		return nil, fmt.Errorf("the definition is not a JSON object: %w", err)
	}
	if raw, ok := m["name"]; ok {
		var got string
		if json.Unmarshal(raw, &got) != nil || got != name {
			return nil, fmt.Errorf("the definition names %s, not %q", raw, name)
		}
		return def, nil
	}
	m["name"], _ = json.Marshal(name)
	return json.Marshal(m)
}

func unitLabel(bi admin.BudgetInfo) string {
	if bi.Currency != "" {
		return bi.Currency
	}
	return bi.Unit
}

func (c *adminClient) list(ctx context.Context, stdout io.Writer, asJSON bool) error {
	var out struct {
		Budgets []admin.BudgetInfo `json:"budgets"`
	}
	if err := c.do(ctx, "GET", "/v1/budgets", nil, &out); err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUDGET\tSOURCE\tLIMIT\tPER\tKEY\tSPENT\tRESERVED\tREMAINING\tRESETS")
	for _, b := range out.Budgets {
		limit := b.Limit + " " + unitLabel(b)
		if b.Shadow {
			limit += " (shadow)"
		}
		if len(b.Keys) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t\t\t\t\n", b.Name, b.Source, limit, b.Period)
		}
		for _, k := range b.Keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Name, b.Source, limit, b.Period,
				k.Key, k.Spent, k.Reserved, k.Remaining, k.ResetsAt.Format(time.RFC3339))
		}
	}
	return tw.Flush()
}

type adminClient struct {
	base, token string
}

// adminFlags adds --admin and --token-env to fs; the returned function, called
// after parsing, makes the client they describe.
// adminFlagsUsage ends the help of every command that talks to the admin
// API: the flags adminFlags defines.
const adminFlagsUsage = `flags for every subcommand:
  --admin URL        the admin API (default http://127.0.0.1:9464)
  --token-env NAME   environment variable holding the admin bearer token (default TOKENMETER_ADMIN_TOKEN)`

func adminFlags(fs *flag.FlagSet) func() *adminClient {
	adminURL := fs.String("admin", "http://127.0.0.1:9464", "admin API `URL`")
	tokenEnv := fs.String("token-env", "TOKENMETER_ADMIN_TOKEN", "environment `variable` holding the bearer token")
	return func() *adminClient {
		return &adminClient{base: strings.TrimRight(*adminURL, "/"), token: os.Getenv(*tokenEnv)}
	}
}

func (c *adminClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return usageError{fmt.Sprintf("--admin: %v", err)}
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: read %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("admin API: %s", e.Error)
		}
		return fmt.Errorf("admin API: %s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin API: %s %s: %w", method, path, err)
		}
	}
	return nil
}
