package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/authflow/authflow/events"
)

// TestDevSmoke runs `authflow dev --exit-after-demo` as `make test` does:
// the embedded JetStream server, the emulator and the worker, the demo's
// seven events, and a readable line per result. It then reopens the data
// directory and opens the demo's TAP with the printed seed, to prove the
// TAP was issued, sealed to that key, and never printed by dev.
func TestDevSmoke(t *testing.T) {
	data := t.TempDir()
	code, stdout, devStderr := runCLI(t, "dev", "--nats-listen", "127.0.0.1:0", "--graph-listen", "127.0.0.1:0",
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
			done <- run(ctx, []string{"dev", "--nats-listen", "127.0.0.1:0", "--graph-listen", "127.0.0.1:0",
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
