package helm

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The Services a platform points at: ext_proc for Envoy, admin for scrapes
// and the API.
const (
	extProcService = releaseName
	adminService   = releaseName + "-admin"
)

// checkServices: the ext_proc Service (gRPC over h2c) and the admin Service
// (HTTP) each select the pods and send to the container port tokenmeter
// listens on; so does every other Service the chart makes.
func checkServices(t *testing.T, in install) {
	for _, tc := range []struct {
		service, port, appProtocol string
		alsoAllowed                string
	}{
		{extProcService, "grpc", "kubernetes.io/h2c", "grpc"},
		{adminService, "admin", "http", ""},
	} {
		svc := service(in.objects, tc.service)
		if svc == nil {
			t.Errorf("no Service %q", tc.service)
			continue
		}
		if len(svc.Spec.Ports) != 1 {
			t.Errorf("Service %s: ports %+v, want one, %s", svc.Name, svc.Spec.Ports, tc.port)
			continue
		}
		p := svc.Spec.Ports[0]
		if ap := deref(p.AppProtocol); p.Name != tc.port || (ap != tc.appProtocol && (tc.alsoAllowed == "" || ap != tc.alsoAllowed)) {
			t.Errorf("Service %s port %s appProtocol %q, want port %s appProtocol %s", svc.Name, p.Name, ap, tc.port, tc.appProtocol)
		}
	}
	for _, svc := range in.services {
		if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, in.pod.Labels) {
			t.Errorf("Service %s selector %v does not select the pods %v", svc.Name, svc.Spec.Selector, in.pod.Labels)
		}
		for _, p := range svc.Spec.Ports {
			want := port(in.container, p.Name)
			if got := targetPort(in, p.TargetPort); want == 0 || got != want {
				t.Errorf("Service %s port %s targets container port %d, want %d (the container's %s)", svc.Name, p.Name, got, want, p.Name)
			}
		}
	}
}

func targetPort(in install, p intstr.IntOrString) int32 {
	if p.Type == intstr.String {
		return port(in.container, p.StrVal)
	}
	return p.IntVal
}

// checkPDB: one PodDisruptionBudget that selects the pods and lets a node
// drain evict them one at a time.
func checkPDB(t *testing.T, in install) {
	if len(in.pdbs) != 1 {
		t.Errorf("PodDisruptionBudgets: %d, want 1", len(in.pdbs))
		return
	}
	pdb := in.pdbs[0]
	if !selects(t, pdb.Spec.Selector, in.pod.Labels) {
		t.Errorf("PDB selector %v does not select the pods %v", pdb.Spec.Selector, in.pod.Labels)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() < 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB: maxUnavailable %v minAvailable %v: want maxUnavailable >= 1, so a drain is never blocked",
			pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
}

// checkServiceMonitor: when on, it selects the admin Service alone (a scrape
// of the ext_proc port would fail) and scrapes /metrics on its port, with the
// admin token when there is one.
func checkServiceMonitor(t *testing.T, in install) {
	if !in.v.serviceMonitor {
		if len(in.serviceMonitors) != 0 {
			t.Errorf("ServiceMonitor rendered while off by default")
		}
		return
	}
	if len(in.serviceMonitors) != 1 {
		t.Fatalf("ServiceMonitors: %d, want 1", len(in.serviceMonitors))
	}
	sm := in.serviceMonitors[0]
	for _, svc := range in.services {
		want := svc.Name == adminService
		if got := selects(t, &sm.Spec.Selector, svc.Labels); got != want {
			t.Errorf("ServiceMonitor selects Service %s: %v, want %v", svc.Name, got, want)
		}
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %+v, want 1", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if adm := service(in.objects, adminService); adm == nil || len(adm.Spec.Ports) == 0 || ep.Port != adm.Spec.Ports[0].Name || ep.Path != "/metrics" {
		t.Errorf("ServiceMonitor endpoint port %q path %q: want the admin Service's port, /metrics", ep.Port, ep.Path)
	}
	var tokenRef *corev1.SecretKeySelector
	for _, e := range in.container.Env {
		if e.Name == "TOKENMETER_ADMIN_TOKEN" && e.ValueFrom != nil {
			tokenRef = e.ValueFrom.SecretKeyRef
		}
	}
	switch {
	case tokenRef == nil && ep.Authorization != nil:
		t.Errorf("ServiceMonitor sends a token the admin API does not want: %+v", ep.Authorization)
	case tokenRef != nil && (ep.Authorization == nil || ep.Authorization.Type != "Bearer" || ep.Authorization.Credentials == nil ||
		ep.Authorization.Credentials.Name != tokenRef.Name || ep.Authorization.Credentials.Key != tokenRef.Key):
		t.Errorf("ServiceMonitor authorization %+v: want Bearer from the admin token's Secret %+v", ep.Authorization, tokenRef)
	}
}

func service(o *objects, name string) *corev1.Service {
	for _, s := range o.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
