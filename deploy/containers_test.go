package deploy

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// Container tests: the topology of compose.yaml (three NATS JetStream nodes with
// sync_interval always and R3 streams, two workers, the Graph emulator) from the local
// images, events sent with `authflow send --wait`, results and the emulator's state checked.
// See containers_cluster_test.go for how the topology is run, and why nothing is pulled.

// The seed users of emulator-seed.json.
const (
	adele = "adele.vance@contoso.com" // mobile phone
	alex  = "alex.wilber@contoso.com" // mobile phone and email
	megan = "megan.bowen@contoso.com" // mobile phone; Global Administrator, so protected
)

// authflowStreams are the streams the workers create with --stream-replicas 3.
var authflowStreams = []string{worker.EventsStream, worker.ResultsStream, worker.DLQStream, "KV_" + worker.LedgerBucket}

func TestClusterEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)
	ids := seedUsers(t)

	// Every node holds a replica of every stream, and syncs every write.
	for _, node := range natsNodes {
		info, err := c.jsz(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		if !info.Config.SyncAlways {
			t.Errorf("%s: JetStream sync_always is off: want sync_interval: always", node)
		}
		have := streams(info)
		for _, name := range authflowStreams {
			s, ok := have[name]
			switch {
			case !ok:
				t.Errorf("%s holds no replica of stream %s", node, name)
			case s.Config == nil || s.Config.Replicas != 3:
				t.Errorf("%s: stream %s config %+v, want 3 replicas", node, name, s.Config)
			case name == worker.EventsStream && s.Config.MaxMsgSize != maxPayload:
				t.Errorf("%s: stream %s MaxMsgSize %d, want the servers' max_payload %d", node, name, s.Config.MaxMsgSize, maxPayload)
			}
		}
		// The limit the worker's streams assume is the one the server enforces.
		var varz server.Varz
		if err := c.getJSON(ctx, node, natsMonitorPort, "/varz", &varz); err != nil {
			t.Fatal(err)
		}
		if varz.MaxPayload != maxPayload {
			t.Errorf("%s: max_payload %d, want %d", node, varz.MaxPayload, maxPayload)
		}
	}

	c.checkSealKey(ctx)

	// A joiner: the mobile phone is already there, the SSPR email is new.
	out := c.send(ctx, "authflow.employee.joined.v1", "--source", "hr/workday", "--subject", adele,
		"--data", `{"mobilePhone":"+1 425 555 0100","email":"adele.vance@fabrikam.example"}`, "--wait")
	if out.exit != exitSucceeded || !strings.Contains(out.stdout, "succeeded") || !strings.Contains(out.stdout, "authflow.employee.joined.v1") {
		t.Fatalf("joined: exit %d, want 0 and a printed success\nstdout: %s\nstderr: %s", out.exit, out.stdout, out.stderr)
	}
	if !strings.Contains(out.stderr, "published authflow.employee.joined.v1") {
		t.Errorf("joined: stderr %q, want the publish acknowledgement", out.stderr)
	}
	u := c.emulatorUser(ctx, ids[adele])
	if emails := u.methods("emailAuthenticationMethod"); len(emails) != 1 || emails[0]["emailAddress"] != "adele.vance@fabrikam.example" {
		t.Errorf("adele's email methods after joined: %v", emails)
	}
	if phones := u.methods("phoneAuthenticationMethod"); len(phones) != 1 || phones[0]["phoneNumber"] != "+1 4255550100" {
		t.Errorf("adele's phones after joined: %v, want the seeded mobile only", phones)
	}

	// MFA reset of a protected user (a directory role): rejected before any write.
	res := c.sendWait(ctx, exitFailed, "authflow.mfa.reset.v1", "--source", "helpdesk/servicenow", "--subject", megan, "--data", "{}")
	if res.Data.Status != events.StatusRejected || res.Data.Error == nil || res.Data.Error.Code != events.CodeProtectedUser {
		t.Errorf("mfa reset of %s: status %s, error %+v, want rejected with %s", megan, res.Data.Status, res.Data.Error, events.CodeProtectedUser)
	}
	u = c.emulatorUser(ctx, ids[megan])
	if phones := u.methods("phoneAuthenticationMethod"); len(phones) != 1 || u.SessionsRevoked != 0 {
		t.Errorf("megan after a rejected reset: phones %v, sessions revoked %d: want untouched", phones, u.SessionsRevoked)
	}

	// A phone, then an inventory of the same user: one user's events apply in order.
	res = c.sendWait(ctx, exitSucceeded, "authflow.phone.set.v1", "--subject", alex,
		"--data", `{"phoneType":"alternateMobile","phoneNumber":"+44 20 7946 0958"}`)
	if len(res.Data.Operations) != 1 || res.Data.Operations[0].Outcome != events.OutcomeCreated {
		t.Errorf("phone.set: operations %+v, want one created", res.Data.Operations)
	}
	u = c.emulatorUser(ctx, ids[alex])
	if !slices.ContainsFunc(u.methods("phoneAuthenticationMethod"), func(m map[string]any) bool {
		return m["phoneType"] == "alternateMobile" && m["phoneNumber"] == "+44 2079460958"
	}) {
		t.Errorf("alex's phones: %v, want the alternate mobile +44 2079460958", u.methods("phoneAuthenticationMethod"))
	}
	res = c.sendWait(ctx, exitSucceeded, "authflow.methods.inventory.v1", "--source", "hr/workday", "--subject", alex)
	kinds := map[string]int{}
	for _, op := range res.Data.Operations {
		for _, m := range op.Methods {
			kinds[m.Kind]++
		}
	}
	if kinds[events.KindPhone] != 2 || kinds[events.KindEmail] != 1 {
		t.Errorf("inventory of %s: methods by kind %v, want 2 phones and 1 email", alex, kinds)
	}

	// A user the directory does not have: failed, exit 1.
	res = c.sendWait(ctx, exitFailed, "authflow.email.set.v1", "--subject", "nobody@contoso.com",
		"--data", `{"emailAddress":"nobody@fabrikam.example"}`)
	if res.Data.Status != events.StatusFailed || res.Data.Error == nil || res.Data.Error.Code != events.CodeUserNotFound {
		t.Errorf("unknown user: status %s, error %+v, want failed with %s", res.Data.Status, res.Data.Error, events.CodeUserNotFound)
	}

	// An invalid event is refused by send itself: exit 2, nothing published.
	out = c.send(ctx, "authflow.phone.set.v1", "--subject", alex, "--data", `{"phoneType":"mobile","phoneNumber":"call me maybe"}`, "--wait")
	if out.exit != exitUsage || strings.Contains(out.stderr, "published") || !strings.Contains(out.stderr, "invalid event") {
		t.Errorf("invalid event: exit %d, stderr %q: want 2 and an invalid-event message, nothing published", out.exit, out.stderr)
	}

	// Through the HTTP ingress (its development configuration, ingress/dev-ingress.yaml):
	// a CloudEvent from Workday's credentials, then ServiceNow's own incident JSON on its
	// hook route, each answered with its result (Prefer: wait).
	workday := "Basic " + base64.StdEncoding.EncodeToString([]byte("workday:dev-workday-password"))
	ev, err := events.MarshalEvent("compose-ingress-1", "hr/workday", events.TypeMethodsInventory, alex, time.Now(), json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	code, body := c.ingressPost(ctx, "/v1/events", ev, "Authorization", workday, "Content-Type", "application/cloudevents+json")
	if res, err := events.DecodeResult(body); code != 200 || err != nil || res.Data.Status != events.StatusSucceeded {
		t.Errorf("ingress, an inventory of %s: %d %v, want 200 with a succeeded result", alex, code, err)
	}
	incident := fmt.Sprintf(`{"number":"INC0020001","sys_updated_on":%q,"caller_id":{"email":%q},`+
		`"assigned_to":{"name":"Megan Bowen"},"u_verification_method":"callback"}`, time.Now().UTC().Format("2006-01-02 15:04:05"), alex)
	servicenow := "Basic " + base64.StdEncoding.EncodeToString([]byte("servicenow:dev-servicenow-password"))
	code, body = c.ingressPost(ctx, "/v1/hooks/servicenow-mfa-reset", []byte(incident), "Authorization", servicenow, "Content-Type", "application/json")
	res, err = events.DecodeResult(body)
	if code != 200 || err != nil || res.Data.Status != events.StatusSucceeded || res.Data.Event.Type != events.TypeMFAReset {
		t.Fatalf("ingress, ServiceNow's MFA reset of %s: %d %v, want 200 with a succeeded mfa.reset result", alex, code, err)
	}
	u = c.emulatorUser(ctx, ids[alex])
	if n := len(u.methods("phoneAuthenticationMethod")) + len(u.methods("emailAuthenticationMethod")); n != 0 || u.SessionsRevoked == 0 {
		t.Errorf("%s after the MFA reset: %d phone and email methods, sessions revoked %d", alex, n, u.SessionsRevoked)
	}
	metrics, err := c.get(ctx, "ingress", "9090/tcp", "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := metricSum(string(metrics), "authflow_ingress_requests_total", `code="200"`); err != nil || n != 2 {
		t.Errorf("authflow_ingress_requests_total{code=\"200\"} %v (%v), want 2", n, err)
	}
}

func TestClusterSurvivesNodeLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)

	// Lose the node that leads the events stream: the worst node to lose.
	info, err := c.jsz(ctx, "nats-1")
	if err != nil {
		t.Fatal(err)
	}
	lost := ""
	if s, ok := streams(info)[worker.EventsStream]; ok && s.Cluster != nil {
		lost = s.Cluster.Leader
	}
	if !slices.Contains(natsNodes, lost) {
		t.Fatalf("leader of %s: %q, want one of %v", worker.EventsStream, lost, natsNodes)
	}
	// The host's view: every node's published client port, the lost node's first.
	hostURLs := c.hostNATSURLs(ctx)
	slices.SortStableFunc(hostURLs, func(a, b nodeURL) int {
		return cmp.Compare(boolInt(b.node == lost), boolInt(a.node == lost))
	})
	c.stop(ctx, lost, 10*time.Second)
	survivor := natsNodes[(slices.Index(natsNodes, lost)+1)%len(natsNodes)]
	// The two others elect new leaders; until then a publish has nobody to answer it.
	c.eventually(ctx, readyTimeout, "new stream leaders without "+lost, func(ctx context.Context) error {
		info, err := c.jsz(ctx, survivor)
		if err != nil {
			return err
		}
		have := streams(info)
		for _, name := range authflowStreams {
			s, ok := have[name]
			if !ok || s.Cluster == nil || s.Cluster.Leader == "" || s.Cluster.Leader == lost {
				return fmt.Errorf("stream %s has no leader yet", name)
			}
		}
		return nil
	})

	type event struct {
		typ  string
		args []string
	}
	batch := func(n int) []event {
		return []event{
			{"authflow.phone.set.v1", []string{"--subject", adele, "--data", fmt.Sprintf(`{"phoneType":"office","phoneNumber":"+1 425 555 02%02d"}`, n)}},
			{"authflow.email.set.v1", []string{"--subject", alex, "--data", fmt.Sprintf(`{"emailAddress":"alex.wilber+%d@fabrikam.example"}`, n)}},
			{"authflow.methods.inventory.v1", []string{"--subject", megan}},
		}
	}
	sendAll := func(phase string, evs []event) {
		t.Helper()
		for _, ev := range evs {
			res := c.sendWait(ctx, exitSucceeded, ev.typ, ev.args...)
			if res.Data.Status != events.StatusSucceeded {
				t.Fatalf("%s: %s: status %s", phase, ev.typ, res.Data.Status)
			}
		}
	}
	sendAll(lost+" down", batch(1))

	// A client on the host that lists every node reaches the cluster through another one.
	var urls []string
	for _, u := range hostURLs {
		urls = append(urls, u.url)
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.Timeout(2*time.Second), nats.RetryOnFailedConnect(false))
	if err != nil {
		t.Fatalf("connect from the host to %v with %s down: %v", urls, lost, err)
	}
	defer nc.Close()
	if got := nc.ConnectedUrl(); got == hostURLs[0].url || got == "" {
		t.Errorf("connected to %q, want a node other than %s (%s)", got, lost, hostURLs[0].url)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, worker.EventsStream); err != nil {
		t.Errorf("from the host through %s: stream %s: %v", nc.ConnectedUrl(), worker.EventsStream, err)
	}
	nc.Close()

	// Back again: the node catches up with what it missed.
	c.restart(ctx, lost)
	c.eventually(ctx, readyTimeout, lost+" healthy again", func(ctx context.Context) error {
		return c.natsHealthy(ctx, lost)
	})
	c.eventually(ctx, readyTimeout, lost+" caught up", func(ctx context.Context) error {
		back, err := c.jsz(ctx, lost)
		if err != nil {
			return err
		}
		other, err := c.jsz(ctx, survivor)
		if err != nil {
			return err
		}
		for _, name := range []string{worker.EventsStream, worker.ResultsStream} {
			b, o := streams(back)[name], streams(other)[name]
			if b.State.LastSeq != o.State.LastSeq || o.State.LastSeq == 0 {
				return fmt.Errorf("stream %s: last sequence %d on %s, %d on %s", name, b.State.LastSeq, lost, o.State.LastSeq, survivor)
			}
		}
		return nil
	})
	sendAll(lost+" back", batch(2)[:1])

	// Lose a worker: the other one processes everything.
	before := c.succeeded(ctx, "worker-2")
	c.stop(ctx, "worker-1", 30*time.Second)
	evs := batch(3)
	sendAll("worker-1 down", evs)
	if got := c.succeeded(ctx, "worker-2") - before; got != float64(len(evs)) {
		t.Errorf("worker-2 counted %v more succeeded events while worker-1 was down, want %d", got, len(evs))
	}
	c.restart(ctx, "worker-1")
	c.eventually(ctx, readyTimeout, "worker-1 ready again", func(ctx context.Context) error {
		return c.workerReady(ctx, "worker-1")
	})
}

func TestMetricSum(t *testing.T) {
	const text = `# HELP authflow_events_total Events handled.
# TYPE authflow_events_total counter
authflow_events_total{outcome="succeeded",type="authflow.phone.set.v1"} 2
authflow_events_total{outcome="rejected",type="authflow.mfa.reset.v1"} 1
authflow_events_total{outcome="succeeded",type="authflow.methods.inventory.v1"} 3
authflow_events_total_extra{outcome="succeeded"} 100
authflow_dlq_total 4
`
	tests := []struct {
		metric  string
		labels  []string
		want    float64
		wantErr bool
	}{
		{metric: "authflow_events_total", labels: []string{`outcome="succeeded"`}, want: 5},
		{metric: "authflow_events_total", want: 6},
		{metric: "authflow_events_total", labels: []string{`outcome="failed"`}, want: 0},
		{metric: "authflow_events_total", labels: []string{`outcome="succeeded"`, `type="authflow.phone.set.v1"`}, want: 2},
		{metric: "authflow_dlq_total", want: 4},
		{metric: "authflow_missing", want: 0},
	}
	for _, tt := range tests {
		got, err := metricSum(text, tt.metric, tt.labels...)
		if err != nil || got != tt.want {
			t.Errorf("metricSum(%s, %q) = %v, %v; want %v", tt.metric, tt.labels, got, err, tt.want)
		}
	}
	for _, bad := range []string{"authflow_events_total{outcome=\"x\" 1\n", "authflow_events_total{} x\n", "authflow_events_total\n"} {
		if _, err := metricSum(bad, "authflow_events_total"); err == nil {
			t.Errorf("metricSum(%q): no error", bad)
		}
	}
}

// TestContainersPublishOnlyOnLoopback: testcontainers publishes every port an image
// EXPOSEs, on every interface, when the request names no port (the NATS image exposes
// three). The loopback guard refuses such a container before it starts.
func TestContainersPublishOnlyOnLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	c := newCluster(ctx, t)
	s, _ := specByName(c.specs, "nats-1")
	s.name, s.ports = "", nil
	ctr, err := c.run(ctx, s)
	if ctr != nil {
		t.Cleanup(func() { c.remove("nats-1 without ports", ctr) })
	}
	t.Logf("refused: %v", err)
	if err == nil || !strings.Contains(err.Error(), "only 127.0.0.1 is allowed") {
		t.Fatalf("a container publishing on every interface: error %v, want the loopback guard's", err)
	}
	if ctr != nil && ctr.IsRunning() {
		t.Errorf("the refused container was started")
	}
}

// checkSealKey: both workers seal with the development key compose mounts
// (AUTHFLOW_SEAL_KEY_FILE), as the "worker running" log line shows. A worker image without
// --seal-key-file ignores the variable; then there is nothing to check yet.
func (c *cluster) checkSealKey(ctx context.Context) {
	c.t.Helper()
	help := c.authflow(ctx, "worker", "--help")
	if !strings.Contains(help.stdout+help.stderr, "seal-key-file") {
		c.t.Logf("this worker has no --seal-key-file: the shared seal key is not checked")
		return
	}
	want := devSealPublicKey(c.t)
	for _, w := range []string{"worker-1", "worker-2"} {
		got := ""
		for line := range strings.Lines(c.logs(ctx, w)) {
			var entry struct {
				Msg     string `json:"msg"`
				SealKey string `json:"seal_key"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "worker running" {
				got = entry.SealKey
			}
		}
		if got != want {
			c.t.Errorf("%s seals with %q, want the dev key %s of %s", w, got, want, devSealKey)
		}
	}
}

// devSealPublicKey is the public key of the development seal seed build-images.sh made.
func devSealPublicKey(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(devSealKey)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "SX") {
			kp, err := nkeys.FromSeed([]byte(line))
			if err != nil {
				t.Fatalf("%s: %v", devSealKey, err)
			}
			pub, err := kp.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			return pub
		}
	}
	t.Fatalf("%s holds no curve seed", devSealKey)
	return ""
}

// nodeURL is a NATS node's client URL as the host reaches it.
type nodeURL struct{ node, url string }

// hostNATSURLs returns the client URL of every NATS node on its published 127.0.0.1 port.
func (c *cluster) hostNATSURLs(ctx context.Context) []nodeURL {
	c.t.Helper()
	var urls []nodeURL
	for _, node := range natsNodes {
		p, err := c.container(node).MappedPort(ctx, "4222/tcp")
		if err != nil {
			c.t.Fatalf("%s: published client port: %v (compose must publish every node's 4222)", node, err)
		}
		urls = append(urls, nodeURL{node, "nats://127.0.0.1:" + p.Port()})
	}
	return urls
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
