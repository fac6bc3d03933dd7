package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// TestApprovalFlags checks that bad input to approve, deny and approvals
// fails before anything is sent, with exit status 2 naming the flag.
func TestApprovalFlags(t *testing.T) {
	key := events.EventKey("helpdesk/demo", "r-1")
	seed := signingSeedFile(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"approve without key", nil, []string{"approve", "--seed", seed}, "the event KEY is required"},
		{"approve bad key", nil, []string{"approve", key[:40], "--seed", seed}, "KEY \"" + key[:40] + "\" is not an event key"},
		{"approve redrive id", nil, []string{"approve", key + ":redrive-1", "--seed", seed}, "is not an event key"},
		{"approve without seed", nil, []string{"approve", key}, "--seed is required"},
		{"approve missing seed", nil, []string{"approve", key, "--seed", "/nonexistent/approver.seed"}, "--seed"},
		{"approve curve seed", nil, []string{"approve", key, "--seed", curveSeedFile(t)}, "--seed"},
		{"approve seed of an account", nil, []string{"approve", key, "--seed", accountSeedFile(t)}, "--seed: not the seed of a user key"},
		{"approve since", nil, []string{"approve", key, "--seed", seed, "--since", "0s"}, "--since must be positive"},
		{"approve timeout", nil, []string{"approve", key, "--seed", seed, "--timeout", "-1s"}, "--timeout must be positive"},
		{"approve bad source", nil, []string{"approve", key, "--seed", seed, "--source", "a b"}, "--source"},
		{"approve nats url", nil, []string{"approve", key, "--seed", seed, "--nats-url", "http://127.0.0.1:1"}, "--nats-url"},
		{"approve takes no reason", nil, []string{"approve", key, "--seed", seed, "--reason", "x"}, "unknown flag --reason"},
		{"deny without reason", nil, []string{"deny", key, "--seed", seed}, "--reason is required"},
		{"deny blank reason", nil, []string{"deny", key, "--seed", seed, "--reason", "   "}, "--reason is required"},
		{"deny reason with a newline", nil, []string{"deny", key, "--seed", seed, "--reason", "no\nticket"}, "--reason: must be printable text"},
		{"deny reason too long", nil, []string{"deny", key, "--seed", seed, "--reason", strings.Repeat("x", 129)}, "--reason: longer than 128 characters"},
		{"deny reason from the environment", map[string]string{"AUTHFLOW_REASON": "a\u202eb"}, []string{"deny", key, "--seed", seed}, "--reason: must be printable text"},
		{"seed from the environment", map[string]string{"AUTHFLOW_SEED": curveSeedFile(t)}, []string{"approve", key}, "--seed: "},
		{"approvals without list", nil, []string{"approvals"}, "authflow approvals list"},
		{"approvals unknown", nil, []string{"approvals", "show"}, "unknown approvals command \"show\": want list"},
		{"approvals since", nil, []string{"approvals", "list", "--since", "-1h"}, "--since must be positive"},
		{"approvals since from the environment", map[string]string{"AUTHFLOW_SINCE": "soon"}, []string{"approvals", "list"}, "AUTHFLOW_SINCE (--since)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q, stdout %q; want 2 and %q", code, stderr, stdout, tt.want)
			}
		})
	}
}

func accountSeedFile(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	return writeFile(t, "account.seed", string(seed)+"\n")
}

// pendingFor publishes the pending result of the event source/id, signed
// (as the request was) by requester, as a worker that parked it would.
func pendingFor(t *testing.T, js jetstream.JetStream, source, id, subject, requester string) string {
	t.Helper()
	now := time.Now().UTC()
	key := events.EventKey(source, id)
	res := events.NewResult(events.PendingResultID(source, id), subject, events.ResultData{
		Event:      events.EventRef{Source: source, ID: id, Type: events.TypeMFAReset},
		User:       events.UserInfo{Ref: subject, ObjectID: demoAdminID, UPN: subject},
		Status:     events.StatusPendingApproval,
		Provenance: &events.Provenance{Source: source, Signer: requester, TicketID: "INC-2001", Method: "callback", VerifiedBy: "helpdesk agent"},
		Approval:   &events.ResultApproval{Rule: events.DevApprovalRule, EventKey: key, ExpiresAt: now.Add(time.Hour)},
		ReceivedAt: now, FinishedAt: now,
	}, now)
	publishResult(t, js, subject, res)
	return key
}

func publishResult(t *testing.T, js jetstream.JetStream, subject string, res *events.Result) {
	t.Helper()
	b, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := userKey(subject)
	if _, err := js.Publish(context.Background(), worker.ResultSubject(k), b, jetstream.WithMsgID("result:"+res.ID)); err != nil {
		t.Fatal(err)
	}
}

// TestApproveDenyAndList runs approvals list, approve and deny against
// pending results as a worker publishes them, and checks what they send:
// a decision the development policy authenticates and CheckApproval
// accepts, on the approval's own key. Refusals (no such event, an event
// already finished, self-approval) send nothing.
func TestApproveDenyAndList(t *testing.T) {
	s := startTestNATS(t, "")
	nc, js := connectJS(t, s)
	url := s.ClientURL()
	ensureTopology(t, js)

	approver, _ := nkeys.CreateUser()
	approverPub, _ := approver.PublicKey()
	approverSeed, _ := approver.Seed()
	seedFile := writeFile(t, "approver.seed", string(approverSeed)+"\n")
	requester, _ := nkeys.CreateUser()
	requesterPub, _ := requester.PublicKey()

	waiting := pendingFor(t, js, "helpdesk/demo", "r-1", demoAdminUPN, requesterPub)
	done := pendingFor(t, js, "helpdesk/demo", "r-2", demoAdminUPN, requesterPub)
	final := events.NewResult(done, demoAdminUPN, events.ResultData{
		Event:  events.EventRef{Source: "helpdesk/demo", ID: "r-2", Type: events.TypeMFAReset},
		User:   events.UserInfo{Ref: demoAdminUPN},
		Status: events.StatusRejected, Error: events.InfoOf(events.ApprovalTimeoutError(events.DevApprovalRule, time.Hour)),
		Approval: &events.ResultApproval{Rule: events.DevApprovalRule, EventKey: done, ExpiresAt: time.Now().Add(-time.Minute),
			Decision: events.DecisionTimeout},
	}, time.Now())
	publishResult(t, js, demoAdminUPN, final)
	own := pendingFor(t, js, "helpdesk/demo", "r-3", "adele.vance@contoso.example", approverPub)
	// Noise: an ordinary result.
	if _, err := js.Publish(context.Background(), worker.ResultSubject("other"), testResult(t, "hr/workday", "evt-1", "alex.wilber@contoso.example", events.StatusSucceeded)); err != nil {
		t.Fatal(err)
	}

	t.Run("list", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "approvals", "list", "--nats-url", url)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if _, ok := lineWith(stdout, waiting, "mfa.reset.v1", demoAdminUPN, "helpdesk/demo", "helpdesk agent (INC-2001)", events.DevApprovalRule, "in 1h0m"); !ok {
			t.Errorf("the waiting event is not listed:\n%s", stdout)
		}
		if _, ok := lineWith(stdout, own, "adele.vance@contoso.example"); !ok || strings.Contains(stdout, done) || strings.Count(stdout, "\n") != 3 {
			t.Errorf("want a header and two events, not the finished one:\n%s", stdout)
		}
		code, stdout, _ = runCLI(t, "approvals", "list", "--nats-url", url, "--json")
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if code != 0 || len(lines) != 2 {
			t.Fatalf("--json: exit %d\n%s", code, stdout)
		}
		for _, l := range lines {
			if r, err := events.DecodeResult([]byte(l)); err != nil || r.Data.Status != events.StatusPendingApproval {
				t.Errorf("--json line %q: %v", l, err)
			}
		}
		if code, stdout, _ := runCLI(t, "approvals", "list", "--nats-url", url, "--since", "1ns"); code != 0 || !strings.Contains(stdout, "no event waits for approval") {
			t.Errorf("--since 1ns: exit %d\n%s", code, stdout)
		}
	})

	// decisions reads what approve and deny published for key.
	decisions := func(t *testing.T, key string) []jetstream.Msg {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, worker.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{worker.EventsSubjectPrefix + "*." + approvalKey(key)}})
		if err != nil {
			t.Fatal(err)
		}
		var out []jetstream.Msg
		for {
			m, err := c.Next(jetstream.FetchMaxWait(time.Second))
			if err != nil {
				return out
			}
			out = append(out, m)
		}
	}
	policy, err := events.DevPolicyWith(approverPub)
	if err != nil {
		t.Fatal(err)
	}
	parked := events.Parked{State: events.ParkWaiting, Rule: events.DevApprovalRule, Signer: requesterPub,
		User: events.UserInfo{Ref: demoAdminUPN, ObjectID: demoAdminID, UPN: demoAdminUPN}, ExpiresAt: time.Now().Add(time.Hour)}
	check := func(t *testing.T, m jetstream.Msg, typ string) *events.Event {
		t.Helper()
		ev, err := events.Decoder{}.Decode(m.Data())
		if err != nil || ev.Type != typ || ev.Subject != demoAdminUPN || ev.Source != defaultSource {
			t.Fatalf("decision %s: %+v, %v", m.Data(), ev, err)
		}
		if err := policy.CheckAuth(ev, m.Data(), m.Headers()); err != nil {
			t.Errorf("the development policy refuses the decision: %v", err)
		}
		if err := policy.CheckApproval(ev, m.Headers().Get(events.HeaderSigner), parked, time.Now()); err != nil {
			t.Errorf("CheckApproval: %v", err)
		}
		if d, _ := events.DecisionOf(ev); d.EventKey != waiting {
			t.Errorf("the decision names %s, want %s", d.EventKey, waiting)
		}
		return ev
	}

	t.Run("approve", func(t *testing.T) {
		// The pending result's whole id is accepted too.
		code, stdout, stderr := runCLI(t, "approve", waiting+":pending_approval", "--seed", seedFile, "--nats-url", url)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if stdout != "" || !strings.Contains(stderr, "approving "+events.TypeMFAReset+" for "+demoAdminUPN+" from helpdesk/demo (ticket INC-2001, verified by helpdesk agent, signed by "+requesterPub+")") ||
			!strings.Contains(stderr, "signed by "+approverPub+" to "+worker.EventSubject(approvalKey(waiting))) {
			t.Errorf("stdout %q, stderr:\n%s", stdout, stderr)
		}
		ms := decisions(t, waiting)
		if len(ms) != 1 {
			t.Fatalf("%d decisions published", len(ms))
		}
		check(t, ms[0], events.TypeApprovalGrant)
	})
	t.Run("deny", func(t *testing.T) {
		code, _, stderr := runCLI(t, "deny", strings.ToUpper(waiting), "--seed", seedFile, "--nats-url", url, "--reason", "no change ticket for an administrator")
		if code != 0 || !strings.Contains(stderr, "denying ") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		ms := decisions(t, waiting)
		if len(ms) != 2 {
			t.Fatalf("%d decisions published", len(ms))
		}
		ev := check(t, ms[1], events.TypeApprovalDeny)
		if d, _ := events.DecisionOf(ev); d.Grant || d.Reason != "no change ticket for an administrator" {
			t.Errorf("deny: %+v", d)
		}
	})
	t.Run("refusals send nothing", func(t *testing.T) {
		for _, tc := range []struct {
			key, want string
		}{
			{done, "no event waits for approval under key " + done},
			{events.EventKey("helpdesk/demo", "never"), "no event waits for approval"},
			{own, "self-approval: your key " + approverPub + " signed this request"},
		} {
			code, _, stderr := runCLI(t, "approve", tc.key, "--seed", seedFile, "--nats-url", url)
			if code != exitFailed || !strings.Contains(stderr, tc.want) {
				t.Errorf("approve %s: exit %d, stderr %q; want %d and %q", tc.key, code, stderr, exitFailed, tc.want)
			}
			if n := len(decisions(t, tc.key)); n != 0 {
				t.Errorf("approve %s published %d decisions", tc.key, n)
			}
		}
	})
	t.Run("wait for the decision's result", func(t *testing.T) {
		// A stand-in for the worker: it answers each decision with the
		// result the header asks for.
		answer := func(status events.Status) func(*nats.Msg) {
			return func(m *nats.Msg) {
				ev, err := events.Decoder{}.Decode(m.Data)
				if err != nil {
					return
				}
				data := events.ResultData{Event: ev.Ref(), User: events.UserInfo{Ref: ev.Subject}, Status: status,
					Provenance: &events.Provenance{Source: ev.Source, Signer: m.Header.Get(events.HeaderSigner)}}
				if status != events.StatusSucceeded {
					data.Error = events.InfoOf(policy.CheckApproval(ev, approverPub, events.Parked{}, time.Now()))
				}
				b, _ := events.NewResult(ev.Key(), ev.Subject, data, time.Now()).Marshal()
				_ = nc.Publish(worker.ResultSubject(approvalKey(waiting)), b)
			}
		}
		sub, err := nc.Subscribe(worker.EventSubject(approvalKey(waiting)), answer(events.StatusSucceeded))
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(t, "approve", waiting, "--seed", seedFile, "--nats-url", url, "--wait")
		if code != 0 || !strings.Contains(stdout, "✔ succeeded  "+events.TypeApprovalGrant+"  "+demoAdminUPN) {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		sub.Unsubscribe()
		if sub, err = nc.Subscribe(worker.EventSubject(approvalKey(waiting)), answer(events.StatusRejected)); err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		code, stdout, stderr = runCLI(t, "deny", waiting, "--seed", seedFile, "--nats-url", url, "--reason", "no", "--wait", "--json")
		var res events.Result
		if code != exitFailed || json.Unmarshal([]byte(stdout), &res) != nil || res.Data.Error == nil || res.Data.Error.Code != events.CodeApprovalInvalid {
			t.Errorf("a refused decision: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
}

// TestSendWaitsPastPending: send --wait notes an interim pending result
// and waits for the final one.
func TestSendWaitsPastPending(t *testing.T) {
	s := startTestNATS(t, "")
	nc, js := connectJS(t, s)
	ensureTopology(t, js)
	k, _ := userKey(demoAdminUPN)
	approver, _ := nkeys.CreateUser()
	approverPub, _ := approver.PublicKey()
	// A stand-in for the worker: it parks the event, then runs it.
	sub, err := nc.Subscribe(worker.EventSubject(k), func(m *nats.Msg) {
		ev, err := events.Decoder{}.Decode(m.Data)
		if err != nil {
			return
		}
		now := time.Now()
		approval := &events.ResultApproval{Rule: events.DevApprovalRule, EventKey: ev.Key(), ExpiresAt: now.Add(time.Hour)}
		pending := events.NewResult(events.PendingResultID(ev.Source, ev.ID), ev.Subject, events.ResultData{Event: ev.Ref(),
			User: events.UserInfo{Ref: ev.Subject}, Status: events.StatusPendingApproval, Approval: approval}, now)
		b, _ := pending.Marshal()
		_ = nc.Publish(worker.ResultSubject(k), b)
		granted := *approval
		granted.Decision, granted.Approver = events.DecisionGranted, approverPub
		final := events.NewResult(ev.Key(), ev.Subject, events.ResultData{Event: ev.Ref(), User: events.UserInfo{Ref: ev.Subject},
			Status: events.StatusSucceeded, Approval: &granted,
			Operations: []events.OpResult{{Op: events.OpRevokeSessions, Outcome: events.OutcomeUpdated}}}, now)
		b, _ = final.Marshal()
		_ = nc.Publish(worker.ResultSubject(k), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	code, stdout, stderr := runCLI(t, "send", events.TypeMFAReset, "--nats-url", s.ClientURL(), "--subject", demoAdminUPN, "--wait",
		"--data", `{}`, "--id", "r-9")
	key := events.EventKey(defaultSource, "r-9")
	if code != 0 || !strings.Contains(stderr, "waiting for approval: authflow approve "+key+" --seed FILE (rule "+events.DevApprovalRule+", times out in ") ||
		!strings.Contains(stdout, "✔ succeeded  "+events.TypeMFAReset) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if strings.Count(stdout, "\n") != 2 {
		t.Errorf("the pending result is printed as a result:\n%s", stdout)
	}
}
