package istio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/yaml"

	// The typed configs the resources name by "@type": protojson resolves
	// them from the global registry, so an unknown or misspelt type fails.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	// envoy.yaml's early header mutation, which loadShipped decodes.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// object is one decoded resource: its file, its typed Kubernetes object
// (istio.io/client-go) and a pointer to that object's spec.
type object struct {
	file       string
	kind, name string
	namespace  string
	obj        any
	spec       proto.Message
}

// newObject returns an empty object of the client-go type for apiVersion and
// kind, and its spec. The kinds the directory ships; any other is an error.
func newObject(apiVersion, kind string) (any, proto.Message, error) {
	switch apiVersion + " " + kind {
	case "networking.istio.io/v1alpha3 EnvoyFilter":
		o := &networkingv1alpha3.EnvoyFilter{}
		return o, &o.Spec, nil
	case "networking.istio.io/v1 ServiceEntry":
		o := &networkingv1.ServiceEntry{}
		return o, &o.Spec, nil
	case "networking.istio.io/v1 DestinationRule":
		o := &networkingv1.DestinationRule{}
		return o, &o.Spec, nil
	case "networking.istio.io/v1 Gateway":
		o := &networkingv1.Gateway{}
		return o, &o.Spec, nil
	case "networking.istio.io/v1 VirtualService":
		o := &networkingv1.VirtualService{}
		return o, &o.Spec, nil
	case "security.istio.io/v1 RequestAuthentication":
		o := &securityv1.RequestAuthentication{}
		return o, &o.Spec, nil
	case "security.istio.io/v1 AuthorizationPolicy":
		o := &securityv1.AuthorizationPolicy{}
		return o, &o.Spec, nil
	}
	return nil, nil, fmt.Errorf("apiVersion %q kind %q: not a kind this directory ships", apiVersion, kind)
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeFile decodes every document of a YAML file strictly.
func decodeFile(path string) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	var out []object
	for i, doc := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		o, err := decodeDoc([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s, document %d: %w", filepath.Base(path), i+1, err)
		}
		o.file = filepath.Base(path)
		out = append(out, o)
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// decodeDoc decodes one resource in two strict passes. The client-go type
// checks the envelope (apiVersion, kind, metadata: unknown fields are
// errors), but istio.io/api's own UnmarshalJSON for the spec allows unknown
// fields (its jsonpb unmarshaler sets AllowUnknownFields), as the API server
// would not: so the spec is decoded again with protojson, which rejects
// them. YAMLToJSONStrict rejects duplicate keys; it expands aliases, as
// kubectl does.
func decodeDoc(doc []byte) (object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("yaml: %w", err)
	}
	var head struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Spec       json.RawMessage `json:"spec"`
		Status     json.RawMessage `json:"status"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return object{}, fmt.Errorf("envelope: %w", err)
	}
	obj, spec, err := newObject(head.APIVersion, head.Kind)
	if err != nil {
		return object{}, err
	}
	if head.Status != nil {
		return object{}, fmt.Errorf("%s: a shipped resource has no status", head.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return object{}, fmt.Errorf("%s: %w", head.Kind, err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(head.Spec, spec); err != nil {
		return object{}, fmt.Errorf("%s spec: %w", head.Kind, err)
	}
	var meta struct {
		Metadata struct{ Name, Namespace string } `json:"metadata"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return object{}, fmt.Errorf("metadata: %w", err)
	}
	if meta.Metadata.Name == "" || meta.Metadata.Namespace == "" {
		return object{}, fmt.Errorf("%s: want metadata.name and metadata.namespace", head.Kind)
	}
	return object{kind: head.Kind, name: meta.Metadata.Name, namespace: meta.Metadata.Namespace, obj: obj, spec: spec}, nil
}

// patchValue decodes an EnvoyFilter patch's value (a google.protobuf.Struct)
// as the Envoy message its applyTo names, rejecting unknown fields and
// unknown "@type"s, as Istio's conversion then Envoy would.
func patchValue(p *networkingapi.EnvoyFilter_EnvoyConfigObjectPatch) (proto.Message, error) {
	var m proto.Message
	switch p.GetApplyTo() {
	case networkingapi.EnvoyFilter_LISTENER:
		m = &listenerv3.Listener{}
	case networkingapi.EnvoyFilter_NETWORK_FILTER:
		m = &listenerv3.Filter{}
	case networkingapi.EnvoyFilter_HTTP_FILTER:
		m = &hcmv3.HttpFilter{}
	case networkingapi.EnvoyFilter_VIRTUAL_HOST:
		m = &routev3.VirtualHost{}
	case networkingapi.EnvoyFilter_CLUSTER:
		m = &clusterv3.Cluster{}
	default:
		return nil, fmt.Errorf("applyTo %s: not one the tests decode", p.GetApplyTo())
	}
	js, err := protojson.Marshal(p.GetPatch().GetValue())
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, m); err != nil {
		return nil, fmt.Errorf("%s value as %s: %w", p.GetApplyTo(), m.ProtoReflect().Descriptor().FullName(), err)
	}
	return m, nil
}

// loadAll decodes every YAML file of this directory.
func loadAll(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML files here (%v)", err)
	}
	var all []object
	for _, f := range files {
		objs, err := decodeFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, objs...)
	}
	return all
}

// envoyFilter returns the EnvoyFilter named name.
func envoyFilter(t *testing.T, name string) *networkingapi.EnvoyFilter {
	t.Helper()
	for _, o := range loadAll(t) {
		if o.kind == "EnvoyFilter" && o.name == name {
			return o.spec.(*networkingapi.EnvoyFilter)
		}
	}
	t.Fatalf("no EnvoyFilter %q", name)
	return nil
}
