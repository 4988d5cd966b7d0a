package main

import (
	"bytes"
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
)

const usageCmdText = `usage: tokenmeter usage <report|statement|export> [flags]

  report    --from F --to T [--group-by project,model] [--bucket day] [--filter project=x] [--tz Zone] [--json]
  statement --month YYYY-MM --dimension project --value alpha [--tz Zone] [--json]
  export    --from F --to T [--format csv|jsonl] [--out FILE]

F and T are RFC 3339 instants or YYYY-MM-DD dates; the range is [F, T).

` + adminFlagsUsage

// usageCmd reads the stored ledger of a running tokenmeter through its admin
// API: Badger allows one process per directory, and that is the server.
func usageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{usageCmdText}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("usage "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := adminFlags(fs)
	var o usageOpts
	if !o.register(fs, sub) {
		return usageError{usageCmdText}
	}
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	c := client()
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("tz", o.tz)
	switch sub {
	case "report":
		set("from", o.from)
		set("to", o.to)
		set("group_by", o.groupBy)
		set("bucket", o.bucket)
		for _, f := range o.filters {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return usageError{fmt.Sprintf("--filter %q: want key=value", f)}
			}
			q.Set("filter."+k, v)
		}
		var rep reportOut
		raw, err := c.get(ctx, "/v1/usage/report?"+q.Encode(), &rep)
		if err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(stdout, raw)
		}
		printReport(stdout, &rep)
		return nil
	case "statement":
		set("month", o.month)
		set("dimension", o.dimension)
		set("value", o.value)
		var st struct{ Statements []statementOut }
		raw, err := c.get(ctx, "/v1/usage/statement?"+q.Encode(), &st)
		if err != nil {
			return err
		}
		if o.asJSON {
			return writeJSON(stdout, raw)
		}
		for _, s := range st.Statements {
			printStatement(stdout, &s)
		}
		if len(st.Statements) == 0 {
			fmt.Fprintf(stdout, "no usage for %s=%s in %s\n", o.dimension, o.value, o.month)
		}
		return nil
	case "export":
		set("from", o.from)
		set("to", o.to)
		set("format", o.format)
		w := stdout
		if o.out != "" {
			f, err := os.Create(o.out)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			defer f.Close()
			w = f
		}
		return c.stream(ctx, "/v1/usage/export?"+q.Encode(), w)
	}
	return usageError{usageCmdText}
}

// usageOpts are the flags of the usage subcommands; each registers its own,
// so that its help lists only what it reads.
type usageOpts struct {
	from, to, groupBy, bucket, tz string
	filters                       multiFlag
	asJSON                        bool
	month, dimension, value       string
	format, out                   string
}

// register adds sub's flags to fs; false when there is no such subcommand.
func (o *usageOpts) register(fs *flag.FlagSet, sub string) bool {
	rangeFlags := func() {
		fs.StringVar(&o.from, "from", "", "start of the range")
		fs.StringVar(&o.to, "to", "", "end of the range (excluded)")
	}
	switch sub {
	case "report":
		rangeFlags()
		fs.StringVar(&o.groupBy, "group-by", "", "comma-separated keys: dimensions, provider, model, dialect, outcome, currency")
		fs.StringVar(&o.bucket, "bucket", "", "none, hour, day, week or month")
		fs.Var(&o.filters, "filter", "key=value, repeatable")
		fs.BoolVar(&o.asJSON, "json", false, "print the API's JSON")
	case "statement":
		fs.StringVar(&o.month, "month", "", "YYYY-MM")
		fs.StringVar(&o.dimension, "dimension", "", "the dimension, e.g. project")
		fs.StringVar(&o.value, "value", "", "its value")
		fs.BoolVar(&o.asJSON, "json", false, "print the API's JSON")
	case "export":
		rangeFlags()
		fs.StringVar(&o.format, "format", "csv", "csv or jsonl")
		fs.StringVar(&o.out, "out", "", "write to `file` instead of stdout")
	default:
		return false
	}
	fs.StringVar(&o.tz, "tz", "", "time zone aligning days, weeks and months (default the server's ledger.time_zone)")
	return true
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

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
		Tokens   map[string]int64 `json:"tokens"`
		Cost     string           `json:"cost"`
	} `json:"lines"`
	Requests int64  `json:"requests"`
	Total    string `json:"total"`
}

func printStatement(w io.Writer, s *statementOut) {
	fmt.Fprintf(w, "Statement %s for %s=%s, in %s\n\n", s.Month, s.Dimension, s.Value, s.Currency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PROVIDER\tMODEL\tREQUESTS\tTOKENS\tCOST\t")
	for _, l := range s.Lines {
		var tokens int64
		for _, n := range l.Tokens {
			tokens += n
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t\n", l.Provider, l.Model, l.Requests, tokens, l.Cost)
	}
	fmt.Fprintf(tw, "TOTAL\t\t%d\t\t%s\t\n", s.Requests, s.Total)
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
