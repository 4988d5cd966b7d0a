package helm

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
)

var update = flag.Bool("update", false, "write the plain manifests under deploy/kubernetes from a fresh render")

// TestLint runs Helm's linter (what helm lint --strict runs) on the chart with
// each variant's values: a warning fails as an error does.
func TestLint(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			vals, err := readValues(v.values...)
			if err != nil {
				t.Fatal(err)
			}
			res := lint.RunAll(chartDir, vals, releaseNamespace)
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestRender renders each variant, decodes every object strictly into its
// API type and checks what makes the install work (invariants_test.go).
func TestRender(t *testing.T) {
	c := loadChart(t)
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			ms, err := render(c, v.values...)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeAll(ms)
			if err != nil {
				t.Fatal(err)
			}
			checkInstall(t, c, v, objs)
		})
	}
}

// TestBadValues: values the chart refuses, each named by its mistake, with
// the words of the refusal.
func TestBadValues(t *testing.T) {
	c := loadChart(t)
	for _, tc := range []struct {
		file string
		want string
	}{
		{"misspelt_value.yaml", "additional properties 'replica' not allowed"},
		{"redis_without_addrs.yaml", "at '/redis/addrs': minItems: got 0, want 1"},
		{"unknown_store_type.yaml", "at '/store/type'"},
		{"grpc_app_protocol_http.yaml", "at '/service/grpcAppProtocol'"},
		{"config_sets_listen.yaml", "config.listen is set by the chart: use the value ports.grpc and ports.admin instead"},
		{"config_sets_store_dir.yaml", "config.store.dir is set by the chart: use the value persistence instead"},
		{"config_sets_token_env.yaml", "config.admin.token_env is set by the chart: use the value adminToken instead"},
		{"password_twice.yaml", "redis.password: set existingSecret or value, not both"},
		{"files_replace_config.yaml", "files.tokenmeter.yaml: the chart writes tokenmeter.yaml"},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			_, err := render(c, filepath.Join("testdata", "bad", tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("render: got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestPlainManifests holds the committed manifests under deploy/kubernetes to
// a fresh render of the chart with the values file beside each.
func TestPlainManifests(t *testing.T) {
	c := loadChart(t)
	for _, name := range plainManifests {
		t.Run(name, func(t *testing.T) {
			path, values := plainPath(name)
			ms, err := render(c, values)
			if err != nil {
				t.Fatal(err)
			}
			got := plain(name, ms)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v; write it with: make manifests", err)
			}
			if !bytes.Equal(want, got) {
				t.Errorf("%s is not what the chart renders (-committed +rendered):\n%s\nregenerate with: make manifests",
					path, cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")))
			}
		})
	}
}
