package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/test/testbed"
)

// Requests through Envoy land in the stored ledger: the report, the monthly
// statement and the CSV export agree with each other and with the exact cost
// of each request; a malformed query is refused with its reason.
func TestLedgerReportStatementExport(t *testing.T) {
	s := newStack(t, "")
	// gpt-4o-mini: 1000 input at 0.15 + 50 output at 0.60 = 0.00018 per request.
	h := func(project string) map[string]string {
		return map[string]string{"x-tokenmeter-project": project, "x-mock-prompt-tokens": "1000", "x-mock-completion-tokens": "50"}
	}
	for i, p := range []string{"alpha", "alpha", "alpha", "beta"} {
		resp := s.Post(chatBody, h(p))
		if b := testbed.ReadAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
	}
	now := time.Now().UTC()
	from, to := now.Add(-time.Hour).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)
	checkUsageReport(t, waitUsageReport(t, s, from, to, 4))
	checkUsageStatement(t, s, now)
	checkUsageExport(t, s, from, to)
	checkBadUsageQueries(t, s, from, to)
}

// usageReport is what usage report --json prints, as far as these tests read it.
type usageReport struct {
	Rows []struct {
		Group    map[string]string
		Requests int64
		Cost     string
		Tokens   map[string]int64
	}
	Totals []struct {
		Currency string
		Requests int64
		Cost     string
	}
}

// waitUsageReport runs usage report over [from, to) grouped by project and
// model until it counts requests in one total (the ledger is written after
// each answer), or for 10 seconds, and returns the last.
func waitUsageReport(t *testing.T, s *testbed.Stack, from, to string, requests int64) usageReport {
	t.Helper()
	var rep usageReport
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := cli(t, s.TM.Admin, "usage", "report", "--from", from, "--to", to, "--group-by", "project,model", "--json")
		if err != nil {
			t.Fatalf("report: %v %s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("report %s: %v", out, err)
		}
		if !strings.HasSuffix(out, "}\n") {
			t.Fatalf("the JSON does not end with one newline: %q", out[max(0, len(out)-20):])
		}
		if len(rep.Totals) == 1 && rep.Totals[0].Requests == requests || time.Now().After(deadline) {
			return rep
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkUsageReport: three requests of alpha and one of beta, each 0.00018.
func checkUsageReport(t *testing.T, rep usageReport) {
	t.Helper()
	if len(rep.Totals) != 1 || rep.Totals[0].Cost != "0.00072" || rep.Totals[0].Currency != "USD" || len(rep.Rows) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Rows {
		want := map[string]string{"alpha": "0.00054", "beta": "0.00018"}[r.Group["project"]]
		if r.Cost != want || r.Group["model"] != "gpt-4o-mini" || r.Tokens["input"] != 1000*r.Requests {
			t.Fatalf("row %+v, want cost %s", r, want)
		}
	}
}

// checkUsageStatement: alpha's statement for the month names the provider,
// the model and alpha's cost.
func checkUsageStatement(t *testing.T, s *testbed.Stack, now time.Time) {
	t.Helper()
	out, err := cli(t, s.TM.Admin, "usage", "statement", "--month", now.Format("2006-01"), "--dimension", "project", "--value", "alpha")
	if err != nil {
		t.Fatalf("statement: %v %s", err, out)
	}
	for _, want := range []string{"Statement " + now.Format("2006-01") + " for project=alpha, in USD", "openai", "gpt-4o-mini", "0.00054"} {
		if !strings.Contains(out, want) {
			t.Fatalf("statement lacks %q:\n%s", want, out)
		}
	}
	// The printable document, through the server's wiring of the config's
	// statement settings.
	doc := filepath.Join(t.TempDir(), "statement.html")
	if out, err := cli(t, s.TM.Admin, "usage", "statement", "--month", now.Format("2006-01"), "--dimension", "project", "--value", "alpha",
		"--format", "html", "--out", doc); err != nil {
		t.Fatalf("statement --format html: %v %s", err, out)
	}
	page, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-field="number">TM-` + now.Format("200601") + "-", `data-field="subtotal">0.00054 USD`, `data-field="due">0.00 USD`} {
		if !strings.Contains(string(page), want) {
			t.Fatalf("the statement document lacks %q:\n%s", want, page)
		}
	}
}

// checkUsageExport: the CSV export reads back as the four records, each at
// its exact cost.
func checkUsageExport(t *testing.T, s *testbed.Stack, from, to string) {
	t.Helper()
	out, err := cli(t, s.TM.Admin, "usage", "export", "--from", from, "--to", to, "--format", "csv")
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	recs, err := usagedb.ReadCSV(strings.NewReader(out))
	if err != nil {
		t.Fatalf("export does not read back: %v\n%s", err, out)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records exported, want 4", len(recs))
	}
	for _, r := range recs {
		if r.Cost.String() != "0.00018" || r.Provider != "openai" || r.Outcome != "ok" || r.Usage.Tokens[0].N != 1000 {
			t.Fatalf("exported record %+v", r)
		}
	}
}

// checkBadUsageQueries: the admin API's 400 reason reaches the command
// line, and names the unknown dimension.
func checkBadUsageQueries(t *testing.T, s *testbed.Stack, from, to string) {
	t.Helper()
	out, err := cli(t, s.TM.Admin, "usage", "report", "--from", to, "--to", from)
	if err == nil || !strings.Contains(out, "from") {
		t.Fatalf("from after to: %v %s", err, out)
	}
	resp, err := http.Get("http://" + s.TM.Admin + "/v1/usage/report?from=" + from + "&to=" + to + "&group_by=tenant")
	if err != nil {
		t.Fatal(err)
	}
	body := string(testbed.ReadAll(t, resp))
	if resp.StatusCode != 400 || !strings.Contains(body, "tenant") {
		t.Fatalf("unknown dimension: %d %s", resp.StatusCode, body)
	}
}
