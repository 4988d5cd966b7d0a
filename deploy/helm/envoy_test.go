package helm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/tokenmeter/tokenmeter/envoy"
)

// docsCluster is the tokenmeter cluster docs/deploy.md tells a user to put
// in their own Envoy, read from the page.
func docsCluster(t *testing.T) map[string]any {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "### Your Envoy, pointed at it")
	_, block, ok2 := strings.Cut(after, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/deploy.md has no cluster block under \"Your Envoy, pointed at it\"")
	}
	var list []map[string]any
	if err := yaml.UnmarshalStrict([]byte(block), &list); err != nil || len(list) != 1 {
		t.Fatalf("the docs' cluster block: %v (%d clusters)", err, len(list))
	}
	return list[0]
}

// The cluster the docs give points at the Service the chart renders, and
// the pinned Envoy accepts envoy/envoy.yaml with it in place of the
// loopback one.
func TestEnvoyPointedAtTheService(t *testing.T) {
	cluster := docsCluster(t)
	sock := cluster["load_assignment"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)["lb_endpoints"].([]any)[0].(map[string]any)["endpoint"].(map[string]any)["address"].(map[string]any)["socket_address"].(map[string]any)
	var found bool
	c := loadChart(t)
	for _, v := range variants() {
		ms, err := render(c, v.values...)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		o, err := decodeAll(ms)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		for _, svc := range o.services {
			for _, p := range svc.Spec.Ports {
				host := svc.Name + "." + releaseNamespace + ".svc.cluster.local"
				if p.Name == "grpc" && svc.Spec.ClusterIP != "None" && sock["address"] == host && sock["port_value"] == float64(p.Port) {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("the docs point Envoy at %v:%v; no rendered ClusterIP Service has that name, namespace and grpc port", sock["address"], sock["port_value"])
	}

	raw, err := os.ReadFile(filepath.Join(envoy.Dir(), "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	clusters := cfg["static_resources"].(map[string]any)["clusters"].([]any)
	replaced := false
	for i, c := range clusters {
		if c.(map[string]any)["name"] == "tokenmeter" {
			clusters[i], replaced = cluster, true
		}
	}
	if !replaced {
		t.Fatal("envoy/envoy.yaml has no tokenmeter cluster")
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := envoy.Binary()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--mode", "validate", "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("envoy --mode validate on envoy.yaml with the docs' cluster: %v\n%s", err, out)
	}
}
