package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
)

// TestDevSmoke runs `authflow dev --exit-after-demo` as `make test` does:
// the embedded JetStream server, the emulator and the worker, the demo's
// seven events, and a readable line per result. It then reopens the data
// directory and opens the demo's TAP with the printed seed, to prove the
// TAP was issued, sealed to that key, and never printed by dev.
func TestDevSmoke(t *testing.T) {
	data := t.TempDir()
	code, stdout, devStderr := runCLI(t, "dev", "--nats-listen", "127.0.0.1:0", "--graph-listen", "127.0.0.1:0", "--ingress-listen", "127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0", "--data", data, "--exit-after-demo")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, devStderr)
	}

	// The actual addresses are printed, never port 0.
	natsURL := regexp.MustCompile(`nats://127\.0\.0\.1:[1-9][0-9]*`).FindString(stdout)
	if natsURL == "" || !regexp.MustCompile(`http://127\.0\.0\.1:[1-9][0-9]*/v1\.0   token: dev-token`).MatchString(stdout) ||
		!regexp.MustCompile(`http://127\.0\.0\.1:[1-9][0-9]*/metrics`).MatchString(stdout) {
		t.Errorf("addresses not printed:\n%s", stdout)
	}
	if !strings.Contains(stdout, "INSECURE") || !strings.Contains(stdout, "LOCAL USE ONLY") {
		t.Error("dev does not say that it is insecure")
	}
	for _, u := range demoUsers() {
		if !strings.Contains(stdout, u.upn) || !strings.Contains(stdout, u.id) {
			t.Errorf("demo user %s not printed", u.upn)
		}
	}

	tests := []struct {
		name  string
		parts []string
	}{
		{"joined", []string{"✔ succeeded", events.TypeEmployeeJoined, "adele.vance@contoso.example", "(3 ops"}},
		{"moved", []string{"✔ succeeded", events.TypeEmployeeMoved, "alex.wilber@contoso.example"}},
		{"device lost", []string{"✔ succeeded", events.TypeDeviceLost, "lee.gu@contoso.example"}},
		{"MFA reset", []string{"✔ succeeded", events.TypeMFAReset, "nestor.wilke@contoso.example"}},
		{"left", []string{"✔ succeeded", events.TypeEmployeeLeft, "diego.siciliani@contoso.example"}},
		{"invalid", []string{"✘ rejected", events.TypeEmployeeJoined, "invalid_event", "data.mobilePhone"}},
		{"dry run", []string{"✔ succeeded", events.TypeMFAReset, "alex.wilber@contoso.example", "(dry run,"}},
		{"TAP op", []string{"    created", "temporaryAccessPass", "sealed to X"}},
		{"normalised phone", []string{"    created", "phone  mobile +1 ******0100"}},
		{"device method removed", []string{"    deleted", "microsoftAuthenticator  Pixel 8"}},
		{"dry run op", []string{"    would delete"}},
		{"summary", []string{"demo: 7/7 results as expected"}},
	}
	for _, tt := range tests {
		if _, ok := lineWith(stdout, tt.parts...); !ok {
			t.Errorf("%s: no line with %q in\n%s", tt.name, tt.parts, stdout)
		}
	}
	if n := strings.Count(stdout, "✔ succeeded") + strings.Count(stdout, "✘ "); n != 7 {
		t.Errorf("%d result lines, want 7", n)
	}
	if strings.Contains(stdout, "\x1b[") {
		t.Error("colour codes in output that is not a terminal")
	}
	if t.Failed() {
		t.FailNow()
	}

	// The worker's seal key is kept in the data directory (mode 0600), its
	// public key printed, and the next start with the same --data reuses it.
	sealFile := filepath.Join(data, "seal.seed")
	if fi, err := os.Stat(sealFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seal key file: %v, %v", fi, err)
	}
	sealKey, err := readPrivateCurveSeed(sealFile)
	if err != nil {
		t.Fatal(err)
	}
	sealPub, _ := sealKey.PublicKey()
	sealLine := "  worker seal key:      " + sealPub + "   "
	if !strings.Contains(stdout, sealLine) {
		t.Fatalf("the seal key %s is not in the banner:\n%s", sealPub, stdout)
	}
	t.Run("restart with the same data", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"dev", "--nats-listen", "127.0.0.1:0", "--graph-listen", "127.0.0.1:0", "--ingress-listen", "127.0.0.1:0",
				"--metrics-listen", "127.0.0.1:0", "--data", data, "--no-demo"}, &out, &errOut)
		}()
		waitFor(t, "the second start's banner", func() bool { return strings.Contains(out.String(), "stop with Ctrl-C") })
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("interrupted dev: exit %d, stderr %s", code, errOut.String())
		}
		if !strings.Contains(out.String(), sealLine) {
			t.Fatalf("another seal key after a restart:\n%s", out.String())
		}
	})

	// Reopen the data directory and open the TAP with the demo's seed.
	s := startTestNATS(t, filepath.Join(data, "jetstream"))
	code, results, stderr := runCLI(t, "results", "--nats-url", s.ClientURL(), "--subject", "adele.vance@contoso.example", "--json")
	if code != 0 || strings.Count(results, "\n") != 2 {
		t.Fatalf("results: exit %d, stderr %q, stdout %q", code, stderr, results)
	}
	code, opened, stderr := runCLI(t, "open", "--seed", filepath.Join(data, "demo-recipient.seed"), "--result", writeFile(t, "adele.jsonl", results),
		"--expect-sender", sealPub)
	if code != 0 {
		t.Fatalf("open: exit %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`^temporaryAccessPass for adele\.vance@contoso\.example \(event hr/demo [0-9a-f-]{36}\): (\S{8,48})\n$`).FindStringSubmatch(opened)
	if m == nil {
		t.Fatalf("open printed %q", opened)
	}
	if strings.Contains(stdout, m[1]) || strings.Contains(devStderr, m[1]) || strings.Contains(results, m[1]) {
		t.Fatal("the TAP appears in plain text outside authflow open")
	}
}

// TestDevBannerCommands runs the commands dev prints once the demo is
// done, as printed (the binary's part aside), and then interrupts dev,
// which exits 0.
func TestDevBannerCommands(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--nats-listen", "127.0.0.1:0", "--graph-listen", "127.0.0.1:0", "--ingress-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	waitFor(t, "the next steps", func() bool { return strings.Contains(stdout.String(), "stop with Ctrl-C.") })

	// The test binary is a go build temporary: the commands say go run.
	const cli = "go run ./cmd/authflow "
	_, steps, _ := strings.Cut(stdout.String(), "Send more events from another terminal:\n")
	steps = strings.ReplaceAll(steps, "\\\n", "")
	var ran int
	for _, line := range strings.Split(steps, "\n") {
		_, cmd, ok := strings.Cut(line, cli)
		if !ok || strings.Contains(cmd, " KEY ") { // a placeholder to fill in
			continue
		}
		first, second, piped := strings.Cut(cmd, " | "+cli)
		args, err := shellWords(first)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		code, out, errOut := runCLI(t, args...)
		if piped {
			args, err := shellWords(second)
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			code, out, errOut = runCLI(t, append(args, "--result", writeFile(t, "piped.json", out))...)
		}
		if code != 0 {
			t.Errorf("%s\nexit %d, stdout %q, stderr %q", line, code, out, errOut)
		}
		ran++
	}
	if ran != 7 {
		t.Fatalf("%d commands found, want 7, in\n%s", ran, stdout.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("interrupted dev: exit %d, stderr %s", code, stderr.String())
	}
}

// shellWords splits a command line as a POSIX shell would, for the
// single-quoted words dev prints.
func shellWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			word.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

func TestCLICommand(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	bin := filepath.Join(dir, "bin", "authflow")
	other := filepath.Join(t.TempDir(), "authflow")
	spaced := filepath.Join(t.TempDir(), "my tools", "authflow")
	for _, p := range []string{bin, other, spaced} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	onPath := func(p string) func(string) (string, error) {
		return func(string) (string, error) { return p, nil }
	}
	notOnPath := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name string
		exe  string
		look func(string) (string, error)
		want string
	}{
		{"go run", "/tmp/go-build2755930999/b001/exe/authflow", onPath(other), "go run ./cmd/authflow"},
		{"go run from the cache", "/root/.cache/go-build/3f/3f0c-d/authflow", notOnPath, "go run ./cmd/authflow"},
		{"unknown", "", notOnPath, "go run ./cmd/authflow"},
		{"this binary on PATH", other, onPath(other), "authflow"},
		{"make build", bin, onPath(other), "./bin/authflow"},
		{"elsewhere", other, notOnPath, other},
		{"a path with a space", spaced, notOnPath, "'" + spaced + "'"},
	}
	for _, tt := range tests {
		if got := cliCommand(tt.exe, tt.look); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestDevIngress: authflow dev serves the HTTP ingress with its
// development config; an event posted with the dev bearer token is stored
// (202), runs through the worker, and its result is printed.
func TestDevIngress(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--nats-listen", "127.0.0.1:0", "--graph-listen", "127.0.0.1:0", "--ingress-listen", "127.0.0.1:0",
			"--metrics-listen", "127.0.0.1:0", "--no-demo"}, &stdout, &stderr)
	}()
	waitFor(t, "the banner", func() bool { return strings.Contains(stdout.String(), "HTTP ingress:") })
	url := regexp.MustCompile(`HTTP ingress:\s+(http://127\.0\.0\.1:[1-9][0-9]*)/v1/events`).FindStringSubmatch(stdout.String())
	if url == nil {
		t.Fatalf("no ingress URL in the banner:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "Bearer dev-token") || !strings.Contains(stdout.String(), "whsec_ZGV2LXdlYmhvb2stc2VjcmV0") {
		t.Errorf("the banner does not print the dev credentials:\n%s", stdout.String())
	}
	body := fmt.Sprintf(`{"specversion":"1.0","id":"ingress-dev-1","source":"helpdesk/curl","type":%q,"subject":"adele.vance@contoso.example","time":%q,"data":{"phoneType":"office","phoneNumber":"+1 4255550199"}}`,
		events.TypePhoneSet, time.Now().UTC().Format(time.RFC3339))
	post := func(token string) int {
		req, _ := http.NewRequest("POST", url[1]+"/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("wrong"); code != 401 {
		t.Errorf("a wrong token: %d, want 401", code)
	}
	if code := post("dev-token"); code != 202 {
		t.Fatalf("POST /v1/events: %d, want 202", code)
	}
	waitFor(t, "the result", func() bool {
		_, ok := lineWith(stdout.String(), "✔ succeeded", events.TypePhoneSet, "adele.vance@contoso.example")
		return ok
	})
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("dev exit %d\n%s", code, stderr.String())
	}
}
