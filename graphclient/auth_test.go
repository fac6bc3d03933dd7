package graphclient

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// writeTestCert writes a self-signed certificate and its key as PEM.
func writeTestCert(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "authflow-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCredentialFromEnv checks which credential each environment selects.
func TestCredentialFromEnv(t *testing.T) {
	t.Parallel()
	cert := writeTestCert(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const tenant, client = "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"
	tests := []struct {
		name    string
		env     map[string]string
		want    string // the credential's type, or "" for an error
		errHas  string
		errHide string // must not appear in the error
	}{
		{"secret", map[string]string{"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": client, "AZURE_CLIENT_SECRET": "s3cret"},
			"*azidentity.ClientSecretCredential", "", ""},
		{"secret wins over certificate", map[string]string{"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": client,
			"AZURE_CLIENT_SECRET": "s3cret", "AZURE_CLIENT_CERTIFICATE_PATH": cert}, "*azidentity.ClientSecretCredential", "", ""},
		{"secret without tenant", map[string]string{"AZURE_CLIENT_ID": client, "AZURE_CLIENT_SECRET": "s3cret"},
			"", "AZURE_TENANT_ID", "s3cret"},
		{"secret without client", map[string]string{"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_SECRET": "s3cret"},
			"", "AZURE_CLIENT_ID", "s3cret"},
		{"certificate", map[string]string{"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": client, "AZURE_CLIENT_CERTIFICATE_PATH": cert,
			"AZURE_CLIENT_SEND_CERTIFICATE_CHAIN": "true"}, "*azidentity.ClientCertificateCredential", "", ""},
		{"certificate missing", map[string]string{"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": client,
			"AZURE_CLIENT_CERTIFICATE_PATH": filepath.Join(t.TempDir(), "nope.pem")}, "", "AZURE_CLIENT_CERTIFICATE_PATH", ""},
		{"certificate garbage", map[string]string{"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": client,
			"AZURE_CLIENT_CERTIFICATE_PATH": garbage, "AZURE_CLIENT_CERTIFICATE_PASSWORD": "pfx-pass"}, "", "parse", "pfx-pass"},
		{"workload identity", map[string]string{"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": client,
			"AZURE_FEDERATED_TOKEN_FILE": "/var/run/secrets/azure/tokens/azure-identity-token"}, "*azidentity.WorkloadIdentityCredential", "", ""},
		{"workload identity without client", map[string]string{"AZURE_TENANT_ID": tenant,
			"AZURE_FEDERATED_TOKEN_FILE": "/tmp/token"}, "", "AZURE_CLIENT_ID", ""},
		{"managed identity", map[string]string{}, "*azidentity.ManagedIdentityCredential", "", ""},
		{"user-assigned managed identity", map[string]string{"AZURE_CLIENT_ID": client}, "*azidentity.ManagedIdentityCredential", "", ""},
	}
	for _, tc := range tests {
		cred, err := newCredentialFromEnv(func(k string) string { return tc.env[k] })
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: got %T, want an error", tc.name, cred)
				continue
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%s: error %q does not name %q", tc.name, err, tc.errHas)
			}
			if tc.errHide != "" && strings.Contains(err.Error(), tc.errHide) {
				t.Errorf("%s: error leaks a secret: %q", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := fmt.Sprintf("%T", cred); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestManagedIdentityToLoopbackGraph runs NewCredentialFromEnv's managed
// identity (App Service mode: IDENTITY_ENDPOINT, IDENTITY_HEADER over plain
// http) end to end: the token reaches a Graph on 127.0.0.1, where the SDK's
// default allowed hosts would have sent none (msgraph-go.md §3).
// Not parallel: it sets process environment variables.
func TestManagedIdentityToLoopbackGraph(t *testing.T) {
	identity := newFakeGraph(t)
	identity.setHandler(func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Header.Get("X-IDENTITY-HEADER") != "id-header" || r.URL.Query().Get("resource") != "https://graph.microsoft.com" {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"mi-token","expires_on":"%d","resource":"https://graph.microsoft.com","token_type":"Bearer"}`,
			time.Now().Add(time.Hour).Unix())
	})
	for _, k := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID",
		"MSI_ENDPOINT", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("IDENTITY_ENDPOINT", identity.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "id-header")

	cred, err := NewCredentialFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cred.(*azidentity.ManagedIdentityCredential); !ok {
		t.Fatalf("got %T", cred)
	}
	g := newFakeGraph(t)
	c, err := New(Config{BaseURL: g.URL + "/v1.0", Credential: cred, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckToken(testCtx(t)); err != nil {
		t.Fatalf("CheckToken: %v", err)
	}
	if err := c.RevokeSessions(testCtx(t), testUser); err != nil {
		t.Fatal(err)
	}
	reqs := g.requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer mi-token" {
		t.Fatalf("Graph saw %d requests, Authorization %q", len(reqs), reqs[0].Header.Get("Authorization"))
	}
	// At most once: CheckToken's token is cached for the request. With
	// -count > 1, azidentity's process-wide managed-identity cache may
	// serve a later run without any call.
	if n := len(identity.requests()); n > 1 {
		t.Errorf("identity endpoint called %d times, want at most 1 (the token is cached)", n)
	}
}
