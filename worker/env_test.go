package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// env is one test's world: an embedded JetStream server, the Graph emulator
// over HTTP, and a recipient key for sealed secrets.
type env struct {
	t         testing.TB
	ns        *server.Server
	nc        *nats.Conn
	js        jetstream.JetStream
	graph     *graphclienttest.Server
	recipient nkeys.KeyPair
	sealTo    string
	logs      *logBuffer
	policy    *events.Policy
	seq       int
	secrets   []string             // plain-text secrets the test opened
	registry  *prometheus.Registry // of the last worker started
}

func newEnv(t testing.TB) *env { t.Helper(); return newEnvDir(t, "") }

// newEnvDir is newEnv with the JetStream store in dir.
func newEnvDir(t testing.TB, dir string) *env {
	t.Helper()
	ns := startNATS(t, dir)
	nc := connect(t, ns)
	rk, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := rk.PublicKey()
	return &env{
		t: t, ns: ns, nc: nc, js: jetStream(t, nc),
		graph:     graphclienttest.NewServer(t),
		recipient: rk, sealTo: pub,
		logs:   &logBuffer{},
		policy: events.DevPolicy(),
	}
}

// testConfig is a worker configuration scaled for tests: few partitions,
// short ack wait, short retry budgets.
func (e *env) testConfig(nc *nats.Conn) worker.Config {
	e.registry = prometheus.NewRegistry()
	metrics := worker.NewMetrics(e.registry)
	g, err := graphclient.New(graphclient.Config{BaseURL: e.graph.GraphURL, Token: e.graph.Token, Observe: metrics.ObserveGraph})
	if err != nil {
		e.t.Fatal(err)
	}
	retry := graphclient.RetryPolicy{Initial: 20 * time.Millisecond, Max: 2 * time.Second, MaxElapsed: 5 * time.Second}
	return worker.Config{
		NATS:            nc,
		Graph:           g,
		Policy:          e.policy,
		Partitions:      4,
		Concurrency:     4,
		AckWait:         2 * time.Second,
		MaxAttempts:     5,
		Retry:           &retry,
		RedeliveryDelay: 200 * time.Millisecond,
		ShutdownTimeout: 3 * time.Second,
		Logger:          e.logs.logger(),
		Metrics:         metrics,
	}
}

// runningWorker is one replica under test.
type runningWorker struct {
	w      *worker.Worker
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop shuts the replica down gracefully and waits for Run to return.
func (r *runningWorker) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
		r.nc.Close()
	})
}

// kill drops the replica's connection at once, as a crash would: nothing
// it holds is acked or handed back.
func (r *runningWorker) kill() {
	r.once.Do(func() {
		r.nc.Close()
		r.cancel()
		<-r.done
	})
}

func (e *env) startWorker(mod ...func(*worker.Config)) *runningWorker {
	e.t.Helper()
	nc := connect(e.t, e.ns)
	cfg := e.testConfig(nc)
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, cfg)
	if err != nil {
		cancel()
		e.t.Fatalf("worker.New: %v", err)
	}
	r := &runningWorker{w: w, nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	e.t.Cleanup(r.stop)
	deadline := time.Now().Add(10 * time.Second)
	for !w.Ready() {
		if time.Now().After(deadline) {
			e.t.Fatal("worker not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// seed creates a user in the emulator.
func (e *env) seed(id, upn string, methods ...string) {
	e.t.Helper()
	u := graphclienttest.User{ID: id, UserPrincipalName: upn}
	for _, m := range methods {
		u.Methods = append(u.Methods, json.RawMessage(m))
	}
	if err := e.graph.PutUser(u); err != nil {
		e.t.Fatalf("seed %s: %v", upn, err)
	}
}

func (e *env) user(id string) graphclienttest.User {
	e.t.Helper()
	u, ok := e.graph.User(id)
	if !ok {
		e.t.Fatalf("user %s not in the emulator", id)
	}
	return u
}

// event builds a CloudEvent with a fresh id.
func (e *env) event(typ, subject string, data any) (id string, raw []byte) {
	e.t.Helper()
	e.seq++
	id = fmt.Sprintf("%s-%d", strings.ReplaceAll(e.t.Name(), "/", "-"), e.seq)
	raw = mustJSON(e.t, map[string]any{
		"specversion": "1.0", "id": id, "source": "hr/test", "type": typ, "subject": subject,
		"time": time.Now().UTC().Format(time.RFC3339), "datacontenttype": "application/json", "data": data,
	})
	return id, raw
}

// publish sends raw to authflow.events.<key> and waits for the PubAck.
func (e *env) publish(key string, raw []byte, hdr nats.Header) {
	e.t.Helper()
	m := nats.NewMsg(worker.EventSubject(key))
	m.Data = raw
	if hdr != nil {
		m.Header = hdr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		e.t.Fatalf("publish: %v", err)
	}
}

// send builds and publishes an event; it returns its id.
func (e *env) send(key, typ, subject string, data any) string {
	e.t.Helper()
	id, raw := e.event(typ, subject, data)
	e.publish(key, raw, nil)
	return id
}

// results waits until the results stream holds n messages and returns them
// decoded, keyed by event id, failing on a second result for one id.
func (e *env) results(n int, timeout time.Duration) map[string]*events.Result {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info, err := e.streamInfo(worker.ResultsStream)
		if err == nil && info.State.Msgs >= uint64(n) {
			break
		}
		if time.Now().After(deadline) {
			got := uint64(0)
			if info != nil {
				got = info.State.Msgs
			}
			e.t.Fatalf("want %d results, have %d after %s\nlogs:\n%s", n, got, timeout, tail(e.logs.String(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := map[string]*events.Result{}
	for _, m := range streamMessages(e.t, e.js, worker.ResultsStream) {
		r, err := events.DecodeResult(m.Data())
		if err != nil {
			e.t.Fatalf("result does not decode: %v\n%s", err, m.Data())
		}
		key := r.Data.Event.ID
		if r.Data.Error != nil && r.Data.Error.Code == events.CodeReplayed {
			key += "#replayed"
		}
		if _, dup := out[key]; dup {
			e.t.Fatalf("two results for event %s", key)
		}
		out[key] = r
	}
	if len(out) != n {
		e.t.Fatalf("want %d results, have %d", n, len(out))
	}
	return out
}

func (e *env) streamInfo(name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

func (e *env) dlq() []jetstream.Msg {
	e.t.Helper()
	if _, err := e.streamInfo(worker.DLQStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return streamMessages(e.t, e.js, worker.DLQStream)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Methods seeded in tests, in Graph JSON.
const (
	mobile   = `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`
	altMob   = `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550101","phoneType":"alternateMobile"}`
	email    = `{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"old@example.org"}`
	authApp  = `{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"6803c096-c096-6803-96c0-036896c00368","displayName":"Lost Phone","deviceTag":"SoftwareTokenActivated","phoneAppVersion":"6.5.4"}`
	authApp2 = `{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"7803c096-c096-6803-96c0-036896c00369","displayName":"Work Tablet","phoneAppVersion":"6.5.4"}`
	fido     = `{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"-2_GRUg2-HYz6_1YG4YRAQ2","displayName":"YubiKey 5","model":"YubiKey 5 NFC"}`
	whfb     = `{"@odata.type":"#microsoft.graph.windowsHelloForBusinessAuthenticationMethod","id":"_jpuR-TGZtk6aQCLF3BQjA2","displayName":"Lost Phone","keyStrength":"normal"}`
	oath     = `{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"b172893e-893e-b172-3e89-72b13e8972b1"}`
	passwd   = `{"@odata.type":"#microsoft.graph.passwordAuthenticationMethod"}`
)

// kinds lists the @odata.type suffixes of a user's methods.
func kinds(u graphclienttest.User) []string {
	var out []string
	for _, m := range u.Methods {
		var v struct {
			Type string `json:"@odata.type"`
		}
		_ = json.Unmarshal(m, &v)
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(v.Type, "#microsoft.graph."), "AuthenticationMethod"))
	}
	return out
}

func phones(u graphclienttest.User) map[string]string {
	out := map[string]string{}
	for _, m := range u.Methods {
		var v struct {
			Type   string `json:"@odata.type"`
			Number string `json:"phoneNumber"`
			PT     string `json:"phoneType"`
		}
		_ = json.Unmarshal(m, &v)
		if v.PT != "" {
			out[v.PT] = v.Number
		}
	}
	return out
}

// ledgerDump returns every ledger value.
func (e *env) ledgerDump() string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, worker.LedgerBucket)
	if err != nil {
		e.t.Fatalf("ledger: %v", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		e.t.Fatalf("ledger keys: %v", err)
	}
	var b strings.Builder
	for k := range keys.Keys() {
		if v, err := kv.Get(ctx, k); err == nil {
			b.Write(v.Value())
		}
	}
	return b.String()
}
