package ingress

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
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
)

// startNATS runs an embedded JetStream server on 127.0.0.1 with its store
// in dir; port -1 picks a free port.
func startNATS(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "test", Host: "127.0.0.1", Port: port,
		JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// createStreams makes the three streams as the worker would (without its
// partitioning transform, which the ingress does not see).
func createStreams(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	ctx := context.Background()
	for _, sc := range []jetstream.StreamConfig{
		{Name: EventsStream, Subjects: []string{EventsSubjectPrefix + "*"}, Duplicates: 2 * time.Minute},
		{Name: ResultsStream, Subjects: []string{ResultsSubjectPrefix + ">"}, Duplicates: 2 * time.Minute},
		{Name: DLQStream, Subjects: []string{DLQSubjectPrefix + ">"}, Duplicates: 2 * time.Minute},
	} {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatalf("stream %s: %v", sc.Name, err)
		}
	}
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Credentials of the test sources.
const (
	tokenHR     = "token-hr-0123456789"
	tokenLimit  = "token-limited-0123456789"
	tokenPass   = "token-pass-0123456789"
	basicUser   = "servicenow"
	basicPass   = "pw-servicenow-0123456789"
	jiraSecret  = "jira-secret-0123456789"
	whSecretB64 = "whsec_c3RhbmRhcmQtd2ViaG9va3MtdGVzdC1zZWNyZXQ=" // "standard-webhooks-test-secret"
	mtlsSAN     = "servicenow.test"
)

// testConfig has one source per authentication kind.
func testConfig() string {
	return `version: 1
defaultRegion: US
sources:
  hr/bearer:
    auth:
      bearer:
        tokenSHA256: ["` + sha256Hex(tokenHR) + `"]
    signingSeed: env:SEED_HR
  rl/limited:
    auth:
      bearer:
        tokenSHA256: ["` + sha256Hex(tokenLimit) + `"]
    signingSeed: env:SEED_RL
    rateLimit: {perSecond: 0.01, burst: 1}
  pass/through:
    auth:
      bearer:
        tokenSHA256: ["` + sha256Hex(tokenPass) + `"]
    signingSeed: env:SEED_PASS
    passSignature: true
  itsm/basic:
    auth:
      basic:
        username: ` + basicUser + `
        passwordSHA256: ["` + sha256Hex(basicPass) + `"]
    signingSeed: env:SEED_BASIC
    subPaths: true
  dev/webhook:
    auth:
      standardWebhooks:
        secrets: ["` + whSecretB64 + `"]
    signingSeed: env:SEED_WH
  itsm/jira:
    auth:
      hmac:
        header: X-Hub-Signature
        secrets: ["` + jiraSecret + `"]
    signingSeed: env:SEED_JIRA
  itsm/mtls:
    auth:
      mtls:
        sans: ["` + mtlsSAN + `"]
    signingSeed: env:SEED_MTLS
`
}

// harness is an ingress over TLS on loopback in front of an embedded
// JetStream server.
type harness struct {
	t      testing.TB
	dir    string
	ns     *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	srv    *Server
	http   *httptest.Server
	client *http.Client // trusts the server; no client certificate
	mtls   *http.Client // presents the itsm/mtls client certificate
	reg    *prometheus.Registry
	seeds  map[string]nkeys.KeyPair // by env name
	now    time.Time                // fixed clock when set
	logs   *syncBuffer
}

// syncBuffer collects the ingress's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newHarness(t testing.TB, config string, tweak func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), seeds: map[string]nkeys.KeyPair{}, logs: &syncBuffer{}}
	h.ns = startNATS(t, h.dir, -1)
	var err error
	h.nc, err = nats.Connect(h.ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.nc.Close)
	h.js, _ = jetstream.New(h.nc)
	createStreams(t, h.js)
	cfg, err := ParseConfig([]byte(config), LoadOptions{LookupEnv: func(name string) (string, bool) {
		if !strings.HasPrefix(name, "SEED_") {
			return "", false
		}
		kp, _ := nkeys.CreateUser()
		h.seeds[name] = kp
		seed, _ := kp.Seed()
		return string(seed), true
	}})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if tweak != nil {
		tweak(cfg)
	}
	h.reg = prometheus.NewRegistry()
	h.srv, err = New(Options{Config: cfg, NATS: h.nc, Registerer: h.reg, Now: h.clock,
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey := newCA(t)
	h.http = httptest.NewUnstartedServer(h.srv.Handler())
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	h.http.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	h.http.StartTLS()
	t.Cleanup(h.http.Close)
	h.client = h.http.Client()
	h.mtls = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:      h.client.Transport.(*http.Transport).TLSClientConfig.RootCAs,
		Certificates: []tls.Certificate{newClientCert(t, ca, caKey, mtlsSAN)},
	}}}
	return h
}

func (h *harness) clock() time.Time {
	if !h.now.IsZero() {
		return h.now
	}
	return time.Now()
}

// newCA makes a throw-away certificate authority for client certificates.
func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

func newClientCert(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, san string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: san, Organization: []string{"Contoso"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{san}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// event returns a valid structured event.
func event(t *testing.T, source, id string) []byte {
	t.Helper()
	raw, err := events.MarshalEvent(id, source, events.TypeMethodsInventory, "adele.vance@contoso.example", time.Now(), json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// problem decodes a problem+json answer.
func (r *response) problem(t *testing.T) problemJSON {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json (status %d, body %s)", ct, r.status, r.body)
	}
	var p problemJSON
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != r.status || p.Type != "about:blank" || p.Title != http.StatusText(r.status) {
		t.Fatalf("problem %+v does not match status %d", p, r.status)
	}
	return p
}

func (r *response) accepted(t *testing.T) Accepted {
	t.Helper()
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", r.status, r.body)
	}
	var a Accepted
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// do sends a request with headers given as name, value pairs.
func (h *harness) do(c *http.Client, method, path string, body []byte, kv ...string) *response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.http.URL+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *harness) post(path string, body []byte, kv ...string) *response {
	h.t.Helper()
	return h.do(h.client, http.MethodPost, path, body, kv...)
}

// stored returns every message of a stream, oldest first.
func (h *harness) stored(stream string) []jetstream.Msg {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.js.Stream(ctx, stream)
	if err != nil {
		h.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []jetstream.Msg
	for uint64(len(out)) < info.State.Msgs {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			h.t.Fatalf("read %s: %v", stream, err)
		}
		out = append(out, m)
	}
	return out
}

// signedWebhook returns Standard Webhooks headers for body.
func signedWebhook(t *testing.T, id string, ts time.Time, body []byte) []string {
	t.Helper()
	key, err := ParseWebhookSecret(whSecretB64)
	if err != nil {
		t.Fatal(err)
	}
	return []string{HeaderWebhookID, id, HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10), HeaderWebhookSignature, SignWebhook([][]byte{key}, id, ts, body)}
}
