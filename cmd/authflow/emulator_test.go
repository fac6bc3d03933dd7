package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// emuLockedBuffer is a bytes.Buffer safe for the command writing and the
// test reading at the same time.
type emuLockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *emuLockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *emuLockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// emuClearEnv keeps AUTHFLOW_* twins of the emulator flags out of the tests.
func emuClearEnv(t *testing.T) {
	for _, k := range []string{"AUTHFLOW_LISTEN", "AUTHFLOW_TOKEN", "AUTHFLOW_SEED", "AUTHFLOW_APP_ONLY", "AUTHFLOW_LOG_LEVEL"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func TestEmulatorCommandServes(t *testing.T) {
	emuClearEnv(t)
	const id = "11111111-1111-4111-8111-111111111111"
	seed := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(seed, []byte(`[{"id":"`+id+`","userPrincipalName":"kim@contoso.com","methods":[
		{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr emuLockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"emulator", "--listen", "127.0.0.1:0", "--token", "t0k", "--seed", seed, "--log-level", "warn"}, &stdout, &stderr)
	}()

	lineRE := regexp.MustCompile(`graph (http://127\.0\.0\.1:\d+)/v1\.0 admin (\S+) token: t0k`)
	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		if m := lineRE.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			if m[2] != base+"/_emulator/" {
				t.Fatalf("admin URL %q", m[2])
			}
			break
		}
		select {
		case code := <-done:
			t.Fatalf("command exited with %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start line; stdout %q stderr %q", stdout.String(), stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	get := func(path, token string) int {
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := get("/v1.0/users/"+id+"/authentication/phoneMethods", "t0k"); got != http.StatusOK {
		t.Fatalf("seeded user: %d", got)
	}
	if got := get("/v1.0/users/"+id+"/authentication/phoneMethods", ""); got != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", got)
	}
	if got := get("/_emulator/users/"+id, ""); got != http.StatusOK {
		t.Fatalf("admin API: %d", got)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d after cancel: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not stop when its context was cancelled")
	}
}

func TestEmulatorCommandFlags(t *testing.T) {
	emuClearEnv(t)
	dir := t.TempDir()
	badSeed := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badSeed, []byte(`[{"id":"not-a-guid","userPrincipalName":"x@y.z"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	notArray := filepath.Join(dir, "object.json")
	if err := os.WriteFile(notArray, []byte(`{"users":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"token required", []string{"--listen", "127.0.0.1:0"}, 2, "--token"},
		{"listen without port", []string{"--token", "t", "--listen", "localhost"}, 2, "--listen"},
		{"listen bad port", []string{"--token", "t", "--listen", "127.0.0.1:99999"}, 2, "--listen"},
		{"listen on an address not of this host", []string{"--token", "t", "--listen", "192.0.2.1:0"}, 2, "--listen"},
		{"seed missing", []string{"--token", "t", "--listen", "127.0.0.1:0", "--seed", filepath.Join(dir, "none.json")}, 2, "--seed"},
		{"seed invalid user", []string{"--token", "t", "--listen", "127.0.0.1:0", "--seed", badSeed}, 2, "--seed"},
		{"seed not an array", []string{"--token", "t", "--listen", "127.0.0.1:0", "--seed", notArray}, 2, "--seed"},
		{"bad log level", []string{"--token", "t", "--log-level", "loud"}, 2, "--log-level"},
		{"stray argument", []string{"--token", "t", "extra"}, 2, "extra"},
		{"help", []string{"--help"}, 0, ""}, // on stdout: see TestHelpAndUnknownCommand
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var stdout, stderr emuLockedBuffer
			code := run(ctx, append([]string{"emulator"}, tt.args...), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.inStderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr.String(), tt.code, tt.inStderr)
			}
			if strings.Contains(stdout.String(), "authflow emulator: graph") {
				t.Fatalf("a refused start printed the start line: %q", stdout.String())
			}
		})
	}
}
