package admin_test

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// luminance is WCAG 2.2's relative luminance of a #rrggbb colour.
func luminance(t *testing.T, hex string) float64 {
	t.Helper()
	if len(hex) != 7 || hex[0] != '#' {
		t.Fatalf("colour %q: want #rrggbb", hex)
	}
	var l [3]float64
	for i := range 3 {
		v, err := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		if err != nil {
			t.Fatalf("colour %q: %v", hex, err)
		}
		c := float64(v) / 255
		if c <= 0.04045 {
			l[i] = c / 12.92
		} else {
			l[i] = math.Pow((c+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
}

func contrast(t *testing.T, a, b string) float64 {
	la, lb := luminance(t, a), luminance(t, b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}

// Every text colour the console's stylesheet uses meets WCAG AA (4.5:1)
// on the backgrounds it is drawn on, and the focus ring and the chart's
// axis meet the 3:1 of non-text contrast. The colours are read from the
// stylesheet's custom properties, so a changed colour is checked.
func TestConsoleContrast(t *testing.T) {
	css, err := os.ReadFile("ui/console.css")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-fA-F]{6});`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	for _, c := range []struct {
		what, fg, bg string
		min          float64
	}{
		{"body text", "text", "bg", 4.5},
		{"text in panels, tables and inputs", "text", "panel", 4.5},
		{"muted text, labels, chart labels", "muted", "panel", 4.5},
		{"muted text on the page", "muted", "bg", 4.5},
		{"links in the header", "accent", "panel", 4.5},
		{"the current view's link, buttons", "panel", "accent", 4.5},
		{"errors", "err", "bg", 4.5},
		{"thresholds crossed", "warn-text", "warn-bg", 4.5},
		{"the focus ring (non-text)", "focus", "panel", 3},
		{"the focus ring on the page (non-text)", "focus", "bg", 3},
		{"the chart's bars (non-text)", "bar", "panel", 3},
		{"control borders (non-text)", "muted", "panel", 3},
	} {
		t.Run(c.what, func(t *testing.T) {
			fg, bg := vars[c.fg], vars[c.bg]
			if fg == "" || bg == "" {
				t.Fatalf("console.css lacks --%s or --%s", c.fg, c.bg)
			}
			if r := contrast(t, fg, bg); r < c.min {
				t.Errorf("--%s %s on --%s %s: %.2f:1, want at least %.1f:1", c.fg, fg, c.bg, bg, r, c.min)
			}
		})
	}
}
