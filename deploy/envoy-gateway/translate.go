// Package envoygateway proves this directory's Envoy Gateway resources on the
// real Envoy. Envoy Gateway's own translator (`egctl x translate`, pinned by
// the nested module egctl/ and built by `make egctl`) turns them into the xDS
// an Envoy Gateway would serve; Static turns that into a bootstrap the pinned
// Envoy runs without an xDS server, in front of ports on this machine.
package envoygateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Files are the resources a user applies, in the order docs/deploy.md gives.
var Files = []string{"tokenmeter-service.yaml", "gateway.yaml", "tokenmeter.yaml"}

// Names in the resources, as Envoy Gateway derives its xDS names from them.
const (
	// Listener is the Gateway's HTTP listener: namespace/gateway/listener.
	Listener = "llm/llm/http"
	// Gateway is the key of the Gateway's config in egctl's output.
	Gateway = "llm/llm"
	// GateFilter and ObserverFilter are the ext_proc filters of the
	// EnvoyExtensionPolicy's two entries, in their order.
	GateFilter     = "envoy.filters.http.ext_proc/envoyextensionpolicy/llm/tokenmeter/extproc/0"
	ObserverFilter = "envoy.filters.http.ext_proc/envoyextensionpolicy/llm/tokenmeter/extproc/1"
	// ExtProcClusterPrefix starts the names of the clusters of tokenmeter
	// (one per ext_proc entry); ProviderCluster is the HTTPRoute's.
	ExtProcClusterPrefix = "envoyextensionpolicy/llm/tokenmeter/extproc/"
	ProviderCluster      = "httproute/llm/openai/rule/0"
)

// Dir is this directory, where the resources live.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// ErrNoEgctl means the pinned egctl is not built.
var ErrNoEgctl = errors.New("egctl not found: run `make egctl` (builds it from deploy/envoy-gateway/egctl into .tools/bin, minutes the first time) or set EGCTL_BIN")

// Egctl returns the egctl to run: $EGCTL_BIN, else .tools/bin/egctl.
func Egctl() (string, error) {
	if p := os.Getenv("EGCTL_BIN"); p != "" {
		return p, nil
	}
	p := filepath.Join(Dir(), "..", "..", ".tools", "bin", "egctl")
	if _, err := os.Stat(p); err != nil {
		return "", ErrNoEgctl
	}
	return p, nil
}

// Translation is what egctl made of a set of resources: the resources with
// the status Envoy Gateway gives them, and per Gateway (namespace/name) the
// config dump of its Envoy, as protojson (lowerCamelCase) values.
type Translation struct {
	Resources map[string]any
	XDS       map[string]any
}

// Translate runs `egctl x translate` on docs (YAML documents) to Gateway API
// status and xDS. egctl validates every Gateway API and Envoy Gateway object
// against its CRD schema first (unknown fields and CEL rules included), so a
// misspelled field fails here.
func Translate(ctx context.Context, egctl string, docs []byte) (*Translation, error) {
	in, err := os.CreateTemp("", "egctl-input-*.yaml")
	if err != nil {
		return nil, fmt.Errorf("egctl input: %w", err)
	}
	defer os.Remove(in.Name())
	if _, err := in.Write(docs); err != nil {
		in.Close()
		return nil, fmt.Errorf("egctl input: %w", err)
	}
	if err := in.Close(); err != nil {
		return nil, fmt.Errorf("egctl input: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, egctl, "x", "translate", "--from", "gateway-api", "--to", "gateway-api,xds",
		"--output", "json", "--file", in.Name())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("egctl x translate: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var all map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &all); err != nil {
		return nil, fmt.Errorf("egctl output: %w", err)
	}
	t := &Translation{Resources: all}
	t.XDS, _ = all["xds"].(map[string]any)
	delete(all, "xds")
	if len(t.XDS) == 0 {
		return nil, fmt.Errorf("egctl made no xDS: is there a GatewayClass and a Gateway? stderr: %s", stderr.Bytes())
	}
	return t, nil
}

// NotAccepted lists what says Envoy Gateway did not take an object as
// written: an Accepted, ResolvedRefs or Programmed condition that is not
// True (a reference without its ReferenceGrant, ...), or a policy attached
// to nothing (a misspelled target). Those are reported in status, not as
// errors, so a translation succeeds with them.
func (t *Translation) NotAccepted() []string {
	var out []string
	for kind, v := range t.Resources {
		objs, ok := v.([]any)
		if !ok {
			objs = []any{v}
		}
		for _, o := range objs {
			obj, _ := o.(map[string]any)
			meta, _ := obj["metadata"].(map[string]any)
			name := fmt.Sprintf("%s %v/%v", kind, meta["namespace"], meta["name"])
			if strings.HasSuffix(kind, "Policies") && len(list(object(obj, "status"), "ancestors")) == 0 {
				// A policy whose target does not exist gets no status at
				// all, rather than a condition that says so.
				out = append(out, name+": attached to nothing")
			}
			walk(obj["status"], func(m map[string]any) {
				switch m["type"] {
				case "Accepted", "ResolvedRefs", "Programmed":
					if m["status"] != "True" {
						out = append(out, fmt.Sprintf("%s: %v %v: %v", name, m["type"], m["status"], m["message"]))
					}
				}
			})
		}
	}
	return out
}

// walk calls f on every object in v, depth first.
func walk(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, c := range v {
			walk(c, f)
		}
	case []any:
		for _, c := range v {
			walk(c, f)
		}
	}
}

// Shipped returns the resources as a user applies them (Files), with the
// one thing Kubernetes would add: the Service's cluster IP, without which
// Envoy Gateway's translator has no address for it.
func Shipped() ([]byte, error) {
	return documents(readFile, withClusterIP)
}

func readFile(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(Dir(), name))
}

// withClusterIP gives a Service the cluster IP Kubernetes would.
func withClusterIP(doc map[string]any) (map[string]any, error) {
	if doc["kind"] == "Service" {
		spec, _ := doc["spec"].(map[string]any)
		if spec == nil {
			return nil, errors.New("the Service has no spec")
		}
		spec["clusterIP"] = "10.96.0.10"
	}
	return doc, nil
}

// Input is what the end-to-end tests translate: Shipped, but for the
// provider, which is the one thing outside this directory's control: the
// Backend "openai" (api.openai.com over TLS) gives way to one without TLS
// (the mock provider speaks plain HTTP) at a documentation address that
// Static replaces, as it replaces tokenmeter's.
func Input() ([]byte, error) {
	return documents(readFile, func(doc map[string]any) (map[string]any, error) {
		meta, _ := doc["metadata"].(map[string]any)
		if doc["kind"] == "Backend" && meta["name"] == "openai" {
			doc["spec"] = map[string]any{"endpoints": []any{
				map[string]any{"ip": map[string]any{"address": "192.0.2.10", "port": 80}},
			}}
		}
		return withClusterIP(doc)
	})
}

// documents reads Files and passes each YAML document through edit.
func documents(read func(name string) ([]byte, error), edit func(map[string]any) (map[string]any, error)) ([]byte, error) {
	var out bytes.Buffer
	for _, f := range Files {
		data, err := read(f)
		if err != nil {
			return nil, fmt.Errorf("envoy gateway resources: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if doc, err = edit(doc); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			b, err := yaml.Marshal(doc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out.WriteString("---\n")
			out.Write(b)
		}
	}
	return out.Bytes(), nil
}
