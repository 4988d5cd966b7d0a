package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/tokenmeter/tokenmeter/internal/cfgerr"
	"github.com/tokenmeter/tokenmeter/internal/money"
)

func TestStatementsSection(t *testing.T) {
	c, err := Load("testdata/statements.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.StatementSettings()
	if s.Issuer != "Example Platform SA" || s.Chromium != "/usr/bin/chromium" || len(s.Tax) != 3 || s.Currency != "USD" {
		t.Fatalf("settings %+v", s)
	}
	r := s.Tax[1]
	if r.Name != "VAT" || r.Percent != money.MustParse("17.5") || r.From != "" || r.Until != "2026-11-15" ||
		len(r.Match) != 1 || r.Match[0].Dimension != "entity" || r.Match[0].Value != "uk" {
		t.Errorf("rule 1: %+v", r)
	}
	if r := s.Tax[2]; r.From != "2026-11-16" || r.Until != "" || r.Percent != money.MustParse("20") {
		t.Errorf("rule 2: %+v", r)
	}
}

// Every mistake is reported at once, each naming file, line, key, value and
// why.
func TestStatementsErrors(t *testing.T) {
	_, err := Load("testdata/bad_tax.yaml")
	var list cfgerr.List
	if !errors.As(err, &list) {
		t.Fatalf("err = %v, want a cfgerr.List", err)
	}
	const f = "testdata/bad_tax.yaml"
	want := []string{
		f + `:4: statements.tax[0].rate: "120": want a percentage from 0 to 100 with at most 7 decimal places, such as "21" or "5.5"`,
		f + `:5: statements.tax[1].rate: "0.00000001": want a percentage from 0 to 100 with at most 7 decimal places, such as "21" or "5.5"`,
		f + `:6: statements.tax[2].from: "2026-02-30": want a day as YYYY-MM-DD, such as 2026-01-01`,
		f + `:7: statements.tax[3].until: "2026-01-31": before from (2026-06-01): the rule would never apply`,
		f + `:8: statements.tax[4].name: missing; want the tax's name, e.g. "VAT"`,
		f + `:9: statements.tax[5].rate: missing; want a percentage from 0 to 100 with at most 7 decimal places, such as "21" or "5.5"`,
		f + `:11: statements.tax[7].vat_number: unknown key; want one of from, match, name, rate, until`,
		f + `:10: statements.tax[6].match.entity: "entity": not a configured dimension; configured: `,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d errors, want %d:\n%s", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}
