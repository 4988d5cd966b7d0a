package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/statement"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/ratelimit"
)

// /v1/usage/statement serves the statement as JSON, HTML or PDF behind the
// same bearer token; the JSON counts served, unpriced, denied and failed
// requests apart, and the documents carry the configured tax.
func TestStatementFormats(t *testing.T) {
	book, err := usagedb.Open(usagedb.Options{InMemory: true, Dimensions: []string{"project"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer book.Close()
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	dims := attribution.Dimensions{Names: []string{"project"}, Values: []string{"alpha"}}
	for i, o := range []ledger.Outcome{ledger.OK, ledger.OK, ledger.Denied, ledger.UpstreamError} {
		book.Append(&ledger.Record{RequestID: string(o) + string(rune('0'+i)), Start: start.Add(time.Duration(i) * time.Second), Outcome: o,
			Provider: "openai", Model: "gpt-4o", PricedModel: "gpt-4o", Priced: true, Currency: money.USD, Dimensions: dims,
			Cost: money.MustParse("12.5"), ListCost: money.MustParse("12.5")})
	}
	book.Append(&ledger.Record{RequestID: "unpriced", Start: start, Outcome: ledger.OK, Provider: "openai", Model: "new-model", Dimensions: dims})
	if err := book.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	set := statement.Settings{Issuer: "Acme <Finance>", Currency: "USD",
		Tax: []statement.TaxRule{{Name: "VAT", Percent: money.MustParse("20"), Match: []ratelimit.Match{{Dimension: "project", Value: "alpha"}}}}}
	srv := httptest.NewServer(admin.New(http.NotFoundHandler(), "s3cret").WithUsage(usagedb.Ledger{Store: book}, nil).
		WithStatements(func() statement.Settings { return set }))
	defer srv.Close()
	get := func(query, token string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/v1/usage/statement?"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	const q = "month=2026-03&dimension=project&value=alpha"

	if resp, _ := get(q+"&format=html", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("html without the token: %d, want 401", resp.StatusCode)
	}
	resp, body := get(q, "s3cret")
	var js struct {
		Statements []struct {
			Requests, Unpriced, Denied, Failed int64
			Total                              string
		}
	}
	if err := json.Unmarshal([]byte(body), &js); err != nil || len(js.Statements) != 1 {
		t.Fatalf("json %d: %s (%v)", resp.StatusCode, body, err)
	}
	if s := js.Statements[0]; s.Requests != 3 || s.Unpriced != 1 || s.Denied != 1 || s.Failed != 1 || s.Total != "25" {
		t.Errorf("json statement %+v: want 3 served (1 unpriced), 1 denied, 1 failed, total 25", s)
	}

	checkStatementCSV(t, get, q)

	resp, body = get(q+"&format=html", "s3cret")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("html: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{"Acme &lt;Finance&gt;", `data-field="subtotal">25.00 USD`, `data-field="tax-amount">5.00 USD`,
		`data-field="total">30.00 USD`, "1 unpriced request: cost unknown"} {
		if !strings.Contains(body, want) {
			t.Errorf("the HTML lacks %q", want)
		}
	}
	if !strings.Contains(resp.Header.Get("Content-Disposition"), `filename="TM-202603-`) {
		t.Errorf("Content-Disposition %q", resp.Header.Get("Content-Disposition"))
	}

	resp, body = get(q+"&format=pdf", "s3cret")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(body, "%PDF-") {
		t.Fatalf("pdf: %d %s: %.200q (make test-deps installs chromium)", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	for query, want := range map[string]int{
		q + "&format=docx": http.StatusBadRequest,
		"month=2026-13&dimension=project&value=alpha&format=html": http.StatusBadRequest,
		"month=2026-03&dimension=team&value=alpha&format=html":    http.StatusBadRequest,
		"month=2026-04&dimension=project&value=alpha&format=html": http.StatusNotFound,
	} {
		if resp, body := get(query, "s3cret"); resp.StatusCode != want {
			t.Errorf("%s: %d %s, want %d", query, resp.StatusCode, body, want)
		}
	}
}

// checkStatementCSV: the CSV has the statement's lines, amounts as the
// JSON's strings; an all-unpriced line's cost is empty, never 0.
func checkStatementCSV(t *testing.T, get func(query, token string) (*http.Response, string), q string) {
	t.Helper()
	resp, body := get(q+"&format=csv", "s3cret")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{
		"month,dimension,value,currency,provider,model,requests,unpriced,denied,failed,input,cache_read,cache_write,cache_write_1h,output,reasoning,cost,list_cost\n",
		"2026-03,project,alpha,USD,openai,gpt-4o,2,0,1,1,0,0,0,0,0,0,25,25\n",
		"2026-03,project,alpha,USD,openai,new-model,1,1,0,0,0,0,0,0,0,0,,\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the CSV lacks %q:\n%s", want, body)
		}
	}
}
