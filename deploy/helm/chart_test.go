package helm

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
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
		{"config_sets_key_secret_env.yaml", "config.attribution.api_keys.secret_env is set by the chart: use the value apiKeys instead"},
		{"config_sets_key_secret_file.yaml", "config.attribution.api_keys.secret_file is set by the chart: use the value apiKeys instead"},
		{"api_keys_without_secret.yaml", "config.attribution.api_keys needs the secret keys are hashed with: set apiKeys.value or apiKeys.existingSecret"},
		{"api_keys_not_a_mapping.yaml", "config.attribution.api_keys: want a mapping"},
		{"key_secret_twice.yaml", "apiKeys: set existingSecret or value, not both"},
		// The chart's floor is tokenmeter's: the message names the number tokenmeter holds.
		{"key_secret_short.yaml", fmt.Sprintf("apiKeys.value: %d bytes; want at least %d", apikey.MinSecretBytes-1, apikey.MinSecretBytes)},
		{"key_secret_misspelt.yaml", "additional properties 'secret' not allowed"},
		{"unknown_ledger_type.yaml", "at '/ledger/type'"},
		{"postgres_without_dsn.yaml", "ledger.type postgres needs the DSN: set ledger.postgres.existingSecret or ledger.postgres.value"},
		{"postgres_without_ledger.yaml", "ledger.type postgres keeps a ledger and ledger.enabled false keeps none"},
		{"dsn_with_badger_ledger.yaml", "ledger.postgres: a DSN is set but ledger.type is badger"},
		{"dsn_twice.yaml", "ledger.postgres: set existingSecret or value, not both"},
		{"config_sets_ledger_type.yaml", "config.ledger.type is set by the chart: use the value ledger.type instead"},
		{"config_sets_dsn_env.yaml", "config.ledger.postgres.dsn_env is set by the chart: use the value ledger.postgres instead"},
		{"config_sets_spool_dir.yaml", "config.ledger.postgres.spool_dir is set by the chart: use the value ledger.sizeLimit or persistence.size"},
		{"config_sets_cloudevents_url.yaml", "config.ledger.cloudevents.url is set by the chart: use the value cloudEvents.url instead"},
		{"config_sets_cloudevents_headers_env.yaml", "config.ledger.cloudevents.headers_env is set by the chart: use the value cloudEvents.headers instead"},
		{"cloudevents_without_url.yaml", "config.ledger.cloudevents needs the endpoint: set cloudEvents.url.existingSecret or cloudEvents.url.value"},
		{"cloudevents_not_a_mapping.yaml", "config.ledger.cloudevents: want a mapping"},
		{"cloudevents_headers_without_url.yaml", "cloudEvents.headers: no cloudEvents.url to send them to"},
		{"cloudevents_header_twice.yaml", "cloudEvents.headers.Authorization and cloudEvents.headers.authorization: one header twice"},
		{"cloudevents_header_name_invalid.yaml", "invalid propertyName 'X_Api_Key'"},
		{"cloudevents_header_misspelt.yaml", "additional properties 'secret' not allowed"},
		{"secret_key_shared.yaml", `adminToken and cloudEvents.url: both keep their value under "admin-token" in the chart's Secret`},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			_, err := render(c, filepath.Join("testdata", "bad", tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("render: got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestSecretChangeRollsPods: the pods read their secrets once, from the
// environment, so a new value given to the chart must change the pod
// template (checksum/secret) for Kubernetes to replace them.
func TestSecretChangeRollsPods(t *testing.T) {
	c := loadChart(t)
	base, err := readValues("../kubernetes/shared.values.yaml", "testdata/inline-secrets.yaml", "testdata/api-keys.yaml",
		"testdata/postgres-ledger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	before := podChecksum(t, c, base)
	for _, tc := range []struct {
		name  string
		value map[string]any
	}{
		{"redis password", map[string]any{"redis": map[string]any{"password": map[string]any{"value": "redis-rotated"}}}},
		{"admin token", map[string]any{"adminToken": map[string]any{"value": "admin-rotated"}}},
		{"API-key secret", map[string]any{"apiKeys": map[string]any{"value": "chart-test-key-secret-rotated-0123456789"}}},
		{"ledger DSN", map[string]any{"ledger": map[string]any{"postgres": map[string]any{"value": "postgres://rotated@db/ledger"}}}},
		{"CloudEvents URL", map[string]any{"cloudEvents": map[string]any{"url": map[string]any{"value": "https://rotated.example/events"}}}},
		{"CloudEvents header", map[string]any{"cloudEvents": map[string]any{"headers": map[string]any{
			"Authorization": map[string]any{"value": "Bearer om_rotated"}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if after := podChecksum(t, c, loader.MergeMaps(base, tc.value)); after == before {
				t.Errorf("checksum/secret %q unchanged by a new %s: the pods would keep the old one", after, tc.name)
			}
		})
	}
}

// podChecksum renders vals and returns the Deployment's pod's checksum/secret.
func podChecksum(t *testing.T, c *chart.Chart, vals map[string]any) string {
	t.Helper()
	ms, err := renderValues(c, vals)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.deployments) != 1 {
		t.Fatalf("%d deployments, want 1", len(objs.deployments))
	}
	sum := objs.deployments[0].Spec.Template.Annotations["checksum/secret"]
	if sum == "" {
		t.Fatal("no checksum/secret on the pods")
	}
	return sum
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
