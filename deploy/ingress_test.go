package deploy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/ingress"
)

// The HTTP ingress in the deployment: its NATS user runs the ingress's own code.

// TestIngressUserRunsTheIngress: what deploy/README.md says the ingress user may do is what
// the ingress does. The ingress, connected as the ingress user of accounts.conf with its
// inbox prefix, reports ready, stores an event, answers Prefer: wait with its result,
// delivers that result to the source's results webhook and parks the next one, which the
// webhook refuses, in the DLQ, all without a single permission violation.
func TestIngressUserRunsTheIngress(t *testing.T) {
	s, pw := permServer(t)
	admin, _ := connect(t, s, "admin", pw["admin"])
	adminJS, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	worker, _ := connect(t, s, "worker", pw["worker"])
	workerJS, err := jetstream.New(worker)
	if err != nil {
		t.Fatal(err)
	}
	nc, viol := connect(t, s, "ingress", pw["ingress"])

	// The source's results endpoint: takes the first result, then answers 410 Gone, which
	// is not retried.
	var calls atomic.Int32
	delivered := make(chan []byte, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) > 1 {
			w.WriteHeader(http.StatusGone)
			return
		}
		delivered <- body
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	const source, token = "hr/ingress", "deploy-test-ingress-token"
	sum := sha256.Sum256([]byte(token))
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	cfg, err := ingress.ParseConfig([]byte(`version: 1
sources:
  `+source+`:
    auth: {bearer: {tokenSHA256: ["`+hex.EncodeToString(sum[:])+`"]}}
    signingSeed: env:SEED
    results:
      url: `+receiver.URL+`
      secrets: ["whsec_`+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k"), 32))+`"]
      initialInterval: 50ms
      maxInterval: 100ms
      maxElapsed: 2s
`), ingress.LoadOptions{LookupEnv: func(name string) (string, bool) { return string(seed), name == "SEED" }})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ingress.New(ingress.Options{Config: cfg, NATS: nc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resultsDone := make(chan struct{})
	go func() { _ = srv.RunResults(ctx); close(resultsDone) }()
	defer func() { cancel(); <-resultsDone }()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 15s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	eventually("the results consumer", func() bool {
		_, err := adminJS.Consumer(ctx, "AUTHFLOW_RESULTS", ingress.ResultsConsumerName(source))
		return err == nil
	})
	if resp, err := http.Get(hs.URL + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %v %v", resp, err)
	}
	stored := func() uint64 {
		st, err := adminJS.Stream(ctx, "AUTHFLOW_EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}

	// post sends one event; answerAs publishes its result as the worker would.
	post := func(id string, wait bool) (*http.Response, []byte) {
		raw, err := events.MarshalEvent(id, source, events.TypeMethodsInventory, "adele.vance@contoso.example", time.Now(), json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/v1/events", bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", ingress.MediaTypeCloudEvents)
		if wait {
			req.Header.Set("Prefer", "wait=20")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return nil, nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	answerAs := func(id, resultSubject string) []byte {
		now := time.Now().UTC()
		key := events.EventKey(source, id)
		res, err := events.NewResult(key, "adele.vance@contoso.example", events.ResultData{
			Event: events.EventRef{Source: source, ID: id, Type: events.TypeMethodsInventory},
			User:  events.UserInfo{Ref: "adele.vance@contoso.example"}, Status: events.StatusSucceeded,
			Attempts: 1, ReceivedAt: now, StartedAt: now, FinishedAt: now,
		}, now).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(resultSubject)
		m.Data = res
		m.Header.Set(ingress.HeaderEventSource, source)
		m.Header.Set(ingress.HeaderEventID, id)
		if _, err := workerJS.PublishMsg(ctx, m, jetstream.WithMsgID(key+":result")); err != nil {
			t.Fatal(err)
		}
		return res
	}

	// Prefer: wait: the answer is the result the worker publishes meanwhile.
	type answer struct {
		resp *http.Response
		body []byte
	}
	waited := make(chan answer, 1)
	go func() { r, b := post("deploy-1", true); waited <- answer{r, b} }()
	eventually("the event stored", func() bool { return stored() == 1 })
	st, _ := adminJS.Stream(ctx, "AUTHFLOW_EVENTS")
	first, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	if first.Header.Get(events.HeaderSigner) != pub || events.Verify(first.Data, first.Header.Get(events.HeaderSignature), pub) != nil {
		t.Errorf("the stored event is not signed with the source's key %s", pub)
	}
	user, err := events.ParseUser("adele.vance@contoso.example")
	if err != nil {
		t.Fatal(err)
	}
	result := answerAs("deploy-1", ingress.ResultsSubjectPrefix+ingress.UserKey(user))
	a := <-waited
	if a.resp == nil || a.resp.StatusCode != http.StatusOK || !bytes.Equal(a.body, result) {
		t.Fatalf("Prefer: wait: %v %s, want 200 with the result", a.resp, a.body)
	}
	select {
	case got := <-delivered:
		if !bytes.Equal(got, result) {
			t.Errorf("delivered %s, want the result", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the results webhook was not called")
	}

	// The next result is refused for good: parked in the DLQ.
	resp, body := post("deploy-2", false)
	if resp == nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post: %v %s", resp, body)
	}
	var acc ingress.Accepted
	if err := json.Unmarshal(body, &acc); err != nil {
		t.Fatal(err)
	}
	answerAs("deploy-2", acc.ResultSubject)
	eventually("the refused result in the DLQ", func() bool {
		dlq, err := adminJS.Stream(ctx, "AUTHFLOW_DLQ")
		if err != nil {
			return false
		}
		m, err := dlq.GetLastMsgForSubject(ctx, "authflow.dlq.>")
		return err == nil && m.Header.Get(ingress.HeaderDLQReason) == ingress.DLQReasonResultsWebhook
	})

	select {
	case v := <-viol:
		t.Errorf("the ingress user hit a permission violation: %v", v)
	default:
	}
	if err := errors.Join(nc.LastError()); err != nil && errors.Is(err, nats.ErrPermissionViolation) {
		t.Errorf("last error of the ingress connection: %v", err)
	}
}

// ingressConfigMap returns the ingress.yaml of a ConfigMap manifest.
func ingressConfigMap(t *testing.T, file string) string {
	t.Helper()
	for _, o := range k8sFileObjects(t, file) {
		if o.Kind == "ConfigMap" {
			var cm configMap
			o.decode(t, &cm)
			if text := cm.Data["ingress.yaml"]; text != "" {
				return text
			}
		}
	}
	t.Fatalf("%s: no ConfigMap with ingress.yaml", file)
	return ""
}

// exampleRoutes are the routes of ingress/testdata/examples.yaml (the tested examples of
// docs/ingress.md): route name to sources and mapping.
type exampleRoute struct {
	Sources          []string          `yaml:"sources"`
	OktaVerification bool              `yaml:"oktaVerification"`
	Mapping          map[string]string `yaml:"mapping"`
}

func routesOf(t *testing.T, config string) map[string]exampleRoute {
	t.Helper()
	var c struct {
		Routes map[string]exampleRoute `yaml:"routes"`
	}
	if err := yaml.Unmarshal([]byte(config), &c); err != nil {
		t.Fatal(err)
	}
	return c.Routes
}

// TestKubernetesIngressConfig: the ingress configuration of k8s/base, the Secret of
// examples/secrets.yaml and the worker's policy work together. As shipped (placeholder
// hashes and seeds) the configuration does not load: the ingress fails closed. With real
// values in the placeholders' places it loads, its routes are the tested example mappings
// under this deployment's source names, and the example bodies posted to it, as the ingress
// user of accounts.conf, are stored as events that the policy (keys: the ingress's, one per
// source) accepts.
func TestKubernetesIngressConfig(t *testing.T) {
	config := ingressConfigMap(t, filepath.Join("k8s", "base", "ingress-configmap.yaml"))
	var secretKeys map[string]string
	for _, o := range k8sFileObjects(t, exampleSecrets) {
		if o.Metadata.Name == "authflow-ingress" {
			var s secret
			o.decode(t, &s)
			secretKeys = s.StringData
		}
	}
	if len(secretKeys) == 0 {
		t.Fatal("examples/secrets.yaml: no Secret authflow-ingress")
	}
	// Every file the configuration names is a key of the Secret, and every key is named.
	const secretsDir = "/etc/authflow/ingress/secrets/"
	named := map[string]bool{}
	for _, ref := range ingressFileRefs(config) {
		base, ok := strings.CutPrefix(ref, secretsDir)
		if !ok || secretKeys[base] == "" {
			t.Errorf("file:%s is not a key of the Secret authflow-ingress (mounted at %s)", ref, secretsDir)
		}
		named[base] = true
	}
	for k := range secretKeys {
		if !named[k] {
			t.Errorf("Secret authflow-ingress: key %s is named by no file: of the ingress configuration", k)
		}
	}

	// load writes the Secret's files into a directory and parses the configuration with its
	// paths there.
	load := func(files map[string]string, text string) (*ingress.Config, error) {
		dir := t.TempDir()
		for name, v := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return ingress.ParseConfig([]byte(strings.ReplaceAll(text, secretsDir, dir+"/")), ingress.LoadOptions{
			LookupEnv: func(string) (string, bool) { return "", false }})
	}
	if _, err := load(secretKeys, config); err == nil {
		t.Error("the shipped configuration with the placeholder Secret loads: the ingress must refuse to start until real values are set")
	}

	// Real values: a seed per source, the senders' secrets, the passwords' hashes.
	passwords := map[string]string{"WORKDAY": "k8s-test-workday-password-0123456789", "SERVICENOW": "k8s-test-servicenow-password-0123456789"}
	hashRE := regexp.MustCompile(`PLACEHOLDER-SHA256-OF-THE-([A-Z]+)-PASSWORD`)
	if n := len(hashRE.FindAllString(config, -1)); n != len(passwords) {
		t.Fatalf("%d placeholder password hashes, want %d", n, len(passwords))
	}
	real := hashRE.ReplaceAllStringFunc(config, func(m string) string {
		sum := sha256.Sum256([]byte(passwords[hashRE.FindStringSubmatch(m)[1]]))
		return hex.EncodeToString(sum[:])
	})
	files := map[string]string{}
	pubs := map[string]string{} // by seed file
	for k := range secretKeys {
		switch {
		case strings.HasSuffix(k, ".seed"):
			kp, _ := nkeys.CreateUser()
			seed, _ := kp.Seed()
			pubs[k], _ = kp.PublicKey()
			files[k] = string(seed) + "\n"
		case strings.HasSuffix(k, "-results.secret"):
			files[k] = "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("r"), 32)) + "\n"
		default:
			files[k] = "k8s-test-shared-secret-0123456789\n"
		}
	}
	cfg, err := load(files, real)
	if err != nil {
		t.Fatalf("the ingress configuration with real values: %v", err)
	}

	// The routes are the tested examples, under this deployment's source names.
	examples, err := os.ReadFile(filepath.Join("..", "ingress", "testdata", "examples.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rename := map[string]string{"itsm/servicenow": "helpdesk/servicenow", "itsm/jira": "helpdesk/jira", "hr/workday": "hr/workday"}
	want := routesOf(t, string(examples))
	for name, r := range want {
		for i, s := range r.Sources {
			r.Sources[i] = rename[s]
		}
		want[name] = r
	}
	if got := routesOf(t, real); mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("the routes of ingress-configmap.yaml differ from the tested examples (ingress/testdata/examples.yaml):\n%s\n%s", mustJSON(t, got), mustJSON(t, want))
	}

	// The worker's policy with the ingress's keys for the placeholders.
	policyText := ""
	for _, o := range k8sFileObjects(t, filepath.Join("k8s", "base", "configmap-policy.yaml")) {
		var cm configMap
		o.decode(t, &cm)
		policyText = cm.Data["policy.yaml"]
	}
	for placeholder, seed := range map[string]string{
		"PLACEHOLDER-HR-SIGNING-PUBLIC-KEY":       "hr-workday.seed",
		"PLACEHOLDER-HELPDESK-SIGNING-PUBLIC-KEY": "helpdesk-servicenow.seed",
		"PLACEHOLDER-JIRA-SIGNING-PUBLIC-KEY":     "helpdesk-jira.seed",
	} {
		if pubs[seed] == "" || !strings.Contains(policyText, placeholder) {
			t.Fatalf("no %s in the policy, or no seed %s in the Secret", placeholder, seed)
		}
		policyText = strings.ReplaceAll(policyText, placeholder, pubs[seed])
	}
	policy, err := events.ParsePolicy([]byte(policyText))
	if err != nil {
		t.Fatal(err)
	}

	basic := func(user, pw string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
	}
	jiraSecret := strings.TrimSpace(files["jira-webhook.secret"])
	postExampleHooks(t, cfg, policy, map[string]func([]byte) [2]string{
		"servicenow-mfa-reset": func([]byte) [2]string {
			return [2]string{"Authorization", basic("servicenow", passwords["SERVICENOW"])}
		},
		"jira-lost-device":    func(b []byte) [2]string { return [2]string{"X-Hub-Signature", hubSignature(jiraSecret, b)} },
		"workday-termination": func([]byte) [2]string { return [2]string{"Authorization", basic("workday", passwords["WORKDAY"])} },
	})
}

// hubSignature is Jira's X-Hub-Signature of body.
func hubSignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// postExampleHooks runs an ingress with cfg as the ingress user of accounts.conf, posts the
// example bodies of ingress/testdata (times moved to now) to their routes with the
// credentials auth gives, and requires each stored event to pass the worker's policy
// (source, signature, type, verification).
func postExampleHooks(t *testing.T, cfg *ingress.Config, policy *events.Policy, auth map[string]func(body []byte) [2]string) {
	t.Helper()
	s, pw := permServer(t)
	admin, _ := connect(t, s, "admin", pw["admin"])
	adminJS, _ := jetstream.New(admin)
	nc, viol := connect(t, s, "ingress", pw["ingress"])
	srv, err := ingress.New(ingress.Options{Config: cfg, NATS: nc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	now := time.Now().UTC().Truncate(time.Second)
	body := func(name, old, new string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "ingress", "testdata", name))
		if err != nil || !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s: %v, or no %q in it", name, err, old)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
	posts := []struct {
		route string
		body  []byte
	}{
		{"servicenow-mfa-reset", body("servicenow-incident.json", "2025-03-04 10:15:30", now.Format("2006-01-02 15:04:05"))},
		{"jira-lost-device", body("jira-issue.json", "1741083330123", strconv.FormatInt(now.UnixMilli(), 10))},
		{"workday-termination", body("workday-termination.json", "2025-03-04T10:15:30Z", now.Format(time.RFC3339))},
	}
	if len(auth) != len(posts) {
		t.Fatalf("credentials for %d routes, want %d", len(auth), len(posts))
	}
	for i, p := range posts {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/v1/hooks/"+p.route, bytes.NewReader(p.body))
		req.Header.Set("Content-Type", "application/json")
		h := auth[p.route](p.body)
		req.Header.Set(h[0], h[1])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: %d %s", p.route, resp.StatusCode, b)
		}
		st, err := adminJS.Stream(t.Context(), "AUTHFLOW_EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		m, err := st.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decoder{DefaultRegion: "US"}.Decode(m.Data)
		if err != nil {
			t.Fatalf("%s: stored event: %v", p.route, err)
		}
		if err := policy.CheckAuth(ev, m.Data, m.Header); err != nil {
			t.Errorf("%s: the worker's policy refuses the stored %s event of %s: %v", p.route, ev.Type, ev.Source, err)
		}
	}
	select {
	case v := <-viol:
		t.Errorf("permission violation: %v", v)
	default:
	}
}

// TestComposeIngressConfig: the compose ingress's configuration loads with the seeds
// build-images.sh makes, its routes are the tested examples under the dev policy's source
// names, and the example bodies sent with its documented development credentials are stored
// as events the dev policy accepts.
func TestComposeIngressConfig(t *testing.T) {
	const file = "ingress/dev-ingress.yaml"
	text := string(mustRead(t, file))
	dir := t.TempDir()
	for _, ref := range ingressFileRefs(text) {
		if filepath.IsAbs(ref) || strings.Contains(ref, "/") {
			t.Fatalf("file:%s: the compose ingress's seeds sit beside its configuration", ref)
		}
		kp, _ := nkeys.CreateUser()
		seed, _ := kp.Seed()
		if err := os.WriteFile(filepath.Join(dir, ref), append(seed, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := ingress.ParseConfig([]byte(text), ingress.LoadOptions{Dir: dir, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	examples := string(mustRead(t, filepath.Join("..", "ingress", "testdata", "examples.yaml")))
	rename := map[string]string{"itsm/servicenow": "helpdesk/servicenow", "itsm/jira": "helpdesk/jira", "hr/workday": "hr/workday"}
	want := routesOf(t, examples)
	for _, r := range want {
		for i, s := range r.Sources {
			r.Sources[i] = rename[s]
		}
	}
	if got := routesOf(t, text); mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("the routes of %s differ from the tested examples:\n%s\n%s", file, mustJSON(t, got), mustJSON(t, want))
	}
	policy, err := events.LoadPolicy(filepath.Join("policy", "dev-policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The credentials the file's header (and compose.yaml's) documents.
	basic := func(user, pw string) func([]byte) [2]string {
		return func([]byte) [2]string {
			return [2]string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))}
		}
	}
	for _, doc := range []string{"workday / dev-workday-password", "servicenow / dev-servicenow-password", "dev-jira-webhook-secret"} {
		if !strings.Contains(text, doc) {
			t.Errorf("%s does not document %q", file, doc)
		}
	}
	postExampleHooks(t, cfg, policy, map[string]func([]byte) [2]string{
		"servicenow-mfa-reset": basic("servicenow", "dev-servicenow-password"),
		"jira-lost-device": func(b []byte) [2]string {
			return [2]string{"X-Hub-Signature", hubSignature("dev-jira-webhook-secret", b)}
		},
		"workday-termination": basic("workday", "dev-workday-password"),
	})
}
