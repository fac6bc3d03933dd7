package deploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The Helm chart of the worker, deploy/helm/authflow, checked with Helm itself: `helm lint`
// and `helm template` for the default values and each credential mode, every rendered
// manifest decoded strictly into its typed struct and checked like the kustomize builds.
//
// Helm is run from its Go module at a pinned version (go run caches the binary in the build
// cache, so only the first run compiles it, about two minutes cold). Where the Go module
// proxy cannot be reached the test skips, except in CI (CI set), where that is a failure.

const (
	helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"
	chartDir   = "helm/authflow"
	// helmTimeout bounds one helm command, including a cold build of helm.
	helmTimeout = 10 * time.Minute
)

// helmEnv isolates helm's configuration, cache and data from the user's, and builds helm
// outside this module (go run PKG@VERSION uses Helm's own go.mod).
func helmEnv(home string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "HELM_") || strings.HasPrefix(kv, "GOFLAGS=") || strings.HasPrefix(kv, "GOWORK=")
	})
	return append(env, "GOWORK=off", "GOFLAGS=-mod=mod",
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
}

// runHelm runs `helm ARGS...` from the deploy directory.
func runHelm(ctx context.Context, home string, args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", helmModule}, args...)...)
	cmd.Env = helmEnv(home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}

// helmBuilt builds helm once per test binary (`helm version`) and returns its output.
var helmBuilt = sync.OnceValues(func() (string, error) {
	home, err := os.MkdirTemp("", "authflow-helm-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(home)
	ctx, cancel := context.WithTimeout(context.Background(), helmTimeout)
	defer cancel()
	out, stderr, err := runHelm(ctx, home, "version", "--short")
	if err != nil {
		return string(stderr), err
	}
	return string(out), nil
})

// unreachable matches what the go command says when it cannot reach the module proxy.
var unreachable = regexp.MustCompile(`(?i)dial tcp|no such host|connection refused|i/o timeout|TLS handshake|network is unreachable|GOPROXY=off|proxy\.golang\.org.*(refused|timeout)|module lookup disabled`)

// requireHelm skips the test when helm cannot be built for want of the module proxy (fails it
// in CI), and fails it when the build fails otherwise.
func requireHelm(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("go command: %v", err)
	}
	start := time.Now()
	out, err := helmBuilt()
	if err != nil {
		msg := fmt.Sprintf("go run %s: %v\n%s", helmModule, err, out)
		if !unreachable.MatchString(out) {
			t.Fatal(msg)
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s\n(the Go module proxy is unreachable; CI is set: the Helm tests must run in CI)", msg)
		}
		t.Skipf("the Go module proxy is unreachable, helm not built: %s", msg)
	}
	t.Logf("helm %s (%s in this test)", strings.TrimSpace(out), time.Since(start).Round(time.Second))
}

// helm runs `helm ARGS...` and fails the test when it fails.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, stderr, err := helmE(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stderr, out)
	}
	return out
}

// helmE runs `helm ARGS...` and returns its output and error.
func helmE(t *testing.T, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), helmTimeout)
	defer cancel()
	return runHelm(ctx, t.TempDir(), args...)
}

// helmCase is one set of values the chart must render.
type helmCase struct {
	name       string
	set        []string // --set arguments
	monitoring bool
	imds       bool
	ingress    bool
}

// wiClientID is a syntactically valid application id for the workload identity renders.
const wiClientID = "11111111-2222-3333-4444-555555555555"

var helmCases = []helmCase{
	{name: "defaults (client secret)"},
	{name: "workload identity", set: []string{"credentials.mode=workloadIdentity", "credentials.workloadIdentity.clientId=" + wiClientID}},
	{name: "managed identity", set: []string{"credentials.mode=managedIdentity"}, imds: true},
	{name: "monitoring", set: []string{"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"}, monitoring: true},
	{name: "ingress", set: []string{"ingress.enabled=true"}, ingress: true},
	{name: "ingress with managed identity", set: []string{"ingress.enabled=true", "credentials.mode=managedIdentity"}, imds: true, ingress: true},
}

func setArgs(set []string) []string {
	var args []string
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

func TestHelmChart(t *testing.T) {
	requireHelm(t)
	given := k8sFileObjects(t, exampleSecrets)
	sets := map[string]k8sSet{}
	for _, c := range helmCases {
		t.Run(c.name, func(t *testing.T) {
			out := helm(t, append([]string{"lint", "--strict", chartDir, "--namespace", "authflow"}, setArgs(c.set)...)...)
			if !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Errorf("helm lint: %s", out)
			}
			// Release authflow in namespace authflow: the names of the kustomize layout.
			out = helm(t, append([]string{"template", "authflow", chartDir, "--namespace", "authflow"}, setArgs(c.set)...)...)
			if _, err := decodeTyped(c.name, out); err != nil {
				t.Error(err)
			}
			set := k8sSet{name: "helm " + c.name, objs: k8sObjectsFromYAML(t, "helm "+c.name, out), given: given,
				monitoring: c.monitoring, imds: c.imds, ingress: c.ingress}
			checkK8sSet(t, set)
			sets[c.name] = set
		})
	}
	if len(sets) == len(helmCases) {
		t.Run("credential variants", func(t *testing.T) {
			checkCredentialVariants(t, sets["defaults (client secret)"], sets["workload identity"], sets["managed identity"])
			wi := sets["workload identity"]
			for _, o := range wi.objs {
				if o.Kind == "ServiceAccount" && o.Metadata.Annotations["azure.workload.identity/client-id"] != wiClientID {
					t.Errorf("%s: client-id annotation %q, want %s", o, o.Metadata.Annotations["azure.workload.identity/client-id"], wiClientID)
				}
			}
		})
	}
}

// TestHelmChartRefusesBadValues: a value the chart cannot honour fails the render with a
// message naming it, instead of rendering a worker that cannot start.
func TestHelmChartRefusesBadValues(t *testing.T) {
	requireHelm(t)
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"unknown credentials mode", []string{"credentials.mode=password"}, "managedIdentity"},
		{"workload identity without client id", []string{"credentials.mode=workloadIdentity"}, "credentials.workloadIdentity.clientId"},
		{"misspelled value", []string{"replicas=3"}, "replicas"},
		{"replicas not a number", []string{"replicaCount=many"}, "replicaCount"},
		{"image digest not a digest", []string{"image.digest=latest"}, "digest"},
		{"misspelled ingress value", []string{"ingress.enabled=true", "ingress.replicas=3"}, "replicas"},
		{"ingress port not a number", []string{"ingress.enabled=true", "ingress.port=https"}, "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, err := helmE(t, append([]string{"template", "authflow", chartDir}, setArgs(tt.set)...)...)
			if err == nil {
				t.Fatalf("helm template --set %v succeeded, want a refusal:\n%s", tt.set, out)
			}
			if !strings.Contains(string(stderr), tt.want) {
				t.Errorf("helm template --set %v: %s, want a message naming %s", tt.set, stderr, tt.want)
			}
		})
	}
}

// TestHelmChartPolicy: the chart's default policy is the kustomize layout's, and a policy
// given in the values replaces it.
func TestHelmChartPolicy(t *testing.T) {
	chartPolicy, err := os.ReadFile(filepath.Join(chartDir, "files", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	objs, err := decodeTyped("configmap-policy", mustRead(t, filepath.Join("k8s", "base", "configmap-policy.yaml")))
	if err != nil || len(objs) != 1 {
		t.Fatalf("k8s/base/configmap-policy.yaml: %v", err)
	}
	cm = *objs[0].(*corev1.ConfigMap)
	if got, want := string(chartPolicy), cm.Data["policy.yaml"]; got != want {
		t.Errorf("helm/authflow/files/policy.yaml differs from the policy of k8s/base/configmap-policy.yaml:\n%s\n---\n%s", got, want)
	}

	requireHelm(t)
	custom := filepath.Join(t.TempDir(), "policy.yaml")
	const text = "version: 1\nmaxAge: 1h\nsources: {}\n"
	if err := os.WriteFile(custom, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, string(chartPolicy)},
		{"from a file", []string{"--set-file", "policy.content=" + custom}, text},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := helm(t, append([]string{"template", "authflow", chartDir, "--show-only", "templates/configmap-policy.yaml"}, c.args...)...)
			objs, err := decodeTyped(c.name, out)
			if err != nil || len(objs) != 1 {
				t.Fatalf("rendered policy ConfigMap: %v\n%s", err, out)
			}
			if got := objs[0].(*corev1.ConfigMap).Data["policy.yaml"]; strings.TrimSpace(got) != strings.TrimSpace(c.want) {
				t.Errorf("policy.yaml:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

// TestHelmChartAlerts: the chart's PrometheusRule has the alerts of the monitoring component,
// with the same expressions where they do not name the release.
func TestHelmChartAlerts(t *testing.T) {
	requireHelm(t)
	out := helm(t, "template", "authflow", chartDir, "--namespace", "authflow",
		"--set", "metrics.prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml")
	rendered, err := decodeTyped("chart rules", out)
	if err != nil || len(rendered) != 1 {
		t.Fatalf("rendered PrometheusRule: %v", err)
	}
	component, err := decodeTyped("component rules", mustRead(t, filepath.Join("k8s", "components", "monitoring", "prometheusrule.yaml")))
	if err != nil || len(component) != 1 {
		t.Fatalf("components/monitoring/prometheusrule.yaml: %v", err)
	}
	alerts := func(o any) map[string]string {
		m := map[string]string{}
		for _, g := range o.(*monitoringv1.PrometheusRule).Spec.Groups {
			for _, r := range g.Rules {
				m[r.Alert] = r.Expr.String() + " | " + r.Annotations["summary"]
			}
		}
		return m
	}
	got, want := alerts(rendered[0]), alerts(component[0])
	if len(want) == 0 {
		t.Fatal("the monitoring component has no alerts")
	}
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("the chart's alerts differ from the component's:\nchart:     %v\ncomponent: %v", got, want)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestHelmChartIngress: the chart's ingress is the kustomize base's: the same default
// configuration (files/ingress.yaml), and the same container, volumes and pod security with
// the default values; a configuration given in the values replaces the default.
func TestHelmChartIngress(t *testing.T) {
	chartConfig := string(mustRead(t, filepath.Join(chartDir, "files", "ingress.yaml")))
	if base := ingressConfigMap(t, filepath.Join("k8s", "base", "ingress-configmap.yaml")); chartConfig != base {
		t.Errorf("helm/authflow/files/ingress.yaml differs from the configuration of k8s/base/ingress-configmap.yaml:\n%s\n---\n%s", chartConfig, base)
	}
	requireHelm(t)
	podOf := func(name string, data []byte) corev1.PodSpec {
		t.Helper()
		objs, err := decodeTyped(name, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if d, ok := o.(*appsv1.Deployment); ok && d.Name == "authflow-ingress" {
				spec := d.Spec.Template.Spec
				spec.TopologySpreadConstraints = nil // the chart's selectors add the release
				return spec
			}
		}
		t.Fatalf("%s: no Deployment authflow-ingress", name)
		return corev1.PodSpec{}
	}
	base, err := kustomizeBuild(k8sFS(t), "/k8s/base")
	if err != nil {
		t.Fatal(err)
	}
	out := helm(t, "template", "authflow", chartDir, "--namespace", "authflow", "--set", "ingress.enabled=true")
	if got, want := podOf("helm", out), podOf("kustomize base", base); mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("the chart's ingress pod differs from the kustomize base's:\nhelm: %s\nbase: %s", mustJSON(t, got), mustJSON(t, want))
	}
	custom := filepath.Join(t.TempDir(), "ingress.yaml")
	const text = "version: 1\nsources: {}\n"
	if err := os.WriteFile(custom, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out = helm(t, "template", "authflow", chartDir, "--set", "ingress.enabled=true", "--set-file", "ingress.config.content="+custom,
		"--show-only", "templates/ingress-configmap.yaml")
	objs, err := decodeTyped("ingress config", out)
	if err != nil || len(objs) != 1 {
		t.Fatalf("rendered ingress ConfigMap: %v\n%s", err, out)
	}
	if got := objs[0].(*corev1.ConfigMap).Data["ingress.yaml"]; strings.TrimSpace(got) != strings.TrimSpace(text) {
		t.Errorf("ingress.yaml:\n%s\nwant:\n%s", got, text)
	}
	// Off by default: no ingress object at all.
	for _, o := range k8sObjectsFromYAML(t, "defaults", helm(t, "template", "authflow", chartDir, "--namespace", "authflow")) {
		if strings.Contains(o.Metadata.Name, "ingress") {
			t.Errorf("%s rendered with ingress.enabled false", o)
		}
	}
}
