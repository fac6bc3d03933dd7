package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestCheckWithoutAzureVariables runs `authflow check` with no Azure
// credential variable set, where azidentity falls back to managed identity
// and (here, as on a laptop behind a proxy) gets a 403: the check names
// the variables to set.
func TestCheckWithoutAzureVariables(t *testing.T) {
	for _, k := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "IMDS_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT", "AUTHFLOW_GRAPH_TOKEN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	// The managed-identity endpoint, as App Service would provide it
	// (the IMDS address cannot be redirected): it refuses.
	identity := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(strings.Repeat("Forbidden by proxy policy. ", 40)))
	}))
	defer identity.Close()
	t.Setenv("IDENTITY_ENDPOINT", identity.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "h")

	code, stdout, stderr := runCLI(t, "check", "--nats-url", "nats://127.0.0.1:1", "--nats-timeout", "100ms", "--timeout", "10s")
	line, ok := lineWith(stdout, "[FAIL] Graph")
	if code != exitFailed || !ok {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, v := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE", "--graph-token"} {
		if !strings.Contains(line, v) {
			t.Errorf("the Graph line does not name %s: %s", v, line)
		}
	}
	t.Log(line)
}
