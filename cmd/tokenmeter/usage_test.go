package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUsage(t *testing.T) {
	// The API's JSON as it comes, without a final newline.
	const report = `{"bucket":"none","group_by":["project"],` +
		`"rows":[{"group":{"project":"alpha"},"currency":"USD","requests":3,"tokens":{"input":3000,"output":150},"cost":"0.00054","unpriced":0}],` +
		`"totals":[{"currency":"USD","requests":3,"cost":"0.00054"}]}`
	const statement = `{"statements":[{"month":"2026-11","dimension":"project","value":"alpha","currency":"USD",` +
		`"lines":[{"provider":"openai","model":"gpt-4o-mini","requests":3,"denied":1,"tokens":{"input":3000,"output":150},"cost":"0.00054"},` +
		`{"provider":"openai","model":"gpt-4o","requests":0,"denied":2,"tokens":{},"cost":"0"}],` +
		`"requests":3,"denied":3,"total":"0.00054"}]}`
	const csv = "time,project\n2026-11-22T10:00:00Z,alpha\n"
	api := newAdminAPI(t, map[string]string{
		"GET /v1/usage/report":    report,
		"GET /v1/usage/statement": statement,
		"GET /v1/usage/export":    csv,
	})
	out := filepath.Join(t.TempDir(), "export.csv")
	doc := filepath.Join(t.TempDir(), "statement.html")
	tests := []apiCase{
		{"report --json ends with a newline", []string{"report", "--from", "2026-11-01", "--to", "2026-12-01", "--group-by", "project", "--json"},
			exitOK, report + "\n", "", "GET /v1/usage/report?from=2026-11-01&group_by=project&to=2026-12-01 auth= "},
		{"report as a table, filters whole", []string{"report", "--filter", "team=a,b", "--filter", "env=prod", "--bucket", "none", "--tz", "Europe/Paris"},
			exitOK, "  PROJECT  REQUESTS  TOKENS  UNPRICED         COST\n    alpha         3    3150         0  0.00054 USD\ntotal: 3 requests, 0.00054 USD\n", "",
			"GET /v1/usage/report?bucket=none&filter.env=prod&filter.team=a%2Cb&tz=Europe%2FParis auth= "},
		{"a filter without =", []string{"report", "--filter", "team"}, exitConfig, "", "tokenmeter: --filter \"team\": want key=value\n", ""},
		{"statement --json ends with a newline", []string{"statement", "--month", "2026-11", "--dimension", "project", "--value", "alpha", "--json"},
			exitOK, statement + "\n", "", "GET /v1/usage/statement?dimension=project&month=2026-11&value=alpha auth= "},
		{"statement", []string{"statement", "--month", "2026-11", "--dimension", "project", "--value", "alpha"}, exitOK,
			"Statement 2026-11 for project=alpha, in USD\n\n" +
				"  PROVIDER        MODEL  SERVED  UNPRICED  DENIED  FAILED  TOKENS     COST\n" +
				"    openai  gpt-4o-mini       3         0       1       0    3150  0.00054\n" +
				"    openai       gpt-4o       0         0       2       0       0        -\n" +
				"     TOTAL                    3         0       3       0          0.00054\n\n", "",
			"GET /v1/usage/statement?dimension=project&month=2026-11&value=alpha auth= "},
		{"statement --format html --out", []string{"statement", "--month", "2026-11", "--dimension", "project", "--value", "alpha", "--format", "html", "--out", doc},
			exitOK, "", "", "GET /v1/usage/statement?dimension=project&format=html&month=2026-11&value=alpha auth= "},
		{"statement --format pdf without --out", []string{"statement", "--month", "2026-11", "--dimension", "project", "--value", "alpha", "--format", "pdf"},
			exitConfig, "", "tokenmeter: --format pdf needs --out FILE\n", ""},
		{"export to stdout, csv by default", []string{"export", "--from", "2026-11-01", "--to", "2026-12-01"}, exitOK, csv, "",
			"GET /v1/usage/export?format=csv&from=2026-11-01&to=2026-12-01 auth= "},
		{"export to --out", []string{"export", "--format", "jsonl", "--out", out}, exitOK, "", "",
			"GET /v1/usage/export?format=jsonl auth= "},
	}
	runAPICases(t, api, "usage", tests)
	if b, err := os.ReadFile(out); err != nil || string(b) != csv {
		t.Fatalf("--out holds %q, %v; want %q", b, err, csv)
	}
	if b, err := os.ReadFile(doc); err != nil || string(b) != statement {
		t.Fatalf("statement --out holds %q, %v; want the API's answer", b, err)
	}
}
