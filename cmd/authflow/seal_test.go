package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// sealSeedFile writes a new curve seed with mode perm and returns its path
// and public key.
func sealSeedFile(t *testing.T, perm os.FileMode) (string, string) {
	t.Helper()
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	path := writeFile(t, "seal.seed", string(seed)+"\n")
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path, pub
}

// TestSealKeyFileRefused checks that --seal-key-file refuses, before any
// network, a seed that others can read and a seed of the wrong kind.
func TestSealKeyFileRefused(t *testing.T) {
	policy := writeFile(t, "policy.yaml", testPolicy)
	w := func(file string) []string {
		return []string{"worker", "--policy", policy, "--graph-token", "t", "--metrics-listen", "127.0.0.1:0",
			"--nats-url", "nats://127.0.0.1:1", "--nats-timeout", "100ms", "--seal-key-file", file}
	}
	worldReadable, _ := sealSeedFile(t, 0o644)
	otherReadable, _ := sealSeedFile(t, 0o604)
	groupWritable, _ := sealSeedFile(t, 0o620)
	signing := signingSeedFile(t)
	tests := []struct {
		name string
		file string
		want string
	}{
		{"world-readable", worldReadable, "is readable by group or others (mode 0644)"},
		{"readable by others", otherReadable, "is readable by group or others (mode 0604)"},
		{"group-writable", groupWritable, "is readable by group or others (mode 0620)"},
		{"a signing seed", signing, "holds a signing seed; a curve (sealing) seed starts with SX"},
		{"not a seed", writeFile(t, "junk", "hello\n"), "holds no nkeys seed"},
		{"missing", filepath.Join(t.TempDir(), "none.seed"), "no such file"},
		{"a directory", t.TempDir(), "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, w(tt.file)...)
			if code != 2 || !strings.Contains(stderr, "--seal-key-file: ") || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
	t.Run("private file accepted", func(t *testing.T) {
		file, _ := sealSeedFile(t, 0o600)
		// Accepted: the worker goes on to connect to NATS, which is not there.
		code, _, stderr := runCLI(t, w(file)...)
		if code != 1 || !strings.Contains(stderr, "connect to NATS") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("group-readable", func(t *testing.T) {
		file, _ := sealSeedFile(t, 0o640)
		code, _, stderr := runCLI(t, w(file)...)
		if os.Geteuid() == 0 {
			// Owned by root (the test's user): a group chosen by root, as
			// for a Kubernetes Secret mounted with an fsGroup.
			if code != 1 || !strings.Contains(stderr, "connect to NATS") {
				t.Fatalf("root-owned 0640: exit %d, stderr %q", code, stderr)
			}
			return
		}
		if code != 2 || !strings.Contains(stderr, "mode 0640") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

// TestWorkerSealKey runs `authflow worker` against an embedded JetStream
// server and the Graph emulator: without --seal-key-file it warns that the
// sender cannot be pinned; with it, an issued TAP is sealed from the key in
// the file, and `authflow open --expect-sender` accepts that key only.
func TestWorkerSealKey(t *testing.T) {
	s := startTestNATS(t, "")
	emu := graphclienttest.NewServer(t)
	enabled := true
	const upn = "adele.vance@contoso.example"
	if err := emu.PutUser(graphclienttest.User{ID: "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0001", UserPrincipalName: upn, AccountEnabled: &enabled}); err != nil {
		t.Fatal(err)
	}
	policy := writeFile(t, "policy.yaml", testPolicy)
	args := []string{"worker", "--policy", policy, "--nats-url", s.ClientURL(), "--graph-url", emu.GraphURL, "--graph-token", emu.Token,
		"--stream-replicas", "1", "--partitions", "2", "--metrics-listen", "127.0.0.1:0", "--instance", "test"}

	// startWorker runs the worker until the test ends and waits for its start line.
	startWorker := func(t *testing.T, extra ...string) *syncBuffer {
		ctx, cancel := context.WithCancel(context.Background())
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, append(append([]string{}, args...), extra...), &stdout, &stderr) }()
		t.Cleanup(func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("worker exit %d: %s", code, stderr.String())
			}
		})
		waitFor(t, "the worker's start line", func() bool {
			select {
			case code := <-done:
				done <- code
				t.Fatalf("worker exited %d: %s", code, stderr.String())
			default:
			}
			return strings.Contains(stderr.String(), "authflow worker starting")
		})
		return &stderr
	}

	t.Run("without a key file", func(t *testing.T) {
		stderr := startWorker(t)
		if !strings.Contains(stderr.String(), `"msg":"no --seal-key-file: secrets are sealed from a key made for this process alone`) {
			t.Fatalf("no warning in %s", stderr.String())
		}
	})
	t.Run("with a key file", func(t *testing.T) {
		sealFile, sealPub := sealSeedFile(t, 0o600)
		stderr := startWorker(t, "--seal-key-file", sealFile)
		if strings.Contains(stderr.String(), "no --seal-key-file") || !strings.Contains(stderr.String(), `"seal_key":"`+sealPub+`"`) {
			t.Fatalf("start log: %s", stderr.String())
		}
		recipient, recipientPub := sealSeedFile(t, 0o600)
		code, stdout, errOut := runCLI(t, "send", events.TypeTAPIssue, "--nats-url", s.ClientURL(), "--subject", upn,
			"--source", "hr/workday", "--data", `{"lifetimeInMinutes":60,"sealTo":"`+recipientPub+`"}`, "--wait", "--json", "--timeout", "30s")
		if code != 0 {
			t.Fatalf("send: exit %d, stdout %q, stderr %q", code, stdout, errOut)
		}
		res, err := events.DecodeResult([]byte(strings.TrimSpace(stdout)))
		if err != nil {
			t.Fatal(err)
		}
		var sealed *events.Sealed
		for _, op := range res.Data.Operations {
			if op.Secret != nil {
				sealed = op.Secret
			}
		}
		if sealed == nil || sealed.Sender != sealPub {
			t.Fatalf("sealed secret %+v, want sender %s", sealed, sealPub)
		}
		resultFile := writeFile(t, "result.json", stdout)
		code, opened, errOut := runCLI(t, "open", "--seed", recipient, "--result", resultFile, "--expect-sender", sealPub)
		if code != 0 || !regexp.MustCompile(`^temporaryAccessPass for `+regexp.QuoteMeta(upn)+` \(event hr/workday [^)]+\): \S+\n$`).MatchString(opened) {
			t.Fatalf("open: exit %d, stdout %q, stderr %q", code, opened, errOut)
		}
		_, otherPub := sealSeedFile(t, 0o600)
		code, opened, errOut = runCLI(t, "open", "--seed", recipient, "--result", resultFile, "--expect-sender", otherPub)
		if code != exitFailed || opened != "" || !strings.Contains(errOut, "was sealed by "+sealPub+", not by --expect-sender "+otherPub) {
			t.Fatalf("open with another sender: exit %d, stdout %q, stderr %q", code, opened, errOut)
		}
	})
}
