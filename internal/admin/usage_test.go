package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
)

// The report JSON counts every outcome of the vocabulary, zeros included,
// and says how many records were charged; the cost is theirs alone.
func TestReportOutcomes(t *testing.T) {
	book, err := usagedb.Open(usagedb.Options{InMemory: true, Dimensions: []string{"project"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer book.Close()
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for i, o := range []ledger.Outcome{ledger.OK, ledger.Unobserved, ledger.GateTimeout, ledger.Denied, ledger.ProviderError} {
		book.Append(&ledger.Record{RequestID: string(o), Start: start.Add(time.Duration(i) * time.Second), Outcome: o,
			Provider: "openai", Model: "gpt-4o", PricedModel: "gpt-4o", Priced: true, Currency: money.USD,
			Cost: money.MustParse("0.25"), ListCost: money.MustParse("0.25")})
	}
	if err := book.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin.New(http.NotFoundHandler(), "").WithUsage(usagedb.Ledger{Store: book}, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/usage/report?from=2026-03-02&to=2026-03-03")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Rows []struct {
			Requests int64            `json:"requests"`
			Charged  int64            `json:"charged"`
			Outcomes map[string]int64 `json:"outcomes"`
			Cost     string           `json:"cost"`
		} `json:"rows"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if len(got.Rows) != 1 {
		t.Fatalf("%d rows, want 1", len(got.Rows))
	}
	r := got.Rows[0]
	if r.Requests != 5 || r.Charged != 3 || r.Cost != "0.75" || len(r.Outcomes) != len(ledger.Outcomes) {
		t.Fatalf("row %+v: want 5 requests, 3 charged, cost 0.75, %d outcomes", r, len(ledger.Outcomes))
	}
	for _, o := range ledger.Outcomes {
		want := int64(0)
		switch o {
		case ledger.OK, ledger.Unobserved, ledger.GateTimeout, ledger.Denied, ledger.ProviderError:
			want = 1
		}
		if n, ok := r.Outcomes[string(o)]; !ok || n != want {
			t.Errorf("outcomes[%s] = %d (present %v), want %d", o, n, ok, want)
		}
	}
}
