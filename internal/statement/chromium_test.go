package statement

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium returns Debian's chromium; without it the test fails, never
// skips (make test-deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (make test-deps, or: apt-get install chromium): %v", err)
	}
	return bin
}

// dumpDOM loads file in headless Chromium and returns the DOM it built.
func dumpDOM(t *testing.T, bin, file string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--dump-dom", "file://"+file)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	return string(out)
}

var (
	lineRE  = regexp.MustCompile(`(?s)<tr data-line="([^"]+)">(.*?)</tr>`)
	fieldRE = regexp.MustCompile(`data-field="([a-z-]+)">([^<]*)<`)
)

// fields reads every data-field of s: name → text.
func fields(s string) map[string]string {
	out := map[string]string{}
	for _, m := range fieldRE.FindAllStringSubmatch(s, -1) {
		if _, ok := out[m[1]]; !ok {
			out[m[1]] = html.UnescapeString(strings.TrimSpace(m[2]))
		}
	}
	return out
}

// The sample statement, loaded in Chromium, shows the ledger's numbers: the
// rendered DOM's lines and totals, and the printed PDF's text (pdftotext),
// equal what the records say, computed apart from Build.
func TestStatementInChromium(t *testing.T) {
	bin := chromium(t)
	docs, recs := sampleDocuments(t)
	w := expected(t, recs, sampleSettings(t))
	var page bytes.Buffer
	if err := HTML(&page, docs); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "statement.html")
	if err := os.WriteFile(file, page.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dom := dumpDOM(t, bin, file)

	lines := lineRE.FindAllStringSubmatch(dom, -1)
	if len(lines) != len(w.lines) {
		t.Fatalf("the page shows %d lines, the ledger has %d", len(lines), len(w.lines))
	}
	for _, m := range lines {
		wl, got := w.lines[m[1]], fields(m[2])
		if wl == nil {
			t.Errorf("line %s is not in the ledger", m[1])
			continue
		}
		amount := lineAmount(wl)
		want := map[string]string{"served": fmt.Sprint(wl.Served), "unpriced": fmt.Sprint(wl.Unpriced), "denied": fmt.Sprint(wl.Denied),
			"failed": fmt.Sprint(wl.Failed), "tokens": fmt.Sprint(wl.Tokens), "amount": amount}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("line %s: %s shows %q, the ledger says %q", m[1], k, got[k], v)
			}
		}
	}
	all := fields(dom)
	for k, v := range map[string]string{
		"total-served": fmt.Sprint(w.served), "total-unpriced": fmt.Sprint(w.unpriced), "total-denied": fmt.Sprint(w.denied),
		"total-failed": fmt.Sprint(w.failed), "subtotal": Display(w.subtotal, 2) + " EUR", "total": Display(w.total, 2) + " EUR",
		"due": w.due.Fixed(2) + " EUR", "number": docs[0].Number, "period": "2026-11-01 to 2026-11-30, both included (Europe/Brussels)",
	} {
		if all[k] != v {
			t.Errorf("%s shows %q, want %q", k, all[k], v)
		}
	}
	if !strings.Contains(dom, "1 unpriced request: cost unknown, not zero") {
		t.Error("the unpriced line does not say its cost is unknown")
	}
	for k, bt := range w.taxes {
		re := regexp.MustCompile(`(?s)<tr data-tax="` + regexp.QuoteMeta(k) + `">(.*?)</tr>`)
		m := re.FindStringSubmatch(dom)
		if m == nil {
			t.Errorf("no %s on the page", k)
			continue
		}
		if f := fields(m[1]); f["tax-base"] != Display(bt[0], 2) || f["tax-amount"] != Display(bt[1], 2)+" EUR" {
			t.Errorf("%s: base %q tax %q, want %s and %s EUR", k, f["tax-base"], f["tax-amount"], bt[0], bt[1])
		}
	}

	checkPDF(t, bin, docs, w)
}

// checkPDF prints the documents and reads the numbers back from the PDF's
// text, one table row per text line (pdftotext -layout).
func checkPDF(t *testing.T, bin string, docs []Document, w want) {
	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		t.Fatalf("pdftotext is not installed (make test-deps, or: apt-get install poppler-utils): %v", err)
	}
	pdf, err := PDF(t.Context(), bin, docs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Fatalf("not a PDF: %q", pdf[:min(len(pdf), 16)])
	}
	file := filepath.Join(t.TempDir(), "statement.pdf")
	if err := os.WriteFile(file, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pdftotext, "-layout", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	var rows []string
	for _, l := range strings.Split(string(out), "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	has := func(want string) {
		t.Helper()
		for _, r := range rows {
			if r == want || strings.HasSuffix(r, " "+want) || strings.HasPrefix(r, want+" ") {
				return
			}
		}
		t.Errorf("the PDF has no line %q; its text:\n%s", want, out)
	}
	for _, l := range w.lines {
		amount := lineAmount(l)
		has(fmt.Sprintf("%s %s %d %d %d %d %d %s", l.Provider, l.Model, l.Served, l.Unpriced, l.Denied, l.Failed, l.Tokens, amount))
	}
	has(fmt.Sprintf("Requests %d %d %d %d %s", w.served, w.unpriced, w.denied, w.failed, Display(w.subtotal, 2)))
	has("Subtotal " + Display(w.subtotal, 2) + " EUR")
	for k, bt := range w.taxes {
		has(fmt.Sprintf("%s on %s %s EUR", k, Display(bt[0], 2), Display(bt[1], 2)))
	}
	has("Total " + Display(w.total, 2) + " EUR")
	has("Amount due " + w.due.Fixed(2) + " EUR")
	has("Number " + docs[0].Number)
}

// lineAmount is what a line's amount cell should say.
func lineAmount(l *Line) string {
	switch {
	case l.HasMoney:
		return Display(l.Amount, 2)
	case l.Unpriced > 0:
		return "unknown"
	}
	return "no charge"
}
