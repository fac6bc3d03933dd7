package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// TestEnrolEndToEnd: authflow enrol against a real worker, JetStream and
// the Graph emulator over HTTP: options sealed to the station, the
// software authenticator's ceremony, the signed register event, and the
// emulator shows the passkey. A policy that requires signatures from the
// station proves both events were signed by its key.
func TestEnrolEndToEnd(t *testing.T) {
	s := startTestNATS(t, "")
	nc, _ := connectJS(t, s)
	emu := graphclienttest.NewServer(t)
	const userID, upn = "0a1b2c3d-0000-4000-8000-0000000000e1", "kim.akers@contoso.example"
	if err := emu.PutUser(graphclienttest.User{ID: userID, UserPrincipalName: upn, DisplayName: "Kim Akers"}); err != nil {
		t.Fatal(err)
	}
	signSeed := signingSeedFile(t)
	signer, _ := readSeedFile(signSeed, false)
	signerPub, _ := signer.PublicKey()
	policy, err := events.ParsePolicy([]byte("version: 1\nsources:\n  enrolment/desk-1:\n    signature: required\n    keys: [" + signerPub +
		"]\n    types: [authflow.passkey.options.v1, authflow.passkey.register.v1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := graphclient.New(graphclient.Config{BaseURL: emu.GraphURL, Token: emu.Token})
	if err != nil {
		t.Fatal(err)
	}
	sealKey, _ := nkeys.CreateCurveKeys()
	workerPub, _ := sealKey.PublicKey()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := worker.New(ctx, worker.Config{NATS: nc, Graph: g, Policy: policy, SealKey: sealKey, Replicas: 1,
		Instance: "enrol-test", ShutdownTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	stationSeed := curveSeedFile(t)
	base := []string{"enrol", "--nats-url", s.ClientURL(), "--subject", upn, "--seal-seed", stationSeed,
		"--source", "enrolment/desk-1", "--timeout", "60s"}
	code, stdout, stderr := runCLI(t, append(base, "--sign-seed", signSeed, "--display-name", "Kim's desk key", "--expect-sender", workerPub)...)
	if code != 0 {
		t.Fatalf("enrol: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, ok := lineWith(stdout, "succeeded", events.TypePasskeyRegister); !ok {
		t.Fatalf("no succeeded register result in %q", stdout)
	}
	u, _ := emu.User(userID)
	var keys []map[string]any
	for _, raw := range u.Methods {
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		if m["@odata.type"] == "#microsoft.graph.fido2AuthenticationMethod" {
			keys = append(keys, m)
		}
	}
	if len(keys) != 1 || keys[0]["displayName"] != "Kim's desk key" || keys[0]["passkeyType"] != "deviceBound" {
		t.Fatalf("the emulator shows %v, want the one passkey", keys)
	}

	// Unsigned, the policy rejects the options request: nothing registered.
	code, _, stderr = runCLI(t, base...)
	if code != exitFailed || !strings.Contains(stderr, "rejected") {
		t.Fatalf("unsigned: exit %d, stderr %s", code, stderr)
	}
	// Options sealed by another worker key are refused with --expect-sender.
	other, _ := nkeys.CreateCurveKeys()
	otherPub, _ := other.PublicKey()
	code, _, stderr = runCLI(t, append(base, "--sign-seed", signSeed, "--expect-sender", otherPub)...)
	if code != exitFailed || !strings.Contains(stderr, "not by --expect-sender") {
		t.Fatalf("other sender: exit %d, stderr %s", code, stderr)
	}
	if u, _ := emu.User(userID); len(u.Methods) != 2 { // password + the one passkey
		t.Fatalf("methods after the refusals: %d", len(u.Methods))
	}
}

func TestEnrolFlags(t *testing.T) {
	seed := curveSeedFile(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"enrol", "--seal-seed", seed}, "--subject is required"},
		{[]string{"enrol", "--subject", "kim@contoso.example"}, "--seal-seed is required"},
		{[]string{"enrol", "--subject", "kim@contoso.example", "--seal-seed", seed, "--timeout", "6m"}, "--timeout"},
		{[]string{"enrol", "--subject", "not a user", "--seal-seed", seed}, "--subject"},
		{[]string{"enrol", "--subject", "kim@contoso.example", "--seal-seed", seed, "--ticket-id", "INC1"}, "go together"},
		{[]string{"enrol", "--subject", "kim@contoso.example", "--seal-seed", signingSeedFile(t)}, "--seal-seed"},
		{[]string{"enrol", "--subject", "kim@contoso.example", "--seal-seed", seed, "--display-name", "a\nb"}, "--display-name"},
		{[]string{"enrol", "--subject", "kim@contoso.example", "--seal-seed", seed, "--expect-sender", "nope"}, "--expect-sender"},
		{[]string{"enrol", "--subject", "kim@contoso.example", "--seal-seed", seed, "--options-result", writeFile(t, "r.json", "{}")}, "--options-result"},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %q", tt.args, code, stderr, tt.want)
		}
	}
}
