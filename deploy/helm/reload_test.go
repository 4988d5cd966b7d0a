package helm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenmeter/tokenmeter/internal/config"
	"github.com/tokenmeter/tokenmeter/internal/money"
	"github.com/tokenmeter/tokenmeter/internal/usage"
)

// projected is a ConfigMap volume laid out as the kubelet writes one (its
// atomic writer): the files in a timestamped directory, a ..data symlink to
// it, and one symlink per file through ..data. An update writes a new
// directory and renames a new ..data over the old one, so a reader never sees
// half an update; the file tokenmeter was told to read is a symlink whose
// target changes.
type projected struct {
	dir string
	gen int
}

func (p *projected) write(t *testing.T, data map[string]string) {
	t.Helper()
	p.gen++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%09d", p.gen, p.gen)
	if err := os.Mkdir(filepath.Join(p.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	// The kubelet's updates are seconds apart; these are not, and the
	// kernel's coarse file clock could give two of them one mtime (tokenmeter
	// watches mtime and size): each generation is dated a second later.
	mtime := time.Now().Add(time.Duration(p.gen) * time.Second)
	for name, content := range data {
		f := filepath.Join(p.dir, ts, name)
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(p.dir, "..data"))
	tmp := filepath.Join(p.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range data {
		link := filepath.Join(p.dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(p.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// configMapData renders the chart with the values files and returns its
// ConfigMap's data.
func configMapData(t *testing.T, values ...string) map[string]string {
	t.Helper()
	ms, err := render(loadChart(t), values...)
	if err != nil {
		t.Fatal(err)
	}
	o, err := decodeAll(ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.configMaps) != 1 {
		t.Fatalf("%d ConfigMaps, want 1", len(o.configMaps))
	}
	return o.configMaps[0].Data
}

// TestReloadThroughConfigMapSwap: a helm upgrade that changes the config or a
// catalog file beside it reaches a running tokenmeter when the kubelet swaps
// the mounted ConfigMap, through its polling (config.Reloader, as the daemon
// runs it), with no restart; a change only a restart can apply is refused and
// the running config kept.
func TestReloadThroughConfigMapSwap(t *testing.T) {
	t.Setenv("TOKENMETER_ADMIN_TOKEN", "from the user's Secret")
	base := "testdata/embedded-catalog.yaml"
	vol := &projected{dir: t.TempDir()}
	vol.write(t, configMapData(t, base))
	path := filepath.Join(vol.dir, "tokenmeter.yaml")
	cur, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	inHouse := func(c *config.Config) money.PerMillion {
		e, ok := c.Catalog.Lookup("openai", "in-house-llm", time.Now())
		if !ok {
			t.Fatalf("in-house-llm is not in the catalog loaded from %v", c.CatalogFiles)
		}
		return e.Prices[usage.Input]
	}
	if got := inHouse(cur); got != money.PerMillion(money.MustParse("0.15")) {
		t.Fatalf("in-house-llm input price %v, want 0.15 from the ConfigMap's prices.yaml", got)
	}
	var applied *config.Config
	var refused error
	r := config.NewReloader(cur, func(c *config.Config) { applied = c }, func(err error) { refused = err })
	for _, step := range []struct {
		name   string
		values string
		apply  bool
		check  func(*config.Config) bool
	}{
		{"a budget added", "testdata/reload/budget_added.yaml", true,
			func(c *config.Config) bool { return len(c.Budgets) == 2 }},
		{"a price changed in the catalog file", "testdata/reload/price_changed.yaml", true,
			func(c *config.Config) bool { return inHouse(c) == money.PerMillion(money.MustParse("0.25")) }},
		{"the ext_proc port changed", "testdata/reload/port_changed.yaml", false, nil},
	} {
		applied, refused = nil, nil
		vol.write(t, configMapData(t, base, step.values))
		if got := r.Check(false); got != step.apply {
			t.Fatalf("%s: reload applied %v, want %v (refusal: %v)", step.name, got, step.apply, refused)
		}
		switch {
		case step.apply && (applied == nil || !step.check(applied)):
			t.Errorf("%s: the applied config does not show the change", step.name)
		case !step.apply && refused == nil:
			t.Errorf("%s: refused without saying why", step.name)
		}
		if !step.apply {
			t.Logf("%s: %v", step.name, refused)
		}
	}
}
