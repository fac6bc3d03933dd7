package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/reconcile"
	"github.com/authflow/authflow/worker"
)

// reconTenant seeds n users into the emulator and writes a desired CSV that
// differs in perKind users of each drift kind: leavers (the first tenth)
// with an enabled account or with methods; active users with a missing or
// other mobile or email. It returns the file, the expected findings as
// "user|kind" and the seeds of the drifted users (to restore them).
func reconTenant(t *testing.T, emu *graphclienttest.Server, n, perKind int) (file string, want []string, drifted []graphclienttest.User) {
	t.Helper()
	phone := func(typ, number string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":%q,"phoneType":%q}`, number, typ))
	}
	mail := func(addr string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":%q}`, addr))
	}
	var b strings.Builder
	b.WriteString("user,status,mobile,email\n")
	leavers := n / 10
	for i := range n {
		upn := fmt.Sprintf("p%05d@contoso.example", i)
		mobile, addr := fmt.Sprintf("+1 425%07d", 3000000+i), fmt.Sprintf("p%05d@home.example", i)
		u := graphclienttest.User{ID: fmt.Sprintf("10000000-0000-4000-8000-%012d", i), UserPrincipalName: upn}
		enabled, kind := true, ""
		if i < leavers {
			enabled = false
			switch {
			case i < perKind:
				kind, enabled = reconcile.KindLeaverEnabled, true
			case i < 2*perKind:
				kind = reconcile.KindLeaverMethods
				u.Methods = []json.RawMessage{phone("mobile", mobile), mail(addr)}
			}
			fmt.Fprintf(&b, "%s,left,,\n", upn)
		} else {
			u.Methods = []json.RawMessage{phone("mobile", mobile), mail(addr)}
			switch (i - leavers) / perKind {
			case 0:
				kind, u.Methods = reconcile.KindPhoneMissing, u.Methods[1:]
			case 1:
				kind, u.Methods[0] = reconcile.KindPhoneDiffers, phone("mobile", fmt.Sprintf("+1 425%07d", 8000000+(i+5000)%10000))
			case 2:
				kind, u.Methods = reconcile.KindEmailMissing, u.Methods[:1]
			case 3:
				kind, u.Methods[1] = reconcile.KindEmailDiffers, mail("old-"+addr)
			}
			fmt.Fprintf(&b, "%s,active,%s,%s\n", upn, mobile, addr)
		}
		u.AccountEnabled = &enabled
		if err := emu.PutUser(u); err != nil {
			t.Fatal(err)
		}
		if kind != "" {
			want = append(want, upn+"|"+kind)
			drifted = append(drifted, u)
		}
	}
	slices.Sort(want)
	return writeFile(t, "desired.csv", b.String()), want, drifted
}

// reconcileJSON runs `authflow reconcile --json` with args and decodes the report.
func reconcileJSON(t *testing.T, args ...string) (reconcileOutput, string) {
	t.Helper()
	// A 10,000-user sweep takes seconds; give a loaded machine minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var so, se syncBuffer
	code := run(ctx, append([]string{"reconcile", "--json"}, args...), &so, &se)
	stdout, stderr := so.String(), se.String()
	if code != 0 {
		t.Fatalf("reconcile: exit %d\nstdout: %.2000s\nstderr: %.2000s", code, stdout, stderr)
	}
	var out reconcileOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("reconcile --json printed %.500q: %v", stdout, err)
	}
	return out, stderr
}

func findings(out reconcileOutput) []string {
	var s []string
	for _, d := range out.Drift {
		s = append(s, d.User+"|"+d.Kind)
	}
	slices.Sort(s)
	return s
}

// reconPolicy admits the reconcile source with the key of seed only.
func reconPolicy(t *testing.T, seed string) string {
	t.Helper()
	kp, err := readSeedFile(seed, false)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return writeFile(t, "policy.yaml", "version: 1\nsources:\n  authflow/reconcile:\n"+
		"    types: [authflow.employee.left.v1, authflow.phone.set.v1, authflow.email.set.v1]\n"+
		"    signature: required\n    keys: ["+pub+"]\n")
}

// startInProcessWorker runs `authflow worker` in this process until the
// test ends, and waits for its start line.
func startInProcessWorker(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"worker"}, args...), &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("worker exit %d: %s", code, tail(stderr.String(), 2000))
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

// waitResults waits until the results stream holds n results and checks
// that every one succeeded.
func waitResults(t *testing.T, s *server.Server, n int) {
	t.Helper()
	_, js := connectJS(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		st, err := js.Stream(ctx, worker.ResultsStream)
		if err == nil {
			info, err := st.Info(ctx)
			if err == nil && info.State.Msgs >= uint64(n) {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("fewer than %d results in time", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, err := js.OrderedConsumer(ctx, worker.ResultsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		res, err := events.DecodeResult(m.Data())
		if err != nil || res.Data.Status != events.StatusSucceeded || res.Data.Event.Source != reconcile.Source {
			t.Fatalf("result %d: %v %s", i, err, m.Data())
		}
	}
}

// TestReconcileApply: 10,000 users with 1% drift of each kind. The report
// names exactly those users; --apply corrects them through a real worker
// and a second run finds no drift; applying the same corrections again the
// same day is a no-op.
func TestReconcileApply(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 users")
	}
	s := startTestNATS(t, "")
	emu := graphclienttest.NewServer(t)
	desired, want, drifted := reconTenant(t, emu, 10_000, 100)
	seed := signingSeedFile(t)
	startInProcessWorker(t, "--policy", reconPolicy(t, seed), "--nats-url", s.ClientURL(), "--graph-url", emu.GraphURL,
		"--graph-token", emu.Token, "--stream-replicas", "1", "--partitions", "8", "--metrics-listen", "127.0.0.1:0", "--instance", "w1")
	graph := []string{"--desired", desired, "--graph-url", emu.GraphURL, "--graph-token", emu.Token, "--rate", "10000", "--concurrency", "8"}
	apply := append(slices.Clone(graph), "--apply", "--sign-seed", seed, "--nats-url", s.ClientURL())

	out, stderr := reconcileJSON(t, graph...)
	if got := findings(out); !slices.Equal(got, want) {
		t.Fatalf("%d findings, want %d: first %v", len(got), len(want), got[:min(5, len(got))])
	}
	if out.Rows != 10_000 || out.Checked != 10_000 || out.Corrections != 600 || !out.RegistrationReport || out.Applied != nil {
		t.Fatalf("report %+v", out)
	}
	if !strings.Contains(stderr, "reconcile: 10000/10000 users (100%)") {
		t.Errorf("no plain progress line on stderr: %.500q", stderr)
	}
	for _, d := range out.Drift {
		if strings.Contains(d.Current+d.Desired, "@home.example") && !strings.Contains(d.Current+d.Desired, "***@") {
			t.Fatalf("unmasked values in %+v", d)
		}
	}

	out, _ = reconcileJSON(t, apply...)
	if a := out.Applied; a == nil || a.Published != 600 || a.Duplicates != 0 || len(a.Failed) != 0 {
		t.Fatalf("applied %+v", out.Applied)
	}
	waitResults(t, s, 600)
	if out, _ = reconcileJSON(t, graph...); len(out.Drift) != 0 || out.Checked != 10_000 {
		t.Fatalf("after --apply: %d findings, first %+v", len(out.Drift), out.Drift[:min(3, len(out.Drift))])
	}

	// The same drift again on the same day: the corrections have the ids
	// of the first run, the stream drops them, the worker does nothing.
	for _, u := range drifted {
		if err := emu.PutUser(u); err != nil {
			t.Fatal(err)
		}
	}
	out, _ = reconcileJSON(t, apply...)
	if a := out.Applied; a == nil || a.Published != 0 || a.Duplicates != 600 {
		t.Fatalf("second --apply the same day: %+v", out.Applied)
	}
	time.Sleep(time.Second)
	if out, _ = reconcileJSON(t, graph...); !slices.Equal(findings(out), want) {
		t.Fatalf("the duplicate corrections changed Graph: %d findings", len(out.Drift))
	}
}

// TestReconcileReport: the readable table, bad rows by line, and no full
// phone number or address on the screen.
func TestReconcileReport(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	desired, want, _ := reconTenant(t, emu, 60, 1)
	b, _ := os.ReadFile(desired)
	lines := strings.Split(string(b), "\n")
	lines[3] = "p00002@contoso.example,gone,,"
	desired = writeFile(t, "desired.csv", strings.Join(lines, "\n"))
	code, stdout, stderr := runCLI(t, "reconcile", "--desired", desired, "--graph-url", emu.GraphURL, "--graph-token", emu.Token, "--rate", "1000")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, part := range []string{"60 rows, 59 checked against Graph, 1 bad", "bad rows (skipped):\n  line 4: status must be active or left"} {
		if !strings.Contains(stdout, part) {
			t.Errorf("no %q in\n%s", part, stdout)
		}
	}
	for _, parts := range [][]string{{"LINE", "USER", "KIND", "FIELD", "CURRENT", "DESIRED", "CORRECTION"},
		{"2 ", "p00000@contoso.example", "leaver_account_enabled", "enabled", "disabled", "employee.left"},
		{"p00007@contoso.example", "phone_different", "mobile", "+1 ******", "phone.set"},
		{"p00008@contoso.example", "email_missing", "email", "none", "p***@home.example", "email.set"}} {
		if _, ok := lineWith(stdout, parts...); !ok {
			t.Errorf("no line with %q in\n%s", parts, stdout)
		}
	}
	if n := strings.Count(stdout, "\n"); n < len(want)+3 {
		t.Errorf("%d lines for %d findings:\n%s", n, len(want), stdout)
	}
	if strings.Contains(stdout, "@home.example") && !strings.Contains(stdout, "***@home.example") || strings.Contains(stdout, "+1 425") {
		t.Errorf("unmasked values:\n%s", stdout)
	}
}

func TestReconcileFlags(t *testing.T) {
	desired := writeFile(t, "d.csv", "user\n")
	seed := signingSeedFile(t)
	policy := writeFile(t, "policy.yaml", testPolicy)
	w := func(extra ...string) []string {
		return append([]string{"worker", "--policy", policy, "--graph-token", "t", "--metrics-listen", "127.0.0.1:0"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no desired", []string{"reconcile", "--graph-token", "t"}, "--desired is required"},
		{"format", []string{"reconcile", "--desired", desired, "--format", "xml"}, "--format must be csv or jsonl"},
		{"rate zero", []string{"reconcile", "--desired", desired, "--rate", "0"}, "--rate"},
		{"rate garbage", []string{"reconcile", "--desired", desired, "--rate", "fast"}, "--rate"},
		{"concurrency", []string{"reconcile", "--desired", desired, "--concurrency", "0"}, "--concurrency"},
		{"apply without seed", []string{"reconcile", "--desired", desired, "--apply"}, "--apply needs --sign-seed"},
		{"seed without apply", []string{"reconcile", "--desired", desired, "--sign-seed", seed}, "--sign-seed is only used with --apply"},
		{"curve seed", []string{"reconcile", "--desired", desired, "--graph-token", "t", "--apply", "--sign-seed", curveSeedFile(t)}, "--sign-seed"},
		{"region", []string{"reconcile", "--desired", desired, "--default-region", "usa"}, "--default-region"},
		{"graph url", []string{"reconcile", "--desired", desired, "--graph-url", "ftp://x"}, "--graph-url"},
		{"nats url with apply", []string{"reconcile", "--desired", desired, "--apply", "--sign-seed", seed, "--nats-url", "http://x"}, "--nats-url"},
		{"unreadable desired", []string{"reconcile", "--desired", desired + ".none", "--graph-token", "t", "--graph-url", "http://127.0.0.1:1/v1.0"}, "--desired"},
		{"no user column", []string{"reconcile", "--desired", writeFile(t, "x.csv", "status\nleft\n"), "--graph-token", "t", "--graph-url", "http://127.0.0.1:1/v1.0"}, "no user column"},
		{"worker every without desired", w("--reconcile-every", "24h"), "--reconcile-every needs --reconcile-desired"},
		{"worker every without seed", w("--reconcile-every", "24h", "--reconcile-desired", desired), "--reconcile-every needs --reconcile-sign-seed"},
		{"worker desired without every", w("--reconcile-desired", desired), "--reconcile-desired needs --reconcile-every"},
		{"worker every too short", w("--reconcile-every", "1ms", "--reconcile-desired", desired, "--reconcile-sign-seed", seed), "--reconcile-every must be"},
		{"worker unreadable desired", w("--reconcile-every", "1h", "--reconcile-desired", desired+".none", "--reconcile-sign-seed", seed), "--reconcile-desired"},
		{"worker bad seed", w("--reconcile-every", "1h", "--reconcile-desired", desired, "--reconcile-sign-seed", desired), "--reconcile-sign-seed"},
		{"worker rate", w("--reconcile-every", "1h", "--reconcile-desired", desired, "--reconcile-sign-seed", seed, "--reconcile-rate", "-1"), "--reconcile-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, want 2 and %q\nstdout: %s\nstderr: %s", code, tt.want, stdout, stderr)
			}
		})
	}
	t.Run("env twin", func(t *testing.T) {
		t.Setenv("AUTHFLOW_RATE", "-3")
		code, _, stderr := runCLI(t, "reconcile", "--desired", desired)
		if code != 2 || !strings.Contains(stderr, "--rate must be more than 0") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
}

// TestReconcileSchedule: two workers with --reconcile-every; one of them
// sweeps (the lease), and its corrections are applied.
func TestReconcileSchedule(t *testing.T) {
	s := startTestNATS(t, "")
	emu := graphclienttest.NewServer(t)
	desired, want, _ := reconTenant(t, emu, 200, 2)
	seed := signingSeedFile(t)
	policy := reconPolicy(t, seed)
	args := func(instance string) []string {
		return []string{"--policy", policy, "--nats-url", s.ClientURL(), "--graph-url", emu.GraphURL, "--graph-token", emu.Token,
			"--stream-replicas", "1", "--partitions", "2", "--metrics-listen", "127.0.0.1:0", "--instance", instance,
			"--reconcile-every", "1h", "--reconcile-desired", desired, "--reconcile-sign-seed", seed, "--reconcile-rate", "1000"}
	}
	logs := []*syncBuffer{startInProcessWorker(t, args("w1")...), startInProcessWorker(t, args("w2")...)}
	sweeps := func() (starts, dones int) {
		for _, l := range logs {
			starts += strings.Count(l.String(), `"msg":"reconciliation sweep starting"`)
			dones += strings.Count(l.String(), `"msg":"reconciliation sweep done"`)
		}
		return
	}
	waitFor(t, "a sweep", func() bool { _, d := sweeps(); return d > 0 })
	waitResults(t, s, len(want)) // one correction per finding here
	time.Sleep(500 * time.Millisecond)
	if starts, dones := sweeps(); starts != 1 || dones != 1 {
		t.Fatalf("%d sweeps started, %d done; want one per period across replicas", starts, dones)
	}
	all := logs[0].String() + logs[1].String()
	if !strings.Contains(all, fmt.Sprintf(`"drift":%d`, len(want))) || !strings.Contains(all, fmt.Sprintf(`"published":%d`, len(want))) {
		t.Errorf("sweep log: %s", tail(all, 3000))
	}
	out, _ := reconcileJSON(t, "--desired", desired, "--graph-url", emu.GraphURL, "--graph-token", emu.Token, "--rate", "1000")
	if len(out.Drift) != 0 {
		t.Fatalf("after the scheduled sweep: %v", findings(out))
	}
}
