package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// usageCmd is "usage report|statement|export": the stored ledger, read
// through a running tokenmeter's admin API, or with --config directly from
// the ledger a config names when no server has it open (offline.go).
type usageCmd struct {
	Report    usageReportCmd    `cmd:"" help:"Requests, tokens and cost over a range, grouped and bucketed."`
	Statement usageStatementCmd `cmd:"" help:"A month's statement for one value of a dimension."`
	Export    usageExportCmd    `cmd:"" help:"The ledger's records over a range, as CSV or JSONL."`
}

// rangeFlags are [--from, --to), which the server checks.
type rangeFlags struct {
	From string `name:"from" placeholder:"F" help:"Start of the range: an RFC 3339 instant or a YYYY-MM-DD date."`
	To   string `name:"to" placeholder:"T" help:"End of the range, excluded: an RFC 3339 instant or a YYYY-MM-DD date."`
}

// tzFlag is every usage subcommand's --tz.
type tzFlag struct {
	TZ string `name:"tz" placeholder:"ZONE" help:"Time zone aligning days, weeks and months (default: the server's ledger.time_zone)."`
}

type usageReportCmd struct {
	adminFlags
	ledgerFlag
	rangeFlags
	GroupBy string   `name:"group-by" placeholder:"KEYS" help:"Comma-separated keys: dimensions, provider, model, dialect, outcome, currency."`
	Bucket  string   `name:"bucket" placeholder:"B" help:"none, hour, day, week or month."`
	Filter  []string `name:"filter" sep:"none" placeholder:"KEY=VALUE" help:"Only records with this value; repeatable."`
	tzFlag
	JSON bool `name:"json" help:"Print the API's JSON."`
}

func (c *usageReportCmd) Run(ctx context.Context, s stdio) error {
	q := query{"tz": c.TZ, "from": c.From, "to": c.To, "group_by": c.GroupBy, "bucket": c.Bucket}.values()
	for _, f := range c.Filter {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return usageError{fmt.Sprintf("--filter %q: want key=value", f)}
		}
		q.Set("filter."+k, v)
	}
	client, stop, err := c.usageClient(ctx, c.adminFlags)
	if err != nil {
		return err
	}
	defer stop()
	var rep reportOut
	raw, err := client.get(ctx, "/v1/usage/report?"+q.Encode(), &rep)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(s.out, raw)
	}
	printReport(s.out, &rep)
	return nil
}

type usageStatementCmd struct {
	adminFlags
	ledgerFlag
	Month     string `name:"month" placeholder:"YYYY-MM" help:"The month."`
	Dimension string `name:"dimension" placeholder:"D" help:"The dimension, e.g. project."`
	Value     string `name:"value" placeholder:"V" help:"Its value."`
	tzFlag
	JSON   bool   `name:"json" help:"Print the API's JSON."`
	Format string `name:"format" enum:"text,html,pdf" default:"text" placeholder:"F" help:"text (a table), or the printable document: html or pdf (default: ${default})."`
	Out    string `name:"out" placeholder:"FILE" help:"Write the document to FILE (required with --format pdf)."`
}

func (c *usageStatementCmd) Run(ctx context.Context, s stdio) error {
	q := query{"tz": c.TZ, "month": c.Month, "dimension": c.Dimension, "value": c.Value}.values()
	client, stop, err := c.usageClient(ctx, c.adminFlags)
	if err != nil {
		return err
	}
	defer stop()
	if c.Format != "text" {
		return c.document(ctx, s, client, q)
	}
	var st struct{ Statements []statementOut }
	raw, err := client.get(ctx, "/v1/usage/statement?"+q.Encode(), &st)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(s.out, raw)
	}
	for _, stmt := range st.Statements {
		printStatement(s.out, &stmt)
	}
	if len(st.Statements) == 0 {
		fmt.Fprintf(s.out, "no usage for %s=%s in %s\n", c.Dimension, c.Value, c.Month)
	}
	return nil
}

type usageExportCmd struct {
	adminFlags
	ledgerFlag
	rangeFlags
	Format string `name:"format" default:"csv" placeholder:"FORMAT" help:"csv or jsonl (default: ${default})."`
	Out    string `name:"out" placeholder:"FILE" help:"Write to FILE instead of stdout."`
	tzFlag
}

func (c *usageExportCmd) Run(ctx context.Context, s stdio) (err error) {
	q := query{"tz": c.TZ, "from": c.From, "to": c.To, "format": c.Format}.values()
	client, stop, err := c.usageClient(ctx, c.adminFlags)
	if err != nil {
		return err
	}
	defer stop()
	w := s.out
	if c.Out != "" {
		f, err := os.Create(c.Out)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer func() {
			// A write the kernel deferred can fail here: the file is not whole.
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("export: %w", cerr)
			}
		}()
		w = f
	}
	return client.stream(ctx, "/v1/usage/export?"+q.Encode(), w)
}

// query is an admin API query; a flag left empty leaves its parameter to
// the server's default.
type query map[string]string

func (q query) values() url.Values {
	v := url.Values{}
	for k, s := range q {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

type reportOut struct {
	Bucket  string   `json:"bucket"`
	GroupBy []string `json:"group_by"`
	Rows    []struct {
		Bucket   *time.Time        `json:"bucket"`
		Group    map[string]string `json:"group"`
		Currency string            `json:"currency"`
		Requests int64             `json:"requests"`
		Tokens   map[string]int64  `json:"tokens"`
		Cost     string            `json:"cost"`
		Unpriced int64             `json:"unpriced"`
	} `json:"rows"`
	Totals []struct {
		Currency string `json:"currency"`
		Requests int64  `json:"requests"`
		Cost     string `json:"cost"`
	} `json:"totals"`
}

func printReport(w io.Writer, r *reportOut) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var head []string
	if r.Bucket != "none" {
		head = append(head, "BUCKET")
	}
	for _, g := range r.GroupBy {
		head = append(head, strings.ToUpper(g))
	}
	head = append(head, "REQUESTS", "TOKENS", "UNPRICED", "COST")
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, row := range r.Rows {
		var cells []string
		if r.Bucket != "none" && row.Bucket != nil {
			cells = append(cells, row.Bucket.Format(time.RFC3339))
		}
		for _, g := range r.GroupBy {
			cells = append(cells, row.Group[g])
		}
		var tokens int64
		for _, n := range row.Tokens {
			tokens += n
		}
		cells = append(cells, fmt.Sprint(row.Requests), fmt.Sprint(tokens), fmt.Sprint(row.Unpriced), row.Cost+" "+row.Currency)
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	for _, t := range r.Totals {
		fmt.Fprintf(w, "total: %d requests, %s %s\n", t.Requests, t.Cost, t.Currency)
	}
}

type statementOut struct {
	Month     string `json:"month"`
	Dimension string `json:"dimension"`
	Value     string `json:"value"`
	Currency  string `json:"currency"`
	Lines     []struct {
		Provider string           `json:"provider"`
		Model    string           `json:"model"`
		Requests int64            `json:"requests"`
		Unpriced int64            `json:"unpriced"`
		Denied   int64            `json:"denied"`
		Failed   int64            `json:"failed"`
		Tokens   map[string]int64 `json:"tokens"`
		Cost     string           `json:"cost"`
	} `json:"lines"`
	Requests int64  `json:"requests"`
	Unpriced int64  `json:"unpriced"`
	Denied   int64  `json:"denied"`
	Failed   int64  `json:"failed"`
	Total    string `json:"total"`
}

func printStatement(w io.Writer, s *statementOut) {
	fmt.Fprintf(w, "Statement %s for %s=%s, in %s\n\n", s.Month, s.Dimension, s.Value, s.Currency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Served requests are the charged ones; denied and failed ones are
	// never billed; an unpriced one's cost is unknown, not zero.
	fmt.Fprintln(tw, "PROVIDER\tMODEL\tSERVED\tUNPRICED\tDENIED\tFAILED\tTOKENS\tCOST\t")
	for _, l := range s.Lines {
		var tokens int64
		for _, n := range l.Tokens {
			tokens += n
		}
		cost := l.Cost
		switch {
		case l.Requests == 0:
			cost = "-"
		case l.Unpriced == l.Requests && l.Cost == "0":
			cost = "unknown"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", l.Provider, l.Model, l.Requests, l.Unpriced, l.Denied, l.Failed, tokens, cost)
	}
	fmt.Fprintf(tw, "TOTAL\t\t%d\t%d\t%d\t%d\t\t%s\t\n", s.Requests, s.Unpriced, s.Denied, s.Failed, s.Total)
	tw.Flush()
	fmt.Fprintln(w)
}

// get fetches a JSON document, decodes it into out and returns its bytes.
func (c *adminClient) get(ctx context.Context, path string, out any) ([]byte, error) {
	var raw json.RawMessage
	if err := c.do(ctx, "GET", path, nil, &raw); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("admin API: %s: %w", path, err)
	}
	return raw, nil
}

// stream copies a response body as it arrives: an export can be larger than
// memory.
func (c *adminClient) stream(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+path, nil)
	if err != nil {
		return usageError{fmt.Sprintf("--admin: %v", err)}
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("admin API: %s", e.Error)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("export: the transfer broke off: %w", err)
	}
	return nil
}

// writeJSON prints the API's JSON as it came, ending in one newline, so a
// shell prompt or the next command's output starts on a line of its own.
func writeJSON(w io.Writer, raw []byte) error {
	raw = bytes.TrimRight(raw, "\n")
	_, err := w.Write(append(raw, '\n'))
	return err
}
