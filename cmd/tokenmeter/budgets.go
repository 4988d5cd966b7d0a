package main

import (
	"context"
	"encoding/json"
	"errors"
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

// budgetsCmd is "budgets list|set|delete|reset": the budgets of a running
// tokenmeter, through its admin API.
type budgetsCmd struct {
	List   budgetsListCmd   `cmd:"" help:"Every budget and the status of its keys."`
	Set    budgetsSetCmd    `cmd:"" help:"Create or replace a runtime budget."`
	Delete budgetsDeleteCmd `cmd:"" help:"Delete a runtime budget."`
	Reset  budgetsResetCmd  `cmd:"" help:"Zero a budget's counters (one key, or all)."`
}

type budgetsListCmd struct {
	adminFlags
	JSON bool `name:"json" help:"Print the API's JSON."`
}

func (c *budgetsListCmd) Run(ctx context.Context, s stdio) error {
	return c.client().list(ctx, s.out, c.JSON)
}

type budgetsSetCmd struct {
	adminFlags
	File       string `name:"file" placeholder:"FILE" help:"Read the definition from FILE (- for stdin) instead of DEFINITION."`
	Name       string `arg:"" name:"name" help:"The budget's name."`
	Definition string `arg:"" optional:"" name:"definition" help:"The budget, as JSON in the config's budget schema."`
}

func (*budgetsSetCmd) Help() string {
	return `The definition is JSON in the config's budget schema, e.g. '{"match":{"team":"x"},"limit":{"money":"50"},"window":"month"}'; ` +
		"a name in it must be NAME's. A budget of the config file cannot be replaced."
}

// Validate is called by kong once the flags and arguments are read.
func (c *budgetsSetCmd) Validate() error {
	if (c.File == "") == (c.Definition == "") {
		return errors.New("want the definition as DEFINITION or in --file FILE, one of the two")
	}
	return nil
}

func (c *budgetsSetCmd) Run(ctx context.Context, s stdio) error {
	var def []byte
	var err error
	switch c.File {
	case "":
		def = []byte(c.Definition)
	case "-":
		def, err = io.ReadAll(os.Stdin)
	default:
		def, err = os.ReadFile(c.File)
	}
	if err != nil {
		return fmt.Errorf("read definition: %w", err)
	}
	def, err = withName(def, c.Name)
	if err != nil {
		return usageError{err.Error()}
	}
	var bi admin.BudgetInfo
	if err := c.client().do(ctx, "PUT", "/v1/budgets/"+url.PathEscape(c.Name), def, &bi); err != nil {
		return err
	}
	_, err = fmt.Fprintf(s.out, "budget %s set: %s %s per %s\n", bi.Name, bi.Limit, unitLabel(bi), bi.Period)
	return err
}

type budgetsDeleteCmd struct {
	adminFlags
	Name string `arg:"" name:"name" help:"The runtime budget to delete."`
}

func (c *budgetsDeleteCmd) Run(ctx context.Context, s stdio) error {
	if err := c.client().do(ctx, "DELETE", "/v1/budgets/"+url.PathEscape(c.Name), nil, nil); err != nil {
		return err
	}
	_, err := fmt.Fprintf(s.out, "budget %s deleted\n", c.Name)
	return err
}

type budgetsResetCmd struct {
	adminFlags
	Key  string `name:"key" placeholder:"KEY" help:"Only this counter key, e.g. project=demo (default: every key)."`
	Name string `arg:"" name:"name" help:"The budget whose counters to zero."`
}

func (c *budgetsResetCmd) Run(ctx context.Context, s stdio) error {
	path := "/v1/budgets/" + url.PathEscape(c.Name) + "/reset"
	if c.Key != "" {
		path += "?key=" + url.QueryEscape(c.Key)
	}
	if err := c.client().do(ctx, "POST", path, nil, nil); err != nil {
		return err
	}
	_, err := fmt.Fprintf(s.out, "budget %s reset\n", c.Name)
	return err
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

// adminFlags are the flags of every command that talks to the admin API.
type adminFlags struct {
	Admin    string `name:"admin" default:"http://127.0.0.1:9464" placeholder:"URL" help:"The admin API (default: ${default})."`
	TokenEnv string `name:"token-env" default:"TOKENMETER_ADMIN_TOKEN" placeholder:"NAME" help:"Environment variable holding the admin bearer token (default: ${default})."`
}

// client is the admin API the flags describe; the token is read here, not
// by kong, so that its value is in no flag's default and no help text.
func (a adminFlags) client() *adminClient {
	return &adminClient{base: strings.TrimRight(a.Admin, "/"), token: os.Getenv(a.TokenEnv)}
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
