package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

const testPolicy = "version: 1\nsources:\n  hr/workday:\n    types: [\"*\"]\n"

// TestFlagValidation checks that bad configuration fails before anything is
// started, with exit status 2 and a message that names the flag.
func TestFlagValidation(t *testing.T) {
	policy := writeFile(t, "policy.yaml", testPolicy)
	badPolicy := writeFile(t, "bad.yaml", "version: 1\nsources: {}\nbogus: 1\n")
	creds := writeFile(t, "a.creds", "not checked before connecting")
	nkey := writeFile(t, "a.nk", "SUAAA")
	w := func(extra ...string) []string {
		return append([]string{"worker", "--policy", policy, "--graph-token", "t", "--metrics-listen", "127.0.0.1:0"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"worker without policy", []string{"worker", "--graph-token", "t"}, "--policy is required"},
		{"worker unreadable policy", w("--policy", filepath.Join(t.TempDir(), "none.yaml")), "--policy"},
		{"worker invalid policy", w("--policy", badPolicy), "--policy"},
		{"worker partitions 0", w("--partitions", "0"), "--partitions"},
		{"worker partitions too many", w("--partitions", "1001"), "--partitions"},
		{"worker concurrency", w("--concurrency", "0"), "--concurrency"},
		{"worker graph max concurrency", w("--graph-max-concurrency", "2000"), "--graph-max-concurrency"},
		{"worker partition inflight", w("--partition-inflight", "-1"), "--partition-inflight"},
		{"worker replicas", w("--stream-replicas", "7"), "--stream-replicas"},
		{"worker ledger ttl", w("--ledger-ttl", "30s"), "--ledger-ttl"},
		{"worker ledger ttl below policy max age", w("--ledger-ttl", "1h"), "--ledger-ttl must be at least the policy's maxAge (24h0m0s), got 1h0m0s"},
		{"worker max attempts", w("--max-attempts", "0"), "--max-attempts"},
		{"worker ack wait", w("--ack-wait", "100ms"), "--ack-wait"},
		{"worker password mode", w("--password-mode", "email"), "--password-mode"},
		{"worker region format", w("--default-region", "usa"), "--default-region"},
		{"worker unknown region", w("--default-region", "ZZ"), "--default-region"},
		{"worker log level", w("--log-level", "loud"), "--log-level"},
		{"worker metrics without host", w("--metrics-listen", ":9090"), "--metrics-listen"},
		{"worker metrics garbage", w("--metrics-listen", "localhost"), "--metrics-listen"},
		{"worker instance", w("--instance", "a b"), "--instance"},
		{"worker nats scheme", w("--nats-url", "http://127.0.0.1:4222"), "--nats-url"},
		{"worker nats empty", w("--nats-url", " , "), "--nats-url"},
		{"worker creds missing", w("--nats-creds", filepath.Join(t.TempDir(), "none")), "--nats-creds"},
		{"worker creds and nkey", w("--nats-creds", creds, "--nats-nkey", nkey), "--nats-creds and --nats-nkey"},
		{"worker tls cert without key", w("--nats-tls-cert", creds), "--nats-tls-cert and --nats-tls-key"},
		{"worker creds garbage", w("--nats-creds", creds), "--nats-creds"},
		{"worker nkey garbage", w("--nats-nkey", nkey), "--nats-nkey"},
		{"worker nkey of another kind", w("--nats-nkey", curveSeedFile(t)), "--nats-nkey"},
		{"worker tls garbage", w("--nats-tls-cert", creds, "--nats-tls-key", nkey), "--nats-tls-cert"},
		{"worker tls ca garbage", w("--nats-tls-ca", creds), "--nats-tls-ca"},
		{"worker inbox prefix", w("--nats-inbox-prefix", "_INBOX.>"), "--nats-inbox-prefix"},
		{"worker graph url", w("--graph-url", "ftp://graph"), "--graph-url"},
		{"worker graph beta unknown", w("--graph-beta", "default-method,hardware-oath"), "--graph-beta"},
		{"worker graph beta empty", w("--graph-beta", ""), "--graph-beta"},
		{"dev graph beta unknown", []string{"dev", "--graph-beta", "everything"}, "--graph-beta"},
		{"worker unknown flag", w("--bogus"), "-bogus"},
		{"send without type", []string{"send", "--subject", "a@contoso.example"}, "TYPE is required"},
		{"send without subject", []string{"send", events.TypeTAPRemove}, "--subject is required"},
		{"send data not json", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--data", "{"}, "--data"},
		{"send data not object", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--data", "[1]"}, "--data must be a JSON object"},
		{"send data and data file", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--data", "{}", "--data-file", policy}, "--data and --data-file"},
		{"send dry run twice", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--data", `{"dryRun":false}`, "--dry-run"}, "--dry-run"},
		{"send invalid event", []string{"send", events.TypePhoneSet, "--subject", "a@contoso.example", "--data", `{"phoneType":"mobile","phoneNumber":"call me"}`}, "data.phoneNumber"},
		{"send unknown type", []string{"send", "authflow.nope.v1", "--subject", "a@contoso.example"}, "unknown_type"},
		{"send bad subject", []string{"send", events.TypeTAPRemove, "--subject", "a/../b@contoso.example"}, "subject"},
		{"send bad key", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--key", "a.b"}, "--key"},
		{"send missing seed", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--sign-seed", filepath.Join(t.TempDir(), "none")}, "--sign-seed"},
		{"send curve seed", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--sign-seed", curveSeedFile(t)}, "--sign-seed"},
		{"send region", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--default-region", "ZZ"}, "--default-region"},
		{"send timeout", []string{"send", events.TypeTAPRemove, "--subject", "a@contoso.example", "--timeout", "0s"}, "--timeout"},
		{"dev listen without host", []string{"dev", "--nats-listen", ":4222"}, "--nats-listen"},
		{"dev graph listen", []string{"dev", "--graph-listen", "nowhere"}, "--graph-listen"},
		{"dev no demo and exit", []string{"dev", "--no-demo", "--exit-after-demo"}, "--no-demo and --exit-after-demo"},
		{"dev empty token", []string{"dev", "--graph-token", ""}, "--graph-token"},
		{"keys nothing", []string{"keys"}, "new-signing or new-sealing"},
		{"keys unknown", []string{"keys", "new-thing"}, "new-signing or new-sealing"},
		{"open without seed", []string{"open"}, "--seed is required"},
		{"open signing seed", []string{"open", "--seed", signingSeedFile(t)}, "--seed"},
		{"dlq nothing", []string{"dlq"}, "list, show SEQ or replay SEQ"},
		{"dlq bad seq", []string{"dlq", "show", "x"}, "SEQ"},
		{"dlq replay without seq", []string{"dlq", "replay"}, "SEQ"},
		{"results subject and key", []string{"results", "--subject", "a@contoso.example", "--key", "k"}, "--subject and --key"},
		{"check probe user", []string{"check", "--probe-user", "not a user"}, "--probe-user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 {
				t.Fatalf("exit status %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr does not name %q:\n%s", tt.want, stderr)
			}
		})
	}
}

// TestWorkerConfigValidation checks that the worker's settings are
// checked by worker.Config.Validate before anything is started, and
// reported by flag, one line each. NATS is unreachable: a setting that got
// past validation would fail differently (exit 1, "connect to NATS").
func TestWorkerConfigValidation(t *testing.T) {
	shortPolicy := writeFile(t, "short.yaml", "version: 1\nmaxAge: 1m\nsources:\n  hr/workday:\n    types: [\"*\"]\n")
	w := func(extra ...string) []string {
		return append([]string{"worker", "--policy", shortPolicy, "--graph-token", "t", "--metrics-listen", "127.0.0.1:0",
			"--nats-url", "nats://127.0.0.1:1", "--nats-timeout", "30s"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want []string // the lines of stderr
	}{
		{"ledger ttl below the duplicate window", w("--ledger-ttl", "1m"),
			[]string{"authflow worker: --ledger-ttl must be 2m0s..8760h0m0s, got 1m0s"}},
		{"retry budget not shorter than the attempt", w("--retry-budget", "3m", "--attempt-timeout", "2m"),
			[]string{"authflow worker: --retry-budget must be shorter than --attempt-timeout (2m0s), got 3m0s"}},
		{"redelivery delay", w("--redelivery-delay", "10m"),
			[]string{"authflow worker: --redelivery-delay must be 10ms..5m0s, got 10m0s"}},
		{"attempt timeout", w("--attempt-timeout", "100ms"),
			[]string{"authflow worker: --attempt-timeout must be 1s..24h0m0s, got 100ms", "authflow worker: --retry-budget must be shorter than --attempt-timeout (100ms), got 20s"}},
		{"several at once", w("--concurrency", "-1", "--max-attempts", "1000"),
			[]string{"authflow worker: --concurrency must be 1..10000, got -1", "authflow worker: --max-attempts must be 1..100, got 1000"}},
		{"zero is not the default", w("--shutdown-timeout", "0s"),
			[]string{"authflow worker: --shutdown-timeout must not be 0 (leave it out for the default, 25s)"}},
		{"empty password mode", w("--password-mode", ""),
			[]string{"authflow worker: --password-mode must not be empty (leave it out for the default, patch)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 {
				t.Fatalf("exit status %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if got := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); !slices.Equal(got, tt.want) {
				t.Fatalf("stderr:\n%s\nwant:\n%s", stderr, strings.Join(tt.want, "\n"))
			}
		})
	}
	t.Run("environment twins of the new flags", func(t *testing.T) {
		t.Setenv("AUTHFLOW_REDELIVERY_DELAY", "1ms")
		code, _, stderr := runCLI(t, w()...)
		if code != 2 || !strings.Contains(stderr, "--redelivery-delay must be 10ms..5m0s, got 1ms") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

func curveSeedFile(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	return writeFile(t, "curve.seed", string(seed)+"\n")
}

func signingSeedFile(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	return writeFile(t, "user.seed", string(seed)+"\n")
}

// TestHelpAndUnknownCommand checks that --help of every subcommand prints
// its usage on stdout, flags written --name as the docs write them, and
// exits 0.
func TestHelpAndUnknownCommand(t *testing.T) {
	singleDash := regexp.MustCompile(`(?m)^\s+-[a-z]`)
	for name := range commands() {
		for _, help := range []string{"--help", "-h"} {
			code, stdout, stderr := runCLI(t, name, help)
			if code != 0 || stderr != "" || !strings.Contains(stdout, "usage: authflow "+name) {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q", name, help, code, stdout, stderr)
				continue
			}
			if singleDash.MatchString(stdout) {
				t.Errorf("%s %s: a flag with one dash in\n%s", name, help, stdout)
			}
		}
	}
	for cmd, flag := range map[string]string{"worker": "--policy FILE", "send": "--subject", "dlq": "--limit N", "keys": "--out FILE", "emulator": "--listen HOST:PORT", "bench": "--quick", "open": "--expect-sender KEY"} {
		if _, stdout, _ := runCLI(t, cmd, "--help"); !strings.Contains(stdout, "\n  "+flag) {
			t.Errorf("%s --help does not list %s:\n%s", cmd, flag, stdout)
		}
	}
	if code, _, stderr := runCLI(t, "frobnicate"); code != 2 || stderr != "authflow: unknown command \"frobnicate\"; 'authflow help' lists the commands\n" {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "sedn"); code != 2 || stderr != "authflow: unknown command \"sedn\": did you mean send? ('authflow help' lists the commands)\n" {
		t.Errorf("mistyped command: exit %d, stderr %q", code, stderr)
	}
	code, stdout, _ := runCLI(t, "help")
	if code != 0 || !strings.Contains(stdout, "send") || !strings.Contains(stdout, "dev") || !strings.Contains(stdout, "version") {
		t.Errorf("help: exit %d, %q", code, stdout)
	}
}

// TestFlagErrors checks that a flag error is one line on stderr: the flag
// with two dashes, the nearest flag for a mistyped one, and --help.
func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"worker", "--polcy", "p.yaml"}, "authflow worker: unknown flag --polcy: did you mean --policy? ('authflow worker --help' lists the flags)"},
		{[]string{"send", events.TypeTAPRemove, "-subjct", "a@contoso.example"}, "authflow send: unknown flag --subjct: did you mean --subject? ('authflow send --help' lists the flags)"},
		{[]string{"dev", "--nats-lisen", "127.0.0.1:0"}, "authflow dev: unknown flag --nats-lisen: did you mean --nats-listen? ('authflow dev --help' lists the flags)"},
		{[]string{"keys", "new-signing", "--output", "x"}, "authflow keys: unknown flag --output: did you mean --out? ('authflow keys --help' lists the flags)"},
		{[]string{"results", "--frobnicate"}, "authflow results: unknown flag --frobnicate ('authflow results --help' lists the flags)"},
		{[]string{"worker", "--partitions", "many"}, `authflow worker: invalid value "many" for --partitions: parse error ('authflow worker --help' lists the flags)`},
		{[]string{"results", "--follow=maybe"}, `authflow results: invalid boolean value "maybe" for --follow: parse error ('authflow results --help' lists the flags)`},
		{[]string{"worker", "--policy"}, "authflow worker: --policy needs a value ('authflow worker --help' lists the flags)"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, tt.args...)
		if code != 2 || stdout != "" || stderr != tt.want+"\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and\n%s", tt.args, code, stdout, stderr, tt.want)
		}
	}
}

// TestErrorPrefixOnce checks that no message says its command twice.
func TestErrorPrefixOnce(t *testing.T) {
	for _, args := range [][]string{{"keys"}, {"keys", "new-thing"}, {"dlq"}, {"dlq", "show", "x"}, {"dlq", "frob"}} {
		_, _, stderr := runCLI(t, args...)
		_, rest, _ := strings.Cut(stderr, ": ")
		if !strings.HasPrefix(stderr, "authflow "+args[0]) || strings.HasPrefix(rest, args[0]+":") || strings.HasPrefix(rest, args[0]+" ") {
			t.Errorf("%q: %q", args, stderr)
		}
	}
}

// TestEnvTwins checks that AUTHFLOW_ variables fill flags the command line
// does not give, and that the command line wins.
func TestEnvTwins(t *testing.T) {
	t.Run("bad value names variable and flag", func(t *testing.T) {
		t.Setenv("AUTHFLOW_PARTITIONS", "many")
		code, _, stderr := runCLI(t, "worker", "--policy", "x")
		if code != 2 || !strings.Contains(stderr, "AUTHFLOW_PARTITIONS") || !strings.Contains(stderr, "--partitions") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("command line wins", func(t *testing.T) {
		t.Setenv("AUTHFLOW_PARTITIONS", "many")
		policy := writeFile(t, "policy.yaml", testPolicy)
		code, _, stderr := runCLI(t, "worker", "--policy", policy, "--graph-token", "t", "--partitions", "-1")
		if code != 2 || strings.Contains(stderr, "AUTHFLOW_PARTITIONS") || !strings.Contains(stderr, "--partitions must be 1..1000, got -1") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("values are used", func(t *testing.T) {
		// --subject and --data come from the environment: the event
		// reaches the validation of its data.
		t.Setenv("AUTHFLOW_SUBJECT", "adele.vance@contoso.example")
		t.Setenv("AUTHFLOW_DATA", `{"phoneType":"mobile","phoneNumber":"nope"}`)
		code, _, stderr := runCLI(t, "send", events.TypePhoneSet)
		if code != 2 || !strings.Contains(stderr, "data.phoneNumber") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("policy from the environment", func(t *testing.T) {
		t.Setenv("AUTHFLOW_POLICY", filepath.Join(t.TempDir(), "from-env.yaml"))
		code, _, stderr := runCLI(t, "worker", "--graph-token", "t")
		if code != 2 || !strings.Contains(stderr, "from-env.yaml") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestBuildEvent(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		data   string
		dryRun bool
		want   string // the data member of the event
	}{
		{"as given, compacted", `{"phoneType":"mobile",` + "\n  " + `"phoneNumber":"+1 4255550100"}`, false, `{"phoneType":"mobile","phoneNumber":"+1 4255550100"}`},
		{"duplicate keys kept for the decoder to refuse", `{"a":1, "a":2}`, false, `{"a":1,"a":2}`},
		{"dry run added", ` {"phoneType":"mobile","phoneNumber":"+1 4255550100"} `, true, `{"dryRun":true,"phoneType":"mobile","phoneNumber":"+1 4255550100"}`},
		{"dry run on empty", `{ }`, true, `{"dryRun":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := buildEvent(events.TypePhoneSet, "adele.vance@contoso.example", "hr/workday", "id-1", []byte(tt.data), tt.dryRun, now)
			if err != nil {
				t.Fatal(err)
			}
			want := `{"specversion":"1.0","id":"id-1","source":"hr/workday","type":"authflow.phone.set.v1","subject":"adele.vance@contoso.example","time":"2026-11-26T09:00:00Z","datacontenttype":"application/json","data":` + tt.want + `}`
			if string(raw) != want {
				t.Fatalf("got  %s\nwant %s", raw, want)
			}
		})
	}
	raw, err := buildEvent(events.TypePhoneSet, "adele.vance@contoso.example", "hr/workday", "id-1", []byte(`{"phoneType":"mobile","phoneNumber":"425-555-0100"}`), true, now)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := (events.Decoder{DefaultRegion: "US"}).Decode(raw)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if !ev.DryRun || ev.Payload.(*events.PhoneSet).PhoneNumber != "+1 4255550100" {
		t.Fatalf("decoded %+v", ev.Payload)
	}
}

func TestUserKey(t *testing.T) {
	guid, err := userKey("3B1F8A52-6C0E-4D2A-9F4B-7E5D1C2A0001")
	if err != nil || guid != "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0001" {
		t.Fatalf("guid key %q, %v", guid, err)
	}
	a, err := userKey("Adele.Vance@contoso.example")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := userKey("adele.vance@CONTOSO.example")
	c, _ := userKey("alex.wilber@contoso.example")
	if a != b || a == c || !regexp.MustCompile(`^upn-[0-9a-f]{32}$`).MatchString(a) || !worker.ValidKey(a) {
		t.Fatalf("upn keys %q %q %q", a, b, c)
	}
	for _, bad := range []string{"", "a/b@contoso.example", "not a user", "a@b@c"} {
		if k, err := userKey(bad); err == nil {
			t.Errorf("userKey(%q) = %q, want an error", bad, k)
		}
	}
}

// TestSendSignsAndWaits publishes real events to an embedded JetStream
// server: the stored message is the validated event, signed, on the user's
// subject; --wait prints the matching result and maps its status to the
// exit status.
func TestSendSignsAndWaits(t *testing.T) {
	s := startTestNATS(t, "")
	nc, js := connectJS(t, s)
	ensureTopology(t, js)

	// A fake worker: answers each event with a result of the status named
	// by its source, after an unrelated result for the same user.
	sub, err := nc.Subscribe(worker.EventsSubjectPrefix+"*", func(m *nats.Msg) {
		ev, err := (events.Decoder{DefaultRegion: "US"}).Decode(m.Data)
		if err != nil {
			return
		}
		key := strings.TrimPrefix(m.Subject, worker.EventsSubjectPrefix)
		status := events.Status(strings.TrimPrefix(ev.Source, "test/"))
		if status == "silent" {
			return
		}
		other := testResult(t, ev.Source, "another-id", ev.Subject, events.StatusSucceeded)
		_ = nc.Publish(worker.ResultSubject(key), other)
		_ = nc.Publish(worker.ResultSubject(key), testResult(t, ev.Source, ev.ID, ev.Subject, status))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	// The server must know the subscription before send publishes on its
	// own connection, or the fake worker misses the event.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	seed := signingSeedFile(t)

	code, stdout, stderr := runCLI(t, "send", events.TypePhoneSet, "--nats-url", s.ClientURL(),
		"--subject", "Adele.Vance@contoso.example", "--data", `{"phoneType":"mobile","phoneNumber":"425-555-0100"}`,
		"--source", "test/succeeded", "--id", "evt-1", "--sign-seed", seed, "--wait")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, ok := lineWith(stdout, "succeeded", events.TypePhoneSet, "Adele.Vance@contoso.example"); !ok {
		t.Fatalf("no result line in %q", stdout)
	}

	// The stored event: exactly what was validated, signed by the seed's key.
	stream, err := js.Stream(context.Background(), worker.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := userKey("adele.vance@contoso.example")
	if !strings.HasSuffix(m.Subject, "."+key) {
		t.Errorf("stored subject %q, want key %q", m.Subject, key)
	}
	if err := events.Verify(m.Data, m.Header.Get(events.HeaderSignature), m.Header.Get(events.HeaderSigner)); err != nil {
		t.Errorf("verify: %v", err)
	}
	kp, _ := readSeedFile(seed, false)
	if pub, _ := kp.PublicKey(); m.Header.Get(events.HeaderSigner) != pub {
		t.Errorf("signer %q, want %q", m.Header.Get(events.HeaderSigner), pub)
	}
	if got, want := m.Header.Get(nats.MsgIdHdr), events.EventKey("test/succeeded", "evt-1"); got != want {
		t.Errorf("Nats-Msg-Id %q, want %q", got, want)
	}
	ev, err := (events.Decoder{DefaultRegion: "US"}).Decode(m.Data)
	if err != nil {
		t.Fatalf("stored event does not decode: %v", err)
	}
	if ev.ID != "evt-1" || ev.Source != "test/succeeded" || ev.Type != events.TypePhoneSet || ev.Subject != "Adele.Vance@contoso.example" {
		t.Errorf("stored event %+v", ev)
	}
	if age := time.Since(ev.Time); age < 0 || age > time.Minute {
		t.Errorf("event time %s", ev.Time)
	}
	// Tampering breaks the signature.
	tampered := []byte(strings.Replace(string(m.Data), "evt-1", "evt-2", 1))
	if err := events.Verify(tampered, m.Header.Get(events.HeaderSignature), m.Header.Get(events.HeaderSigner)); err == nil {
		t.Error("a tampered event verifies")
	}

	t.Run("rejected exits 1", func(t *testing.T) {
		code, stdout, _ := runCLI(t, "send", events.TypeTAPRemove, "--nats-url", s.ClientURL(),
			"--subject", "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0001", "--source", "test/rejected", "--wait", "--json")
		if code != exitFailed {
			t.Fatalf("exit %d, want %d", code, exitFailed)
		}
		res, err := events.DecodeResult([]byte(strings.TrimSpace(stdout)))
		if err != nil || res.Data.Status != events.StatusRejected {
			t.Fatalf("--json printed %q (%v)", stdout, err)
		}
	})
	t.Run("no result exits 3", func(t *testing.T) {
		code, _, stderr := runCLI(t, "send", events.TypeTAPRemove, "--nats-url", s.ClientURL(),
			"--subject", "adele.vance@contoso.example", "--source", "test/silent", "--wait", "--timeout", "1s")
		if code != exitTimeout || !strings.Contains(stderr, "no result") {
			t.Fatalf("exit %d, want %d; stderr %q", code, exitTimeout, stderr)
		}
	})
	t.Run("without wait", func(t *testing.T) {
		code, _, stderr := runCLI(t, "send", events.TypeTAPRemove, "--nats-url", s.ClientURL(),
			"--subject", "adele.vance@contoso.example", "--source", "test/silent")
		if code != 0 || !strings.Contains(stderr, "published") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("no server", func(t *testing.T) {
		code, _, stderr := runCLI(t, "send", events.TypeTAPRemove, "--nats-url", "nats://127.0.0.1:1",
			"--subject", "adele.vance@contoso.example", "--nats-timeout", "1s")
		if code != 1 || !strings.Contains(stderr, "--nats-url") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}

// testResult is a valid result of the event source/id.
func testResult(t *testing.T, source, id, subject string, status events.Status) []byte {
	t.Helper()
	now := time.Now().UTC()
	data := events.ResultData{
		Event:  events.EventRef{Source: source, ID: id, Type: events.TypePhoneSet},
		User:   events.UserInfo{Ref: subject},
		Status: status,
		Operations: []events.OpResult{{Op: events.OpEnsurePhone, MethodKind: events.KindPhone,
			MethodID: "3179e48a-750b-4051-897c-87b9720928f7", Outcome: events.OutcomeCreated, Detail: "mobile +1 ******0100"}},
		Attempts: 1, ReceivedAt: now, StartedAt: now, FinishedAt: now,
	}
	if status != events.StatusSucceeded {
		data.Operations = nil
		data.Error = &events.ErrorInfo{Code: events.CodePolicyDenied, Message: "not allowed", Permanent: true}
	}
	b, err := events.NewResult(newUUID(), subject, data, now).Marshal()
	if err != nil {
		t.Fatalf("marshal result: %v", err)
	}
	return b
}

// TestKeysAndOpen makes keys with the CLI, seals a secret to the sealing
// key as the worker does, and opens it with `authflow open`.
func TestKeysAndOpen(t *testing.T) {
	dir := t.TempDir()
	sealing := filepath.Join(dir, "recipient.seed")
	code, stdout, stderr := runCLI(t, "keys", "new-sealing", "--out", sealing)
	if code != 0 {
		t.Fatalf("keys new-sealing: exit %d: %s", code, stderr)
	}
	pub := regexp.MustCompile(`public: (X[A-Z2-7]{55})`).FindStringSubmatch(stdout)
	// No seed on stdout (a public key may contain "SX" by chance: look for a seed's shape).
	if pub == nil || regexp.MustCompile(`(^|[^A-Z2-7])SX[A-Z2-7]{40,}`).MatchString(stdout) {
		t.Fatalf("keys new-sealing printed %q", stdout)
	}
	if seed, err := os.ReadFile(sealing); err != nil || strings.Contains(stdout, strings.TrimSpace(string(seed))) {
		t.Fatalf("keys new-sealing printed its seed (%v)", err)
	}
	if fi, err := os.Stat(sealing); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed file: %v %v", fi, err)
	}
	if code, _, stderr := runCLI(t, "keys", "new-sealing", "--out", sealing); code != 2 || !strings.Contains(stderr, "refusing to overwrite") {
		t.Fatalf("overwrite: exit %d, %q", code, stderr)
	}

	code, stdout, _ = runCLI(t, "keys", "new-signing")
	m := regexp.MustCompile(`public: (U[A-Z2-7]{55})\nseed:   (SU[A-Z2-7]{56})`).FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("keys new-signing: exit %d, %q", code, stdout)
	}
	signer, err := readSeedFile(writeFile(t, "s.seed", "# a comment\n\n"+m[2]+"\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := signer.PublicKey(); p != m[1] {
		t.Fatalf("seed and public key do not match")
	}

	// Seal as the worker does, into a result.
	sender, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Tap-9xKq2mPw"
	sealed, err := events.Seal(events.SecretTAP, []byte(secret), pub[1], sender)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	res := events.NewResult(newUUID(), "adele.vance@contoso.example", events.ResultData{
		Event:  events.EventRef{Source: "hr/workday", ID: "evt-7", Type: events.TypeTAPIssue},
		User:   events.UserInfo{Ref: "adele.vance@contoso.example"},
		Status: events.StatusSucceeded,
		Operations: []events.OpResult{{Op: events.OpIssueTAP, MethodKind: events.KindTAP,
			MethodID: "0b5b7a2e-7d9b-4c9e-9d3e-5e0c7a1b2c3d", Outcome: events.OutcomeCreated, Secret: sealed}},
		Attempts: 1, ReceivedAt: now, StartedAt: now, FinishedAt: now,
	}, now)
	body, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(body), secret) {
		t.Fatal("the result carries the secret in plain text")
	}
	// Two results in one file, as authflow results --json prints them.
	resultFile := writeFile(t, "results.jsonl", string(testResult(t, "hr/workday", "evt-6", "adele.vance@contoso.example", events.StatusSucceeded))+"\n"+string(body)+"\n")

	code, stdout, stderr = runCLI(t, "open", "--seed", sealing, "--result", resultFile)
	if code != 0 {
		t.Fatalf("open: exit %d: %s", code, stderr)
	}
	if want := "temporaryAccessPass for adele.vance@contoso.example (event hr/workday evt-7): " + secret + "\n"; stdout != want {
		t.Fatalf("open printed %q, want %q", stdout, want)
	}

	// --expect-sender: the sender must be one of the keys given.
	senderPub, _ := sender.PublicKey()
	rotated, _ := nkeys.CreateCurveKeys()
	rotatedPub, _ := rotated.PublicKey()
	code, stdout, _ = runCLI(t, "open", "--seed", sealing, "--result", resultFile, "--expect-sender", rotatedPub, "--expect-sender", senderPub)
	if code != 0 || !strings.Contains(stdout, secret) {
		t.Fatalf("old and new sender: exit %d, %q", code, stdout)
	}
	code, stdout, stderr = runCLI(t, "open", "--seed", sealing, "--result", resultFile, "--expect-sender", rotatedPub)
	if code != exitFailed || strings.Contains(stdout, secret) || !strings.Contains(stderr, "refused: temporaryAccessPass for adele.vance@contoso.example (event hr/workday evt-7) was sealed by "+senderPub) {
		t.Fatalf("another sender: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	t.Run("expect sender from the environment", func(t *testing.T) {
		t.Setenv("AUTHFLOW_EXPECT_SENDER", rotatedPub+","+senderPub)
		if code, stdout, stderr := runCLI(t, "open", "--seed", sealing, "--result", resultFile); code != 0 || !strings.Contains(stdout, secret) {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	code, _, stderr = runCLI(t, "open", "--seed", sealing, "--result", resultFile, "--expect-sender", m[1])
	if code != 2 || !strings.Contains(stderr, "not a curve public key") {
		t.Fatalf("a signing key as sender: exit %d, stderr %q", code, stderr)
	}

	// Another recipient's seed opens nothing.
	code, stdout, stderr = runCLI(t, "open", "--seed", curveSeedFile(t), "--result", resultFile)
	if code != exitFailed || strings.Contains(stdout, secret) || !strings.Contains(stderr, "another recipient") {
		t.Fatalf("wrong seed: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// Garbage is a clear error.
	code, _, stderr = runCLI(t, "open", "--seed", sealing, "--result", writeFile(t, "junk.json", `{"not":"a result"}`))
	if code != 2 || !strings.Contains(stderr, "result 1") {
		t.Fatalf("junk: exit %d, stderr %q", code, stderr)
	}
}

func TestPrintResult(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	sealTo, _ := nkeys.CreateCurveKeys()
	pub, _ := sealTo.PublicKey()
	sender, _ := nkeys.CreateCurveKeys()
	sealed, err := events.Seal(events.SecretTAP, []byte("secret-value"), pub, sender)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data events.ResultData
		want []string
	}{
		{
			name: "succeeded",
			data: events.ResultData{Status: events.StatusSucceeded, DurationMs: 41, Operations: []events.OpResult{
				{Op: events.OpEnsurePhone, MethodKind: events.KindPhone, Outcome: events.OutcomeCreated, Detail: "mobile +1 ******0100"},
				{Op: events.OpIssueTAP, MethodKind: events.KindTAP, Outcome: events.OutcomeCreated, Secret: sealed},
			}},
			want: []string{
				"✔ succeeded  authflow.employee.joined.v1  adele.vance@contoso.example  (2 ops, 41 ms)",
				"    created      phone  mobile +1 ******0100",
				"    created      temporaryAccessPass  [temporaryAccessPass sealed to " + shortKey(pub) + ": authflow open]",
			},
		},
		{
			name: "dry run",
			data: events.ResultData{Status: events.StatusSucceeded, DryRun: true, Operations: []events.OpResult{
				{Op: events.OpRemoveAllMethods, MethodKind: events.KindPhone, Outcome: events.OutcomeDeleted},
			}},
			want: []string{"(dry run, 1 op, 0 ms)", "    would delete phone"},
		},
		{
			name: "rejected",
			data: events.ResultData{Status: events.StatusRejected, Error: &events.ErrorInfo{Code: events.CodeInvalidEvent, Message: "invalid_event: data.mobilePhone: bad"}},
			want: []string{"✘ rejected   authflow.employee.joined.v1  adele.vance@contoso.example  (0 ops, 0 ms)  invalid_event: data.mobilePhone: bad"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.data.Event = events.EventRef{Source: "hr/workday", ID: "1", Type: events.TypeEmployeeJoined}
			tt.data.User.Ref = "adele.vance@contoso.example"
			var out syncBuffer
			newResultPrinter(&out).print(events.NewResult("r1", "adele.vance@contoso.example", tt.data, now))
			got := out.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w+"\n") && !strings.Contains(got, w) {
					t.Errorf("missing %q in\n%s", w, got)
				}
			}
			if strings.Contains(got, "\x1b[") {
				t.Errorf("colour codes in output to a buffer: %q", got)
			}
			if strings.Contains(got, "secret-value") {
				t.Error("a secret was printed")
			}
		})
	}
}

// TestResultsDLQAndCheck runs the operator commands against an embedded
// JetStream server and the Graph emulator.
func TestResultsDLQAndCheck(t *testing.T) {
	s := startTestNATS(t, "")
	nc, js := connectJS(t, s)
	url := s.ClientURL()

	emu := graphclienttest.NewServer(t)
	enabled := true
	if err := emu.PutUser(graphclienttest.User{ID: "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0001", UserPrincipalName: "adele.vance@contoso.example", AccountEnabled: &enabled,
		Methods: []json.RawMessage{json.RawMessage(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`)}}); err != nil {
		t.Fatal(err)
	}
	checkArgs := []string{"check", "--nats-url", url, "--graph-url", emu.GraphURL, "--graph-token", emu.Token, "--probe-user", "adele.vance@contoso.example"}

	t.Run("check before a worker ran", func(t *testing.T) {
		code, stdout, _ := runCLI(t, checkArgs...)
		if code != exitFailed {
			t.Fatalf("exit %d, want %d\n%s", code, exitFailed, stdout)
		}
		for _, want := range []string{"[ok]   NATS reachable", "[FAIL] stream AUTHFLOW_EVENTS missing", "[FAIL] KV bucket AUTHFLOW_LEDGER missing", "[ok]   Graph token", "[ok]   Graph permissions"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("missing %q in\n%s", want, stdout)
			}
		}
	})
	ensureTopology(t, js)
	t.Run("check passes", func(t *testing.T) {
		code, stdout, _ := runCLI(t, checkArgs...)
		if code != 0 || strings.Contains(stdout, "FAIL") || !strings.Contains(stdout, "all checks passed") {
			t.Fatalf("exit %d\n%s", code, stdout)
		}
	})
	t.Run("check bad token and unknown user", func(t *testing.T) {
		code, stdout, _ := runCLI(t, "check", "--nats-url", url, "--graph-url", emu.GraphURL, "--graph-token", "wrong", "--probe-user", "nobody@contoso.example")
		if code != exitFailed || !strings.Contains(stdout, "[FAIL] Graph read user nobody@contoso.example") {
			t.Fatalf("exit %d\n%s", code, stdout)
		}
	})

	ctx := context.Background()
	keyA, _ := userKey("adele.vance@contoso.example")
	for _, r := range []struct{ key, id, subject string }{
		{keyA, "evt-1", "adele.vance@contoso.example"},
		{"other", "evt-2", "alex.wilber@contoso.example"},
		{"byid", "evt-3", "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0001"}, // Adele by object id, another key
	} {
		body := testResult(t, "hr/workday", r.id, r.subject, events.StatusSucceeded)
		if r.id == "evt-3" {
			res, err := events.DecodeResult(body)
			if err != nil {
				t.Fatal(err)
			}
			res.Data.User.ObjectID, res.Data.User.UPN = r.subject, "adele.vance@contoso.example"
			if body, err = res.Marshal(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := js.Publish(ctx, worker.ResultSubject(r.key), body); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("results", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "results", "--nats-url", url)
		if code != 0 || strings.Count(stdout, "✔ succeeded") != 3 {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		// By either name: the result under send's key for the UPN, and the one
		// keyed by object id that names her UPN; not Alex's.
		for _, name := range []string{"Adele.Vance@contoso.example", "3B1F8A52-6C0E-4D2A-9F4B-7E5D1C2A0001"} {
			code, stdout, _ = runCLI(t, "results", "--nats-url", url, "--subject", name, "--json")
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			var ids []string
			for _, l := range lines {
				res, err := events.DecodeResult([]byte(l))
				if err != nil {
					t.Fatalf("filtered result %q: %v", l, err)
				}
				ids = append(ids, res.Data.Event.ID)
			}
			want := map[string]string{"Adele.Vance@contoso.example": "evt-1 evt-3", "3B1F8A52-6C0E-4D2A-9F4B-7E5D1C2A0001": "evt-3"}[name]
			if code != 0 || strings.Join(ids, " ") != want {
				t.Fatalf("--subject %s: exit %d, results %v, want %s", name, code, ids, want)
			}
		}
	})
	t.Run("results follow", func(t *testing.T) {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var stdout, stderr syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(fctx, []string{"results", "--nats-url", url, "--key", "later", "--follow"}, &stdout, &stderr)
		}()
		// Publish until the follower prints it: it may subscribe after the first publish.
		waitFor(t, "the followed result", func() bool {
			if strings.Contains(stdout.String(), "succeeded") {
				return true
			}
			_, _ = js.Publish(ctx, worker.ResultSubject("later"), testResult(t, "hr/workday", newUUID(), "adele.vance@contoso.example", events.StatusSucceeded))
			time.Sleep(200 * time.Millisecond)
			return false
		})
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("follow: exit %d, stderr %q", code, stderr.String())
		}
	})

	// A dead letter as the worker writes one.
	dead := nats.NewMsg(worker.DLQSubject(keyA))
	dead.Data = []byte(`{"specversion":"1.0","id":"evt-9","source":"hr/workday","type":"authflow.employee.joined.v1","subject":"adele.vance@contoso.example","time":"2026-11-26T09:00:00Z","data":{"mobilePhone":"call me"}}`)
	dead.Header.Set(events.HeaderSigner, "UABC")
	dead.Header.Set(worker.HeaderDLQReason, "invalid_event")
	dead.Header.Set(worker.HeaderDLQAttempts, "1")
	dead.Header.Set(worker.HeaderDLQSubject, "authflow.events.2."+keyA)
	if _, err := js.PublishMsg(ctx, dead); err != nil {
		t.Fatal(err)
	}
	t.Run("dlq list", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "dlq", "list", "--nats-url", url)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if _, ok := lineWith(stdout, "1 ", "invalid_event", worker.EventSubject(keyA), "evt-9"); !ok {
			t.Fatalf("dlq list:\n%s", stdout)
		}
	})
	t.Run("dlq show", func(t *testing.T) {
		code, stdout, _ := runCLI(t, "dlq", "show", "1", "--nats-url", url)
		if code != 0 || !strings.Contains(stdout, "Authflow-Dlq-Reason: invalid_event") || !strings.Contains(stdout, string(dead.Data)) {
			t.Fatalf("exit %d\n%s", code, stdout)
		}
		if code, _, stderr := runCLI(t, "dlq", "show", "99", "--nats-url", url); code != exitFailed || !strings.Contains(stderr, "no dead letter") {
			t.Fatalf("unknown seq: exit %d, %q", code, stderr)
		}
	})
	t.Run("dlq replay", func(t *testing.T) {
		// A rejected (undecodable) event cannot be re-driven: its sender must
		// send a corrected one. The re-drive of failures is TestRedrive (worker).
		code, stdout, stderr := runCLI(t, "dlq", "replay", "1", "--nats-url", url, "--by", "ops")
		if code != exitFailed || !strings.Contains(stderr, "not re-drivable") || !strings.Contains(stderr, "rejected") {
			t.Fatalf("exit %d, %q, %q", code, stdout, stderr)
		}
		stream, err := js.Stream(ctx, worker.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 0 {
			t.Fatalf("a refused re-drive published something: %+v %v", info.State, err)
		}
		_ = dead
	})
	_ = nc
}

// Helpers.

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
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

// runCLI runs the binary's run function with args and returns the exit
// status, stdout and stderr. It is bounded in time.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var stdout, stderr syncBuffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// startNATS runs an embedded JetStream server on 127.0.0.1 with its store in
// dir (a fresh temporary directory when empty).
func startTestNATS(t *testing.T, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "test", Host: "127.0.0.1", Port: -1,
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

func connectJS(t *testing.T, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// ensureTopology creates the worker's streams and ledger, as a worker would.
func ensureTopology(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := worker.EnsureTopology(ctx, js, worker.Topology{
		Partitions: 4, Replicas: 1, LedgerTTL: time.Hour,
		EventsMaxAge: time.Hour, ResultsMaxAge: time.Hour, DLQMaxAge: time.Hour,
		ResultsDuplicates: time.Minute, AckWait: 30 * time.Second, MaxMsgBytes: 1 << 20,
	})
	if err != nil {
		t.Fatalf("ensure topology: %v", err)
	}
}

// writeFile writes content to name in a temporary directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lineWith returns the first line of out that contains every part.
func lineWith(out string, parts ...string) (string, bool) {
	for _, line := range strings.Split(out, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				ok = false
				break
			}
		}
		if ok {
			return line, true
		}
	}
	return "", false
}

// TestNATSNkeyAuth connects with --nats-nkey to a server that requires it,
// and checks that a refused connection names the credential flags.
func TestNATSNkeyAuth(t *testing.T) {
	seedFile := signingSeedFile(t)
	kp, err := readSeedFile(seedFile, false)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	s, err := server.NewServer(&server.Options{
		ServerName: "auth", Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, Nkeys: []*server.NkeyUser{{Nkey: pub}},
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ensureTopology(t, js)

	if code, _, stderr := runCLI(t, "dlq", "list", "--nats-url", s.ClientURL(), "--nats-nkey", seedFile); code != 0 {
		t.Fatalf("with the nkey: exit %d, %q", code, stderr)
	}
	code, _, stderr := runCLI(t, "dlq", "list", "--nats-url", s.ClientURL())
	if code != 1 || !strings.Contains(stderr, "--nats-nkey") {
		t.Fatalf("without the nkey: exit %d, %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "dlq", "list", "--nats-url", s.ClientURL(), "--nats-nkey", signingSeedFile(t))
	if code != 1 || !strings.Contains(strings.ToLower(stderr), "authorization violation") {
		t.Fatalf("another nkey: exit %d, %q", code, stderr)
	}
}
