package helm

import (
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// objects are the chart's rendered objects, each decoded into its real API
// type. The chart makes no other kind: an object of any other kind fails the
// decode.
type objects struct {
	serviceAccounts []*corev1.ServiceAccount
	secrets         []*corev1.Secret
	configMaps      []*corev1.ConfigMap
	services        []*corev1.Service
	deployments     []*appsv1.Deployment
	statefulSets    []*appsv1.StatefulSet
	pdbs            []*policyv1.PodDisruptionBudget
	serviceMonitors []*monitoringv1.ServiceMonitor
}

// strict decodes data into a new T, with unknown and repeated fields as
// errors (sigs.k8s.io/yaml's UnmarshalStrict: YAML to JSON, then the API
// type's own JSON decoding with DisallowUnknownFields), and checks that it
// declares the apiVersion and kind of the type.
func strict[T any, P interface {
	*T
	runtime.Object
}](data []byte, apiVersion, kind string) (P, error) {
	p := P(new(T))
	if err := yaml.UnmarshalStrict(data, p); err != nil {
		return nil, err
	}
	gvk := p.GetObjectKind().GroupVersionKind()
	if got := gvk.GroupVersion().String(); got != apiVersion || gvk.Kind != kind {
		return nil, fmt.Errorf("apiVersion %q kind %q, want %q %q", got, gvk.Kind, apiVersion, kind)
	}
	return p, nil
}

// decodeAll decodes every manifest by its kind into objects.
func decodeAll(ms []manifest) (*objects, error) {
	o := &objects{}
	for _, m := range ms {
		if err := o.decode(m); err != nil {
			return nil, fmt.Errorf("%s (%s %s): %w", m.source, m.kind, m.name, err)
		}
	}
	return o, nil
}

func (o *objects) decode(m manifest) error {
	var err error
	switch m.kind {
	case "ServiceAccount":
		err = add(&o.serviceAccounts, m, "v1")
	case "Secret":
		err = add(&o.secrets, m, "v1")
	case "ConfigMap":
		err = add(&o.configMaps, m, "v1")
	case "Service":
		err = add(&o.services, m, "v1")
	case "Deployment":
		err = add(&o.deployments, m, "apps/v1")
	case "StatefulSet":
		err = add(&o.statefulSets, m, "apps/v1")
	case "PodDisruptionBudget":
		err = add(&o.pdbs, m, "policy/v1")
	case "ServiceMonitor":
		err = add(&o.serviceMonitors, m, monitoringv1.SchemeGroupVersion.String())
	default:
		err = fmt.Errorf("no API type for kind %q", m.kind)
	}
	return err
}

// add decodes m strictly and appends it to list.
func add[T any, P interface {
	*T
	runtime.Object
}](list *[]P, m manifest, apiVersion string) error {
	p, err := strict[T, P](m.yaml, apiVersion, m.kind)
	if err != nil {
		return err
	}
	*list = append(*list, p)
	return nil
}
