package statement

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

//go:embed statement.html.tmpl
var pageText string

var page = template.Must(template.New("statement").Funcs(template.FuncMap{
	"amount": func(d *Document, a money.Amount) string { return Display(a, d.MinorUnits) },
	"rounded": func(d *Document, a money.Amount) string {
		return a.Fixed(max(0, d.MinorUnits))
	},
	"percent": func(p money.Amount) string { return p.String() + "%" },
	"rate":    func(r fx.Rate) string { return r.Rate.String() },
	"instant": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"plural": func(n int64, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	},
}).Parse(pageText))

// Display formats an amount exactly, with at least the currency's minor
// decimals: 12.5 EUR is "12.50", 0.00108 stays "0.00108". A statement never
// hides a digit the ledger holds.
func Display(a money.Amount, minor int) string {
	s := a.String()
	if minor <= 0 {
		return s
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) < minor {
		frac += strings.Repeat("0", minor-len(frac))
	}
	return whole + "." + frac
}

// HTML writes the documents as one printable HTML page, a page break
// between documents (one per currency). Every value is escaped by
// html/template.
func HTML(w io.Writer, docs []Document) error {
	if err := page.Execute(w, docs); err != nil {
		return fmt.Errorf("statement: render HTML: %w", err)
	}
	return nil
}

// PDF renders the documents' HTML to PDF with headless Chromium (bin; empty
// finds "chromium" on the PATH), in a temporary directory removed after.
// The browser is kept off the network: the page needs nothing outside
// itself.
func PDF(ctx context.Context, bin string, docs []Document) ([]byte, error) {
	var html bytes.Buffer
	if err := HTML(&html, docs); err != nil {
		return nil, err
	}
	return PrintPDF(ctx, bin, html.Bytes())
}

// ErrNoChromium is returned by PDF when no browser can be found.
var ErrNoChromium = errors.New("statement: chromium not found (apt-get install chromium, or set statements.chromium)")

// PrintPDF prints an HTML page to PDF with headless Chromium.
func PrintPDF(ctx context.Context, bin string, html []byte) ([]byte, error) {
	if bin == "" {
		bin = "chromium"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoChromium, err)
	}
	dir, err := os.MkdirTemp("", "tokenmeter-statement-")
	if err != nil {
		return nil, fmt.Errorf("statement: pdf: %w", err)
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "statement.html"), filepath.Join(dir, "statement.pdf")
	if err := os.WriteFile(in, html, 0o600); err != nil {
		return nil, fmt.Errorf("statement: pdf: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--no-pdf-header-footer", "--print-to-pdf="+out, "file://"+in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("statement: chromium: %w: %s", err, lastLines(stderr.String(), 5))
	}
	pdf, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("statement: chromium printed no PDF: %w: %s", err, lastLines(stderr.String(), 5))
	}
	return pdf, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
