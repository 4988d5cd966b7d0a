package helm

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/tokenmeter/tokenmeter/internal/apikey"
	"github.com/tokenmeter/tokenmeter/internal/config"
)

// The paths the chart gives tokenmeter inside the pod.
const (
	configMount = "/etc/tokenmeter"
	configFile  = configMount + "/tokenmeter.yaml"
	dataMount   = "/var/lib/tokenmeter"
)

// install is one variant's objects, with the pod they all revolve around.
type install struct {
	*objects
	v         variant
	pod       corev1.PodTemplateSpec
	selector  *metav1.LabelSelector // the workload's
	container corev1.Container
}

// checkInstall checks what an install of v needs to work: the workload for
// its store, the pod's security and probes, the config tokenmeter will read,
// and that every Service, the PDB and the ServiceMonitor select what they
// should.
func checkInstall(t *testing.T, c *chart.Chart, v variant, o *objects) {
	in, ok := workload(t, v, o)
	if !ok {
		return
	}
	checkPodSecurity(t, in.pod.Spec, in.container)
	checkContainer(t, c, in.container)
	cfg := checkConfig(t, in)
	if cfg != nil {
		checkProbes(t, in.container, cfg)
	}
	checkSecretRefs(t, in)
	checkServices(t, in)
	checkPDB(t, in)
	checkServiceMonitor(t, in)
	if n := len(o.serviceAccounts); n != 1 || o.serviceAccounts[0].Name != in.pod.Spec.ServiceAccountName {
		t.Errorf("service accounts: %d, want the pod's %q", n, in.pod.Spec.ServiceAccountName)
	} else if sa := o.serviceAccounts[0]; sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Errorf("service account mounts its token; tokenmeter never calls the API")
	}
}

// workload checks the embedded store's StatefulSet (one pod, a claim for the
// counters and the ledger) or the shared store's Deployment, and returns the
// pod they run.
func workload(t *testing.T, v variant, o *objects) (install, bool) {
	in := install{objects: o, v: v}
	switch {
	case v.shared && len(o.deployments) == 1 && len(o.statefulSets) == 0:
		checkDeployment(t, &in)
	case !v.shared && len(o.statefulSets) == 1 && len(o.deployments) == 0:
		checkStatefulSet(t, &in)
	default:
		t.Errorf("shared=%v: got %d deployments and %d statefulsets", v.shared, len(o.deployments), len(o.statefulSets))
		return in, false
	}
	if !selects(t, in.selector, in.pod.Labels) {
		t.Errorf("the workload's selector %v does not select its pods %v", in.selector, in.pod.Labels)
	}
	if len(in.pod.Spec.Containers) != 1 {
		t.Errorf("pod: %d containers, want 1", len(in.pod.Spec.Containers))
		return in, false
	}
	in.container = in.pod.Spec.Containers[0]
	m := mount(in.container, "data")
	if noData := v.noLedger && v.shared; noData && m != nil {
		t.Errorf("data: mounted %+v with nothing to keep", m)
	} else if !noData && (m == nil || m.MountPath != dataMount || m.ReadOnly) {
		t.Errorf("data: want it mounted read-write at %s, got %+v", dataMount, m)
	}
	return in, true
}

// checkDeployment: the shared store runs several pods, each with its ledger
// on an emptyDir (none without a ledger).
func checkDeployment(t *testing.T, in *install) {
	d := in.deployments[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Errorf("deployment replicas %v, want several", d.Spec.Replicas)
	}
	in.pod, in.selector = d.Spec.Template, d.Spec.Selector
	vol := volume(in.pod.Spec, "data")
	if in.v.noLedger && vol != nil {
		t.Errorf("shared store, no ledger: want no data volume, got %+v", vol)
	} else if !in.v.noLedger && (vol == nil || vol.EmptyDir == nil) {
		t.Errorf("shared store: want the ledger on an emptyDir volume data, got %+v", vol)
	}
}

// checkStatefulSet: the embedded store runs one pod, whose claim holds the
// counters and the ledger, governed by a headless Service.
func checkStatefulSet(t *testing.T, in *install) {
	s := in.statefulSets[0]
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 1 {
		t.Errorf("statefulset replicas %v, want 1: Badger is one process's", s.Spec.Replicas)
	}
	in.pod, in.selector = s.Spec.Template, s.Spec.Selector
	claims := s.Spec.VolumeClaimTemplates
	if len(claims) != 1 || claims[0].Name != "data" || claims[0].Spec.Resources.Requests.Storage().IsZero() {
		t.Errorf("statefulset: want one claim template data with a size, got %+v", claims)
	}
	if vol := volume(in.pod.Spec, "data"); vol != nil {
		t.Errorf("statefulset: the pod's own volume data %+v hides the claim", vol)
	}
	if svc := service(in.objects, s.Spec.ServiceName); svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("statefulset serviceName %q: want a headless Service of the chart", s.Spec.ServiceName)
	}
}

// checkPodSecurity: non-root, read-only root, no capabilities, the runtime's
// seccomp profile, no privilege escalation, no API token.
func checkPodSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatalf("security contexts: pod %+v, container %+v", psc, sc)
	}
	for _, check := range []struct {
		what string
		ok   bool
	}{
		{"pod runAsNonRoot", isTrue(psc.RunAsNonRoot)},
		{"pod runAsUser 65532", psc.RunAsUser != nil && *psc.RunAsUser == 65532},
		{"pod seccomp RuntimeDefault", psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"pod fsGroup (the volume writable)", psc.FSGroup != nil && *psc.FSGroup == 65532},
		{"container runAsNonRoot", isTrue(sc.RunAsNonRoot)},
		{"container runAsUser 65532", sc.RunAsUser != nil && *sc.RunAsUser == 65532},
		{"readOnlyRootFilesystem", isTrue(sc.ReadOnlyRootFilesystem)},
		{"allowPrivilegeEscalation false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
		{"capabilities drop ALL", sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(sc.Capabilities.Add) == 0},
		{"container seccomp RuntimeDefault", sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"privileged unset", sc.Privileged == nil || !*sc.Privileged},
		{"no service account token", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
	} {
		if !check.ok {
			t.Errorf("security: want %s", check.what)
		}
	}
}

// checkContainer: the default image, serve --config into the ConfigMap's
// directory, requests and limits.
func checkContainer(t *testing.T, c *chart.Chart, ct corev1.Container) {
	if want := "ghcr.io/tokenmeter/tokenmeter:" + c.Metadata.AppVersion; ct.Image != want {
		t.Errorf("image %q, want %q", ct.Image, want)
	}
	if want := []string{"serve", "--config", configFile}; !slices.Equal(ct.Args, want) || len(ct.Command) != 0 {
		t.Errorf("command %q args %q, want the image's entrypoint with args %q", ct.Command, ct.Args, want)
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := ct.Resources.Requests[name], ct.Resources.Limits[name]
		if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
			t.Errorf("resources %s: request %s, limit %s: want both, request <= limit", name, req.String(), lim.String())
		}
	}
}

// checkConfig writes the ConfigMap's files as the kubelet mounts them and
// parses tokenmeter.yaml with tokenmeter's own config package, with the
// container's secret environment set; it checks that the listeners, store
// and ledger are where the pod has its ports and volume.
func checkConfig(t *testing.T, in install) *config.Config {
	var vol *corev1.Volume
	if vol = volume(in.pod.Spec, "config"); vol == nil || vol.ConfigMap == nil {
		t.Errorf("config: want a ConfigMap volume, got %+v", vol)
		return nil
	}
	if m := mount(in.container, "config"); m == nil || m.MountPath != configMount || !m.ReadOnly || m.SubPath != "" {
		// A subPath mount would never see the ConfigMap's updates: hot reload needs the directory.
		t.Errorf("config: want the directory mounted read-only at %s, no subPath, got %+v", configMount, m)
	}
	cm := configMap(in.objects, vol.ConfigMap.Name)
	if cm == nil {
		t.Errorf("config: no ConfigMap %q", vol.ConfigMap.Name)
		return nil
	}
	dir := t.TempDir()
	for name, content := range cm.Data {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range in.container.Env {
		t.Setenv(e.Name, secretValue(in, e))
	}
	cfg, err := config.Load(filepath.Join(dir, "tokenmeter.yaml"))
	if err != nil {
		t.Errorf("tokenmeter.yaml does not load: %v\n%s", err, cm.Data["tokenmeter.yaml"])
		return nil
	}
	wantStore := map[bool]string{false: "badger", true: "redis"}[in.v.shared]
	for _, check := range []struct{ what, got, want string }{
		{"listen.grpc", cfg.GRPCListen, fmt.Sprintf("0.0.0.0:%d", port(in.container, "grpc"))},
		{"listen.admin", cfg.AdminListen, fmt.Sprintf("0.0.0.0:%d", port(in.container, "admin"))},
		{"store.type", cfg.StoreType, wantStore},
		{"ledger.dir", cfg.Ledger.Dir, map[bool]string{false: dataMount + "/ledger", true: ""}[in.v.noLedger]},
	} {
		if check.got != check.want {
			t.Errorf("config %s = %q, want %q", check.what, check.got, check.want)
		}
	}
	if !in.v.shared && cfg.StoreDir != dataMount+"/badger" {
		t.Errorf("config store.dir = %q, want it on the claim", cfg.StoreDir)
	}
	if in.v.shared && (len(cfg.Redis.Addrs) == 0 || cfg.Redis.Password == "") {
		t.Errorf("config store.redis: addrs %q, password set %v", cfg.Redis.Addrs, cfg.Redis.Password != "")
	}
	checkAPIKeys(t, in, cfg)
	checkLedger(t, in, cfg)
	return cfg
}

// keySecretEnv is the variable the chart hands the API-key hashing secret in.
const keySecretEnv = "TOKENMETER_KEY_SECRET"

// checkAPIKeys: attribution by API key is on exactly when the variant wires
// the hashing secret, which tokenmeter then reads from the pod's variable,
// with the policies and keys of the user's config merged in.
func checkAPIKeys(t *testing.T, in install, cfg *config.Config) {
	var env *corev1.EnvVar
	for i := range in.container.Env {
		if in.container.Env[i].Name == keySecretEnv {
			env = &in.container.Env[i]
		}
	}
	want := in.v.apiKeys
	if want == nil {
		if env != nil || cfg.APIKeys != nil {
			t.Errorf("attribution by API key: env %+v, config %+v; want neither", env, cfg.APIKeys)
		}
		return
	}
	if env == nil || cfg.APIKeys == nil {
		t.Errorf("attribution by API key: env %+v, config %+v; want both", env, cfg.APIKeys)
		return
	}
	k := cfg.APIKeys
	if k.SecretEnv != keySecretEnv || k.SecretFile != "" || string(k.Secret) != secretValue(in, *env) {
		t.Errorf("api_keys: secret_env %q, secret_file %q, secret %d bytes; want the pod's %s (%d bytes)",
			k.SecretEnv, k.SecretFile, len(k.Secret), keySecretEnv, len(secretValue(in, *env)))
	}
	if k.Unknown != want.unknown || k.Missing != want.missing {
		t.Errorf("api_keys: unknown %q, missing %q; want %q, %q", k.Unknown, k.Missing, want.unknown, want.missing)
	}
	var ids []string
	for _, key := range k.Keys {
		ids = append(ids, key.ID)
	}
	if !slices.Equal(ids, want.ids) {
		t.Errorf("api_keys.keys: ids %q, want %q", ids, want.ids)
	}
	if want.key == "" {
		return
	}
	// The digest in the values was made under the secret given in them: the
	// table opens the key only if the pod gets that very secret.
	h, err := apikey.NewHasher(k.Secret)
	if err != nil {
		t.Fatal(err)
	}
	table, err := apikey.NewTable(k.Keys)
	if err != nil {
		t.Fatal(err)
	}
	if got, status := table.Lookup(h.Hash(want.key), time.Now()); status != apikey.Valid || got.ID != want.id {
		t.Errorf("api_keys: %s opens %+v (%v), want key %q", want.key, got, status, want.id)
	}
}

// secretValue is what the pod's environment variable e will hold: the value
// in the chart's Secret, or a stand-in for a Secret the user made.
func secretValue(in install, e corev1.EnvVar) string {
	if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		return e.Value
	}
	ref := e.ValueFrom.SecretKeyRef
	for _, s := range in.secrets {
		if s.Name == ref.Name {
			return s.StringData[ref.Key]
		}
	}
	if e.Name == cloudEventsURLEnv {
		// tokenmeter checks the URL at load: the stand-in must be one.
		return "https://receiver.example/" + ref.Name + "/" + ref.Key
	}
	return "from the user's Secret " + ref.Name + " key " + ref.Key
}

// checkProbes: the gRPC health probe on the ext_proc port tokenmeter listens
// on, /readyz and /healthz on the admin port.
func checkProbes(t *testing.T, c corev1.Container, cfg *config.Config) {
	grpcPort := listenPort(cfg.GRPCListen)
	if p := c.StartupProbe; p == nil || p.GRPC == nil || p.GRPC.Port != grpcPort {
		t.Errorf("startup probe %+v: want gRPC health on the ext_proc port %d", p, grpcPort)
	}
	for _, tc := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"liveness", c.LivenessProbe, "/healthz"},
	} {
		p := tc.probe
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != tc.path {
			t.Errorf("%s probe %+v: want GET %s", tc.what, p, tc.path)
			continue
		}
		if got := resolvePort(c, p.HTTPGet.Port.String()); got != listenPort(cfg.AdminListen) {
			t.Errorf("%s probe on port %d, want the admin listener's %s", tc.what, got, cfg.AdminListen)
		}
	}
}

// checkSecretRefs: every secret the container reads names a Secret the chart
// makes, holding that key, or the Secret the values name.
func checkSecretRefs(t *testing.T, in install) {
	for _, e := range in.container.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		for _, s := range in.secrets {
			if s.Name == ref.Name {
				if _, ok := s.StringData[ref.Key]; !ok {
					t.Errorf("env %s: Secret %s has no key %q", e.Name, ref.Name, ref.Key)
				}
				if in.pod.Annotations["checksum/secret"] == "" {
					t.Errorf("pods read the chart's Secret but have no checksum/secret: a new value would not roll them")
				}
			}
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

func volume(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func mount(c corev1.Container, name string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == name {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func configMap(o *objects, name string) *corev1.ConfigMap {
	for _, cm := range o.configMaps {
		if cm.Name == name {
			return cm
		}
	}
	return nil
}

// port is the container's port called name; 0 if it has none.
func port(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// resolvePort is a probe's or a Service's target port as a number: a name
// is looked up among the container's ports.
func resolvePort(c corev1.Container, p string) int32 {
	var n int32
	if _, err := fmt.Sscanf(p, "%d", &n); err == nil {
		return n
	}
	return port(c, p)
}

// listenPort is the port of a host:port listen address.
func listenPort(addr string) int32 {
	var n int32
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &n)
	return n
}

// selects says whether sel selects a pod labelled set.
func selects(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(set))
}
