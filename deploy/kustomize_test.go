package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// The Kubernetes manifests are a kustomize layout: k8s/base (the worker without Graph
// credentials), one overlay per credential (k8s/overlays/secret, workload-identity,
// managed-identity) and the optional component k8s/components/monitoring. No kustomization
// holds a Secret: examples/secrets.yaml only shows the ones the operator creates.

// exampleSecrets are the Secrets the worker reads, as placeholders.
var exampleSecrets = filepath.Join("k8s", "examples", "secrets.yaml")

// credentialOverlays are the overlays under k8s/overlays, one per Graph credential.
var credentialOverlays = []string{"secret", "workload-identity", "managed-identity"}

// newTyped returns the typed k8s.io/api (or Prometheus Operator) object for a kind the
// deployment ships. Any other kind is an error: it would be decoded by nothing.
func newTyped(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "batch/v1 CronJob":
		return &batchv1.CronJob{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, nil
	}
	return nil, fmt.Errorf("%s %s: not a kind the deployment ships (add it to newTyped)", apiVersion, kind)
}

// decodeTyped decodes every document of a YAML stream strictly into its typed struct: an
// unknown or duplicate field, a wrong type or an unparsable quantity fails. It returns the
// typed objects.
func decodeTyped(name string, data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var objs []any
	for i := 1; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		if doc.Kind == 0 || (doc.Kind == yaml.DocumentNode && len(doc.Content) == 0) {
			continue
		}
		text, err := yaml.Marshal(&doc)
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := sigsyaml.Unmarshal(text, &meta); err != nil {
			return nil, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		if meta.APIVersion == "" && meta.Kind == "" {
			continue // a document of comments only
		}
		obj, err := newTyped(meta.APIVersion, meta.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s document %d: %w", name, i, err)
		}
		if err := sigsyaml.UnmarshalStrict(text, obj); err != nil {
			return nil, fmt.Errorf("%s document %d (%s): %w", name, i, meta.Kind, err)
		}
		objs = append(objs, obj)
	}
}

func TestDecodeTypedIsStrict(t *testing.T) {
	const deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: 2\n"
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"valid", deployment, true},
		{"unknown field", deployment + "  replica: 2\n", false},
		{"misspelled nested field", deployment + "  template:\n    spec:\n      containers:\n        - name: w\n          imagePullPolicyy: Always\n", false},
		{"wrong type", strings.Replace(deployment, "replicas: 2", "replicas: two", 1), false},
		{"bad quantity", deployment + "  template:\n    spec:\n      containers:\n        - name: w\n          resources:\n            limits:\n              memory: lots\n", false},
		{"unknown kind", "apiVersion: v1\nkind: Pod2\nmetadata:\n  name: x\n", false},
		{"unknown ServiceMonitor field", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: x\nspec:\n  endpoint: []\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeTyped("test", []byte(tt.text))
			if (err == nil) != tt.ok {
				t.Errorf("decodeTyped: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// k8sFS copies the k8s directory into an in-memory file system at /k8s, with one extra
// kustomization per overlay that adds the monitoring component, at /with-monitoring/<overlay>.
func k8sFS(t *testing.T) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir("k8s", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile("/"+filepath.ToSlash(p), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range credentialOverlays {
		k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"+
			"resources: [../../k8s/overlays/%s]\ncomponents: [../../k8s/components/monitoring]\n", o)
		if err := mem.WriteFile("/with-monitoring/"+o+"/kustomization.yaml", []byte(k)); err != nil {
			t.Fatal(err)
		}
		k = strings.Replace(k, "components/monitoring", "components/reconcile", 1)
		if err := mem.WriteFile("/with-reconcile/"+o+"/kustomization.yaml", []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	return mem
}

// kustomizeBuild is `kustomize build dir` (kubectl apply -k) with kustomize's defaults.
func kustomizeBuild(fsys filesys.FileSystem, dir string) ([]byte, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return m.AsYaml()
}

func TestKustomize(t *testing.T) {
	fsys := k8sFS(t)
	given := k8sFileObjects(t, exampleSecrets)
	examples, err := os.ReadFile(exampleSecrets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeTyped(exampleSecrets, examples); err != nil {
		t.Errorf("%v", err)
	}
	for _, o := range given {
		if o.Kind != "Secret" || o.Metadata.Annotations["authflow.io/placeholder"] == "" {
			t.Errorf("%s: examples/secrets.yaml holds placeholder Secrets only", o)
		}
	}

	sets := map[string]k8sSet{}
	for _, overlay := range credentialOverlays {
		for _, monitoring := range []bool{false, true} {
			dir := "/k8s/overlays/" + overlay
			if monitoring {
				dir = "/with-monitoring/" + overlay
			}
			out, err := kustomizeBuild(fsys, dir)
			if err != nil {
				t.Fatal(err)
			}
			set := k8sSet{
				name:       dir,
				objs:       k8sObjectsFromYAML(t, dir, out),
				given:      given,
				namespace:  true,
				monitoring: monitoring,
				imds:       overlay == "managed-identity",
				ingress:    true,
			}
			t.Run(strings.TrimPrefix(dir, "/"), func(t *testing.T) {
				if _, err := decodeTyped(dir, out); err != nil {
					t.Error(err)
				}
				checkK8sSet(t, set)
			})
			if !monitoring {
				sets[overlay] = set
			}
		}
	}
	for _, overlay := range credentialOverlays {
		t.Run("with-reconcile/"+overlay, func(t *testing.T) { checkReconcileComponent(t, fsys, overlay, given) })
	}
	t.Run("credential variants", func(t *testing.T) {
		checkCredentialVariants(t, sets["secret"], sets["workload-identity"], sets["managed-identity"])
	})
	t.Run("base", func(t *testing.T) {
		out, err := kustomizeBuild(fsys, "/k8s/base")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeTyped("base", out); err != nil {
			t.Error(err)
		}
	})
}

// TestKustomizeUsesEveryFile: every manifest under k8s/ is a resource, patch or component of
// some kustomization, or an example; a stray file would be applied by nobody.
func TestKustomizeUsesEveryFile(t *testing.T) {
	used := map[string]bool{}
	var manifests []string
	err := filepath.WalkDir("k8s", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".yaml" {
			return err
		}
		p = filepath.ToSlash(p)
		if path.Base(p) != "kustomization.yaml" {
			manifests = append(manifests, p)
			return nil
		}
		var k struct {
			Resources  []string `yaml:"resources"`
			Components []string `yaml:"components"`
			Patches    []struct {
				Path string `yaml:"path"`
			} `yaml:"patches"`
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := yaml.Unmarshal(data, &k); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		refs := append(slices.Clone(k.Resources), k.Components...)
		for _, pt := range k.Patches {
			refs = append(refs, pt.Path)
		}
		for _, r := range refs {
			used[path.Join(path.Dir(p), r)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range manifests {
		if !used[m] && !strings.HasPrefix(m, "k8s/examples/") {
			t.Errorf("%s is in no kustomization", m)
		}
	}
}

// checkReconcileComponent builds an overlay with components/reconcile: the set passes the
// checks of every set, and the CronJob runs one `authflow reconcile --apply` at a time with
// flags (as AUTHFLOW_ twins) the command has, its files from the Secret authflow-reconcile.
func checkReconcileComponent(t *testing.T, fsys filesys.FileSystem, overlay string, given []k8sObject) {
	dir := "/with-reconcile/" + overlay
	out, err := kustomizeBuild(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeTyped(dir, out)
	if err != nil {
		t.Fatal(err)
	}
	// The worker's checks, for everything but the sweep's own NetworkPolicy (no metrics,
	// so no ingress at all), which is checked below.
	all := k8sObjectsFromYAML(t, dir, out)
	var np []k8sObject
	rest := slices.DeleteFunc(slices.Clone(all), func(o k8sObject) bool {
		mine := o.Kind == "NetworkPolicy" && o.Metadata.Name == "authflow-reconcile"
		if mine {
			np = append(np, o)
		}
		return mine
	})
	checkK8sSet(t, k8sSet{name: dir, objs: rest, given: given, namespace: true, imds: overlay == "managed-identity", ingress: true})
	if len(np) != 1 {
		t.Fatalf("%d NetworkPolicies authflow-reconcile, want 1", len(np))
	}
	var pol networkPolicy
	np[0].decode(t, &pol)
	if len(pol.Spec.Ingress) != 0 || !slices.Contains(pol.Spec.PolicyTypes, "Ingress") || !slices.Contains(pol.Spec.PolicyTypes, "Egress") {
		t.Errorf("%s: want no ingress at all and both policy types, got %+v", np[0], pol.Spec)
	}
	var ports []string
	for _, eg := range pol.Spec.Egress {
		for _, p := range eg.Ports {
			ports = append(ports, fmt.Sprint(p.Port))
		}
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []string{"4222", "443", "53", "53"}) {
		t.Errorf("%s: egress ports %v, want NATS, DNS and HTTPS only", np[0], ports)
	}
	var jobs []*batchv1.CronJob
	for _, o := range objs {
		if cj, ok := o.(*batchv1.CronJob); ok {
			jobs = append(jobs, cj)
		}
	}
	if len(jobs) != 1 {
		t.Fatalf("%d CronJobs, want 1", len(jobs))
	}
	cj := jobs[0]
	if !selects(pol.Spec.PodSelector.MatchLabels, cj.Spec.JobTemplate.Spec.Template.Labels) {
		t.Errorf("%s: podSelector %v does not select the sweep's pods", np[0], pol.Spec.PodSelector.MatchLabels)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || cj.Spec.Schedule == "" {
		t.Errorf("concurrencyPolicy %q, schedule %q: want Forbid and a schedule", cj.Spec.ConcurrencyPolicy, cj.Spec.Schedule)
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !slices.Contains(images, c.Image) || len(c.Args) < 2 || c.Args[0] != "reconcile" || !slices.Contains(c.Args, "--apply") {
		t.Errorf("image %q, args %q", c.Image, c.Args)
	}
	// The reconcile command's flags, as AUTHFLOW_ variables (docs/cli.md).
	known := []string{"AUTHFLOW_DESIRED", "AUTHFLOW_FORMAT", "AUTHFLOW_SIGN_SEED", "AUTHFLOW_NATS_URL", "AUTHFLOW_GRAPH_URL",
		"AUTHFLOW_GRAPH_TOKEN", "AUTHFLOW_RATE", "AUTHFLOW_CONCURRENCY", "AUTHFLOW_DEFAULT_REGION", "AUTHFLOW_NATS_INBOX_PREFIX"}
	names := map[string]bool{}
	for _, e := range c.Env {
		names[e.Name] = true
		if strings.HasPrefix(e.Name, "AUTHFLOW_") && !slices.Contains(known, e.Name) {
			t.Errorf("env %s is no flag of authflow reconcile", e.Name)
		}
	}
	for _, want := range []string{"AUTHFLOW_DESIRED", "AUTHFLOW_SIGN_SEED", "AUTHFLOW_NATS_URL"} {
		if !names[want] {
			t.Errorf("no %s", want)
		}
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container securityContext %+v", sc)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("pod securityContext %+v", pod.SecurityContext)
	}
	var fromSecret bool
	for _, v := range pod.Volumes {
		fromSecret = fromSecret || v.Secret != nil && v.Secret.SecretName == "authflow-reconcile"
	}
	if !fromSecret {
		t.Error("the desired file and seed do not come from the Secret authflow-reconcile")
	}
	if !slices.ContainsFunc(given, func(o k8sObject) bool { return o.Kind == "Secret" && o.Metadata.Name == "authflow-reconcile" }) {
		t.Error("examples/secrets.yaml does not show the Secret authflow-reconcile")
	}
}
