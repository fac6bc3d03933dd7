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
