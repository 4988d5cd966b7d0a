package statement

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/fx"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

// Model names, dimension values and rate sources come from clients and
// files: whatever they hold, the page carries them escaped, never as markup.
func FuzzHTML(f *testing.F) {
	for _, s := range []string{"gpt-4o", `<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`, "a&b", "\x00\xff"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, value, model string) {
		// Fenced, so that a lone "<" of the template's own markup is not
		// taken for the input.
		value, model = "\u2603"+value+"\u2603", "\u2604"+model+"\u2604"
		d := Document{Number: "TM-202611-X", Dimension: "project", Value: value, Currency: "EUR", MinorUnits: 2,
			Lines: []Line{{Provider: "openai", Model: model, Served: 1, Amount: money.MustParse("1.5"), HasMoney: true}},
			Rates: []fx.Rate{{From: "USD", To: "EUR", Rate: fx.One, Source: value}}}
		var b bytes.Buffer
		if err := HTML(&b, []Document{d}); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{value, model} {
			if strings.ContainsAny(s, "<>\"'&") && strings.Contains(b.String(), s) {
				t.Fatalf("%q is on the page unescaped", s)
			}
		}
	})
}
