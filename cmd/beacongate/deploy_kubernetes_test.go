package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/beacongate/beacongate/internal/kafka/embedded"
)

// The Kubernetes manifests (deploy/kubernetes) are decoded strictly into
// the Kubernetes API types — an unknown or misspelt field fails — and
// checked against the binary: every BEACONGATE_* variable is a flag and
// the configuration they make validates, the probes reach paths the
// gateway serves on the port they name, the grace period covers the
// shutdown budget, and the image's user can write the spool.

const k8sDir = repoRoot + "/deploy/kubernetes"

// kustomization is the part of kustomize's Kustomization these manifests
// use; anything else in the file fails the strict decode.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	} `json:"labels,omitempty"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
	Patches []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
}

// strictDecode decodes one YAML document into v: duplicate keys and
// fields v does not have are errors.
func strictDecode(doc []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// yamlDocs splits a file into its documents.
func yamlDocs(t *testing.T, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripYAMLComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripYAMLComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// manifests is every object of a kustomization's resources, by kind.
type manifests struct {
	namespaces []corev1.Namespace
	secrets    []corev1.Secret
	services   []corev1.Service
	sets       []appsv1.StatefulSet
	pdbs       []policyv1.PodDisruptionBudget
	hpas       []autoscalingv2.HorizontalPodAutoscaler
}

// decodeObject decodes one manifest by its kind into the API type of its
// apiVersion.
func (m *manifests) decodeObject(t *testing.T, where string, doc []byte) {
	t.Helper()
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	type typed struct {
		apiVersion string
		into       any
		add        func()
	}
	var (
		ns   corev1.Namespace
		sec  corev1.Secret
		svc  corev1.Service
		sts  appsv1.StatefulSet
		pdb  policyv1.PodDisruptionBudget
		hpa  autoscalingv2.HorizontalPodAutoscaler
		kind = map[string]typed{
			"Namespace":               {"v1", &ns, func() { m.namespaces = append(m.namespaces, ns) }},
			"Secret":                  {"v1", &sec, func() { m.secrets = append(m.secrets, sec) }},
			"Service":                 {"v1", &svc, func() { m.services = append(m.services, svc) }},
			"StatefulSet":             {"apps/v1", &sts, func() { m.sets = append(m.sets, sts) }},
			"PodDisruptionBudget":     {"policy/v1", &pdb, func() { m.pdbs = append(m.pdbs, pdb) }},
			"HorizontalPodAutoscaler": {"autoscaling/v2", &hpa, func() { m.hpas = append(m.hpas, hpa) }},
		}
	)
	k, ok := kind[head.Kind]
	if !ok {
		t.Fatalf("%s: kind %q is not one this test knows; add its API type", where, head.Kind)
	}
	if head.APIVersion != k.apiVersion {
		t.Fatalf("%s: %s has apiVersion %q, want %q", where, head.Kind, head.APIVersion, k.apiVersion)
	}
	if err := strictDecode(doc, k.into); err != nil {
		t.Fatalf("%s: %s does not decode strictly into the Kubernetes API type: %v", where, head.Kind, err)
	}
	k.add()
}

func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := strictDecode(b, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("%s/kustomization.yaml: %s %s", dir, k.APIVersion, k.Kind)
	}
	return k
}

func loadBase(t *testing.T) (kustomization, *manifests) {
	t.Helper()
	k := readKustomization(t, k8sDir)
	m := &manifests{}
	for _, r := range k.Resources {
		for i, doc := range yamlDocs(t, filepath.Join(k8sDir, r)) {
			m.decodeObject(t, fmt.Sprintf("%s (document %d)", r, i+1), doc)
		}
	}
	// Every manifest in the directory is listed (a forgotten file would
	// never be applied).
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	listed := map[string]bool{"kustomization.yaml": true}
	for _, r := range k.Resources {
		listed[r] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("deploy/kubernetes/%s is not in kustomization.yaml's resources", filepath.Base(f))
		}
	}
	if len(m.sets) != 1 {
		t.Fatalf("want one StatefulSet, got %d", len(m.sets))
	}
	return k, m
}

// gatewayContainer is the StatefulSet's beacongate container.
func gatewayContainer(t *testing.T, sts *appsv1.StatefulSet) *corev1.Container {
	t.Helper()
	for i := range sts.Spec.Template.Spec.Containers {
		if c := &sts.Spec.Template.Spec.Containers[i]; c.Name == "beacongate" {
			return c
		}
	}
	t.Fatal("no container named beacongate")
	return nil
}

// otherEnv are variables a pod may set that are not flags.
var otherEnv = map[string]bool{"GOMAXPROCS": true, "GOMEMLIMIT": true}

// checkEnv: every BEACONGATE_* variable is a flag's, and the values make
// a configuration the binary accepts. It returns the parsed options.
func checkEnv(t *testing.T, where string, env []corev1.EnvVar, secrets []corev1.Secret) *options {
	t.Helper()
	flags := map[string]bool{}
	newFlagSet(&options{}, io.Discard).VisitAll(func(f *flag.Flag) { flags[envName(f.Name)] = true })
	values := map[string]string{}
	for _, e := range env {
		if !strings.HasPrefix(e.Name, envPrefix) {
			if !otherEnv[e.Name] {
				t.Errorf("%s: variable %s is neither a BEACONGATE_ flag nor one of %v", where, e.Name, otherEnv)
			}
			continue
		}
		if !flags[e.Name] {
			t.Errorf("%s: %s is not a flag of the binary (docs/configuration.md)", where, e.Name)
		}
		switch {
		case e.ValueFrom == nil:
			values[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if !secretHasKey(secrets, ref.Name, ref.Key) {
				t.Errorf("%s: %s reads key %q of Secret %q, which the manifests do not have", where, e.Name, ref.Key, ref.Name)
			}
			values[e.Name] = "secret-value"
		case e.ValueFrom.FieldRef != nil:
			values[e.Name] = "beacongate-0"
		}
	}
	o, _, err := parseFlags(nil, func(k string) string { return values[k] }, io.Discard)
	if err != nil {
		t.Fatalf("%s: the binary does not parse the environment: %v", where, err)
	}
	if err := o.validate(); err != nil {
		t.Fatalf("%s: the binary refuses the configuration: %v", where, err)
	}
	return o
}

func secretHasKey(secrets []corev1.Secret, name, key string) bool {
	for _, s := range secrets {
		if s.Name != name {
			continue
		}
		if _, ok := s.StringData[key]; ok {
			return true
		}
		if _, ok := s.Data[key]; ok {
			return true
		}
	}
	return false
}

func portNumber(t *testing.T, c *corev1.Container, p string) int32 {
	t.Helper()
	if n, err := strconv.Atoi(p); err == nil {
		return int32(n)
	}
	for _, cp := range c.Ports {
		if cp.Name == p {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container has no port named %q", p)
	return 0
}

func listenPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return int32(n)
}

func TestKubernetesManifests(t *testing.T) {
	k, m := loadBase(t)
	sts := &m.sets[0]
	pod := &sts.Spec.Template.Spec
	c := gatewayContainer(t, sts)
	o := checkEnv(t, "statefulset.yaml", c.Env, m.secrets)

	// Probes: readiness on /readyz, liveness on /healthz, both on the
	// admin listener's port (never the public one).
	probes := map[string]*corev1.Probe{"/readyz": c.ReadinessProbe, "/healthz": c.LivenessProbe}
	for want, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Fatalf("no HTTP probe for %s", want)
		}
		if p.HTTPGet.Path != want {
			t.Errorf("probe path %q, want %q", p.HTTPGet.Path, want)
		}
		if got, admin := portNumber(t, c, p.HTTPGet.Port.String()), listenPort(t, o.adminListen); got != admin {
			t.Errorf("probe %s on port %d, but the admin listener is %s", want, got, o.adminListen)
		}
	}
	if got, want := portNumber(t, c, "http"), listenPort(t, o.httpListen); got != want {
		t.Errorf("container port http %d, the gateway listens on %s", got, o.httpListen)
	}

	// The grace period covers the drain, the shutdown timeout and the
	// hand-back's grace past it (docs/operations.md, Shutdown), with a
	// margin.
	const handBack = 30 * time.Second
	budget := o.shutdownDrain + o.shutdownTimeout + handBack
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("no terminationGracePeriodSeconds (the default 30s is below the shutdown budget)")
	}
	if grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second; grace < budget+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %v does not cover -shutdown.drain %v + -shutdown.timeout %v + %v hand-back + 5s margin",
			grace, o.shutdownDrain, o.shutdownTimeout, handBack)
	}

	// Non-root, read-only root, and the image's user can write the spool:
	// it runs as the Dockerfile's USER, on a writable volume whose group
	// is that user's (fsGroup).
	img := readImage(t)
	sc, csc := pod.SecurityContext, c.SecurityContext
	if sc == nil || csc == nil {
		t.Fatal("pod and container need a securityContext")
	}
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || int(*sc.RunAsUser) != img.uid {
		t.Errorf("pod must run as non-root uid %d (the Dockerfile's USER)", img.uid)
	}
	if sc.FSGroup == nil || int(*sc.FSGroup) != img.gid {
		t.Errorf("fsGroup must be the image's group %d so the user can write the spool volume", img.gid)
	}
	if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if !path.IsAbs(o.spool.Dir) {
		t.Fatalf("spool dir %q is not absolute", o.spool.Dir)
	}
	var mount *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		if o.spool.Dir == vm.MountPath || strings.HasPrefix(o.spool.Dir, strings.TrimSuffix(vm.MountPath, "/")+"/") {
			mount = &c.VolumeMounts[i]
		}
	}
	if mount == nil || mount.ReadOnly {
		t.Fatalf("the spool %s is on no writable volume mount", o.spool.Dir)
	}
	onVolume := false
	for _, v := range img.volumes {
		onVolume = onVolume || v == mount.MountPath
	}
	if !onVolume {
		t.Errorf("the spool volume is mounted at %s, not on the image's VOLUME %v", mount.MountPath, img.volumes)
	}
	var claim *corev1.PersistentVolumeClaim
	for i := range sts.Spec.VolumeClaimTemplates {
		if sts.Spec.VolumeClaimTemplates[i].Name == mount.Name {
			claim = &sts.Spec.VolumeClaimTemplates[i]
		}
	}
	if claim == nil {
		t.Fatalf("the spool mount %q is not a volumeClaimTemplate (a PVC per pod)", mount.Name)
	}
	// The volume holds the spool's limit plus the kept lane, which can
	// add up to the producer queue (256 MiB by default).
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	if need := o.spool.MaxBytes + 256<<20; size.Value() < need {
		t.Errorf("spool volume %s is smaller than -spool.max-bytes %d + the producer queue's 256 MiB", size.String(), o.spool.MaxBytes)
	}

	// Resources: a CPU request (the HPA's base) and a memory limit.
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("the container needs a CPU request and a memory limit")
	}
	spread := map[string]bool{}
	for _, tsc := range pod.TopologySpreadConstraints {
		spread[tsc.TopologyKey] = true
	}
	if !spread["topology.kubernetes.io/zone"] {
		t.Error("no topology spread across zones")
	}

	// Services, the PDB and the HPA point at the pods and ports that exist.
	podLabels := sts.Spec.Template.Labels
	selects := func(sel map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	if !selects(sts.Spec.Selector.MatchLabels) {
		t.Error("the StatefulSet's selector does not select its pods")
	}
	governing := false
	for _, svc := range m.services {
		if !selects(svc.Spec.Selector) {
			t.Errorf("Service %s does not select the gateway pods", svc.Name)
		}
		for _, p := range svc.Spec.Ports {
			portNumber(t, c, p.TargetPort.String())
		}
		governing = governing || (svc.Name == sts.Spec.ServiceName && svc.Spec.ClusterIP == corev1.ClusterIPNone)
	}
	if !governing {
		t.Errorf("no headless Service %q governs the StatefulSet", sts.Spec.ServiceName)
	}
	if len(m.pdbs) != 1 || m.pdbs[0].Spec.Selector == nil || !selects(m.pdbs[0].Spec.Selector.MatchLabels) {
		t.Error("want one PodDisruptionBudget selecting the gateway pods")
	}
	if len(m.hpas) != 1 {
		t.Fatal("want one HorizontalPodAutoscaler")
	}
	hpa := m.hpas[0]
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "StatefulSet" || ref.Name != sts.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("the HPA scales %+v, not the StatefulSet", ref)
	}
	cpu := false
	for _, mt := range hpa.Spec.Metrics {
		cpu = cpu || (mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU && mt.Resource.Target.AverageUtilization != nil)
	}
	if !cpu {
		t.Error("the HPA does not scale on CPU utilization")
	}
	if len(m.namespaces) == 1 && m.namespaces[0].Name != k.Namespace {
		t.Errorf("Namespace %q, but the kustomization puts everything in %q", m.namespaces[0].Name, k.Namespace)
	}
	imageNamed := false
	for _, im := range k.Images {
		imageNamed = imageNamed || im.Name == c.Image
	}
	if !imageNamed {
		t.Errorf("the container's image %q is not set by the kustomization's images", c.Image)
	}

	// The probes' paths answer on the admin listener of the real binary,
	// and the public port does not serve the admin surface.
	b, err := embedded.Start(embedded.Config{Listen: "127.0.0.1:0", Topics: []string{"beacons"}}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := startGateway(t, "-kafka.brokers", b.Addr())
	for p := range probes {
		if code, _, _ := get(t, "http://"+g.admin+p); code != 200 {
			t.Errorf("admin %s: %d", p, code)
		}
	}
	if code, _, _ := get(t, "http://"+g.http+"/metrics"); code == 200 {
		t.Error("the public port serves /metrics")
	}
}

// TestKubernetesOverlayManagedKafka: the TLS/SASL overlay patches the
// base's StatefulSet with variables that are flags, and the merged
// environment is a configuration the binary accepts.
func TestKubernetesOverlayManagedKafka(t *testing.T) {
	_, base := loadBase(t)
	dir := filepath.Join(k8sDir, "overlays", "managed-kafka")
	k := readKustomization(t, dir)
	if len(k.Resources) != 1 || filepath.Clean(filepath.Join(dir, k.Resources[0])) != filepath.Clean(k8sDir) {
		t.Fatalf("the overlay's resources %v are not the base", k.Resources)
	}
	if len(k.Patches) == 0 {
		t.Fatal("the overlay patches nothing")
	}
	baseSet := base.sets[0]
	env := gatewayContainer(t, &baseSet).Env
	for _, p := range k.Patches {
		docs := yamlDocs(t, filepath.Join(dir, p.Path))
		for _, doc := range docs {
			var patch appsv1.StatefulSet
			if err := strictDecode(doc, &patch); err != nil {
				t.Fatalf("%s: %v", p.Path, err)
			}
			if patch.Name != baseSet.Name {
				t.Fatalf("%s patches StatefulSet %q, the base has %q", p.Path, patch.Name, baseSet.Name)
			}
			// Strategic merge: env entries merge by name.
			for _, e := range gatewayContainer(t, &patch).Env {
				replaced := false
				for i := range env {
					if env[i].Name == e.Name {
						env[i], replaced = e, true
					}
				}
				if !replaced {
					env = append(env, e)
				}
			}
		}
	}
	o := checkEnv(t, "overlays/managed-kafka", env, base.secrets)
	if !o.producer.Security.TLS || o.producer.Security.SASLMechanism == "" || o.producer.Security.Password == "" {
		t.Errorf("the overlay does not configure TLS and SASL: %+v", o.producer.Security)
	}
}
