package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/test/configmap"
)

const reloadPrices = `currency: USD
models:
  - {name: m, source: s, as_of: 2025-06-01, prices: {input: 1, output: 2}}
`

func writeFile(t *testing.T, path, data string, mod time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	// Explicit mtimes: the test never depends on the clock's resolution.
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	cfgPath, prices := filepath.Join(dir, "tm.yaml"), filepath.Join(dir, "prices.yaml")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeFile(t, prices, reloadPrices, base)
	cfg := func(limit string) string {
		return "catalog: {files: [prices.yaml]}\nbudgets:\n  - {name: b, limit: {requests: " + limit + "}, window: day}\n"
	}
	writeFile(t, cfgPath, cfg("10"), base)
	cur, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var applied []*Config
	var failed []error
	r := NewReloader(cur, func(c *Config) { applied = append(applied, c) }, func(err error) { failed = append(failed, err) })

	if r.Check(false) || len(applied) != 0 {
		t.Fatal("reloaded without a change")
	}

	// A valid change is applied.
	writeFile(t, cfgPath, cfg("20"), base.Add(time.Second))
	if !r.Check(false) || applied[0].Budgets[0].Limit != 20 {
		t.Fatalf("valid change not applied: %v", failed)
	}

	// An invalid file keeps the running config and says where and why, once.
	writeFile(t, cfgPath, cfg("twenty"), base.Add(2*time.Second))
	if r.Check(false) || len(failed) != 1 {
		t.Fatalf("invalid change: applied %d, failed %v", len(applied), failed)
	}
	if want := `tm.yaml:3: budgets[0].limit.requests: "twenty": want a whole number`; !strings.Contains(failed[0].Error(), want) {
		t.Fatalf("error %q lacks %q", failed[0], want)
	}
	if r.Check(false) || len(failed) != 1 {
		t.Fatal("a broken file must be reported once, not on every poll")
	}

	// A catalog change is a change too; a broken catalog is refused the same way.
	writeFile(t, prices, strings.Replace(reloadPrices, "input: 1", "input: -1", 1), base.Add(3*time.Second))
	writeFile(t, cfgPath, cfg("30"), base.Add(3*time.Second))
	if r.Check(false) || len(failed) != 2 || !strings.Contains(failed[1].Error(), `prices.input: "-1"`) {
		t.Fatalf("broken catalog: %v", failed)
	}
	writeFile(t, prices, reloadPrices, base.Add(4*time.Second))
	if !r.Check(false) || applied[len(applied)-1].Budgets[0].Limit != 30 {
		t.Fatal("fixed catalog not applied")
	}

	// What only a restart can apply is refused.
	writeFile(t, cfgPath, cfg("30")+"listen: {grpc: \"127.0.0.1:1\"}\n", base.Add(5*time.Second))
	if r.Check(false) || !strings.Contains(failed[len(failed)-1].Error(), "[listen.grpc] changed: restart tokenmeter") {
		t.Fatalf("restart-only change: %v", failed)
	}

	// SIGHUP forces a load even without a change.
	writeFile(t, cfgPath, cfg("40"), base.Add(6*time.Second))
	r.Check(false)
	n := len(applied)
	if !r.Check(true) || len(applied) != n+1 {
		t.Fatal("forced reload not applied")
	}
}

// A Kubernetes ConfigMap volume, updated as the kubelet does it (package
// test/configmap: a new timestamped directory, ..data renamed over): the
// config and its catalog are symlinks whose targets change all at once.
// The new file may have the old one's size and, written within one tick of
// the filesystem's clock, its mtime; the reloader still sees the swap.
func TestReloaderConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	cfg := func(limit string) map[string][]byte {
		return map[string][]byte{
			"tokenmeter.yaml": []byte("catalog: {builtin: false, files: [prices.yaml]}\nbudgets:\n  - {name: b, limit: {requests: " + limit + "}, window: day}\n"),
			"prices.yaml":     []byte(reloadPrices),
		}
	}
	if err := configmap.Write(dir, cfg("1")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tokenmeter.yaml")
	cur, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var applied []*Config
	r := NewReloader(cur, func(c *Config) { applied = append(applied, c) }, func(err error) { t.Errorf("reload refused: %v", err) })
	paths := []string{path, filepath.Join(dir, "prices.yaml")}
	for i, limit := range []string{"2", "3", "4"} {
		var before []os.FileInfo
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			before = append(before, fi)
		}
		if err := configmap.Write(dir, cfg(limit)); err != nil {
			t.Fatal(err)
		}
		// Same lengths; the same mtimes forced, as one clock tick would give.
		for j, p := range paths {
			if err := os.Chtimes(p, before[j].ModTime(), before[j].ModTime()); err != nil {
				t.Fatal(err)
			}
			if after, _ := os.Stat(p); after.Size() != before[j].Size() || !after.ModTime().Equal(before[j].ModTime()) {
				t.Fatalf("swap %d: %s's size or mtime differ; the test no longer tests what it says", i, p)
			}
		}
		if !r.Check(false) || applied[i].Budgets[0].Limit != int64(i+2) {
			t.Fatalf("swap %d (limit %s) not applied", i, limit)
		}
		if r.Check(false) {
			t.Fatalf("swap %d reloaded twice", i)
		}
	}
	// A catalog swapped alone is a change too.
	files := cfg("4")
	files["prices.yaml"] = []byte(strings.Replace(reloadPrices, "output: 2", "output: 3", 1))
	if err := configmap.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	if !r.Check(false) {
		t.Fatal("catalog swap not applied")
	}
}
