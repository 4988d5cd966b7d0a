package helm

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"sigs.k8s.io/yaml"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
)

const (
	chartDir = "tokenmeter"
	// The release the plain manifests are rendered as; its name holds the
	// chart's, so the objects are called tokenmeter, tokenmeter-admin...
	releaseName      = "tokenmeter"
	releaseNamespace = "tokenmeter"
)

// manifest is one rendered object: the template it came from and its YAML.
type manifest struct {
	source string // templates/service.yaml
	kind   string
	name   string
	yaml   []byte
}

// loadChart loads the chart as helm install would from its directory.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.LoadDir(chartDir)
	if err != nil {
		t.Fatalf("load chart %s: %v", chartDir, err)
	}
	return c
}

// readValues merges values files in order, the way repeated -f flags do.
func readValues(files ...string) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read values: %w", err)
		}
		v, err := loader.LoadValues(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("values %s: %w", f, err)
		}
		vals = loader.MergeMaps(vals, v)
	}
	return vals, nil
}

// render renders the chart with the values files, checking the values
// against values.schema.json as helm install does, and returns the objects
// in the order kubectl apply should create them.
func render(c *chart.Chart, valuesFiles ...string) ([]manifest, error) {
	vals, err := readValues(valuesFiles...)
	if err != nil {
		return nil, err
	}
	return renderValues(c, vals)
}

// renderValues is render with the values already read and merged.
func renderValues(c *chart.Chart, vals map[string]any) ([]manifest, error) {
	top, err := util.ToRenderValuesWithSchemaValidation(c, vals,
		common.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace, IsInstall: true, Revision: 1}, nil, false)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	files, err := engine.Render(c, top)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	var out []manifest
	for name, content := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue // NOTES.txt
		}
		ms, err := split(strings.TrimPrefix(name, c.Name()+"/"), content)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	slices.SortFunc(out, func(a, b manifest) int {
		if d := kindOrder(a.kind) - kindOrder(b.kind); d != 0 {
			return d
		}
		return strings.Compare(a.name, b.name)
	})
	return out, nil
}

// split cuts one rendered template into its objects.
func split(source, content string) ([]manifest, error) {
	var out []manifest
	for doc := range strings.SplitSeq(content, "\n---") {
		doc = strings.TrimSpace(doc)
		if doc == "" {
			continue
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		out = append(out, manifest{source: source, kind: head.Kind, name: head.Metadata.Name, yaml: []byte(doc + "\n")})
	}
	return out, nil
}

// kindOrder puts what a pod refers to before the pod's controller, as Helm's
// install order does, so kubectl apply -f creates them in a working order.
func kindOrder(kind string) int {
	order := []string{"ServiceAccount", "Secret", "ConfigMap", "Service", "Deployment", "StatefulSet",
		"PodDisruptionBudget", "ServiceMonitor"}
	if i := slices.Index(order, kind); i >= 0 {
		return i
	}
	return len(order)
}

// variant is one way of installing the chart: the values files given to it
// (none: the chart's defaults).
type variant struct {
	name           string
	values         []string
	shared         bool // store.type redis
	serviceMonitor bool // the variant enables it
	noLedger       bool // ledger.enabled false
	apiKeys        *keyAttribution
	postgres       bool // ledger.type postgres, the DSN from a Secret
	// cloudEvents: the headers a variant sends records with, when it sends
	// them as CloudEvents at all (nil: it does not).
	cloudEvents []string
	// userLedgerKeys: the values' config sets keys of ledger.postgres and
	// ledger.cloudevents, to be merged with the chart's.
	userLedgerKeys bool
}

// keyAttribution is what a variant's tokenmeter.yaml says of
// attribution.api_keys (nil: nothing, attribution by API key off). Its
// secret is always the pod's TOKENMETER_KEY_SECRET.
type keyAttribution struct {
	unknown, missing apikey.Policy
	ids              []string // the config's keys
	// A key in clear and the id the config's table opens it as under the
	// secret the pod gets; "" when the secret is the user's, unknown here.
	key, id string
}

func variants() []variant {
	return []variant{
		{name: "defaults"},
		{name: "embedded", values: []string{"../kubernetes/embedded.values.yaml"}},
		{name: "shared", values: []string{"../kubernetes/shared.values.yaml"}, shared: true},
		{name: "shared inline secrets and serviceMonitor", shared: true, serviceMonitor: true,
			values: []string{"../kubernetes/shared.values.yaml", "testdata/inline-secrets.yaml", "testdata/servicemonitor.yaml"}},
		{name: "shared without a ledger", shared: true, noLedger: true,
			values: []string{"../kubernetes/shared.values.yaml", "testdata/no-ledger.yaml"}},
		{name: "embedded with files, token and serviceMonitor", serviceMonitor: true,
			values: []string{"testdata/embedded-catalog.yaml", "testdata/servicemonitor.yaml"}},
		{name: "embedded with API keys from the chart's Secret", values: []string{"testdata/api-keys.yaml"},
			apiKeys: &keyAttribution{unknown: apikey.Attribute, missing: apikey.Deny, ids: []string{"ci"},
				key: "tmk_ci_key", id: "ci"}},
		{name: "shared with API keys from an existing Secret", shared: true,
			values:  []string{"../kubernetes/shared.values.yaml", "testdata/api-keys-existing-secret.yaml"},
			apiKeys: &keyAttribution{unknown: apikey.Deny, missing: apikey.Deny}},
		{name: "shared with a Postgres ledger and CloudEvents from the chart's Secret", shared: true, postgres: true,
			values:      []string{"../kubernetes/shared.values.yaml", "testdata/postgres-ledger.yaml"},
			cloudEvents: []string{"Authorization"}, userLedgerKeys: true},
		{name: "shared without a ledger, with CloudEvents", shared: true, noLedger: true, cloudEvents: []string{},
			values: []string{"../kubernetes/shared.values.yaml", "testdata/cloudevents-no-ledger.yaml"}},
		{name: "embedded with a Postgres ledger and CloudEvents from existing Secrets", postgres: true,
			values:      []string{"testdata/postgres-ledger-existing-secrets.yaml"},
			cloudEvents: []string{"X-Api-Key"}},
	}
}

// plainManifests are the files under deploy/kubernetes, each rendered from
// the values file beside it.
var plainManifests = []string{"embedded", "shared"}

func plainPath(name string) (manifest, values string) {
	dir := filepath.Join("..", "kubernetes")
	return filepath.Join(dir, name+".yaml"), filepath.Join(dir, name+".values.yaml")
}

// plain is the text of a plain manifest file: a header that says where it
// comes from, then every object under the template it came from, as helm
// template prints them.
func plain(name string, ms []manifest) []byte {
	var b bytes.Buffer
	_, values := plainPath(name)
	fmt.Fprintf(&b, "# tokenmeter on Kubernetes without Helm: rendered from deploy/helm/tokenmeter with\n"+
		"# deploy/kubernetes/%s (release %q). Do not edit: change the chart or the values and run\n"+
		"# `make manifests`. Apply with: kubectl apply -n NAMESPACE -f %s.yaml (docs/deploy.md).\n",
		filepath.Base(values), releaseName, name)
	for _, m := range ms {
		fmt.Fprintf(&b, "---\n# Source: %s/%s\n", chartDir, m.source)
		b.Write(m.yaml)
	}
	return b.Bytes()
}
