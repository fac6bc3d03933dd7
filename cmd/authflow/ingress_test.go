package main

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
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/ingress"
	"github.com/authflow/authflow/worker"
)

// The ingress copies worker's names (importing worker would link the
// Graph SDK into the ingress); they must not drift.
func TestIngressNamesMatchWorker(t *testing.T) {
	pairs := [][2]string{
		{ingress.EventsStream, worker.EventsStream},
		{ingress.ResultsStream, worker.ResultsStream},
		{ingress.DLQStream, worker.DLQStream},
		{ingress.EventsSubjectPrefix, worker.EventsSubjectPrefix},
		{ingress.ResultsSubjectPrefix, worker.ResultsSubjectPrefix},
		{ingress.DLQSubjectPrefix, worker.DLQSubjectPrefix},
		{ingress.HeaderEventSource, worker.HeaderEventSource},
		{ingress.HeaderEventID, worker.HeaderEventID},
		{ingress.HeaderStatus, worker.HeaderStatus},
		{ingress.HeaderDLQReason, worker.HeaderDLQReason},
		{ingress.HeaderDLQMessage, worker.HeaderDLQMessage},
		{ingress.HeaderDLQAttempts, worker.HeaderDLQAttempts},
		{ingress.HeaderDLQSubject, worker.HeaderDLQSubject},
		{ingress.HeaderDLQSequence, worker.HeaderDLQSequence},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("ingress has %q, worker %q", p[0], p[1])
		}
	}
}

// The ingress publishes a user's events under the key `authflow send` uses.
func TestIngressUserKeyMatchesSend(t *testing.T) {
	for _, subject := range []string{
		"adele.vance@contoso.example", "Adele.Vance@Contoso.Example", "guest_fabrikam.com#EXT#@contoso.example",
		"5D6E7F80-1A2B-4C3D-9E8F-0123456789AB", "5d6e7f80-1a2b-4c3d-9e8f-0123456789ab",
	} {
		u, err := events.ParseUser(subject)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := userKey(subject)
		if got := ingress.UserKey(u); got != want || !worker.ValidKey(got) {
			t.Errorf("%s: ingress key %s, send key %s", subject, got, want)
		}
	}
}

func TestIngressFlags(t *testing.T) {
	cfg := writeFile(t, "ingress.yaml", "version: 1\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"ingress"}, "--config is required"},
		{"listen without host", []string{"ingress", "--config", cfg, "--listen", ":8090"}, "give a host"},
		{"cert without key", []string{"ingress", "--config", cfg, "--tls-cert", cfg}, "--tls-cert and --tls-key"},
		{"client CA without TLS", []string{"ingress", "--config", cfg, "--tls-client-ca", cfg}, "needs --tls-cert"},
		{"missing config file", []string{"ingress", "--config", "/nonexistent/ingress.yaml"}, "--config"},
		{"bad config", []string{"ingress", "--config", cfg, "--nats-url", "nats://127.0.0.1:1"}, "sources: required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}
}

// TestIngressCommandServes runs `authflow ingress` over TLS (flags from
// their AUTHFLOW_ twins) in front of the worker's topology, and posts an
// event.
func TestIngressCommandServes(t *testing.T) {
	ns := startTestNATS(t, "")
	_, js := connectJS(t, ns)
	ensureTopology(t, js)
	token := "ingress-cmd-token"
	sum := sha256.Sum256([]byte(token))
	cfg := writeFile(t, "ingress.yaml", `version: 1
sources:
  hr/cmd:
    auth:
      bearer: {tokenSHA256: ["`+hex.EncodeToString(sum[:])+`"]}
    signingSeed: file:`+signingSeedFile(t)+`
`)
	certFile, keyFile, pool := selfSignedCert(t)
	t.Setenv("AUTHFLOW_TLS_CERT", certFile)
	t.Setenv("AUTHFLOW_TLS_KEY", keyFile)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"ingress", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
			"--nats-url", ns.ClientURL(), "--config", cfg}, &stdout, &stderr)
	}()
	var url string
	waitFor(t, "the ingress to listen", func() bool {
		line, ok := lineWith(stderr.String(), "authflow ingress listening")
		if !ok {
			return false
		}
		var rec struct{ URL string }
		_ = json.Unmarshal([]byte(line), &rec)
		url = rec.URL
		return true
	})
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("url %q", url)
	}
	raw, _ := events.MarshalEvent("cmd-1", "hr/cmd", events.TypeMethodsInventory, "adele.vance@contoso.example", time.Now(), json.RawMessage(`{}`))
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/events", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := client.Do(req); err == nil {
		t.Fatal("TLS 1.1 was accepted")
	}
	req.Body = io.NopCloser(bytes.NewReader(raw))
	client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	s, _ := js.Stream(ctx, worker.EventsStream)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("%d events stored", info.State.Msgs)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the ingress did not stop")
	}
	if strings.Contains(stderr.String(), token) {
		t.Fatal("the log holds the token")
	}
}

// TestIngressDev checks the development ingress `authflow dev` will start:
// any source with the dev token, Standard Webhooks for dev/webhook.
func TestIngressDev(t *testing.T) {
	ns := startTestNATS(t, "")
	nc, js := connectJS(t, ns)
	ensureTopology(t, js)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := listen("ingress-listen", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := startDevIngress(ctx, ln, nc, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Stop()
	banner := strings.Join(dev.Banner, "\n")
	for _, want := range []string{dev.URL, "Bearer dev-token", "dev/webhook", "whsec_ZGV2LXdlYmhvb2stc2VjcmV0"} {
		if !strings.Contains(banner, want) {
			t.Fatalf("banner lacks %q:\n%s", want, banner)
		}
	}
	post := func(raw []byte, kv ...string) int {
		req, _ := http.NewRequest(http.MethodPost, dev.URL+"/v1/events", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		for i := 0; i+1 < len(kv); i += 2 {
			req.Header.Set(kv[i], kv[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	raw, _ := events.MarshalEvent("dev-1", "any/source", events.TypeMethodsInventory, "adele.vance@contoso.example", time.Now(), json.RawMessage(`{}`))
	if code := post(raw, "Authorization", "Bearer dev-token"); code != http.StatusAccepted {
		t.Fatalf("bearer: %d", code)
	}
	if code := post(raw, "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	wh, _ := events.MarshalEvent("dev-2", "dev/webhook", events.TypeMethodsInventory, "adele.vance@contoso.example", time.Now(), json.RawMessage(`{}`))
	secret, _ := ingress.ParseWebhookSecret("whsec_ZGV2LXdlYmhvb2stc2VjcmV0")
	now := time.Now()
	if code := post(wh, ingress.HeaderWebhookID, "msg_dev", ingress.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10),
		ingress.HeaderWebhookSignature, ingress.SignWebhook([][]byte{secret}, "msg_dev", now, wh)); code != http.StatusAccepted {
		t.Fatalf("standard webhooks: %d", code)
	}
	dev.Stop()
	if _, err := http.Get(dev.URL + "/healthz"); err == nil {
		t.Fatal("the dev ingress still answers after Stop")
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and
// returns a pool that trusts it.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile = writeFile(t, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
