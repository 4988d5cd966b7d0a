package admin_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/budgets"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/ratelimit"
	"github.com/tokenmeter/tokenmeter/ratelimit/badgerstore"
)

// chromium returns Debian's chromium. Without it the test fails: a missing
// real part is never a silent skip (make test-deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (make test-deps, or: apt-get install chromium): %v", err)
	}
	return bin
}

// headless runs chromium on url with extra flags and returns what it
// printed. The flags keep it off the network (this machine's is closed) and
// give the page's fetches virtual time to finish.
func headless(t *testing.T, bin, url string, extra ...string) string {
	t.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=15000", "--window-size=1280,1150"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// The web page, in headless Chromium against a seeded ledger and live
// budget counters, shows the exact amounts the API holds; a screenshot is
// saved (TOKENMETER_SCREENSHOT_DIR, else the test's temp dir).
func TestWebPageInChromium(t *testing.T) {
	bin := chromium(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Now().UTC()

	book, err := usagedb.Open(usagedb.Options{InMemory: true, Dimensions: []string{"project", "team", "user"}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer book.Close()
	seed := []struct {
		project, model string
		daysAgo        int
		cost           string
	}{
		{"search", "gpt-4o", 0, "1.25"}, {"search", "gpt-4o", 1, "2.50"}, {"search", "claude-sonnet-4", 2, "0.75"},
		{"billing", "gpt-4o-mini", 0, "0.000213"}, {"billing", "gpt-4o-mini", 5, "0.10"},
	}
	for _, s := range seed {
		r := &ledger.Record{Start: now.Add(-time.Duration(s.daysAgo)*24*time.Hour - time.Minute), Provider: "openai", Dialect: "openai_chat",
			Model: s.model, PricedModel: s.model, Priced: true, Outcome: ledger.OK, Status: 200,
			Cost: money.MustParse(s.cost), ListCost: money.MustParse(s.cost), Currency: "USD",
			ReportingCost: money.MustParse(s.cost), ReportingCurrency: "USD",
			Dimensions: attribution.Dimensions{Names: []string{"project", "team", "user"}, Values: []string{s.project, "t", "u"}}}
		r.Usage.Set(usage.Input, 100)
		book.Append(r)
	}
	if err := book.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	cfg, err := config.Parse("test.yaml", []byte(`catalog: {builtin: false, files: [../config/testdata/prices.yaml]}
budgets:
  - {name: search-monthly, match: {project: search}, limit: {money: "10"}, window: month}
`))
	if err != nil {
		t.Fatal(err)
	}
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l := ratelimit.New(cfg.Budgets, store, ratelimit.Options{Currency: "USD"})
	d := attribution.Dimensions{Names: []string{"project"}, Values: []string{"search"}}
	res, _, err := l.Reserve(ctx, d, ratelimit.Amounts{Money: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Settle(ctx, res, ratelimit.Amounts{Money: money.MustParse("3.75")}); err != nil {
		t.Fatal(err)
	}
	api := &budgets.API{Registry: budgets.New(store, log), File: func() *config.Config { return cfg },
		Limiter: func() *ratelimit.Limiter { return l }, Store: store, Changed: func() {}}
	srv := httptest.NewServer(admin.New(http.NotFoundHandler(), "").WithBudgets(api).WithUsage(usagedb.Ledger{Store: book}, nil))
	defer srv.Close()

	dom := headless(t, bin, srv.URL+"/", "--dump-dom")
	if !strings.Contains(dom, `data-loaded="true"`) {
		t.Fatalf("the page did not finish loading:\n%s", dom)
	}
	for _, want := range []string{
		`<strong id="total">4.600213 USD</strong>`,                                                     // 1.25 + 2.50 + 0.75 + 0.000213 + 0.10
		`<tr data-key="search"><td>search</td><td class="num">3</td><td class="num cost">4.5 USD</td>`, // top projects
		`<tr data-key="billing"><td>billing</td><td class="num">2</td><td class="num cost">0.100213 USD</td>`,
		`<tr data-key="gpt-4o"><td>gpt-4o</td><td class="num">2</td><td class="num cost">3.75 USD</td>`, // top models
		`<td class="num spent">3.75 USD</td><td class="num remaining">6.25 USD</td>`,                    // the budget
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	dir := os.Getenv("TOKENMETER_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "admin-page.png")
	headless(t, bin, srv.URL+"/", "--screenshot="+shot)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
