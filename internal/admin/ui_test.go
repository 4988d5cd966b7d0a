package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/admin"
	"github.com/tokenmeter/tokenmeter/internal/alerting"
	"github.com/tokenmeter/tokenmeter/internal/attribution"
	"github.com/tokenmeter/tokenmeter/internal/budgets"
	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/ledger"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
	"github.com/tokenmeter/tokenmeter/internal/usagedb"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore"
	"github.com/tokenmeter/tokenmeter/internal/usagedb/pgstore/pgtest"
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
func headless(t *testing.T, bin, url, size string, extra ...string) string {
	t.Helper()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--virtual-time-budget=15000", "--window-size=" + size}, extra...)
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

// consoleMonth is the month the seeded ledger holds.
var consoleMonth = time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)

// openLedger opens an empty ledger of a kind: the embedded one (Badger in
// memory) or the shared one (a real Postgres, started for the test).
func openLedger(t *testing.T, kind string) usagedb.Store {
	t.Helper()
	dims := []string{"project", "team", "user"}
	var book usagedb.Store
	var err error
	switch kind {
	case "badger":
		book, err = usagedb.Open(usagedb.Options{InMemory: true, Dimensions: dims, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	case "postgres":
		book, err = pgstore.Open(context.Background(), pgstore.Options{DSN: pgtest.Start(t), Dimensions: dims})
	default:
		t.Fatalf("ledger %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { book.Close() })
	return book
}

// consoleServer serves the admin API over a ledger (badger or postgres)
// with known records and a budget with live counters: 3.75 USD spent of
// 10, thresholds 10, 30, 80, projected 12.5.
func consoleServer(t *testing.T, kind string) *admin.Server {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	book := openLedger(t, kind)
	seed := []struct {
		project, model string
		day            int
		cost           string
		outcome        ledger.Outcome
		priced         bool
	}{
		{"search", "gpt-4o", 2, "1.25", ledger.OK, true}, {"search", "gpt-4o", 3, "2.50", ledger.OK, true},
		{"search", "claude-sonnet-4", 4, "0.75", ledger.OK, true},
		{"billing", "gpt-4o-mini", 2, "0.000213", ledger.OK, true}, {"billing", "gpt-4o-mini", 7, "0.10", ledger.OK, true},
		{"search", "new-model", 5, "0", ledger.OK, false}, // unpriced: its cost is unknown, never 0
		{"search", "gpt-4o", 5, "0", ledger.Denied, true}, // refused: counted, never billed
	}
	for i, s := range seed {
		r := &ledger.Record{RequestID: fmt.Sprint("r", i), Start: consoleMonth.AddDate(0, 0, s.day-1).Add(10 * time.Hour),
			Provider: "openai", Dialect: "openai_chat", Model: s.model, PricedModel: s.model, Priced: s.priced, Outcome: s.outcome,
			Status: 200, Cost: money.MustParse(s.cost), ListCost: money.MustParse(s.cost), Currency: "USD",
			ReportingCost: money.MustParse(s.cost), ReportingCurrency: "USD",
			Dimensions: attribution.Dimensions{Names: []string{"project", "team", "user"}, Values: []string{s.project, "t", "u"}}}
		r.Usage.Set(usage.Input, 100)
		r.Usage.Set(usage.Output, 20)
		if s.model == "gpt-4o" {
			r.Usage.Set(usage.CacheRead, 50)
		}
		book.Append(r)
	}
	// This month's spend of the budget's key, for its burn-down: 1 USD at
	// the month's start, 0.75 today, so today's running sum is 1.75.
	now := time.Now().UTC()
	monthStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 1, 0, time.UTC)
	for i, c := range []struct {
		at   time.Time
		cost string
	}{{monthStart, "1"}, {now.Add(-time.Second), "0.5"}, {now.Add(-time.Second), "0.25"}} {
		book.Append(&ledger.Record{RequestID: fmt.Sprint("now", i), Start: c.at, Provider: "openai", Model: "gpt-4o", PricedModel: "gpt-4o",
			Priced: true, Outcome: ledger.OK, Cost: money.MustParse(c.cost), Currency: "USD", ReportingCost: money.MustParse(c.cost),
			ReportingCurrency: "USD", Dimensions: attribution.Dimensions{Names: []string{"project"}, Values: []string{"search"}}})
	}
	if err := book.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("test.yaml", []byte(`catalog: {builtin: false, files: [../config/testdata/prices.yaml]}
budgets:
  - {name: search-monthly, match: {project: search}, limit: {money: "10"}, window: month, alert_at: [10, 30, 80]}
`))
	if err != nil {
		t.Fatal(err)
	}
	store, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
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
		Limiter: func() *ratelimit.Limiter { return l }, Store: store, Changed: func() {},
		// The forecaster's latest projection for the key: 12.5 USD by the month's end.
		Forecasts: func() []alerting.Forecast {
			return []alerting.Forecast{{Budget: "search-monthly", Key: "project=search", Projected: int64(money.MustParse("12.5")), Money: true}}
		}}
	return admin.New(http.NotFoundHandler(), "").WithBudgets(api).WithUsage(usagedb.Ledger{Store: book}, nil)
}

// consoleViews are the views the Chromium tests open, with what each must
// show: the ledger's exact numbers, read back from the rendered DOM.
var consoleViews = []struct {
	name, query string
	want        []string
}{
	{"spend", "view=spend&mode=month&month=2025-11&group=project", []string{
		`<strong id="total">4.600213 USD</strong>`, // 1.25 + 2.50 + 0.75 + 0.000213 + 0.10
		`plus 1 unpriced requests of unknown cost`,
		// search: 4 served, one unpriced, one denied; its cost is never shown as a complete figure.
		`<tr data-key="search"><td>search</td><td class="num cost">4.5 USD + unknown</td><td class="num served">4</td><td class="num unpriced">1</td><td class="num denied">1</td><td class="num failed">0</td></tr>`,
		`<tr data-key="billing"><td>billing</td><td class="num cost">0.100213 USD</td><td class="num served">2</td><td class="num unpriced">0</td><td class="num denied">0</td><td class="num failed">0</td></tr>`,
		`>5 USD</text>`, `>3 USD</text>`, // the axis: five steps of 1 USD up to 5 above the 2.5 day
		`data-day="2025-11-03" data-cost="2.5"`, `data-day="2025-11-02" data-cost="1.250213"`, `data-day="2025-11-30" data-cost="0"`,
		`<tr data-model="gpt-4o"><td>gpt-4o</td><td class="num input">200</td><td class="num cache_read">100</td><td class="num cache_write">0</td><td class="num output">40</td><td class="num reasoning">0</td>`,
	}},
	{"statement", "view=statement&month=2025-11&dimension=project&value=search", []string{
		`<h2>project = search, 2025-11, in USD</h2>`,
		`<tr data-model="gpt-4o"><td>openai</td><td>gpt-4o</td><td class="num served">2</td><td class="num unpriced">0</td><td class="num denied">1</td><td class="num failed">0</td><td class="num">200</td><td class="num">40</td><td class="num cost">3.75 USD</td>`,
		`<td class="num cost unknown">unknown</td><td class="num list unknown">unknown</td>`, // new-model
		`<td class="num total">4.5 USD</td>`,
		`1 served requests had no price`,
	}},
	{"budgets", "view=budgets", []string{
		`<td class="num spent">3.75 USD</td><td class="num reserved">0 USD</td><td class="num remaining">6.25 USD</td><td class="num limit">10 USD</td><td class="num projected">12.5 USD</td>`,
		`<td class="thresholds crossed">10%, 30%</td>`,
		`<figcaption>search-monthly · project=search: limit 10 USD, projected 12.5 USD</figcaption>`, `class="projection"`,
		`data-day="` + time.Now().UTC().Format("2006-01-02") + `" data-spent="1.75"`,
	}},
}

// The console in headless Chromium, at a desktop width and a phone's, shows
// the ledger's exact figures in every view, on the embedded ledger and on
// the shared one. With TOKENMETER_SCREENSHOT_DIR set (make
// console-screenshots) it writes each view's screenshot there, from Badger.
func TestConsoleInChromium(t *testing.T) {
	bin := chromium(t)
	for _, kind := range []string{"badger", "postgres"} {
		t.Run(kind, func(t *testing.T) { checkConsole(t, bin, kind) })
	}
}

func checkConsole(t *testing.T, bin, kind string) {
	srv := httptest.NewServer(consoleServer(t, kind))
	defer srv.Close()
	dir := os.Getenv("TOKENMETER_SCREENSHOT_DIR")
	if kind != "badger" {
		dir = "" // the same page: one set of screenshots
	}
	for _, size := range []struct{ name, window string }{{"desktop", "1280,1000"}, {"narrow", "390,1400"}} {
		for _, v := range consoleViews {
			t.Run(v.name+"/"+size.name, func(t *testing.T) {
				url := srv.URL + "/?" + v.query
				dom := headless(t, bin, url, size.window, "--dump-dom")
				if !strings.Contains(dom, `data-loaded="true"`) {
					t.Fatalf("the page did not finish loading:\n%s", dom)
				}
				if m := regexp.MustCompile(`<div id="error"[^>]*>([^<]+)<`).FindStringSubmatch(dom); m != nil {
					t.Errorf("the page shows an error: %s", m[1])
				}
				for _, want := range v.want {
					if !strings.Contains(dom, want) {
						t.Errorf("the page lacks %s", want)
					}
				}
				if t.Failed() || dir == "" {
					return
				}
				shot, err := filepath.Abs(filepath.Join(dir, "console-"+v.name+"-"+size.name+".png"))
				if err != nil {
					t.Fatal(err)
				}
				headless(t, bin, url, size.window, "--screenshot="+shot)
				if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
					t.Fatalf("screenshot %s: %v", shot, err)
				}
				t.Logf("screenshot: %s", shot)
			})
		}
	}
}

// focusHarness loads a console view in a same-origin frame and focuses
// every visible control in document order (the tab order: no control has a
// positive tabindex), recording whether it took focus and its focus ring.
const focusHarness = `<!doctype html><html><body><iframe id="f" width="1280" height="900"></iframe><pre id="result"></pre>
<script>
const f = document.getElementById("f");
f.src = "/?" + location.search.slice(1);
const poll = setInterval(() => {
  const d = f.contentDocument;
  if (!d || !d.body || d.body.dataset.loaded !== "true") return;
  clearInterval(poll);
  const out = [];
  for (const e of d.querySelectorAll("a[href], input:not([type=hidden]), select, button")) {
    if (!e.getClientRects().length) continue; // not shown, so not in the tab order
    e.focus({focusVisible: true});
    const s = f.contentWindow.getComputedStyle(e);
    out.push({id: e.id || e.textContent.trim(), tabIndex: e.tabIndex, focused: d.activeElement === e,
      outline: s.outlineStyle, width: parseFloat(s.outlineWidth)});
  }
  document.getElementById("result").textContent = JSON.stringify(out);
  document.body.dataset.done = "true";
}, 50);
</script></body></html>`

type focusResult struct {
	ID       string  `json:"id"`
	TabIndex int     `json:"tabIndex"`
	Focused  bool    `json:"focused"`
	Outline  string  `json:"outline"`
	Width    float64 `json:"width"`
}

// Every control of every view takes keyboard focus, in the order it is
// laid out, and shows a focus ring at least 2px wide.
func TestConsoleKeyboardFocus(t *testing.T) {
	bin := chromium(t)
	mux := http.NewServeMux()
	mux.Handle("/", consoleServer(t, "badger"))
	mux.HandleFunc("GET /harness", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, focusHarness)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	cases := []struct {
		name, query string
		order       []string // controls that must be reached, in this order
	}{
		{"spend by month", "view=spend&mode=month&month=2025-11", []string{"nav-spend", "nav-statement", "nav-budgets", "mode", "month", "group", "fkey", "fval", "Apply"}},
		{"spend by day range", "view=spend&mode=range&from=2025-11-01&to=2025-11-10", []string{"mode", "from", "to", "group", "Apply"}},
		{"statement", "view=statement&month=2025-11&dimension=project&value=search", []string{"nav-spend", "st-month", "st-dim", "st-value", "Show", "st-csv", "st-pdf"}},
		{"budgets", "view=budgets", []string{"nav-spend", "nav-statement", "nav-budgets"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dom := headless(t, bin, srv.URL+"/harness?"+c.query, "1400,1000", "--dump-dom")
			m := regexp.MustCompile(`(?s)<pre id="result">(.*?)</pre>`).FindStringSubmatch(dom)
			if m == nil || !strings.Contains(dom, `data-done="true"`) {
				t.Fatalf("the harness did not finish:\n%s", dom)
			}
			var got []focusResult
			if err := json.Unmarshal([]byte(htmlUnescape(m[1])), &got); err != nil {
				t.Fatalf("%v: %s", err, m[1])
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
				if r.TabIndex != 0 || !r.Focused || r.Outline == "none" || r.Width < 2 {
					t.Errorf("control %q: tabindex %d, focused %v, outline %s %vpx; want tabindex 0, focused, a ring ≥ 2px",
						r.ID, r.TabIndex, r.Focused, r.Outline, r.Width)
				}
			}
			i := 0
			for _, id := range ids {
				if i < len(c.order) && id == c.order[i] {
					i++
				}
			}
			if i < len(c.order) {
				t.Errorf("tab order %v: %q not reached after %v", ids, c.order[i], c.order[:i])
			}
		})
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&quot;", `"`, "&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}
