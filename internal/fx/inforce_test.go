package fx

import (
	"testing"
	"time"
)

// InForce lists, per pair touching the currency, the rate in force at the
// month's start and each one taking effect within it; none from later.
func TestInForce(t *testing.T) {
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	rates := []Rate{
		{From: "USD", To: "EUR", Rate: MustParseDecimal("0.90"), EffectiveFrom: day("2026-01-01"), Source: "ECB 2026-01"},
		{From: "USD", To: "EUR", Rate: MustParseDecimal("0.92"), EffectiveFrom: day("2026-03-01"), Source: "ECB 2026-03"},
		{From: "USD", To: "EUR", Rate: MustParseDecimal("0.93"), EffectiveFrom: day("2026-03-15"), Source: "ECB mid-March"},
		{From: "USD", To: "EUR", Rate: MustParseDecimal("0.95"), EffectiveFrom: day("2026-04-01"), Source: "ECB 2026-04"},
		{From: "USD", To: "GBP", Rate: MustParseDecimal("0.80"), EffectiveFrom: day("2026-01-01"), Source: "BoE"},
		{From: "GBP", To: "JPY", Rate: MustParseDecimal("190"), EffectiveFrom: day("2026-01-01"), Source: "other"},
	}
	tab, err := NewTable(rates)
	if err != nil {
		t.Fatal(err)
	}
	got := tab.InForce("EUR", day("2026-03-01"), day("2026-04-01"))
	var sources []string
	for _, r := range got {
		sources = append(sources, r.Source)
	}
	want := []string{"ECB 2026-03", "ECB mid-March"}
	if len(sources) != len(want) || sources[0] != want[0] || sources[1] != want[1] {
		t.Errorf("March in EUR: %q, want %q", sources, want)
	}
	got = tab.InForce("EUR", day("2026-02-01"), day("2026-03-01"))
	if len(got) != 1 || got[0].Source != "ECB 2026-01" {
		t.Errorf("February in EUR: %+v, want the January rate only", got)
	}
	if got := tab.InForce("GBP", day("2026-02-01"), day("2026-03-01")); len(got) != 2 {
		t.Errorf("GBP: %+v, want the GBP→JPY and USD→GBP rates", got)
	}
	if got := (*Table)(nil).InForce("EUR", day("2026-02-01"), day("2026-03-01")); got != nil {
		t.Errorf("nil table: %+v", got)
	}
}
