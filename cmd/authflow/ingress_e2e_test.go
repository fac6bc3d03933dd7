package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/ingress"
	"github.com/authflow/authflow/worker"
)

// The three example mappings of docs/ingress.md (ingress/testdata), end to
// end: `authflow ingress` maps each sender's own JSON to an event, signs it
// with its key for the source and stores it; `authflow worker`, whose policy
// pins exactly those keys, applies it to the Graph emulator over HTTP; the
// sender's Prefer: wait answer carries the result; and the results webhook
// of each source delivers that same result to a local receiver, which
// checks the Standard Webhooks signature itself.

// exampleSource is one sender of the examples: its route, credentials, the
// ingress's signing key for it and its results webhook secret.
type exampleSource struct {
	name, route string
	seedFile    string
	public      string
	secret      []byte // results webhook key
	body        []byte // the sender's JSON, times moved to now
	headers     []string
}

// webhookDelivery is one request the results receiver took.
type webhookDelivery struct {
	source string
	id     string
	body   []byte
}

// resultsReceiver is a sender's results endpoint: it verifies each request's
// Standard Webhooks signature with its own code (not the ingress's), refuses
// a bad one with 401, and answers the first request of failOnce 503 so that
// the retry is exercised.
type resultsReceiver struct {
	secrets  map[string][]byte // by source, from the URL path
	failOnce string
	mu       sync.Mutex
	failed   bool
	got      chan webhookDelivery
	bad      []string
}

func (rr *resultsReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	source := strings.TrimPrefix(r.URL.Path, "/results/")
	body, _ := io.ReadAll(r.Body)
	fail := func(why string) {
		rr.mu.Lock()
		rr.bad = append(rr.bad, source+": "+why)
		rr.mu.Unlock()
		http.Error(w, why, http.StatusUnauthorized)
	}
	key, ok := rr.secrets[source]
	if !ok {
		fail("no such source")
		return
	}
	id, ts, sigs := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		fail("webhook-timestamp " + ts + " is not within 5 minutes")
		return
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	valid := false
	for _, s := range strings.Fields(sigs) {
		valid = valid || hmac.Equal([]byte(s), []byte(want))
	}
	if !valid {
		fail("webhook-signature does not verify")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != ingress.MediaTypeCloudEvents {
		fail("Content-Type " + ct)
		return
	}
	rr.mu.Lock()
	first := source == rr.failOnce && !rr.failed
	rr.failed = rr.failed || first
	rr.mu.Unlock()
	if first {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	rr.got <- webhookDelivery{source: source, id: id, body: body}
	w.WriteHeader(http.StatusNoContent)
}

func TestIngressExamplesEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := startTestNATS(t, "")
	_, js := connectJS(t, ns)

	// The users the three examples name, with the methods each event removes.
	emu := graphclienttest.NewServer(t)
	const (
		adele  = "adele.vance@contoso.example"  // ServiceNow: MFA reset
		lee    = "lee.gu@contoso.example"       // Jira: "Lee's iPhone" lost
		nestor = "nestor.wilke@contoso.example" // Workday: terminated
	)
	ids := map[string]string{
		adele:  "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0011",
		lee:    "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0012",
		nestor: "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0013",
	}
	phone := json.RawMessage(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`)
	for upn, methods := range map[string][]json.RawMessage{
		adele: {phone, json.RawMessage(`{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"adele@fabrikam.example"}`)},
		lee: {phone, json.RawMessage(`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","displayName":"Lee's iPhone","phoneAppVersion":"6.5.4"}`),
			json.RawMessage(`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","displayName":"Lee's iPad","phoneAppVersion":"6.5.4"}`)},
		nestor: {phone},
	} {
		if err := emu.PutUser(graphclienttest.User{ID: ids[upn], UserPrincipalName: upn, Methods: methods}); err != nil {
			t.Fatal(err)
		}
	}

	// The senders' bodies, as shipped, with their times moved to now: the
	// worker refuses events older than the policy's maxAge.
	now := time.Now().UTC().Truncate(time.Second)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "ingress", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	replace := func(s, old, new string) []byte {
		if !strings.Contains(s, old) {
			t.Fatalf("the example body no longer holds %q", old)
		}
		return []byte(strings.Replace(s, old, new, 1))
	}
	const (
		snUser, snPassword = "servicenow", "e2e-servicenow-password-0123456789"
		wdUser, wdPassword = "workday", "e2e-workday-password-0123456789"
		jiraSecret         = "e2e-jira-webhook-secret-0123456789"
		jiraDelivery       = "6e2d3c1a-0b1f-4f3e-9a55-1c2b3d4e5f60"
	)
	basic := func(u, p string) []string {
		return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))}
	}
	jiraBody := replace(read("jira-issue.json"), "1741083330123", strconv.FormatInt(now.UnixMilli(), 10))
	jiraMAC := hmac.New(sha256.New, []byte(jiraSecret))
	jiraMAC.Write(jiraBody)
	sources := []*exampleSource{
		{name: "itsm/servicenow", route: "servicenow-mfa-reset",
			body:    replace(read("servicenow-incident.json"), "2025-03-04 10:15:30", now.Format("2006-01-02 15:04:05")),
			headers: basic(snUser, snPassword)},
		{name: "itsm/jira", route: "jira-lost-device", body: jiraBody,
			headers: []string{"X-Hub-Signature", "sha256=" + hex.EncodeToString(jiraMAC.Sum(nil)), "X-Atlassian-Webhook-Identifier", jiraDelivery}},
		{name: "hr/workday", route: "workday-termination",
			body:    replace(read("workday-termination.json"), "2025-03-04T10:15:30Z", now.Format(time.RFC3339)),
			headers: basic(wdUser, wdPassword)},
	}
	recv := &resultsReceiver{secrets: map[string][]byte{}, failOnce: "itsm/jira", got: make(chan webhookDelivery, 16)}
	for i, s := range sources {
		s.seedFile = signingSeedFile(t)
		kp, err := readSeedFile(s.seedFile, false)
		if err != nil {
			t.Fatal(err)
		}
		s.public, _ = kp.PublicKey()
		s.secret = bytes.Repeat([]byte{byte('a' + i)}, 32)
		recv.secrets[s.name] = s.secret
	}
	receiver := httptest.NewServer(recv) // 127.0.0.1
	defer receiver.Close()

	// The worker's policy pins the ingress's keys: an event the ingress did
	// not sign is rejected, so a success proves the trust model.
	policy := writeFile(t, "policy.yaml", fmt.Sprintf(`version: 1
sources:
  itsm/servicenow:
    signature: required
    keys: [%s]
    types: [authflow.mfa.reset.v1]
    requireVerification: [authflow.mfa.reset.v1]
  itsm/jira:
    signature: required
    keys: [%s]
    types: [authflow.device.lost.v1]
    requireVerification: [authflow.device.lost.v1]
  hr/workday:
    signature: required
    keys: [%s]
    types: [authflow.employee.left.v1]
`, sources[0].public, sources[1].public, sources[2].public))

	// The ingress configuration: the example routes verbatim, sources with
	// this test's credentials and a results webhook each.
	examples := read("examples.yaml")
	routes := examples[strings.Index(examples, "\nroutes:\n")+1:]
	whsec := func(k []byte) string { return "whsec_" + base64.StdEncoding.EncodeToString(k) }
	sha := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	results := func(s *exampleSource) string {
		return fmt.Sprintf("    results: {url: %q, secrets: [%q], initialInterval: 100ms, maxInterval: 2s, maxElapsed: 1m}\n",
			receiver.URL+"/results/"+s.name, whsec(s.secret))
	}
	config := writeFile(t, "ingress.yaml", "version: 1\ndefaultRegion: US\nsources:\n"+
		"  itsm/servicenow:\n    auth: {basic: {username: "+snUser+", passwordSHA256: [\""+sha(snPassword)+"\"]}}\n"+
		"    signingSeed: file:"+sources[0].seedFile+"\n"+results(sources[0])+
		"  itsm/jira:\n    auth: {hmac: {header: X-Hub-Signature, secrets: [\""+jiraSecret+"\"]}}\n"+
		"    signingSeed: file:"+sources[1].seedFile+"\n"+results(sources[1])+
		"  hr/workday:\n    auth: {basic: {username: "+wdUser+", passwordSHA256: [\""+sha(wdPassword)+"\"]}}\n"+
		"    signingSeed: file:"+sources[2].seedFile+"\n"+results(sources[2])+
		routes)

	// `authflow worker` and `authflow ingress`, in process, until the test ends.
	start := func(name string, args ...string) *syncBuffer {
		runCtx, stop := context.WithCancel(ctx)
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() { done <- run(runCtx, args, &stdout, &stderr) }()
		t.Cleanup(func() {
			stop()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("%s exit %d: %s", name, code, stderr.String())
				}
			case <-time.After(time.Minute):
				t.Errorf("%s did not stop", name)
			}
		})
		return &stderr
	}
	workerLog := start("worker", "worker", "--policy", policy, "--nats-url", ns.ClientURL(), "--graph-url", emu.GraphURL,
		"--graph-token", emu.Token, "--stream-replicas", "1", "--partitions", "2", "--metrics-listen", "127.0.0.1:0", "--instance", "e2e")
	waitFor(t, "the worker to start", func() bool { return strings.Contains(workerLog.String(), "authflow worker starting") })
	ingressLog := start("ingress", "ingress", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
		"--nats-url", ns.ClientURL(), "--config", config)
	var url string
	waitFor(t, "the ingress to listen", func() bool {
		line, ok := lineWith(ingressLog.String(), "authflow ingress listening")
		var rec struct{ URL string }
		_ = json.Unmarshal([]byte(line), &rec)
		url = rec.URL
		return ok
	})
	// Ready once the worker has made the streams; the results consumers
	// start with the results published after they exist.
	waitFor(t, "the ingress to be ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, s := range sources {
		waitFor(t, "the results consumer of "+s.name, func() bool {
			_, err := js.Consumer(ctx, worker.ResultsStream, ingress.ResultsConsumerName(s.name))
			return err == nil
		})
	}

	// Each sender posts its own JSON and waits for the outcome.
	answered := map[string][]byte{} // result by source
	for _, s := range sources {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/hooks/"+s.route, bytes.NewReader(s.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait=30")
		for i := 0; i+1 < len(s.headers); i += 2 {
			req.Header.Set(s.headers[i], s.headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ingress.MediaTypeCloudEvents {
			t.Fatalf("%s: %d %s, want 200 with the result:\n%s\nworker: %s", s.route, resp.StatusCode, resp.Header.Get("Content-Type"), body, workerLog.String())
		}
		res, err := events.DecodeResult(body)
		if err != nil {
			t.Fatalf("%s: result: %v\n%s", s.route, err, body)
		}
		if res.Data.Status != events.StatusSucceeded || res.Data.Event.Source != s.name {
			t.Fatalf("%s: result %s of source %s, want succeeded for %s:\n%s", s.route, res.Data.Status, res.Data.Event.Source, s.name, body)
		}
		answered[s.name] = body
	}

	// What Graph now holds: the reset user and the leaver have only their
	// password left, the lost iPhone is gone and the iPad stays.
	methods := func(upn string) (graphclienttest.User, []string) {
		u, ok := emu.User(ids[upn])
		if !ok {
			t.Fatalf("no user %s", upn)
		}
		var out []string
		for _, m := range u.Methods {
			var v struct {
				Type        string `json:"@odata.type"`
				DisplayName string `json:"displayName"`
			}
			_ = json.Unmarshal(m, &v)
			if v.Type != "#microsoft.graph.passwordAuthenticationMethod" {
				out = append(out, strings.TrimPrefix(v.Type, "#microsoft.graph.")+" "+v.DisplayName)
			}
		}
		return u, out
	}
	if u, ms := methods(adele); len(ms) != 0 || u.SessionsRevoked == 0 {
		t.Errorf("%s after the MFA reset: methods %q, sessions revoked %d", adele, ms, u.SessionsRevoked)
	}
	if _, ms := methods(lee); strings.Join(ms, ", ") != "phoneAuthenticationMethod , microsoftAuthenticatorAuthenticationMethod Lee's iPad" {
		t.Errorf("%s after the lost iPhone: methods %q, want the phone and the iPad", lee, ms)
	}
	if u, ms := methods(nestor); len(ms) != 0 || u.AccountEnabled == nil || *u.AccountEnabled || u.SessionsRevoked == 0 {
		t.Errorf("%s after the termination: methods %q, enabled %v, sessions revoked %d", nestor, ms, *u.AccountEnabled, u.SessionsRevoked)
	}

	// Each source's results webhook delivers exactly the result its sender
	// was answered with; Jira's after a 503 and a retry.
	delivered := map[string]webhookDelivery{}
	for len(delivered) < len(sources) {
		select {
		case d := <-recv.got:
			if _, dup := delivered[d.source]; dup {
				t.Fatalf("%s: a second delivery", d.source)
			}
			delivered[d.source] = d
		case <-time.After(30 * time.Second):
			recv.mu.Lock()
			t.Fatalf("results webhooks: %d of %d delivered; refused: %q\ningress: %s", len(delivered), len(sources), recv.bad, ingressLog.String())
		}
	}
	for _, s := range sources {
		d := delivered[s.name]
		res, err := events.DecodeResult(d.body)
		if err != nil {
			t.Fatalf("%s: delivered result: %v", s.name, err)
		}
		if !bytes.Equal(d.body, answered[s.name]) || d.id != res.ID {
			t.Errorf("%s: delivered webhook-id %s and\n%s\nwant id %s and the answered result\n%s", s.name, d.id, d.body, res.ID, answered[s.name])
		}
	}
	recv.mu.Lock()
	if len(recv.bad) > 0 || !recv.failed {
		t.Errorf("receiver refused %q; the first Jira attempt failed: %v", recv.bad, recv.failed)
	}
	recv.mu.Unlock()
	if st, err := js.Stream(ctx, worker.DLQStream); err != nil {
		t.Fatal(err)
	} else if info, err := st.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("DLQ: %v, %+v; want nothing parked", err, info.State)
	}
	for _, secret := range []string{snPassword, wdPassword, jiraSecret, whsec(sources[0].secret)} {
		if strings.Contains(ingressLog.String(), secret) {
			t.Errorf("the ingress log holds a secret (%q)", secret)
		}
	}
}
