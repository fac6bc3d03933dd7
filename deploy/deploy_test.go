package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// The tests run in the deploy directory: every path below is relative to it.

// images are the only images a deployment file may name: the ones build-images.sh builds.
// Nothing can be pulled here.
var images = []string{"authflow:dev", "authflow-nats:dev"}

// ---------------------------------------------------------------------------------------
// Every manifest parses.

// manifestFiles returns the YAML and JSON files under the deploy directory.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "." {
			return filepath.SkipDir
		}
		// Helm templates are Go templates, not YAML: helm_test.go renders them.
		if d.IsDir() && filepath.ToSlash(path) == chartDir+"/templates" {
			return filepath.SkipDir
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk deploy: %v", err)
	}
	sort.Strings(files)
	return files
}

// yamlDocs decodes every document of a (multi-document) YAML file. Empty documents are
// dropped; duplicate keys and syntax errors are errors.
func yamlDocs(path string) ([]*yaml.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s document %d: %w", path, len(docs)+1, err)
		}
		if n.Kind == 0 || (n.Kind == yaml.DocumentNode && len(n.Content) == 0) {
			continue
		}
		// Decoding into a node keeps duplicate keys; decoding into a value rejects them.
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("parse %s document %d: %w", path, len(docs)+1, err)
		}
		docs = append(docs, &n)
	}
}

func TestEveryManifestParses(t *testing.T) {
	files := manifestFiles(t)
	// The deployment has at least these; finding fewer means the walk is broken.
	for _, want := range []string{
		"compose.yaml", "emulator-seed.json", "grafana/authflow-dashboard.json",
		"helm/nats-values.yaml", "helm/authflow/values.yaml", "helm/authflow/values.schema.json",
		"k8s/base/deployment.yaml", "k8s/overlays/secret/kustomization.yaml", "policy/dev-policy.yaml",
	} {
		if !slices.Contains(files, filepath.FromSlash(want)) {
			t.Errorf("manifest %s not found (found %v)", want, files)
		}
	}
	for _, path := range files {
		t.Run(filepath.ToSlash(path), func(t *testing.T) {
			if filepath.Ext(path) == ".json" {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				var v any
				if err := json.Unmarshal(data, &v); err != nil {
					t.Fatalf("parse %s: %v", path, err)
				}
				return
			}
			docs, err := yamlDocs(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) == 0 {
				t.Fatalf("%s holds no YAML document", path)
			}
		})
	}
}

func TestYAMLParserRejectsBadInput(t *testing.T) {
	// The checks above rely on the parser rejecting these; make sure it does.
	tests := []struct{ name, text string }{
		{"duplicate key", "a: 1\na: 2\n"},
		{"bad indentation", "a:\n  b: 1\n c: 2\n"},
		{"unclosed flow", "a: [1, 2\n"},
		{"tab indentation", "a:\n\tb: 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := yamlDocs(path); err == nil {
				t.Fatalf("yamlDocs(%q) succeeded, want an error", tt.text)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------
// Kubernetes.

type metadata struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type k8sObject struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   metadata `yaml:"metadata"`

	path string
	node *yaml.Node
}

func (o k8sObject) String() string { return fmt.Sprintf("%s %s (%s)", o.Kind, o.Metadata.Name, o.path) }

func (o k8sObject) decode(t *testing.T, v any) {
	t.Helper()
	if err := o.node.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", o, err)
	}
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	RunAsGroup               *int64 `yaml:"runAsGroup"`
	FSGroup                  *int64 `yaml:"fsGroup"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	Privileged               *bool  `yaml:"privileged"`
	Capabilities             *struct {
		Add  []string `yaml:"add"`
		Drop []string `yaml:"drop"`
	} `yaml:"capabilities"`
	SeccompProfile *struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type container struct {
	Name    string         `yaml:"name"`
	Image   string         `yaml:"image"`
	Command []string       `yaml:"command"`
	Args    []string       `yaml:"args"`
	Env     []containerEnv `yaml:"env"`
	EnvFrom []struct {
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *securityContext `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type containerEnv struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
		ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
		FieldRef        *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	HTTPGet *struct {
		Path   string `yaml:"path"`
		Port   any    `yaml:"port"`
		Scheme string `yaml:"scheme"`
	} `yaml:"httpGet"`
}

type podSpec struct {
	ServiceAccountName           string           `yaml:"serviceAccountName"`
	AutomountServiceAccountToken *bool            `yaml:"automountServiceAccountToken"`
	SecurityContext              *securityContext `yaml:"securityContext"`
	Containers                   []container      `yaml:"containers"`
	InitContainers               []container      `yaml:"initContainers"`
	Volumes                      []podVolume      `yaml:"volumes"`
}

type podVolume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode *int32 `yaml:"defaultMode"`
		Items       []struct {
			Key  string `yaml:"key"`
			Path string `yaml:"path"`
			Mode *int32 `yaml:"mode"`
		} `yaml:"items"`
	} `yaml:"secret"`
}

type deployment struct {
	Spec struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata metadata `yaml:"metadata"`
			Spec     podSpec  `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type service struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type serviceMonitor struct {
	Spec struct {
		Selector          labelSelector `yaml:"selector"`
		NamespaceSelector struct {
			MatchNames []string `yaml:"matchNames"`
		} `yaml:"namespaceSelector"`
		Endpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

type pdb struct {
	Spec struct {
		MinAvailable   any           `yaml:"minAvailable"`
		MaxUnavailable any           `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type netPeer struct {
	NamespaceSelector *labelSelector `yaml:"namespaceSelector"`
	PodSelector       *labelSelector `yaml:"podSelector"`
	IPBlock           *struct {
		CIDR   string   `yaml:"cidr"`
		Except []string `yaml:"except"`
	} `yaml:"ipBlock"`
}

type netPort struct {
	Port     any    `yaml:"port"`
	Protocol string `yaml:"protocol"`
}

type networkPolicy struct {
	Spec struct {
		PodSelector labelSelector `yaml:"podSelector"`
		PolicyTypes []string      `yaml:"policyTypes"`
		Ingress     []struct {
			From  []netPeer `yaml:"from"`
			Ports []netPort `yaml:"ports"`
		} `yaml:"ingress"`
		Egress []struct {
			To    []netPeer `yaml:"to"`
			Ports []netPort `yaml:"ports"`
		} `yaml:"egress"`
	} `yaml:"spec"`
}

type secret struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

type configMap struct {
	Data map[string]string `yaml:"data"`
}

// clusterScoped are the kinds without a namespace among those we ship.
var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true}

// k8sFileObjects reads every object of a (multi-document) YAML file.
func k8sFileObjects(t *testing.T, path string) []k8sObject {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return k8sObjectsFromYAML(t, path, data)
}

// k8sObjectsFromYAML decodes the objects of a multi-document YAML stream: a file, or what
// kustomize or helm rendered. Duplicate keys and syntax errors fail the test.
func k8sObjectsFromYAML(t *testing.T, name string, data []byte) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var objs []k8sObject
	for i := 1; ; i++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("parse %s document %d: %v", name, i, err)
		}
		if doc.Kind == 0 || (doc.Kind == yaml.DocumentNode && len(doc.Content) == 0) {
			continue
		}
		var v any
		if err := doc.Decode(&v); err != nil { // rejects duplicate keys
			t.Fatalf("parse %s document %d: %v", name, i, err)
		}
		if v == nil {
			continue
		}
		o := k8sObject{path: fmt.Sprintf("%s#%d", name, i), node: &doc}
		if err := doc.Decode(&o); err != nil {
			t.Fatalf("decode %s: %v", o.path, err)
		}
		objs = append(objs, o)
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// k8sSet is one set of objects that is applied together (a kustomize build or a helm
// release), with what it must hold.
type k8sSet struct {
	name string
	objs []k8sObject
	// given are the objects the operator creates from a secret store (examples/secrets.yaml):
	// the set may refer to them but must not contain them.
	given []k8sObject
	// namespace: the set creates the namespace; monitoring: it holds the Prometheus Operator
	// objects; imds: its credential is managed identity, which needs 169.254.169.254:80;
	// ingress: it runs the HTTP ingress beside the worker.
	namespace, monitoring, imds, ingress bool
}

// checkK8sSet checks one set of objects that is applied together.
func checkK8sSet(t *testing.T, set k8sSet) {
	byKind := map[string][]k8sObject{}
	seen := map[string]string{}
	for _, o := range set.objs {
		if o.Kind == "Secret" {
			t.Errorf("%s: a Secret in the set would overwrite the one created from the secret store", o)
		}
		if !set.monitoring && strings.HasPrefix(o.APIVersion, "monitoring.coreos.com/") {
			t.Errorf("%s: Prometheus Operator kinds fail without its CRDs: only with monitoring", o)
		}
	}
	for _, o := range append(slices.Clone(set.objs), set.given...) {
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: apiVersion, kind and metadata.name are required (got %q, %q, %q)",
				o.path, o.APIVersion, o.Kind, o.Metadata.Name)
			continue
		}
		switch {
		case clusterScoped[o.Kind] && o.Metadata.Namespace != "":
			t.Errorf("%s: cluster-scoped, must not set a namespace", o)
		case !clusterScoped[o.Kind] && o.Metadata.Namespace != "authflow":
			t.Errorf("%s: namespace %q, want authflow", o, o.Metadata.Namespace)
		}
		key := o.Kind + "/" + o.Metadata.Namespace + "/" + o.Metadata.Name
		if prev, dup := seen[key]; dup {
			t.Errorf("%s: defined twice (also %s)", o, prev)
		}
		seen[key] = o.path
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	want := []string{"ServiceAccount", "Secret", "ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "NetworkPolicy"}
	if set.namespace {
		want = append(want, "Namespace")
	}
	if set.monitoring {
		want = append(want, "ServiceMonitor", "PrometheusRule")
	}
	for _, kind := range want {
		if len(byKind[kind]) == 0 {
			t.Errorf("no %s among the manifests", kind)
		}
	}
	if ns := byKind["Namespace"]; len(ns) == 1 && ns[0].Metadata.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("%s: want label pod-security.kubernetes.io/enforce=restricted", ns[0])
	}
	named := func(kind, name string) (k8sObject, bool) {
		for _, o := range byKind[kind] {
			if o.Metadata.Name == name {
				return o, true
			}
		}
		return k8sObject{}, false
	}
	secretHasKey := func(name, key string) bool {
		o, ok := named("Secret", name)
		if !ok {
			return false
		}
		var s secret
		o.decode(t, &s)
		_, inData := s.Data[key]
		_, inString := s.StringData[key]
		return key == "" || inData || inString
	}

	for _, o := range byKind["Secret"] {
		// Real secrets come from a secret store; a committed one is a marked placeholder.
		if o.Metadata.Annotations["authflow.io/placeholder"] == "" {
			t.Errorf("%s: a committed Secret must carry the authflow.io/placeholder annotation", o)
		}
	}

	var pods []metadata
	for _, o := range byKind["Deployment"] {
		var d deployment
		o.decode(t, &d)
		checkDeployment(t, o, d, named, secretHasKey)
		pods = append(pods, d.Spec.Template.Metadata)
		// Every named port of the pod, for the Service and ServiceMonitor checks.
		for _, svcObj := range byKind["Service"] {
			var svc service
			svcObj.decode(t, &svc)
			if !selects(svc.Spec.Selector, d.Spec.Template.Metadata.Labels) {
				continue
			}
			for _, p := range svc.Spec.Ports {
				name, ok := p.TargetPort.(string)
				if !ok {
					continue
				}
				found := false
				for _, c := range d.Spec.Template.Spec.Containers {
					for _, cp := range c.Ports {
						found = found || cp.Name == name
					}
				}
				if !found {
					t.Errorf("%s: targetPort %q is no named port of %s", svcObj, name, o)
				}
			}
		}
	}
	selectsAPod := func(sel map[string]string) bool {
		return slices.ContainsFunc(pods, func(m metadata) bool { return selects(sel, m.Labels) })
	}
	// componentOf is the component (worker, ingress) of the pods a selector selects.
	componentOf := func(sel map[string]string) string {
		i := slices.IndexFunc(pods, func(m metadata) bool { return selects(sel, m.Labels) })
		if i < 0 {
			return ""
		}
		return pods[i].Labels[componentLabel]
	}
	for _, c := range []string{"worker", "ingress"} {
		has := slices.ContainsFunc(pods, func(m metadata) bool { return m.Labels[componentLabel] == c })
		switch want := c == "worker" || set.ingress; {
		case want && !has:
			t.Errorf("no Deployment of component %s", c)
		case !want && has:
			t.Errorf("a Deployment of component %s, which this set must not run", c)
		}
	}

	for _, o := range byKind["PodDisruptionBudget"] {
		var p pdb
		o.decode(t, &p)
		if fmt.Sprint(p.Spec.MinAvailable) != "1" {
			t.Errorf("%s: minAvailable %v, want 1", o, p.Spec.MinAvailable)
		}
		if !selectsAPod(p.Spec.Selector.MatchLabels) {
			t.Errorf("%s: selector %v selects no Deployment's pods", o, p.Spec.Selector.MatchLabels)
		}
	}
	for _, o := range byKind["Service"] {
		var s service
		o.decode(t, &s)
		if !selectsAPod(s.Spec.Selector) {
			t.Errorf("%s: selector %v selects no Deployment's pods", o, s.Spec.Selector)
		}
	}
	for _, o := range byKind["ServiceMonitor"] {
		if o.APIVersion != "monitoring.coreos.com/v1" {
			t.Errorf("%s: apiVersion %q, want monitoring.coreos.com/v1", o, o.APIVersion)
		}
		var sm serviceMonitor
		o.decode(t, &sm)
		var ports []string
		for _, so := range byKind["Service"] {
			if !selects(sm.Spec.Selector.MatchLabels, so.Metadata.Labels) {
				continue
			}
			var s service
			so.decode(t, &s)
			for _, p := range s.Spec.Ports {
				ports = append(ports, p.Name)
			}
		}
		if len(ports) == 0 {
			t.Errorf("%s: selector %v selects no Service", o, sm.Spec.Selector.MatchLabels)
		}
		if len(sm.Spec.Endpoints) == 0 {
			t.Errorf("%s: no endpoints", o)
		}
		for _, ep := range sm.Spec.Endpoints {
			if !slices.Contains(ports, ep.Port) {
				t.Errorf("%s: endpoint port %q is not a port of the selected Service (%v)", o, ep.Port, ports)
			}
			if ep.Path != "/metrics" {
				t.Errorf("%s: endpoint path %q, want /metrics", o, ep.Path)
			}
		}
	}
	for _, o := range byKind["NetworkPolicy"] {
		var np networkPolicy
		o.decode(t, &np)
		component := componentOf(np.Spec.PodSelector.MatchLabels)
		checkNetworkPolicy(t, o, np, selectsAPod, component, set.imds && component == "worker")
	}
}

func checkDeployment(t *testing.T, o k8sObject, d deployment,
	named func(kind, name string) (k8sObject, bool), secretHasKey func(name, key string) bool) {
	t.Helper()
	spec := d.Spec
	if spec.Replicas == nil {
		t.Errorf("%s: replicas unset (1), want at least 2", o)
	} else if *spec.Replicas < 2 {
		t.Errorf("%s: replicas %d, want at least 2", o, *spec.Replicas)
	}
	if !selects(spec.Selector.MatchLabels, spec.Template.Metadata.Labels) {
		t.Errorf("%s: selector %v does not select its own pod labels %v", o, spec.Selector.MatchLabels, spec.Template.Metadata.Labels)
	}
	pod := spec.Template.Spec
	if pod.ServiceAccountName == "" {
		t.Errorf("%s: no serviceAccountName", o)
	} else if _, ok := named("ServiceAccount", pod.ServiceAccountName); !ok {
		t.Errorf("%s: ServiceAccount %q is not defined", o, pod.ServiceAccountName)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: the worker needs no Kubernetes API token: set automountServiceAccountToken: false", o)
	}
	podSC := pod.SecurityContext
	if podSC == nil || podSC.SeccompProfile == nil || podSC.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("%s: want pod securityContext.seccompProfile.type RuntimeDefault", o)
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil {
			if _, ok := named("ConfigMap", v.ConfigMap.Name); !ok {
				t.Errorf("%s: volume %s: ConfigMap %q is not defined", o, v.Name, v.ConfigMap.Name)
			}
		}
		if v.Secret != nil && !secretHasKey(v.Secret.SecretName, "") {
			t.Errorf("%s: volume %s: Secret %q is not defined", o, v.Name, v.Secret.SecretName)
		}
	}
	if len(pod.Containers) == 0 {
		t.Fatalf("%s: no containers", o)
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		where := fmt.Sprintf("%s container %s", o, c.Name)
		if !slices.Contains(images, c.Image) && !strings.Contains(c.Image, "@sha256:") {
			t.Errorf("%s: image %q is neither a locally built image %v nor pinned by digest", where, c.Image, images)
		}
		// A container's own setting wins over the pod's.
		nonRoot := effective(c.SecurityContext, podSC, func(sc *securityContext) *bool { return sc.RunAsNonRoot })
		if nonRoot == nil || !*nonRoot {
			t.Errorf("%s: must run as non-root: want runAsNonRoot: true", where)
		}
		uid := effective(c.SecurityContext, podSC, func(sc *securityContext) *int64 { return sc.RunAsUser })
		if uid == nil || *uid == 0 {
			t.Errorf("%s: runAsUser must be a non-zero uid (the images run as 65532)", where)
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no securityContext", where)
		default:
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: want readOnlyRootFilesystem: true", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: want allowPrivilegeEscalation: false", where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: want capabilities drop [ALL] and nothing added", where)
			}
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("%s: want cpu and memory requests and a memory limit, got %+v", where, c.Resources)
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !secretHasKey(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key) {
				t.Errorf("%s: env %s: Secret %s has no key %q", where, e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
			if strings.Contains(e.Value, "0.0.0.0") {
				t.Errorf("%s: env %s listens on 0.0.0.0", where, e.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil && !secretHasKey(ef.SecretRef.Name, "") {
				t.Errorf("%s: envFrom Secret %q is not defined", where, ef.SecretRef.Name)
			}
		}
		for _, a := range append(slices.Clone(c.Command), c.Args...) {
			if strings.Contains(a, "0.0.0.0") {
				t.Errorf("%s: argument %q listens on 0.0.0.0", where, a)
			}
		}
	}
	main := pod.Containers[0]
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"livenessProbe", main.LivenessProbe, "/healthz"}, {"readinessProbe", main.ReadinessProbe, "/readyz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil || pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s: want %s httpGet %s", o, pr.name, pr.path)
		}
	}
	switch c := spec.Template.Metadata.Labels[componentLabel]; c {
	case "worker":
		checkWorker(t, o, pod, secretHasKey)
	case "ingress":
		checkIngress(t, o, pod, named, secretHasKey)
	default:
		t.Errorf("%s: pod label %s %q, want worker or ingress", o, componentLabel, c)
	}
}

// componentLabel tells the worker's and the ingress's objects apart.
const componentLabel = "app.kubernetes.io/component"

// checkWorker checks what is particular to the worker's pods.
func checkWorker(t *testing.T, o k8sObject, pod podSpec, secretHasKey func(name, key string) bool) {
	t.Helper()
	worker := pod.Containers[0]
	if !slices.Contains(worker.Args, "worker") {
		t.Errorf("%s: container %s does not run `authflow worker` (args %v)", o, worker.Name, worker.Args)
	}
	env := map[string]string{}
	for _, e := range worker.Env {
		env[e.Name] = e.Value
	}
	if v := env["AUTHFLOW_STREAM_REPLICAS"]; v != "3" {
		t.Errorf("%s: AUTHFLOW_STREAM_REPLICAS %q, want 3", o, v)
	}
	if v := env["AUTHFLOW_NATS_INBOX_PREFIX"]; v != "_INBOX_worker" {
		t.Errorf("%s: AUTHFLOW_NATS_INBOX_PREFIX %q, want _INBOX_worker (the only inbox the worker user may use)", o, v)
	}
	if v := env["AUTHFLOW_METRICS_LISTEN"]; !strings.HasPrefix(v, "$(POD_IP):") {
		t.Errorf("%s: AUTHFLOW_METRICS_LISTEN %q, want the pod's own address $(POD_IP):PORT", o, v)
	}
	checkSealKey(t, o, pod, env["AUTHFLOW_SEAL_KEY_FILE"], secretHasKey)
}

// ingressHTTPSPort is the container port the ingress serves the senders on.
const ingressHTTPSPort = "8443"

// checkIngress checks what is particular to the HTTP ingress's pods: `authflow ingress` over
// HTTPS on the pod's own address with its own NATS inbox, the configuration from a ConfigMap,
// and the TLS files and every file the configuration names (seeds, secrets) mounted read-only,
// mode 0400, from a Secret that has them.
func checkIngress(t *testing.T, o k8sObject, pod podSpec, named func(kind, name string) (k8sObject, bool), secretHasKey func(name, key string) bool) {
	t.Helper()
	c := pod.Containers[0]
	if !slices.Contains(c.Args, "ingress") {
		t.Errorf("%s: container %s does not run `authflow ingress` (args %v)", o, c.Name, c.Args)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if v := env["AUTHFLOW_NATS_INBOX_PREFIX"]; v != ingressInbox {
		t.Errorf("%s: AUTHFLOW_NATS_INBOX_PREFIX %q, want %s (the only inbox the ingress user may use)", o, v, ingressInbox)
	}
	if v := env["AUTHFLOW_LISTEN"]; v != "$(POD_IP):"+ingressHTTPSPort {
		t.Errorf("%s: AUTHFLOW_LISTEN %q, want the pod's own address $(POD_IP):%s", o, v, ingressHTTPSPort)
	}
	if v := env["AUTHFLOW_METRICS_LISTEN"]; !strings.HasPrefix(v, "$(POD_IP):") {
		t.Errorf("%s: AUTHFLOW_METRICS_LISTEN %q, want the pod's own address $(POD_IP):PORT", o, v)
	}
	if !slices.ContainsFunc(c.Ports, func(p struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	}) bool {
		return p.Name == "https" && strconv.Itoa(p.ContainerPort) == ingressHTTPSPort
	}) {
		t.Errorf("%s: no container port https %s", o, ingressHTTPSPort)
	}
	for _, p := range []*probe{c.LivenessProbe, c.ReadinessProbe} {
		if p != nil && p.HTTPGet != nil && p.HTTPGet.Scheme != "HTTPS" {
			t.Errorf("%s: probe of %s over %q: the ingress serves HTTPS", o, p.HTTPGet.Path, p.HTTPGet.Scheme)
		}
	}
	// mounted returns the volume a file is in, checking that it is mounted read-only.
	mounted := func(file string) (podVolume, bool) {
		dir := strings.TrimSuffix(path.Dir(file), "/")
		for _, m := range c.VolumeMounts {
			if m.MountPath != dir {
				continue
			}
			if !m.ReadOnly {
				t.Errorf("%s: volume mount %s at %s must be readOnly", o, m.Name, dir)
			}
			i := slices.IndexFunc(pod.Volumes, func(v podVolume) bool { return v.Name == m.Name })
			if i < 0 {
				return podVolume{}, false
			}
			return pod.Volumes[i], true
		}
		return podVolume{}, false
	}
	secretFile := func(what, file string) {
		t.Helper()
		v, ok := mounted(file)
		if file == "" || !path.IsAbs(file) || !ok || v.Secret == nil {
			t.Errorf("%s: %s %q is not a file of a mounted Secret", o, what, file)
			return
		}
		base := path.Base(file)
		if !secretHasKey(v.Secret.SecretName, base) {
			t.Errorf("%s: %s %s: Secret %s has no key %s", o, what, file, v.Secret.SecretName, base)
		}
		mode := v.Secret.DefaultMode
		for _, it := range v.Secret.Items {
			if it.Path == base && it.Mode != nil {
				mode = it.Mode
			}
		}
		if mode == nil || *mode != 0o400 {
			t.Errorf("%s: %s %s: file mode %v, want 0400 (256)", o, what, file, mode)
		}
	}
	secretFile("AUTHFLOW_TLS_CERT", env["AUTHFLOW_TLS_CERT"])
	secretFile("AUTHFLOW_TLS_KEY", env["AUTHFLOW_TLS_KEY"])
	config := env["AUTHFLOW_CONFIG"]
	v, ok := mounted(config)
	if !ok || v.ConfigMap == nil {
		t.Errorf("%s: AUTHFLOW_CONFIG %q is not a file of a mounted ConfigMap", o, config)
		return
	}
	cmObj, ok := named("ConfigMap", v.ConfigMap.Name)
	if !ok {
		return // reported with the volumes
	}
	var cm configMap
	cmObj.decode(t, &cm)
	text := cm.Data[path.Base(config)]
	if text == "" {
		t.Errorf("%s: ConfigMap %s has no %s", o, v.ConfigMap.Name, path.Base(config))
		return
	}
	refs := ingressFileRefs(text)
	if len(refs) == 0 {
		t.Errorf("%s: the ingress configuration names no file: its seeds must come from files", o)
	}
	for _, ref := range refs {
		secretFile("configuration file:", ref)
	}
	if sc := pod.SecurityContext; sc == nil || sc.FSGroup == nil || sc.RunAsGroup == nil || *sc.FSGroup != *sc.RunAsGroup {
		t.Errorf("%s: pod securityContext.fsGroup must equal runAsGroup, or the ingress cannot read its 0400 files", o)
	}
}

// ingressFileRefs returns the paths of the file: references of an ingress configuration.
func ingressFileRefs(config string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`file:([^\s\]},"']+)`).FindAllStringSubmatch(config, -1) {
		out = append(out, m[1])
	}
	return out
}

// sealKeySecret and sealKeyFile are where the worker's sealing seed lives on Kubernetes.
const (
	sealKeySecret = "authflow-seal-key"
	sealKeyFile   = "seal.seed"
)

// checkSealKey checks that the worker reads its sealing seed (AUTHFLOW_SEAL_KEY_FILE) from the
// authflow-seal-key Secret, mounted read-only, mode 0400, readable by the worker's group.
func checkSealKey(t *testing.T, o k8sObject, pod podSpec, file string, secretHasKey func(name, key string) bool) {
	t.Helper()
	if file == "" {
		t.Errorf("%s: no AUTHFLOW_SEAL_KEY_FILE: every replica must seal with the same key", o)
		return
	}
	if !secretHasKey(sealKeySecret, sealKeyFile) {
		t.Errorf("%s: Secret %s with key %s is not defined", o, sealKeySecret, sealKeyFile)
	}
	dir, base := path.Split(file)
	dir = strings.TrimSuffix(dir, "/")
	found := false
	for _, m := range pod.Containers[0].VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		found = true
		if !m.ReadOnly {
			t.Errorf("%s: volume mount %s at %s must be readOnly", o, m.Name, dir)
		}
		i := slices.IndexFunc(pod.Volumes, func(v podVolume) bool { return v.Name == m.Name })
		if i < 0 || pod.Volumes[i].Secret == nil || pod.Volumes[i].Secret.SecretName != sealKeySecret {
			t.Errorf("%s: %s is not mounted from the Secret %s", o, dir, sealKeySecret)
			continue
		}
		sec := pod.Volumes[i].Secret
		mode, ok := sec.DefaultMode, false
		for _, it := range sec.Items {
			if it.Key == sealKeyFile && it.Path == base {
				ok = true
				if it.Mode != nil {
					mode = it.Mode
				}
			}
		}
		if !ok {
			t.Errorf("%s: volume %s does not project key %s to %s", o, m.Name, sealKeyFile, base)
		}
		if mode == nil || *mode != 0o400 {
			t.Errorf("%s: volume %s: file mode %v, want 0400 (256)", o, m.Name, mode)
		}
	}
	if !found {
		t.Errorf("%s: AUTHFLOW_SEAL_KEY_FILE %q: no volume is mounted at %s", o, file, dir)
	}
	// A 0400 Secret file is root's; fsGroup makes the kubelet hand it to the worker's group.
	if sc := pod.SecurityContext; sc == nil || sc.FSGroup == nil || sc.RunAsGroup == nil || *sc.FSGroup != *sc.RunAsGroup {
		t.Errorf("%s: pod securityContext.fsGroup must equal runAsGroup, or the worker cannot read its 0400 seal key", o)
	}
}

// effective returns the field of the container's security context when set there, else
// the pod's.
func effective[T any](ctr, pod *securityContext, field func(*securityContext) *T) *T {
	if ctr != nil && field(ctr) != nil {
		return field(ctr)
	}
	if pod != nil {
		return field(pod)
	}
	return nil
}

// checkNetworkPolicy checks the policy of one component's pods: the worker's accept metrics
// scrapes only; the ingress's also HTTPS from anywhere, on its HTTPS port alone. Both reach
// NATS, DNS and HTTPS on public addresses (Graph, or the results webhooks), and, for the
// worker with managed identity, the metadata endpoint.
func checkNetworkPolicy(t *testing.T, o k8sObject, np networkPolicy, selectsAPod func(map[string]string) bool, component string, imds bool) {
	t.Helper()
	if !selectsAPod(np.Spec.PodSelector.MatchLabels) {
		t.Errorf("%s: podSelector %v selects no Deployment's pods", o, np.Spec.PodSelector.MatchLabels)
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") || !slices.Contains(np.Spec.PolicyTypes, "Egress") {
		t.Errorf("%s: policyTypes %v, want Ingress and Egress", o, np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) == 0 {
		t.Errorf("%s: no ingress rule for metrics", o)
	}
	for _, in := range np.Spec.Ingress {
		if len(in.From) == 0 {
			// The senders of webhooks call from anywhere, but only the ingress, on HTTPS.
			if component != "ingress" || len(in.Ports) != 1 || fmt.Sprint(in.Ports[0].Port) != ingressHTTPSPort {
				t.Errorf("%s: an ingress rule without `from` admits every source (only the ingress's HTTPS port %s may), ports %+v", o, ingressHTTPSPort, in.Ports)
			}
			continue
		}
		for _, f := range in.From {
			if f.NamespaceSelector == nil || f.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" || f.IPBlock != nil {
				t.Errorf("%s: ingress only from the monitoring namespace, got %+v", o, f)
			}
		}
		if len(in.Ports) != 1 || fmt.Sprint(in.Ports[0].Port) != "9090" {
			t.Errorf("%s: ingress only to the metrics port 9090, got %+v", o, in.Ports)
		}
	}
	allowed := map[string]bool{"4222": true, "53": true, "443": true}
	if imds {
		allowed["80"] = true
	}
	got := map[string]bool{}
	for _, eg := range np.Spec.Egress {
		if len(eg.Ports) == 0 {
			t.Errorf("%s: an egress rule without ports allows every port", o)
		}
		if len(eg.To) == 0 {
			t.Errorf("%s: an egress rule without `to` allows every destination", o)
		}
		for _, p := range eg.Ports {
			port := fmt.Sprint(p.Port)
			if !allowed[port] {
				t.Errorf("%s: egress to port %s; only NATS 4222, DNS 53 and HTTPS 443 are allowed (and 80 to the metadata endpoint for managed identity)", o, port)
			}
			got[port] = true
			if port == "80" && (len(eg.To) != 1 || eg.To[0].IPBlock == nil || eg.To[0].IPBlock.CIDR != "169.254.169.254/32") {
				t.Errorf("%s: port 80 only to the instance metadata endpoint 169.254.169.254/32, got %+v", o, eg.To)
			}
		}
		for _, to := range eg.To {
			// Any other rule to a wide block must keep the link-local range (the metadata
			// endpoint) out.
			if b := to.IPBlock; b != nil && b.CIDR == "0.0.0.0/0" && !slices.Contains(b.Except, "169.254.0.0/16") {
				t.Errorf("%s: egress to %s without excepting 169.254.0.0/16 reaches the metadata endpoint", o, b.CIDR)
			}
		}
	}
	for port := range allowed {
		if !got[port] {
			t.Errorf("%s: no egress rule for port %s", o, port)
		}
	}
}

// checkCredentialVariants checks that the Deployments of the credential variants differ
// only where their credential must: the secret one reads authflow-azure, the workload
// identity one carries the webhook's pod label and its ServiceAccount the client id, the
// managed identity one may name a user-assigned identity (AZURE_CLIENT_ID).
func checkCredentialVariants(t *testing.T, secretSet, wiSet, miSet k8sSet) {
	// find returns the worker's object of a kind: its Deployment, the ServiceAccount that
	// runs it, the first of any other kind.
	find := func(set k8sSet, kind string) k8sObject {
		t.Helper()
		is := func(o k8sObject) bool { return o.Kind == kind }
		switch kind {
		case "Deployment":
			is = func(o k8sObject) bool { return o.Kind == kind && o.Metadata.Labels[componentLabel] == "worker" }
		case "ServiceAccount":
			i := slices.IndexFunc(set.objs, func(o k8sObject) bool { return o.Kind == "Deployment" && o.Metadata.Labels[componentLabel] == "worker" })
			if i >= 0 {
				var d deployment
				set.objs[i].decode(t, &d)
				is = func(o k8sObject) bool {
					return o.Kind == kind && o.Metadata.Name == d.Spec.Template.Spec.ServiceAccountName
				}
			}
		}
		i := slices.IndexFunc(set.objs, is)
		if i < 0 {
			t.Fatalf("%s: no %s of the worker", set.name, kind)
		}
		return set.objs[i]
	}
	// The ingress holds no Graph credential: it is the same in every variant.
	ingressObjs := func(set k8sSet) string {
		var all []any
		for _, o := range set.objs {
			if o.Metadata.Labels["app.kubernetes.io/name"] == "authflow-ingress" {
				var v any
				o.decode(t, &v)
				all = append(all, v)
			}
		}
		if len(all) == 0 && set.ingress {
			t.Errorf("%s: no ingress objects", set.name)
		}
		return mustJSON(t, all)
	}
	for _, set := range []k8sSet{wiSet, miSet} {
		if ingressObjs(set) != ingressObjs(secretSet) {
			t.Errorf("%s: the ingress's objects differ from %s's: only the worker's credential may vary", set.name, secretSet.name)
		}
	}
	normal := func(set k8sSet) (k8sObject, string) {
		t.Helper()
		o := find(set, "Deployment")
		var d deployment
		o.decode(t, &d)
		pod := &d.Spec.Template
		delete(pod.Metadata.Labels, "azure.workload.identity/use")
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			c.EnvFrom = nil
			c.Env = slices.DeleteFunc(c.Env, func(e containerEnv) bool { return e.Name == "AZURE_CLIENT_ID" })
		}
		return o, mustJSON(t, d)
	}
	so, sd := normal(secretSet)
	for _, set := range []k8sSet{wiSet, miSet} {
		if o, d := normal(set); d != sd {
			t.Errorf("%s and %s differ beyond the credential:\n%s\n%s", o, so, d, sd)
		}
	}

	envFrom := func(set k8sSet) []string {
		var d deployment
		find(set, "Deployment").decode(t, &d)
		var names []string
		for _, ef := range d.Spec.Template.Spec.Containers[0].EnvFrom {
			if ef.SecretRef != nil {
				names = append(names, ef.SecretRef.Name)
			}
		}
		return names
	}
	if got := envFrom(secretSet); !slices.Equal(got, []string{"authflow-azure"}) {
		t.Errorf("%s: envFrom Secrets %q, want authflow-azure", secretSet.name, got)
	}
	for _, set := range []k8sSet{wiSet, miSet} {
		if got := envFrom(set); len(got) > 0 {
			t.Errorf("%s: envFrom Secrets %q: this credential needs no secret", set.name, got)
		}
	}

	var wd deployment
	find(wiSet, "Deployment").decode(t, &wd)
	if got := wd.Spec.Template.Metadata.Labels["azure.workload.identity/use"]; got != "true" {
		t.Errorf("%s: pod label azure.workload.identity/use %q, want \"true\"", wiSet.name, got)
	}
	sa := find(wiSet, "ServiceAccount")
	if id := sa.Metadata.Annotations["azure.workload.identity/client-id"]; id == "" {
		t.Errorf("%s: want annotation azure.workload.identity/client-id", sa)
	}
	if wd.Spec.Template.Spec.ServiceAccountName != sa.Metadata.Name {
		t.Errorf("%s: serviceAccountName %q, want %q", wiSet.name, wd.Spec.Template.Spec.ServiceAccountName, sa.Metadata.Name)
	}
	for _, set := range []k8sSet{secretSet, miSet} {
		var d deployment
		find(set, "Deployment").decode(t, &d)
		if _, ok := d.Spec.Template.Metadata.Labels["azure.workload.identity/use"]; ok {
			t.Errorf("%s: the workload identity pod label belongs to the workload identity variant only", set.name)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------------------
// Compose.

// stringOrList is a compose field that is a string or a list of strings.
type stringOrList []string

func (s *stringOrList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*s = strings.Fields(n.Value)
		return nil
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// names is a compose field that is a list of names or a map keyed by name
// (depends_on, networks).
type names []string

func (s *names) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			*s = append(*s, n.Content[i].Value)
		}
		return nil
	}
	return fmt.Errorf("line %d: want a list or a map of names", n.Line)
}

// environment is a compose environment: a list of NAME=VALUE or a map.
type environment map[string]string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	*e = environment{}
	switch n.Kind {
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("line %d: environment entry %q: want NAME=VALUE", n.Line, kv)
			}
			(*e)[k] = v
		}
		return nil
	case yaml.MappingNode:
		var m map[string]string
		if err := n.Decode(&m); err != nil {
			return err
		}
		maps.Copy(*e, m)
		return nil
	}
	return fmt.Errorf("line %d: want a list of NAME=VALUE or a map", n.Line)
}

type composeService struct {
	Image       string       `yaml:"image"`
	Environment environment  `yaml:"environment"`
	Build       any          `yaml:"build"`
	Hostname    string       `yaml:"hostname"`
	Command     stringOrList `yaml:"command"`
	Entrypoint  stringOrList `yaml:"entrypoint"`
	DependsOn   names        `yaml:"depends_on"`
	Networks    names        `yaml:"networks"`
	NetworkMode string       `yaml:"network_mode"`
	Ports       []yaml.Node  `yaml:"ports"`
	Volumes     []yaml.Node  `yaml:"volumes"`
	ReadOnly    bool         `yaml:"read_only"`
	CapDrop     []string     `yaml:"cap_drop"`
	CapAdd      []string     `yaml:"cap_add"`
	SecurityOpt []string     `yaml:"security_opt"`
	Privileged  bool         `yaml:"privileged"`
	User        string       `yaml:"user"`
}

type composeFile struct {
	Version  string                    `yaml:"version"`
	Services map[string]composeService `yaml:"services"`
	Networks map[string]any            `yaml:"networks"`
	Volumes  map[string]any            `yaml:"volumes"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	docs, err := yamlDocs("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents, want 1", len(docs))
	}
	var c composeFile
	if err := docs[0].Decode(&c); err != nil {
		t.Fatalf("decode compose.yaml: %v", err)
	}
	return c
}

// flagValues returns the values of --name in args, in either --name=value or --name value
// form.
func flagValues(args []string, name string) []string {
	var vals []string
	for i := 0; i < len(args); i++ {
		a, ok := strings.CutPrefix(args[i], "-")
		if !ok {
			continue
		}
		a = strings.TrimPrefix(a, "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			vals = append(vals, v)
		} else if a == name && i+1 < len(args) {
			vals = append(vals, args[i+1])
			i++
		}
	}
	return vals
}

func TestFlagValues(t *testing.T) {
	tests := []struct {
		args []string
		name string
		want []string
	}{
		{[]string{"worker", "--stream-replicas=3"}, "stream-replicas", []string{"3"}},
		{[]string{"worker", "--stream-replicas", "3"}, "stream-replicas", []string{"3"}},
		{[]string{"worker", "-stream-replicas=3"}, "stream-replicas", []string{"3"}},
		{[]string{"worker", "--stream-replicas"}, "stream-replicas", nil},
		{[]string{"worker", "--stream-replicas-x=3"}, "stream-replicas", nil},
		{[]string{"worker"}, "stream-replicas", nil},
		{[]string{"stream-replicas=3"}, "stream-replicas", nil},
		{[]string{"--nats-url", "a", "--nats-url=b"}, "nats-url", []string{"a", "b"}},
	}
	for _, tt := range tests {
		if got := flagValues(tt.args, tt.name); !slices.Equal(got, tt.want) {
			t.Errorf("flagValues(%q, %q) = %q, want %q", tt.args, tt.name, got, tt.want)
		}
	}
}

// checkPort reports what is wrong with one compose port entry, or "" when it is bound to
// 127.0.0.1.
func checkPort(n *yaml.Node) (hostPort, problem string) {
	switch n.Kind {
	case yaml.ScalarNode:
		v := strings.TrimSuffix(strings.TrimSuffix(n.Value, "/tcp"), "/udp")
		parts := strings.Split(v, ":")
		if len(parts) != 3 {
			return "", fmt.Sprintf("port %q: bind it to 127.0.0.1 (\"127.0.0.1:HOST:CONTAINER\")", n.Value)
		}
		if parts[0] != "127.0.0.1" {
			return "", fmt.Sprintf("port %q: bound to %q, want 127.0.0.1", n.Value, parts[0])
		}
		return parts[1], ""
	case yaml.MappingNode:
		var p struct {
			HostIP    string `yaml:"host_ip"`
			Published any    `yaml:"published"`
		}
		if err := n.Decode(&p); err != nil {
			return "", fmt.Sprintf("port at line %d: %v", n.Line, err)
		}
		if p.HostIP != "127.0.0.1" {
			return "", fmt.Sprintf("port at line %d: host_ip %q, want 127.0.0.1", n.Line, p.HostIP)
		}
		return fmt.Sprint(p.Published), ""
	}
	return "", fmt.Sprintf("port at line %d: not a string or a map", n.Line)
}

func TestCheckPort(t *testing.T) {
	tests := []struct {
		text string
		ok   bool
	}{
		{`"127.0.0.1:4222:4222"`, true},
		{`"127.0.0.1:4222:4222/tcp"`, true},
		{`{host_ip: 127.0.0.1, published: 4222, target: 4222}`, true},
		{`"4222:4222"`, false},
		{`"4222"`, false},
		{`"0.0.0.0:4222:4222"`, false},
		{`"10.1.2.3:4222:4222"`, false},
		{`{published: 4222, target: 4222}`, false},
		{`{host_ip: 0.0.0.0, published: 4222, target: 4222}`, false},
		{`[1, 2]`, false},
	}
	for _, tt := range tests {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(tt.text), &n); err != nil {
			t.Fatal(err)
		}
		_, problem := checkPort(n.Content[0])
		if ok := problem == ""; ok != tt.ok {
			t.Errorf("checkPort(%s): problem %q, want ok=%v", tt.text, problem, tt.ok)
		}
	}
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	if !strings.HasPrefix(c.Version, "3.") && !strings.HasPrefix(c.Version, "2.") {
		t.Errorf("version %q: docker-compose 1.x needs a 2.x or 3.x file format", c.Version)
	}
	want := []string{"nats-1", "nats-2", "nats-3", "emulator", "worker-1", "worker-2", "ingress"}
	for _, name := range want {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	hostPorts := map[string]string{}
	var natsURLs []string
	for _, name := range []string{"nats-1", "nats-2", "nats-3"} {
		natsURLs = append(natsURLs, "nats://"+name+":4222")
	}
	for name, s := range c.Services {
		t.Run(name, func(t *testing.T) {
			if !slices.Contains(images, s.Image) {
				t.Errorf("image %q: want one of the locally built %v (no registry can be reached)", s.Image, images)
			}
			if s.Build != nil {
				t.Errorf("build: images come from deploy/build-images.sh, not from compose")
			}
			if s.Hostname != name {
				t.Errorf("hostname %q, want the service name %q (servers listen on it)", s.Hostname, name)
			}
			if s.NetworkMode != "" {
				t.Errorf("network_mode %q: use the private network", s.NetworkMode)
			}
			if len(s.Networks) == 0 {
				t.Errorf("no network")
			}
			for _, n := range s.Networks {
				if _, ok := c.Networks[n]; !ok {
					t.Errorf("network %q is not declared", n)
				}
			}
			for _, d := range s.DependsOn {
				if _, ok := c.Services[d]; !ok {
					t.Errorf("depends_on %q: no such service", d)
				}
				if d == name {
					t.Errorf("depends on itself")
				}
			}
			for i := range s.Ports {
				hp, problem := checkPort(&s.Ports[i])
				if problem != "" {
					t.Error(problem)
					continue
				}
				if other, dup := hostPorts[hp]; dup {
					t.Errorf("host port %s also published by %s", hp, other)
				}
				hostPorts[hp] = name
			}
			for i := range s.Volumes {
				v := &s.Volumes[i]
				if v.Kind != yaml.ScalarNode {
					t.Errorf("volume at line %d: use the short form SOURCE:TARGET[:ro]", v.Line)
					continue
				}
				src, _, _ := strings.Cut(v.Value, ":")
				if generated(src) {
					// Made by build-images.sh before compose runs; never committed.
					if !strings.HasSuffix(v.Value, ":ro") {
						t.Errorf("volume %q: mount secrets read-only (:ro)", v.Value)
					}
				} else if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
					if _, err := os.Stat(src); err != nil {
						t.Errorf("volume %q: bind-mount source: %v", v.Value, err)
					}
					if !strings.HasSuffix(v.Value, ":ro") {
						t.Errorf("volume %q: mount configuration read-only (:ro)", v.Value)
					}
				} else if _, ok := c.Volumes[src]; !ok {
					t.Errorf("volume %q: named volume %q is not declared", v.Value, src)
				}
			}
			if !s.ReadOnly {
				t.Errorf("want read_only: true")
			}
			if !slices.Contains(s.CapDrop, "ALL") || len(s.CapAdd) > 0 {
				t.Errorf("want cap_drop [ALL] and no cap_add")
			}
			if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
				t.Errorf("want security_opt no-new-privileges:true")
			}
			if s.Privileged {
				t.Errorf("privileged")
			}
			if s.User == "0" || strings.HasPrefix(s.User, "0:") || s.User == "root" {
				t.Errorf("user %q: runs as root", s.User)
			}
			args := append(slices.Clone([]string(s.Entrypoint)), s.Command...)
			for _, a := range args {
				if strings.Contains(a, "0.0.0.0") {
					t.Errorf("argument %q listens on 0.0.0.0", a)
				}
			}
			switch {
			case strings.HasPrefix(name, "nats-"):
				conf := "./nats/" + name + ".conf:/etc/nats/nats.conf:ro"
				if !slices.ContainsFunc(s.Volumes, func(n yaml.Node) bool { return n.Value == conf }) {
					t.Errorf("want volume %q", conf)
				}
				if got := flagValues(args, "config"); !slices.Equal(got, []string{"/etc/nats/nats.conf"}) {
					t.Errorf("--config %q, want /etc/nats/nats.conf", got)
				}
			case name == "emulator":
				checkListenFlag(t, args, "listen", name)
				checkMountedFlag(t, args, "seed", s.Volumes)
			case strings.HasPrefix(name, "worker-"):
				if len(args) == 0 || args[0] != "worker" {
					t.Errorf("command %q, want `worker ...`", args)
				}
				if got := flagValues(args, "stream-replicas"); !slices.Equal(got, []string{"3"}) {
					t.Errorf("--stream-replicas %q, want 3", got)
				}
				if got := flagValues(args, "nats-inbox-prefix"); !slices.Equal(got, []string{"_INBOX_worker"}) {
					t.Errorf("--nats-inbox-prefix %q, want _INBOX_worker (nats/accounts.conf)", got)
				}
				if got := flagValues(args, "instance"); !slices.Equal(got, []string{name}) {
					t.Errorf("--instance %q, want %q", got, name)
				}
				checkListenFlag(t, args, "metrics-listen", name)
				checkMountedFlag(t, args, "policy", s.Volumes)
				// The flag's environment twin: compose sets the seal key for both workers.
				seal := s.Environment["AUTHFLOW_SEAL_KEY_FILE"]
				if seal == "" {
					t.Errorf("no AUTHFLOW_SEAL_KEY_FILE: both workers must seal with the same key")
				}
				if !slices.ContainsFunc(s.Volumes, func(n yaml.Node) bool { return n.Value == devSealKey+":"+seal+":ro" }) {
					t.Errorf("AUTHFLOW_SEAL_KEY_FILE %q is not mounted from %s", seal, devSealKey)
				}
				urls := flagValues(args, "nats-url")
				if len(urls) != 1 || !slices.Equal(strings.Split(urls[0], ","), natsURLs) {
					t.Errorf("--nats-url %q, want %s", urls, strings.Join(natsURLs, ","))
				}
				for _, dep := range append([]string{"emulator"}, "nats-1", "nats-2", "nats-3") {
					if !slices.Contains(s.DependsOn, dep) {
						t.Errorf("want depends_on %s", dep)
					}
				}
				if got := flagValues(args, "graph-url"); len(got) != 1 || !strings.HasPrefix(got[0], "http://emulator:8080/") {
					t.Errorf("--graph-url %q, want the emulator service", got)
				}
			case name == "ingress":
				if len(args) == 0 || args[0] != "ingress" {
					t.Errorf("command %q, want `ingress ...`", args)
				}
				checkListenFlag(t, args, "listen", name)
				checkListenFlag(t, args, "metrics-listen", name)
				checkMountedFlag(t, args, "config", s.Volumes)
				if got := flagValues(args, "nats-inbox-prefix"); !slices.Equal(got, []string{ingressInbox}) {
					t.Errorf("--nats-inbox-prefix %q, want %s (nats/accounts.conf)", got, ingressInbox)
				}
				urls := flagValues(args, "nats-url")
				if len(urls) != 1 || !slices.Equal(strings.Split(urls[0], ","), natsURLs) {
					t.Errorf("--nats-url %q, want %s", urls, strings.Join(natsURLs, ","))
				}
				// Every seed the configuration names is mounted from secrets/ beside it.
				configs := flagValues(args, "config")
				if len(configs) != 1 {
					break
				}
				text := ""
				for _, v := range s.Volumes {
					if src, target, _ := strings.Cut(strings.TrimSuffix(v.Value, ":ro"), ":"); target == configs[0] {
						text = string(mustRead(t, src))
					}
				}
				for _, ref := range ingressFileRefs(text) {
					target := path.Join(path.Dir(configs[0]), ref)
					if !slices.ContainsFunc(s.Volumes, func(n yaml.Node) bool {
						src, tgt, _ := strings.Cut(strings.TrimSuffix(n.Value, ":ro"), ":")
						return tgt == target && generated(src)
					}) {
						t.Errorf("the ingress configuration names file:%s, but no generated secret is mounted at %s", ref, target)
					}
				}
			}
		})
	}
	// The host reaches the cluster through every node, not one: a client listing all three
	// survives the loss of any.
	for _, name := range []string{"nats-1", "nats-2", "nats-3"} {
		published := slices.ContainsFunc(c.Services[name].Ports, func(n yaml.Node) bool {
			p, err := containerPort(n.Value)
			return err == nil && p == "4222/tcp"
		})
		if !published {
			t.Errorf("%s must publish its client port 4222 on 127.0.0.1 (the host reaches every node)", name)
		}
	}
	if hostPorts["4222"] != "nats-1" {
		t.Errorf("nats-1 must publish 127.0.0.1:4222, the port the docs' first examples use")
	}
}

// TestComposeConfig: every compose implementation on this machine, v2 (`docker compose`)
// and v1 (`docker-compose`), accepts compose.yaml. Where neither is installed the test skips,
// except in CI.
func TestComposeConfig(t *testing.T) {
	tools := [][]string{{"docker", "compose"}, {"docker-compose"}}
	ran := 0
	for _, tool := range tools {
		name := strings.Join(tool, " ")
		if _, err := exec.LookPath(tool[0]); err != nil {
			continue
		}
		if len(tool) == 2 {
			if err := exec.Command(tool[0], tool[1], "version").Run(); err != nil {
				continue // the docker CLI without the compose plugin
			}
		}
		ran++
		args := append(slices.Clone(tool[1:]), "-p", "authflow", "-f", "compose.yaml", "config", "--quiet")
		cmd := exec.Command(tool[0], args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s config: %v\n%s", name, err, out)
		}
	}
	if ran == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("neither `docker compose` nor `docker-compose` is installed (CI is set: compose.yaml must be checked)")
		}
		t.Skip("neither `docker compose` nor `docker-compose` is installed")
	}
}

// TestMakefileCompose: the Makefile runs `docker compose` where the plugin answers, else
// `docker-compose`, and COMPOSE=... overrides the choice.
func TestMakefileCompose(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	// A fake docker whose `compose version` succeeds or fails, first in PATH.
	fakeDocker := func(t *testing.T, plugin bool) string {
		dir := t.TempDir()
		code := "1"
		if plugin {
			code = "0"
		}
		script := "#!/bin/sh\n[ \"$1\" = compose ] && [ \"$2\" = version ] && exit " + code + "\nexit 1\n"
		if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return dir + string(os.PathListSeparator) + os.Getenv("PATH")
	}
	tests := []struct {
		name   string
		plugin bool
		args   []string
		want   string
	}{
		{"v2 plugin present", true, nil, "docker compose -p authflow -f deploy/compose.yaml down -v"},
		{"no v2 plugin", false, nil, "docker-compose -p authflow -f deploy/compose.yaml down -v"},
		{"COMPOSE names v1", true, []string{"COMPOSE=docker-compose"}, "docker-compose -p authflow -f deploy/compose.yaml down -v"},
		{"COMPOSE names v2", false, []string{"COMPOSE=docker compose"}, "docker compose -p authflow -f deploy/compose.yaml down -v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("make", append([]string{"-s", "-n", "-C", "..", "compose-down"}, tt.args...)...)
			cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
				return strings.HasPrefix(kv, "COMPOSE=") || strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "MAKEFLAGS=")
			}), "PATH="+fakeDocker(t, tt.plugin))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("make -n compose-down: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("make -n compose-down %v = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}

// devSealKey is the development sealing seed compose mounts into both workers, devIngressKeys
// the ingress's development signing seeds, one per source. build-images.sh makes them;
// secrets/.gitignore keeps them out of git.
const devSealKey = "./secrets/seal.seed"

var devIngressKeys = []string{"./secrets/ingress-hr-workday.seed", "./secrets/ingress-helpdesk-servicenow.seed", "./secrets/ingress-helpdesk-jira.seed"}

// generated reports whether a bind-mount source is one that build-images.sh makes.
func generated(src string) bool { return src == devSealKey || slices.Contains(devIngressKeys, src) }

func TestDevSealKeyIsGenerated(t *testing.T) {
	script, err := os.ReadFile("build-images.sh")
	if err != nil {
		t.Fatal(err)
	}
	rel := strings.TrimPrefix(devSealKey, "./")
	if !strings.Contains(string(script), `make_key "$deploy_dir/`+rel+`" new-sealing`) {
		t.Errorf("build-images.sh does not make %s with authflow keys new-sealing", rel)
	}
	// The ingress's keys: make_key ".../ingress-$source.seed" new-signing for each source.
	loop := regexp.MustCompile(`for source in ([a-z -]+); do\s+make_key "\$deploy_dir/secrets/ingress-\$source\.seed" new-signing`).FindStringSubmatch(string(script))
	var made []string
	if loop != nil {
		for _, src := range strings.Fields(loop[1]) {
			made = append(made, "./secrets/ingress-"+src+".seed")
		}
	}
	if !slices.Equal(made, devIngressKeys) {
		t.Errorf("build-images.sh makes the ingress keys %q with authflow keys new-signing, want %q", made, devIngressKeys)
	}
	ignore, err := os.ReadFile(filepath.Join("secrets", ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(ignore))
	if !slices.Contains(lines, "*") {
		t.Errorf("secrets/.gitignore must ignore everything (*): generated secrets are never committed")
	}
	// Nothing but the ignore file and the README may be in git there.
	out, err := exec.Command("git", "ls-files", "secrets").Output()
	if err != nil {
		t.Skipf("git ls-files: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if base := path.Base(f); base != ".gitignore" && base != "README.md" {
			t.Errorf("%s is committed: secrets/ holds generated secrets only", f)
		}
	}
}

// checkListenFlag checks that --flag HOST:PORT names the container's own hostname.
func checkListenFlag(t *testing.T, args []string, flag, host string) {
	t.Helper()
	vals := flagValues(args, flag)
	if len(vals) != 1 {
		t.Errorf("--%s given %d times, want once", flag, len(vals))
		return
	}
	h, port, ok := strings.Cut(vals[0], ":")
	if !ok || h != host {
		t.Errorf("--%s %q, want %s:PORT (the container's own hostname)", flag, vals[0], host)
	}
	if _, err := strconv.Atoi(port); err != nil {
		t.Errorf("--%s %q: bad port", flag, vals[0])
	}
}

// checkMountedFlag checks that --flag names a file that a volume mounts.
func checkMountedFlag(t *testing.T, args []string, flag string, volumes []yaml.Node) {
	t.Helper()
	vals := flagValues(args, flag)
	if len(vals) != 1 {
		t.Errorf("--%s given %d times, want once", flag, len(vals))
		return
	}
	mounted := slices.ContainsFunc(volumes, func(n yaml.Node) bool {
		parts := strings.Split(n.Value, ":")
		return len(parts) >= 2 && parts[1] == vals[0]
	})
	if !mounted {
		t.Errorf("--%s %q: no volume mounts that file", flag, vals[0])
	}
}

// ---------------------------------------------------------------------------------------
// Dockerfiles and the build script.

type instruction struct {
	line int
	op   string
	args string
}

// dockerInstructions splits a Dockerfile into instructions, joining continuation lines and
// dropping comments.
func dockerInstructions(path string) ([]instruction, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{line: start, op: strings.ToUpper(op), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s: unterminated continuation at line %d", path, start)
	}
	return out, sc.Err()
}

func TestDockerfiles(t *testing.T) {
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name := d.Name(); !d.IsDir() && (name == "Dockerfile" || strings.HasSuffix(name, ".Dockerfile")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found Dockerfiles %v, want the authflow and nats images", files)
	}
	for _, path := range files {
		t.Run(filepath.ToSlash(path), func(t *testing.T) {
			ins, err := dockerInstructions(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(ins) == 0 || ins[0].op != "FROM" {
				t.Fatalf("first instruction must be FROM scratch")
			}
			var user string
			for _, in := range ins {
				switch in.op {
				case "FROM":
					if strings.ToLower(strings.Fields(in.args)[0]) != "scratch" {
						t.Errorf("line %d: FROM %s: every stage must be FROM scratch (no image can be pulled)", in.line, in.args)
					}
				case "ADD":
					t.Errorf("line %d: ADD: use COPY (ADD fetches URLs and unpacks archives)", in.line)
				case "RUN":
					t.Errorf("line %d: RUN: a scratch image has no shell", in.line)
				case "USER":
					user = in.args
				}
			}
			if !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(user) {
				t.Errorf("USER %q: want a numeric non-root uid:gid (runAsNonRoot needs numbers)", user)
			}
			if uid, _, _ := strings.Cut(user, ":"); uid != "" {
				passwd, err := os.ReadFile(filepath.Join(filepath.Dir(path), "passwd"))
				if err != nil {
					t.Fatalf("passwd for USER %s: %v", user, err)
				}
				if !regexp.MustCompile(`(?m)^[a-z]+:x:` + uid + `:` + uid + `:`).Match(passwd) {
					t.Errorf("passwd has no entry for uid %s:\n%s", uid, passwd)
				}
			}
		})
	}
}

func TestBuildScript(t *testing.T) {
	const path = "build-images.sh"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	script := string(data)
	for _, want := range []string{"set -euo pipefail", "CGO_ENABLED=0", "-trimpath",
		"github.com/nats-io/nats-server/v2", "./cmd/authflow", "ca-certificates.crt"} {
		if !strings.Contains(script, want) {
			t.Errorf("%s does not contain %q", path, want)
		}
	}
	for _, img := range images {
		if !strings.Contains(script, img) {
			t.Errorf("%s does not build %s", path, img)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("%s must be executable", path)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed: syntax not checked")
	}
	if out, err := exec.Command(bash, "-n", path).CombinedOutput(); err != nil {
		t.Errorf("bash -n %s: %v\n%s", path, err, out)
	}
}

// TestNoUnspecifiedAddress: nothing listens on 0.0.0.0. Comments may mention it; a CIDR
// 0.0.0.0/0 (the NetworkPolicy's "any public address") is not a listening address.
func TestNoUnspecifiedAddress(t *testing.T) {
	re := regexp.MustCompile(`0\.0\.0\.0(?:[^/]|$)`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") || d.Name() == "README.md" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "#") {
				continue
			}
			if code, _, _ := strings.Cut(line, " #"); re.MatchString(code) {
				t.Errorf("%s:%d: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------------------
// NATS configuration.

// natsPasswords sets the password variables that accounts.conf and the Helm values read,
// and returns them by user.
func natsPasswords(t *testing.T) map[string]string {
	t.Helper()
	pw := map[string]string{
		"hr":       "test-hr-secret",
		"helpdesk": "test-helpdesk-secret",
		"worker":   "test-worker-secret",
		"ingress":  "test-ingress-secret",
		"admin":    "test-admin-secret",
		"sys":      "test-sys-secret",
	}
	for user, p := range pw {
		t.Setenv("NATS_"+strings.ToUpper(user)+"_PASSWORD", p)
	}
	return pw
}

func TestNATSNodeConfigs(t *testing.T) {
	natsPasswords(t)
	var cluster string
	names := []string{"nats-1", "nats-2", "nats-3"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			opts, err := server.ProcessConfigFile(filepath.Join("nats", name+".conf"))
			if err != nil {
				t.Fatalf("nats-server cannot load %s.conf: %v", name, err)
			}
			if opts.ServerName != name {
				t.Errorf("server_name %q, want %q", opts.ServerName, name)
			}
			for what, host := range map[string]string{"listen": opts.Host, "http": opts.HTTPHost, "cluster.listen": opts.Cluster.Host} {
				if host != name {
					t.Errorf("%s host %q, want the node's own hostname %q", what, host, name)
				}
			}
			if opts.Port != 4222 || opts.Cluster.Port != 6222 || opts.HTTPPort != 8222 {
				t.Errorf("ports %d/%d/%d, want 4222/6222/8222", opts.Port, opts.Cluster.Port, opts.HTTPPort)
			}
			if !opts.JetStream || opts.StoreDir != "/data" {
				t.Errorf("JetStream %v store_dir %q, want enabled in /data (the image's volume)", opts.JetStream, opts.StoreDir)
			}
			if !opts.SyncAlways {
				t.Errorf("sync_interval must be always: acknowledged writes must be on disk")
			}
			if cluster == "" {
				cluster = opts.Cluster.Name
			}
			if opts.Cluster.Name == "" || opts.Cluster.Name != cluster {
				t.Errorf("cluster name %q, want the same non-empty name on every node (%q)", opts.Cluster.Name, cluster)
			}
			var routes []string
			for _, r := range opts.Routes {
				routes = append(routes, r.Hostname())
				if r.Port() != "6222" {
					t.Errorf("route %s: want port 6222", r)
				}
			}
			sort.Strings(routes)
			if !slices.Equal(routes, names) {
				t.Errorf("routes to %v, want all of %v", routes, names)
			}
			if opts.LameDuckDuration < 30*time.Second {
				t.Errorf("lame_duck_duration %s: the server requires at least 30s", opts.LameDuckDuration)
			}
		})
	}
}

func TestNATSConfigsLoad(t *testing.T) {
	natsPasswords(t)
	paths, err := filepath.Glob(filepath.Join("nats", "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(paths, filepath.Join("nats", "accounts.conf")) {
		t.Fatalf("nats/accounts.conf not found among %v", paths)
	}
	for _, path := range paths {
		if _, err := server.ProcessConfigFile(path); err != nil {
			t.Errorf("nats-server cannot load %s: %v", path, err)
		}
	}
}

func TestNATSAccountsNeedTheirPasswords(t *testing.T) {
	// Without the variables the server must refuse to start, not run with empty passwords.
	for _, user := range []string{"HR", "HELPDESK", "WORKER", "INGRESS", "ADMIN", "SYS"} {
		t.Setenv("NATS_"+user+"_PASSWORD", "x")
	}
	if err := os.Unsetenv("NATS_WORKER_PASSWORD"); err != nil {
		t.Fatal(err)
	}
	_, err := server.ProcessConfigFile(filepath.Join("nats", "accounts.conf"))
	if err == nil || !strings.Contains(err.Error(), "NATS_WORKER_PASSWORD") {
		t.Fatalf("ProcessConfigFile without NATS_WORKER_PASSWORD: err %v, want one naming the variable", err)
	}
}

// userPerms is a comparable summary of one configured user.
type userPerms struct {
	Account, Password                    string
	PubAllow, PubDeny, SubAllow, SubDeny []string
}

func summarizeUsers(opts *server.Options) map[string]userPerms {
	out := map[string]userPerms{}
	sorted := func(s []string) []string { s = slices.Clone(s); sort.Strings(s); return s }
	for _, u := range opts.Users {
		p := userPerms{Password: u.Password}
		if u.Account != nil {
			p.Account = u.Account.Name
		}
		if perm := u.Permissions; perm != nil {
			if perm.Publish != nil {
				p.PubAllow, p.PubDeny = sorted(perm.Publish.Allow), sorted(perm.Publish.Deny)
			}
			if perm.Subscribe != nil {
				p.SubAllow, p.SubDeny = sorted(perm.Subscribe.Allow), sorted(perm.Subscribe.Deny)
			}
		}
		out[u.Username] = p
	}
	return out
}

func TestNATSAccountsConfig(t *testing.T) {
	pw := natsPasswords(t)
	opts, err := server.ProcessConfigFile(filepath.Join("nats", "accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.SystemAccount != "SYS" {
		t.Errorf("system_account %q, want SYS", opts.SystemAccount)
	}
	users := summarizeUsers(opts)
	for user, p := range pw {
		u, ok := users[user]
		if !ok {
			t.Errorf("no user %s", user)
			continue
		}
		if u.Password != p {
			t.Errorf("user %s: password not taken from NATS_%s_PASSWORD", user, strings.ToUpper(user))
		}
		wantAccount := "AUTHFLOW"
		if user == "sys" {
			wantAccount = "SYS"
		}
		if u.Account != wantAccount {
			t.Errorf("user %s: account %q, want %q", user, u.Account, wantAccount)
		}
	}
	if len(users) != len(pw) {
		t.Errorf("users %v, want exactly %d", users, len(pw))
	}
	for _, user := range []string{"hr", "helpdesk", "worker", "ingress"} {
		if len(users[user].PubAllow) == 0 || len(users[user].SubAllow) == 0 {
			t.Errorf("user %s: a service user needs explicit publish and subscribe allow lists", user)
		}
	}
	// The allow list already leaves these out (TestNATSPermissions); the explicit denials
	// keep a later, wider allow entry from granting them.
	w := users["worker"]
	for _, subj := range []string{"authflow.events.>", "$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>",
		"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.CONSUMER.DELETE.>"} {
		if !slices.Contains(w.PubDeny, subj) {
			t.Errorf("worker: publish deny list lacks %s", subj)
		}
	}
	if !slices.Contains(w.SubDeny, "authflow.events.>") {
		t.Errorf("worker: subscribe deny list lacks authflow.events.>")
	}
	// The ingress publishes events like HR and helpdesk; of what the worker acts on, nothing
	// else. A forged result would go out to the senders' results webhooks, signed.
	in := users["ingress"]
	for _, subj := range []string{"authflow.results.>", "authflow.priority.>", "authflow.notifications.>", "$KV.>", "$JS.API.STREAM.CREATE.>",
		"$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>",
		"$JS.API.CONSUMER.DELETE.>", "$JS.API.CONSUMER.CREATE.AUTHFLOW_EVENTS.>"} {
		if !slices.Contains(in.PubDeny, subj) {
			t.Errorf("ingress: publish deny list lacks %s", subj)
		}
	}
	for _, subj := range in.PubAllow {
		if strings.HasPrefix(subj, "authflow.") && subj != "authflow.events.*" && subj != "authflow.dlq.>" {
			t.Errorf("ingress: publishes %s; it may publish authflow.events.* (and park results in authflow.dlq.>) only", subj)
		}
	}
	if !slices.Equal(in.SubAllow, []string{ingressInbox + ".>"}) {
		t.Errorf("ingress: subscribe allow %q, want its own inbox %s.> only", in.SubAllow, ingressInbox)
	}
}

// TestHelmValues checks the NATS Helm values and that the accounts they merge into the
// server configuration are the ones of accounts.conf, by rendering them as the chart does
// and loading the result with the server's parser.
func TestHelmValues(t *testing.T) {
	natsPasswords(t)
	docs, err := yamlDocs(filepath.Join("helm", "nats-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Config struct {
			Cluster struct {
				Enabled  bool `yaml:"enabled"`
				Replicas int  `yaml:"replicas"`
			} `yaml:"cluster"`
			JetStream struct {
				Enabled   bool `yaml:"enabled"`
				FileStore struct {
					Enabled bool   `yaml:"enabled"`
					MaxSize string `yaml:"maxSize"`
					PVC     struct {
						Enabled bool   `yaml:"enabled"`
						Size    string `yaml:"size"`
					} `yaml:"pvc"`
				} `yaml:"fileStore"`
				Merge map[string]any `yaml:"merge"`
			} `yaml:"jetstream"`
			Merge map[string]any `yaml:"merge"`
		} `yaml:"config"`
		Container struct {
			Image struct {
				Tag string `yaml:"tag"`
			} `yaml:"image"`
			Env map[string]any `yaml:"env"`
		} `yaml:"container"`
	}
	if err := docs[0].Decode(&v); err != nil {
		t.Fatal(err)
	}
	c := v.Config
	if !c.Cluster.Enabled || c.Cluster.Replicas != 3 {
		t.Errorf("config.cluster: enabled %v replicas %d, want a 3-node cluster", c.Cluster.Enabled, c.Cluster.Replicas)
	}
	if !c.JetStream.Enabled || !c.JetStream.FileStore.Enabled || !c.JetStream.FileStore.PVC.Enabled {
		t.Errorf("config.jetstream: want JetStream with a file store on a PVC")
	}
	if got := c.JetStream.Merge["sync_interval"]; got != "always" {
		t.Errorf("config.jetstream.merge.sync_interval %v, want always", got)
	}
	maxSize, err1 := gibibytes(c.JetStream.FileStore.MaxSize)
	pvcSize, err2 := gibibytes(c.JetStream.FileStore.PVC.Size)
	if err := errors.Join(err1, err2); err != nil {
		t.Errorf("config.jetstream.fileStore sizes: %v", err)
	} else if maxSize >= pvcSize {
		t.Errorf("fileStore.maxSize %s must stay below the PVC size %s", c.JetStream.FileStore.MaxSize, c.JetStream.FileStore.PVC.Size)
	}
	goVersion := natsServerVersion(t)
	if "v"+v.Container.Image.Tag != goVersion {
		t.Errorf("container.image.tag %q, want the server version go.mod pins (%s)", v.Container.Image.Tag, goVersion)
	}

	rendered, vars := renderMerge(t, c.Merge)
	for _, name := range vars {
		ref, ok := v.Container.Env[name].(map[string]any)
		if !ok || ref["valueFrom"] == nil {
			t.Errorf("config.merge reads $%s, but container.env does not set it from a Secret", name)
		}
	}
	path := filepath.Join(t.TempDir(), "merge.conf")
	if err := os.WriteFile(path, rendered, 0o600); err != nil {
		t.Fatal(err)
	}
	helmOpts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("the rendered config.merge does not load: %v\n%s", err, rendered)
	}
	fileOpts, err := server.ProcessConfigFile(filepath.Join("nats", "accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if helmOpts.SystemAccount != fileOpts.SystemAccount {
		t.Errorf("system_account: helm %q, accounts.conf %q", helmOpts.SystemAccount, fileOpts.SystemAccount)
	}
	if a, b := summarizeUsers(helmOpts), summarizeUsers(fileOpts); mustJSON(t, a) != mustJSON(t, b) {
		t.Errorf("the Helm values' accounts differ from nats/accounts.conf:\nhelm:          %s\naccounts.conf: %s", mustJSON(t, a), mustJSON(t, b))
	}
}

// renderMerge renders a NATS chart `merge` block as the chart does: JSON is NATS
// configuration syntax, and "<< X >>" becomes the bare X (a variable reference $VAR, or a
// size such as 1MB). It returns the configuration text and the variables it reads.
func renderMerge(t *testing.T, merge map[string]any) (rendered []byte, vars []string) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<< $VAR >>" and ">" wildcards as they are
	enc.SetIndent("", "  ")
	if err := enc.Encode(merge); err != nil {
		t.Fatal(err)
	}
	raw := regexp.MustCompile(`"<< ([^"<>]+) >>"`)
	for _, m := range raw.FindAllSubmatch(buf.Bytes(), -1) {
		if name, ok := strings.CutPrefix(string(m[1]), "$"); ok {
			vars = append(vars, name)
		}
	}
	return raw.ReplaceAll(buf.Bytes(), []byte("$1")), vars
}

func gibibytes(s string) (float64, error) {
	units := map[string]float64{"Gi": 1, "Mi": 1.0 / 1024, "Ti": 1024}
	for suffix, f := range units {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return 0, fmt.Errorf("size %q: %w", s, err)
			}
			return v * f, nil
		}
	}
	return 0, fmt.Errorf("size %q: want a Mi, Gi or Ti quantity", s)
}

// natsServerVersion is the nats-server version the module requires.
func natsServerVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/nats-io/nats-server/v2 (v\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod does not require github.com/nats-io/nats-server/v2")
	}
	return string(m[1])
}

// ---------------------------------------------------------------------------------------
// NATS permissions, enforced by a real server against real clients.

// accountsServer runs accounts.conf in-process on 127.0.0.1 with JetStream and nothing
// provisioned, and returns it with the users' passwords.
func accountsServer(t *testing.T) (*server.Server, map[string]string) {
	t.Helper()
	pw := natsPasswords(t)
	opts, err := server.ProcessConfigFile(filepath.Join("nats", "accounts.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.ServerName = "deploy-test"
	opts.Host = "127.0.0.1"
	opts.Port = -1
	opts.HTTPPort = 0
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	opts.NoLog = true
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("start nats-server with accounts.conf: %v", err)
	}
	go s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready in 10s")
	}
	return s, pw
}

// permServer runs accounts.conf in-process on 127.0.0.1 with JetStream, and provisions the
// streams and the ledger as an administrator would.
func permServer(t *testing.T) (*server.Server, map[string]string) {
	t.Helper()
	s, pw := accountsServer(t)
	nc, _ := connect(t, s, "admin", pw["admin"])
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The worker's topology (worker.EnsureTopology) with one partition.
	streams := []jetstream.StreamConfig{
		{
			Name:     "AUTHFLOW_EVENTS",
			Subjects: []string{"authflow.events.*"},
			SubjectTransform: &jetstream.SubjectTransformConfig{
				Source:      "authflow.events.*",
				Destination: "authflow.events.{{partition(1,1)}}.{{wildcard(1)}}",
			},
		},
		{Name: "AUTHFLOW_RESULTS", Subjects: []string{"authflow.results.>"}},
		{Name: "AUTHFLOW_DLQ", Subjects: []string{"authflow.dlq.>"}},
		{Name: "AUTHFLOW_PRIORITY", Subjects: []string{"authflow.priority.>"}, Retention: jetstream.WorkQueuePolicy},
	}
	for _, sc := range streams {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatalf("admin: create stream %s: %v", sc.Name, err)
		}
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "AUTHFLOW_LEDGER", History: 1, TTL: time.Hour}); err != nil {
		t.Fatalf("admin: create ledger bucket: %v", err)
	}
	return s, pw
}

// workerInbox and ingressInbox are the reply inbox prefixes the worker and ingress users
// are limited to.
const (
	workerInbox  = "_INBOX_worker"
	ingressInbox = "_INBOX_ingress"
)

// connect connects as user and returns the connection and a channel of its permission
// violations. The worker and the ingress connect with their own inbox prefixes, as they must.
func connect(t *testing.T, s *server.Server, user, password string, extra ...nats.Option) (*nats.Conn, chan error) {
	t.Helper()
	violations := make(chan error, 64)
	opts := []nats.Option{
		nats.UserInfo(user, password),
		nats.Name("deploy-test-" + user),
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case violations <- err:
				default:
				}
			}
		}),
	}
	switch user {
	case "worker":
		opts = append(opts, nats.CustomInboxPrefix(workerInbox))
	case "ingress":
		opts = append(opts, nats.CustomInboxPrefix(ingressInbox))
	}
	nc, err := nats.Connect(s.ClientURL(), append(opts, extra...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, violations
}

// allowed runs op and requires it to succeed: the server answered.
func allowed(t *testing.T, what string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := op(ctx); err != nil {
		t.Errorf("%s: %v, want it allowed", what, err)
	}
}

// denied runs op and requires the server to report a permission violation for subject.
func denied(t *testing.T, violations chan error, what, subject string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	quoted := strconv.Quote(subject)
	refused, returned := false, false
	for !refused || !returned {
		select {
		case err := <-violations:
			if strings.Contains(err.Error(), quoted) {
				refused = true
				cancel() // the call may wait for a reply that will never come
			}
		case err := <-done:
			returned = true
			if err == nil {
				t.Errorf("%s: succeeded, want a permission violation for %s", what, subject)
				return
			}
		case <-ctx.Done():
			if !refused {
				t.Errorf("%s: no permission violation for %s", what, subject)
				return
			}
			// Refused; the call returns with the cancelled context.
		}
	}
}

// subscribeDenied requires a subscription to subject to be refused.
func subscribeDenied(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The server answers SUB before PONG, so once Flush returned a refusal is recorded.
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := sub.NextMsg(20 * time.Millisecond)
		if errors.Is(err, nats.ErrPermissionViolation) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("subscribe %s: %v, want a permission violation", subject, err)
			return
		}
	}
}

func TestNATSPermissions(t *testing.T) {
	s, pw := permServer(t)

	t.Run("authentication", func(t *testing.T) {
		for _, tc := range []struct{ user, password string }{
			{"hr", "wrong"}, {"worker", ""}, {"", ""}, {"nobody", "test-hr-secret"},
		} {
			nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(tc.user, tc.password), nats.NoReconnect())
			if err == nil {
				nc.Close()
				t.Errorf("connect as %q with password %q succeeded, want an authorization error", tc.user, tc.password)
			}
		}
		nc, _ := connect(t, s, "sys", pw["sys"])
		if _, err := nc.Request("$SYS.REQ.SERVER.PING", nil, 5*time.Second); err != nil {
			t.Errorf("sys user: server ping: %v (want the system account)", err)
		}
	})

	// The worker's view of the world, built step by step by the subtests below.
	wnc, wviol := connect(t, s, "worker", pw["worker"])
	wjs, err := jetstream.New(wnc)
	if err != nil {
		t.Fatal(err)
	}

	// Both publishers watch results; the worker publishes one further down. Their
	// connections belong to the whole test, not to their subtest.
	resultSubs := map[string]*nats.Subscription{}
	for _, user := range []string{"hr", "helpdesk"} {
		nc, viol := connect(t, s, user, pw[user])
		t.Run(user, func(t *testing.T) {
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			allowed(t, "publish an event", func(ctx context.Context) error {
				ack, err := js.Publish(ctx, "authflow.events.adele-"+user, []byte(`{"from":"`+user+`"}`), jetstream.WithMsgID(user+"-1"))
				if err == nil && ack.Stream != "AUTHFLOW_EVENTS" {
					err = fmt.Errorf("stored in %q", ack.Stream)
				}
				return err
			})
			sub, err := nc.SubscribeSync("authflow.results.>")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			resultSubs[user] = sub

			publish := func(subject string) func(context.Context) error {
				return func(context.Context) error {
					if err := nc.Publish(subject, []byte("x")); err != nil {
						return err
					}
					return errors.New("published") // the outcome is the server's violation, not this
				}
			}
			denied(t, viol, "publish a partitioned subject, bypassing the transform", "authflow.events.0.adele", publish("authflow.events.0.adele"))
			denied(t, viol, "publish a result", "authflow.results.adele", publish("authflow.results.adele"))
			denied(t, viol, "publish a dead letter", "authflow.dlq.adele", publish("authflow.dlq.adele"))
			denied(t, viol, "write the ledger", "$KV.AUTHFLOW_LEDGER.evt.x", publish("$KV.AUTHFLOW_LEDGER.evt.x"))
			denied(t, viol, "read the events stream", "$JS.API.STREAM.INFO.AUTHFLOW_EVENTS", func(ctx context.Context) error {
				_, err := js.Stream(ctx, "AUTHFLOW_EVENTS")
				return err
			})
			denied(t, viol, "delete the events stream", "$JS.API.STREAM.DELETE.AUTHFLOW_EVENTS", func(ctx context.Context) error {
				return js.DeleteStream(ctx, "AUTHFLOW_EVENTS")
			})
			subscribeDenied(t, nc, "authflow.events.>")
			subscribeDenied(t, nc, "authflow.dlq.>")
			subscribeDenied(t, nc, "$KV.AUTHFLOW_LEDGER.>")
			// The worker's replies carry event bodies and ledger records, the ingress's results.
			subscribeDenied(t, nc, workerInbox+".>")
			subscribeDenied(t, nc, ingressInbox+".>")
		})
	}

	t.Run("worker without its inbox prefix", func(t *testing.T) {
		// The default inbox is not the worker's: every JetStream call goes unanswered.
		nc, _ := connect(t, s, "worker", pw["worker"], nats.CustomInboxPrefix("_INBOX"))
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		// The refusal of the inbox subscription arrives within milliseconds.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if _, err := js.Stream(ctx, "AUTHFLOW_EVENTS"); err == nil {
			t.Fatal("stream info with the default inbox succeeded, want it refused")
		}
		if err := nc.LastError(); !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `Subscription to "_INBOX.`) {
			t.Errorf("last error %v, want a permission violation for the _INBOX subscription", err)
		}
	})

	t.Run("worker", func(t *testing.T) {
		js, viol := wjs, wviol

		for _, name := range []string{"AUTHFLOW_EVENTS", "AUTHFLOW_RESULTS", "AUTHFLOW_DLQ", "AUTHFLOW_PRIORITY"} {
			allowed(t, "stream info "+name, func(ctx context.Context) error {
				_, err := js.Stream(ctx, name)
				return err
			})
		}
		allowed(t, "account info", func(ctx context.Context) error {
			_, err := js.AccountInfo(ctx)
			return err
		})
		var cons jetstream.Consumer
		allowed(t, "create or update the partition consumer", func(ctx context.Context) error {
			var err error
			cons, err = js.CreateOrUpdateConsumer(ctx, "AUTHFLOW_EVENTS", jetstream.ConsumerConfig{
				Durable: "authflow-p000", FilterSubject: "authflow.events.0.*",
				AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1, AckWait: 30 * time.Second,
			})
			return err
		})
		if cons == nil {
			t.Fatal("no consumer: cannot go on")
		}
		allowed(t, "consumer info", func(ctx context.Context) error {
			_, err := js.Consumer(ctx, "AUTHFLOW_EVENTS", "authflow-p000")
			return err
		})
		// Both publishers' events, in order, acked one by one.
		var seqs []uint64
		for range 2 {
			allowed(t, "fetch, extend and ack an event", func(ctx context.Context) error {
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
				if err != nil {
					return err
				}
				var msg jetstream.Msg
				for m := range batch.Messages() {
					msg = m
				}
				if err := batch.Error(); err != nil {
					return err
				}
				if msg == nil {
					return errors.New("no event delivered")
				}
				md, err := msg.Metadata()
				if err != nil {
					return err
				}
				seqs = append(seqs, md.Sequence.Stream)
				if err := msg.InProgress(); err != nil {
					return err
				}
				return msg.DoubleAck(ctx)
			})
		}
		allowed(t, "publish a result", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "authflow.results.adele-hr", []byte(`{"status":"succeeded"}`), jetstream.WithMsgID("hr/1:result"))
			return err
		})
		for user, sub := range resultSubs {
			if m, err := sub.NextMsg(5 * time.Second); err != nil || m.Subject != "authflow.results.adele-hr" {
				t.Errorf("%s did not receive the result: %v", user, err)
			}
		}
		allowed(t, "publish a dead letter", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "authflow.dlq.adele-hr", []byte(`{}`), jetstream.WithMsgID("dlq:hr/1"))
			return err
		})
		allowed(t, "use the ledger", func(ctx context.Context) error {
			kv, err := js.KeyValue(ctx, "AUTHFLOW_LEDGER")
			if err != nil {
				return fmt.Errorf("bind: %w", err)
			}
			rev, err := kv.Create(ctx, "evt.hr.1", []byte("in_progress"))
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			if _, err := kv.Get(ctx, "evt.hr.1"); err != nil {
				return fmt.Errorf("get: %w", err)
			}
			rev, err = kv.Update(ctx, "evt.hr.1", []byte("done"), rev)
			if err != nil {
				return fmt.Errorf("update: %w", err)
			}
			if _, err := kv.GetRevision(ctx, "evt.hr.1", rev); err != nil {
				return fmt.Errorf("get revision: %w", err)
			}
			if err := kv.Delete(ctx, "evt.hr.1"); err != nil {
				return fmt.Errorf("delete: %w", err)
			}
			return nil
		})
		denied(t, viol, "update a stream", "$JS.API.STREAM.UPDATE.AUTHFLOW_EVENTS", func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "AUTHFLOW_EVENTS", Subjects: []string{"authflow.events.*"}})
			return err
		})
		denied(t, viol, "delete a stream", "$JS.API.STREAM.DELETE.AUTHFLOW_EVENTS", func(ctx context.Context) error {
			return js.DeleteStream(ctx, "AUTHFLOW_EVENTS")
		})
		denied(t, viol, "purge a stream", "$JS.API.STREAM.PURGE.AUTHFLOW_EVENTS", func(ctx context.Context) error {
			st, err := js.Stream(ctx, "AUTHFLOW_EVENTS")
			if err != nil {
				return err
			}
			return st.Purge(ctx)
		})
		denied(t, viol, "delete a consumer", "$JS.API.CONSUMER.DELETE.AUTHFLOW_EVENTS.authflow-p000", func(ctx context.Context) error {
			return js.DeleteConsumer(ctx, "AUTHFLOW_EVENTS", "authflow-p000")
		})
		denied(t, viol, "create a KV bucket", "$JS.API.STREAM.CREATE.KV_OTHER", func(ctx context.Context) error {
			_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "OTHER"})
			return err
		})
		denied(t, viol, "read another stream", "$JS.API.STREAM.INFO.OTHER", func(ctx context.Context) error {
			_, err := js.Stream(ctx, "OTHER")
			return err
		})
		denied(t, viol, "publish an event", "authflow.events.mallory", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "authflow.events.mallory", []byte("{}"))
			return err
		})
		if len(seqs) == 2 {
			// The interactive lane reads an event, and the earlier events of its key, by
			// sequence.
			allowed(t, "read an event by sequence", func(ctx context.Context) error {
				st, err := js.Stream(ctx, "AUTHFLOW_EVENTS")
				if err != nil {
					return err
				}
				_, err = st.GetMsg(ctx, seqs[0])
				return err
			})
		}
		allowed(t, "publish an interactive pointer", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "authflow.priority.k", nil)
			return err
		})
		subscribeDenied(t, wnc, "authflow.events.>")
		subscribeDenied(t, wnc, ingressInbox+".>")
		subscribeDenied(t, wnc, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.AUTHFLOW_EVENTS.>")
		subscribeDenied(t, wnc, ">")
	})

	t.Run("ingress", func(t *testing.T) {
		nc, viol := connect(t, s, "ingress", pw["ingress"])
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		allowed(t, "publish an event", func(ctx context.Context) error {
			ack, err := js.Publish(ctx, "authflow.events.adele-ingress", []byte(`{"from":"ingress"}`), jetstream.WithMsgID("ingress-1"))
			if err == nil && ack.Stream != "AUTHFLOW_EVENTS" {
				err = fmt.Errorf("stored in %q", ack.Stream)
			}
			return err
		})
		for _, name := range []string{"AUTHFLOW_EVENTS", "AUTHFLOW_RESULTS"} {
			allowed(t, "stream info "+name, func(ctx context.Context) error {
				_, err := js.Stream(ctx, name)
				return err
			})
		}
		// A source's results webhook: its durable consumer, one result at a time.
		var cons jetstream.Consumer
		allowed(t, "create or update a results consumer", func(ctx context.Context) error {
			var err error
			cons, err = js.CreateOrUpdateConsumer(ctx, "AUTHFLOW_RESULTS", jetstream.ConsumerConfig{
				Durable: "authflow-ingress-results-test", FilterSubject: "authflow.results.>",
				AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1, MaxDeliver: -1,
			})
			return err
		})
		if cons == nil {
			t.Fatal("no results consumer: cannot go on")
		}
		allowed(t, "fetch, extend and ack a result", func(ctx context.Context) error {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
			if err != nil {
				return err
			}
			var msg jetstream.Msg
			for m := range batch.Messages() {
				msg = m
			}
			if msg == nil {
				return fmt.Errorf("no result delivered: %v", batch.Error())
			}
			if err := msg.InProgress(); err != nil {
				return err
			}
			return msg.DoubleAck(ctx)
		})
		allowed(t, "park a result in the DLQ", func(ctx context.Context) error {
			_, err := js.Publish(ctx, "authflow.dlq.adele-hr", []byte(`{}`), jetstream.WithMsgID("ingress-dlq-1"))
			return err
		})
		allowed(t, "wait for a result (Prefer: wait)", func(ctx context.Context) error {
			st, err := js.Stream(ctx, "AUTHFLOW_RESULTS")
			if err != nil {
				return err
			}
			oc, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"authflow.results.adele-hr"}})
			if err != nil {
				return err
			}
			it, err := oc.Messages()
			if err != nil {
				return err
			}
			defer it.Stop()
			_, err = it.Next()
			return err
		})
		publish := func(subject string) func(context.Context) error {
			return func(context.Context) error {
				if err := nc.Publish(subject, []byte("x")); err != nil {
					return err
				}
				return errors.New("published") // the outcome is the server's violation, not this
			}
		}
		denied(t, viol, "publish a result", "authflow.results.adele", publish("authflow.results.adele"))
		denied(t, viol, "publish an interactive pointer", "authflow.priority.k", publish("authflow.priority.k"))
		denied(t, viol, "publish a notification", "authflow.notifications.k", publish("authflow.notifications.k"))
		denied(t, viol, "publish a partitioned subject", "authflow.events.0.adele", publish("authflow.events.0.adele"))
		denied(t, viol, "write the ledger", "$KV.AUTHFLOW_LEDGER.evt.x", publish("$KV.AUTHFLOW_LEDGER.evt.x"))
		denied(t, viol, "read the ledger", "$JS.API.STREAM.INFO.KV_AUTHFLOW_LEDGER", func(ctx context.Context) error {
			_, err := js.KeyValue(ctx, "AUTHFLOW_LEDGER")
			return err
		})
		denied(t, viol, "consume the events stream", "$JS.API.CONSUMER.CREATE.AUTHFLOW_EVENTS.ingress-reader", func(ctx context.Context) error {
			_, err := js.CreateOrUpdateConsumer(ctx, "AUTHFLOW_EVENTS", jetstream.ConsumerConfig{Durable: "ingress-reader"})
			return err
		})
		denied(t, viol, "read an event by sequence", "$JS.API.STREAM.MSG.GET.AUTHFLOW_EVENTS", func(ctx context.Context) error {
			st, err := js.Stream(ctx, "AUTHFLOW_EVENTS")
			if err != nil {
				return err
			}
			_, err = st.GetMsg(ctx, 1)
			return err
		})
		denied(t, viol, "delete a results consumer", "$JS.API.CONSUMER.DELETE.AUTHFLOW_RESULTS.authflow-ingress-results-test", func(ctx context.Context) error {
			return js.DeleteConsumer(ctx, "AUTHFLOW_RESULTS", "authflow-ingress-results-test")
		})
		denied(t, viol, "purge the results", "$JS.API.STREAM.PURGE.AUTHFLOW_RESULTS", func(ctx context.Context) error {
			st, err := js.Stream(ctx, "AUTHFLOW_RESULTS")
			if err != nil {
				return err
			}
			return st.Purge(ctx)
		})
		denied(t, viol, "create a stream", "$JS.API.STREAM.CREATE.OTHER", func(ctx context.Context) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
			return err
		})
		subscribeDenied(t, nc, "authflow.events.>")
		subscribeDenied(t, nc, "authflow.results.>")
		subscribeDenied(t, nc, workerInbox+".>")
		subscribeDenied(t, nc, "_INBOX.>")
	})
}

// TestWorkerUserStartsOnProvisionedTopology: what deploy/README.md says about provisioning.
// The worker user of accounts.conf cannot create the topology; once the admin user has
// (worker.EnsureTopology, as the first worker started with admin credentials does), the
// worker user's own EnsureTopology succeeds, reading only.
func TestWorkerUserStartsOnProvisionedTopology(t *testing.T) {
	s, pw := accountsServer(t)
	topo := worker.Topology{Partitions: 4, Replicas: 1, LedgerTTL: time.Hour, EventsMaxAge: time.Hour,
		ResultsMaxAge: time.Hour, DLQMaxAge: time.Hour, ResultsDuplicates: time.Minute,
		AckWait: 30 * time.Second, MaxMsgBytes: maxPayload}
	ensure := func(user string, timeout time.Duration) (chan error, error) {
		nc, viol := connect(t, s, user, pw[user])
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err = worker.EnsureTopology(ctx, js, topo)
		return viol, err
	}
	// A refused request gets no reply: the call waits for its context.
	viol, err := ensure("worker", time.Second)
	if err == nil {
		t.Fatal("the worker user created the topology: accounts.conf grants it more than it should")
	}
	select {
	case v := <-viol:
		t.Logf("refused as expected: %v (%v)", err, v)
	default:
		t.Errorf("worker user on an empty server: %v, want a permission violation", err)
	}
	if _, err := ensure("admin", 10*time.Second); err != nil {
		t.Fatalf("admin provisions: %v", err)
	}
	viol, err = ensure("worker", 10*time.Second)
	if err != nil {
		t.Fatalf("worker user on the provisioned topology: %v", err)
	}
	select {
	case v := <-viol:
		t.Errorf("worker user on the provisioned topology: permission violation %v", v)
	default:
	}
}

// ---------------------------------------------------------------------------------------
// Grafana dashboard.

// metricsContract are the metric names the worker and the ingress implement and the
// dashboard must show (TestDashboardAndAlertMetricsExist checks them on a running worker).
var metricsContract = []string{
	"authflow_events_total",
	"authflow_event_duration_seconds_bucket",
	"authflow_graph_requests_total",
	"authflow_graph_throttled_total",
	"authflow_retries_total",
	"authflow_consumer_pending",
	"authflow_consumer_ack_pending",
	"authflow_dlq_total",
	"authflow_events_in_flight",
	"authflow_last_processed_timestamp_seconds",
	"authflow_deliveries_total",
	"authflow_graph_request_duration_seconds_bucket",
	"authflow_graph_concurrency_limit",
	"authflow_build_info",
	"authflow_ingress_requests_total",
	"authflow_ingress_request_duration_seconds_bucket",
	"authflow_order_waits_total",
	"authflow_rate_limited_total",
	"authflow_notifications_sent_total",
	"authflow_notifications_failed_total",
	"authflow_notifications_skipped_total",
	"authflow_notification_retries_total",
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("grafana", "authflow-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ X, Y, W, H int } `json:"gridPos"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q title %q: both required", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("want a datasource template variable, got %v", vars)
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d: no title", p.ID)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource must be the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("panel %q: every target needs an expr and a unique refId", p.Title)
			}
			refs[tg.RefID] = true
			if err := balanced(tg.Expr); err != nil {
				t.Errorf("panel %q: %q: %v", p.Title, tg.Expr, err)
			}
			for _, m := range dashVar.FindAllStringSubmatch(tg.Expr, -1) {
				if name := m[1]; !strings.HasPrefix(name, "__") && vars[name] == "" {
					t.Errorf("panel %q: %q uses $%s, which is not a template variable", p.Title, tg.Expr, name)
				}
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, m := range metricsContract {
		if !regexp.MustCompile(`\b` + m + `\b`).MatchString(all) {
			t.Errorf("no panel shows %s", m)
		}
	}
	if !strings.Contains(all, "histogram_quantile(0.99, sum by (le) (rate(authflow_event_duration_seconds_bucket") {
		t.Errorf("no p99 latency panel over authflow_event_duration_seconds_bucket")
	}
	for _, labels := range []string{"sum by (op, status) (rate(authflow_graph_requests_total", "sum by (type, outcome) (rate(authflow_events_total"} {
		if !strings.Contains(all, labels) {
			t.Errorf("no panel breaks down %q", labels)
		}
	}
}

// dashVar matches a Grafana variable reference: $name or ${name}. Names starting with two
// underscores ($__rate_interval) are Grafana's own.
var dashVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// balanced reports unbalanced brackets or quotes in a PromQL expression.
func balanced(expr string) error {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inQuote := false
	for i, r := range expr {
		switch {
		case r == '"' && (i == 0 || expr[i-1] != '\\'):
			inQuote = !inQuote
		case inQuote:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return fmt.Errorf("unbalanced %q at %d", r, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inQuote || len(stack) > 0 {
		return errors.New("unclosed bracket or quote")
	}
	return nil
}

func TestBalanced(t *testing.T) {
	for expr, ok := range map[string]bool{
		`sum(rate(x{a="b"}[5m]))`:  true,
		`sum(rate(x{a="(b"}[5m]))`: true,
		`sum(rate(x[5m])`:          false,
		`sum(rate(x{a="b}[5m]))`:   false,
		`x]`:                       false,
	} {
		if err := balanced(expr); (err == nil) != ok {
			t.Errorf("balanced(%q) = %v, want ok=%v", expr, err, ok)
		}
	}
}

// ---------------------------------------------------------------------------------------
// Emulator seed.

func TestEmulatorSeed(t *testing.T) {
	data, err := os.ReadFile("emulator-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	type method map[string]any
	var users []struct {
		ID                string   `json:"id"`
		UserPrincipalName string   `json:"userPrincipalName"`
		UserType          string   `json:"userType"`
		AccountEnabled    *bool    `json:"accountEnabled"`
		DirectoryRoles    []string `json:"directoryRoles"`
		Methods           []method `json:"methods"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&users); err != nil {
		t.Fatalf("emulator-seed.json: %v", err)
	}
	if len(users) != 3 {
		t.Errorf("%d demo users, want 3", len(users))
	}
	guid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	upn := regexp.MustCompile(`^[A-Za-z0-9'._!#^~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$`)
	phone := regexp.MustCompile(`^\+[1-9][0-9]{0,2} [0-9]{4,14}$`)
	seen := map[string]bool{}
	for _, u := range users {
		if !guid.MatchString(u.ID) {
			t.Errorf("user %q: id %q is not a lower-case GUID", u.UserPrincipalName, u.ID)
		}
		if !upn.MatchString(u.UserPrincipalName) {
			t.Errorf("user %s: bad userPrincipalName %q", u.ID, u.UserPrincipalName)
		}
		for _, k := range []string{u.ID, strings.ToLower(u.UserPrincipalName)} {
			if seen[k] {
				t.Errorf("%s used twice", k)
			}
			seen[k] = true
		}
		if u.UserType != "Member" && u.UserType != "Guest" {
			t.Errorf("user %s: userType %q", u.ID, u.UserType)
		}
		if u.AccountEnabled == nil || u.DirectoryRoles == nil {
			t.Errorf("user %s: accountEnabled and directoryRoles are required", u.ID)
		}
		for _, m := range u.Methods {
			typ, _ := m["@odata.type"].(string)
			switch typ {
			case "#microsoft.graph.phoneAuthenticationMethod":
				if n, _ := m["phoneNumber"].(string); !phone.MatchString(n) {
					t.Errorf("user %s: phone %q is not in Graph's \"+CC NUMBER\" form", u.ID, n)
				}
				if pt, _ := m["phoneType"].(string); !slices.Contains([]string{"mobile", "alternateMobile", "office"}, pt) {
					t.Errorf("user %s: phoneType %q", u.ID, pt)
				}
			case "#microsoft.graph.emailAuthenticationMethod":
				if e, _ := m["emailAddress"].(string); !strings.Contains(e, "@") {
					t.Errorf("user %s: emailAddress %q", u.ID, e)
				}
			default:
				t.Errorf("user %s: method @odata.type %q not used by the demo", u.ID, typ)
			}
		}
	}
}

// ---------------------------------------------------------------------------------------
// Worker policies.

func TestPolicies(t *testing.T) {
	t.Run("compose dev policy", func(t *testing.T) {
		p, err := events.LoadPolicy(filepath.Join("policy", "dev-policy.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// The worker refuses a ledger that forgets events younger than the policy's max age.
		for name, s := range loadCompose(t).Services {
			for _, v := range flagValues(s.Command, "ledger-ttl") {
				ttl, err := time.ParseDuration(v)
				if err != nil || ttl < p.MaxAge() {
					t.Errorf("%s: --ledger-ttl %q must be a duration of at least the policy's maxAge %s", name, v, p.MaxAge())
				}
			}
		}
	})
	t.Run("kubernetes policy", func(t *testing.T) {
		var text string
		for _, o := range k8sFileObjects(t, filepath.Join("k8s", "base", "configmap-policy.yaml")) {
			if o.Kind == "ConfigMap" && o.Metadata.Name == "authflow-policy" {
				var cm configMap
				o.decode(t, &cm)
				text = cm.Data["policy.yaml"]
			}
		}
		if text == "" {
			t.Fatal("ConfigMap authflow-policy has no policy.yaml")
		}
		// Shipped with placeholder keys, it must not load: the worker fails closed.
		if _, err := events.ParsePolicy([]byte(text)); err == nil || !strings.Contains(err.Error(), "keys") {
			t.Errorf("the placeholder policy loads (err %v): it must be refused until real keys are set", err)
		}
		// With real keys in place of the placeholders it must load as it is.
		placeholder := regexp.MustCompile(`PLACEHOLDER-[A-Z-]+-PUBLIC-KEY`)
		if n := len(placeholder.FindAllString(text, -1)); n == 0 {
			t.Fatal("no placeholder keys found")
		}
		real := placeholder.ReplaceAllStringFunc(text, func(string) string {
			kp, err := nkeys.CreateUser()
			if err != nil {
				t.Fatal(err)
			}
			pub, err := kp.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			return pub
		})
		p, err := events.ParsePolicy([]byte(real))
		if err != nil {
			t.Fatalf("the policy with real keys: %v", err)
		}
		if p.MaxAge() > 168*time.Hour {
			t.Errorf("maxAge %s exceeds the Deployment's AUTHFLOW_LEDGER_TTL 168h", p.MaxAge())
		}
	})
}

// TestSealKeyPlaceholder: the committed seal key Secret holds no seed (a worker started with
// it refuses to run), and says how to make one.
func TestSealKeyPlaceholder(t *testing.T) {
	var text string
	found := false
	for _, o := range k8sFileObjects(t, exampleSecrets) {
		if o.Kind == "Secret" && o.Metadata.Name == sealKeySecret {
			var s secret
			o.decode(t, &s)
			text, found = s.StringData[sealKeyFile], true
		}
	}
	if !found {
		t.Fatalf("no Secret %s", sealKeySecret)
	}
	// The worker takes the first line that starts with S and a capital letter as the seed.
	if seed := regexp.MustCompile(`(?m)^\s*S[A-Z]`); seed.MatchString(text) {
		t.Errorf("the placeholder %s looks like a seed: %q", sealKeyFile, text)
	}
	if !strings.Contains(text, "PLACEHOLDER") || !strings.Contains(text, "authflow keys new-sealing") {
		t.Errorf("the placeholder %s must say it is one and how to make a seed: %q", sealKeyFile, text)
	}
}
