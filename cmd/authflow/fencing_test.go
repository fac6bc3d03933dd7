package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// TestPausedWorkerIsFenced freezes a worker process (SIGSTOP) while it
// works on a TAP event, lets a second worker take the event over once the
// first one's lease has lapsed, then resumes the first (SIGCONT): the
// resumed worker must write nothing more. Exactly one result, and the one
// TAP in Graph is the one whose sealed value was delivered.
func TestPausedWorkerIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes for several seconds")
	}
	// This test binary stands in for the authflow binary (TestMain).
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}

	ns := startTestNATS(t, "")
	nc, js := connectJS(t, ns)
	emu := graphclienttest.NewServer(t)
	const userID, upn = "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0f01", "paused@contoso.example"
	if err := emu.PutUser(graphclienttest.User{ID: userID, UserPrincipalName: upn}); err != nil {
		t.Fatal(err)
	}
	if err := emu.SetFaults(graphclienttest.Faults{LatencyMs: 400}); err != nil {
		t.Fatal(err)
	}
	policy := writeFile(t, "policy.yaml", "version: 1\ntap:\n  allowMultiUse: true\nsources:\n  \"*\":\n    types: [\"*\"]\n")

	start := func(name string) (*exec.Cmd, *syncBuffer) {
		return startWorkerProcess(t, bin, "--nats-url", ns.ClientURL(), "--graph-url", emu.GraphURL, "--graph-token", emu.Token,
			"--policy", policy, "--partitions", "1", "--ack-wait", "2s", "--instance", name, "--log-level", "debug")
	}
	a, aLog := start("wA")

	rk, _ := nkeys.CreateCurveKeys()
	sealTo, _ := rk.PublicKey()
	raw, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": "paused-1", "source": "helpdesk/test", "type": events.TypeTAPIssue, "subject": upn,
		"time": time.Now().UTC().Format(time.RFC3339), "data": map[string]any{"lifetimeInMinutes": 60, "sealTo": sealTo},
	})
	m := nats.NewMsg(worker.EventSubject("paused"))
	m.Data = raw
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	// Freeze A once it has begun talking to Graph about the user.
	waitFor(t, "wA at work", func() bool { return len(emu.Requests()) > 0 })
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	_, bLog := start("wB")

	stream, err := js.Stream(ctx, worker.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a result from wB", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs >= 1
	})
	// Keep A frozen well past its lease, then let it run on.
	time.Sleep(time.Until(paused.Add(6 * time.Second)))
	writesBefore := countWrites(emu.Requests())
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if after := countWrites(emu.Requests()); after != writesBefore {
		t.Errorf("the resumed worker wrote to Graph: %d writes before SIGCONT, %d after\nwA:\n%s", writesBefore, after, tail(aLog.String(), 3000))
	}
	if !strings.Contains(bLog.String(), `"outcome":"succeeded"`) {
		t.Errorf("wB did not finish the event:\n%s", tail(bLog.String(), 3000))
	}
	t.Logf("wA after SIGCONT: %q", lastLines(aLog.String(), "owns the event", "lease"))
	info, err := stream.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("%d results, want 1 (%v)", info.State.Msgs, err)
	}
	msg, err := stream.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	res, err := events.DecodeResult(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if res.Data.Status != events.StatusSucceeded {
		t.Fatalf("result %s %+v\nwB:\n%s", res.Data.Status, res.Data.Error, tail(bLog.String(), 3000))
	}
	var delivered string
	for _, o := range res.Data.Operations {
		if o.Secret != nil {
			delivered = o.MethodID
		}
	}
	u, _ := emu.User(userID)
	var taps []string
	for _, raw := range u.Methods {
		var v struct {
			Type string `json:"@odata.type"`
			ID   string `json:"id"`
		}
		_ = json.Unmarshal(raw, &v)
		if strings.HasSuffix(v.Type, "temporaryAccessPassAuthenticationMethod") {
			taps = append(taps, v.ID)
		}
	}
	if len(taps) != 1 || taps[0] != delivered {
		t.Errorf("TAPs in Graph %v, delivered %s", taps, delivered)
	}
	_ = nc
	_ = fmt.Sprint
}

func countWrites(rs []graphclienttest.Request) int {
	n := 0
	for _, r := range rs {
		if r.Method != "GET" {
			n++
		}
	}
	return n
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// lastLines returns the lines of out that contain any of parts.
func lastLines(out string, parts ...string) []string {
	var got []string
	for _, line := range strings.Split(out, "\n") {
		for _, p := range parts {
			if strings.Contains(line, p) {
				got = append(got, line)
				break
			}
		}
	}
	return got
}

// startWorkerProcess runs `authflow worker` (this test binary standing in
// for it, see TestMain) with args plus --stream-replicas 1 and a free
// metrics port, waits for its "worker running" line, and kills it when
// the test ends (after a SIGCONT, should the test have stopped it).
func startWorkerProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	var out syncBuffer
	cmd := exec.Command(bin, append([]string{"worker", "--stream-replicas", "1", "--metrics-listen", "127.0.0.1:0"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), benchChildEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "worker running") {
		if time.Now().After(deadline) {
			t.Fatalf("worker %v not running:\n%s", args, tail(out.String(), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, &out
}
