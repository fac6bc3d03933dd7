package worker_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

func uid(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// TestEveryEventType publishes one event of every type (and a dry run and a
// missing user) and checks each result and the emulator's state afterwards.
func TestEveryEventType(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	tap := map[string]any{"lifetimeInMinutes": 60, "sealTo": e.sealTo}

	type check func(t *testing.T, u graphclienttest.User, r *events.Result)
	cases := []struct {
		name    string
		seed    []string
		typ     string
		data    map[string]any
		status  events.Status
		check   check
		subject string // default: the user's UPN
	}{
		{
			name: "joined", typ: events.TypeEmployeeJoined, status: events.StatusSucceeded,
			data: map[string]any{"mobilePhone": "+14255550177", "alternateMobilePhone": "+1 425-555-0101",
				"smsSignIn": true, "email": "new.hire@example.org", "tap": tap},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				want := map[string]string{"mobile": "+1 4255550177", "alternateMobile": "+1 4255550101"}
				if got := phones(u); !mapsEqual(got, want) {
					t.Errorf("phones = %v, want %v", got, want)
				}
				if !slices.Contains(kinds(u), "email") || !slices.Contains(kinds(u), "temporaryAccessPass") {
					t.Errorf("methods = %v, want email and TAP", kinds(u))
				}
				e.openSecret(t, r, events.SecretTAP)
			},
		},
		{
			name: "moved", typ: events.TypeEmployeeMoved, status: events.StatusSucceeded, seed: []string{mobile, email},
			data: map[string]any{"mobilePhone": "+1 206 555 0100", "email": nil, "revokeSessions": true},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if got := phones(u)["mobile"]; got != "+1 2065550100" {
					t.Errorf("mobile = %q", got)
				}
				if slices.Contains(kinds(u), "email") {
					t.Errorf("email not removed: %v", kinds(u))
				}
				if u.SessionsRevoked != 1 {
					t.Errorf("sessions revoked %d times", u.SessionsRevoked)
				}
			},
		},
		{
			name: "left", typ: events.TypeEmployeeLeft, status: events.StatusSucceeded, seed: []string{mobile, authApp, fido, passwd},
			data: map[string]any{},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if *u.AccountEnabled {
					t.Error("account still enabled")
				}
				if u.SessionsRevoked != 1 {
					t.Errorf("sessions revoked %d times", u.SessionsRevoked)
				}
				if got := kinds(u); !slices.Equal(got, []string{"password"}) {
					t.Errorf("methods left = %v, want only the password", got)
				}
			},
		},
		{
			// The work tablet registered first, so it is the default method.
			name: "device lost", typ: events.TypeDeviceLost, status: events.StatusSucceeded, seed: []string{authApp2, authApp, whfb, fido},
			data: map[string]any{"device": map[string]any{"displayName": "lost phone"}, "recoveryTap": tap},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				got := kinds(u)
				slices.Sort(got)
				want := []string{"fido2", "microsoftAuthenticator", "password", "temporaryAccessPass"}
				if !slices.Equal(got, want) {
					t.Errorf("methods = %v, want %v", got, want)
				}
				if strings.Contains(string(mustJSON(t, u.Methods)), "Lost Phone") {
					t.Error("a method of the lost device survived")
				}
				e.openSecret(t, r, events.SecretTAP)
			},
		},
		{
			name: "mfa reset", typ: events.TypeMFAReset, status: events.StatusSucceeded,
			seed: []string{mobile, altMob, authApp, oath, fido, email, passwd},
			data: map[string]any{},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if got := kinds(u); !slices.Equal(got, []string{"password"}) {
					t.Errorf("methods left = %v, want only the password", got)
				}
			},
		},
		{
			name: "inventory", typ: events.TypeMethodsInventory, status: events.StatusSucceeded, seed: []string{mobile, fido},
			data: map[string]any{},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if len(r.Data.Operations) != 1 || len(r.Data.Operations[0].Methods) < 2 {
					t.Fatalf("inventory = %+v", r.Data.Operations)
				}
				if b := string(mustJSON(t, r)); strings.Contains(b, "4255550100") {
					t.Errorf("inventory shows a full phone number: %s", b)
				}
				for _, q := range e.graph.Requests() {
					if q.UserID == u.ID && q.Method != "GET" {
						t.Errorf("inventory wrote: %s %s", q.Method, q.Path)
					}
				}
			},
		},
		{
			name: "phone set", typ: events.TypePhoneSet, status: events.StatusSucceeded, seed: []string{mobile},
			data: map[string]any{"phoneType": "office", "phoneNumber": "+44 20 7946 0958"},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if got := phones(u)["office"]; got != "+44 2079460958" {
					t.Errorf("office = %q", got)
				}
			},
		},
		{
			name: "phone remove", typ: events.TypePhoneRemove, status: events.StatusSucceeded, seed: []string{mobile, altMob},
			data: map[string]any{"phoneType": "alternateMobile"},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if got := phones(u); len(got) != 1 || got["mobile"] == "" {
					t.Errorf("phones = %v, want only the mobile", got)
				}
			},
		},
		{
			// Its own number: SMS sign-in numbers are unique across users.
			name: "sms enable", typ: events.TypeSMSSignInEnable, status: events.StatusSucceeded,
			seed: []string{`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550155","phoneType":"mobile"}`},
			data: map[string]any{},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if !strings.Contains(phoneJSON(u), `"ready"`) {
					t.Errorf("sms sign-in not ready: %s", phoneJSON(u))
				}
			},
		},
		{
			name: "sms disable", typ: events.TypeSMSSignInDisable, status: events.StatusSucceeded,
			seed: []string{`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile","smsSignInState":"ready"}`},
			data: map[string]any{},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if strings.Contains(phoneJSON(u), `"ready"`) {
					t.Errorf("sms sign-in still ready: %s", phoneJSON(u))
				}
			},
		},
		{
			name: "email set", typ: events.TypeEmailSet, status: events.StatusSucceeded, seed: []string{email},
			data: map[string]any{"emailAddress": "fresh@example.org"},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if !strings.Contains(string(mustJSON(t, u.Methods)), "fresh@example.org") {
					t.Errorf("email not updated: %s", mustJSON(t, u.Methods))
				}
				if r.Data.Operations[0].Outcome != events.OutcomeUpdated {
					t.Errorf("outcome = %s, want updated", r.Data.Operations[0].Outcome)
				}
			},
		},
		{
			name: "email remove", typ: events.TypeEmailRemove, status: events.StatusSucceeded, seed: []string{email, mobile},
			data: map[string]any{},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if slices.Contains(kinds(u), "email") {
					t.Errorf("email not removed")
				}
			},
		},
		{
			name: "tap issue", typ: events.TypeTAPIssue, status: events.StatusSucceeded, seed: []string{mobile},
			data: map[string]any{"lifetimeInMinutes": 120, "usableOnce": true, "sealTo": e.sealTo},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if n := countKind(u, "temporaryAccessPass"); n != 1 {
					t.Errorf("%d TAPs", n)
				}
				e.openSecret(t, r, events.SecretTAP)
			},
		},
		{
			name: "tap remove", typ: events.TypeTAPRemove, status: events.StatusSucceeded,
			seed: []string{mobile, `{"@odata.type":"#microsoft.graph.temporaryAccessPassAuthenticationMethod","lifetimeInMinutes":60}`},
			data: map[string]any{},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if n := countKind(u, "temporaryAccessPass"); n != 0 {
					t.Errorf("%d TAPs left", n)
				}
			},
		},
		{
			name: "method remove", typ: events.TypeMethodRemove, status: events.StatusSucceeded, seed: []string{mobile, fido},
			data: map[string]any{"methodKind": "fido2", "methodId": "-2_GRUg2-HYz6_1YG4YRAQ2"},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if slices.Contains(kinds(u), "fido2") {
					t.Errorf("fido2 not removed")
				}
			},
		},
		{
			name: "password reset", typ: events.TypePasswordReset, status: events.StatusSucceeded, seed: []string{passwd},
			data: map[string]any{"sealTo": e.sealTo},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if u.PasswordChanges != 1 || !u.ForceChangePasswordNextSignIn {
					t.Errorf("password changes %d, force change %t", u.PasswordChanges, u.ForceChangePasswordNextSignIn)
				}
				e.openSecret(t, r, events.SecretPassword)
			},
		},
		{
			name: "dry run", typ: events.TypeEmployeeLeft, status: events.StatusSucceeded, seed: []string{mobile, fido},
			data: map[string]any{"dryRun": true},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if !r.Data.DryRun || !*u.AccountEnabled || len(u.Methods) != 3 || u.SessionsRevoked != 0 {
					t.Errorf("dry run wrote: dryRun=%t enabled=%t methods=%v revoked=%d", r.Data.DryRun, *u.AccountEnabled, kinds(u), u.SessionsRevoked)
				}
				var deleted int
				for _, o := range r.Data.Operations {
					if o.Outcome == events.OutcomeDeleted {
						deleted++
					}
				}
				if deleted != 2 {
					t.Errorf("dry run reports %d deletions, want 2: %+v", deleted, r.Data.Operations)
				}
			},
		},
		{
			// Graph refuses to delete the default method while others
			// remain, and v1.0 cannot change the default: a clear failure.
			name: "device lost default", typ: events.TypeDeviceLost, status: events.StatusFailed, seed: []string{authApp, fido},
			data: map[string]any{"device": map[string]any{"displayName": "Lost Phone"}, "revokeSessions": false},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if r.Data.Error == nil || r.Data.Error.Code != events.CodeGraphPermanent || !strings.Contains(r.Data.Error.Message, "default method") {
					t.Errorf("error = %+v, want graph_permanent about the default method", r.Data.Error)
				}
				if len(e.dlqFor(r.Data.Event.ID)) != 1 {
					t.Errorf("a permanent Graph failure has no dead letter")
				}
			},
		},
		{
			name: "unknown user", typ: events.TypeTAPRemove, status: events.StatusFailed, subject: "nobody@contoso.example",
			data: map[string]any{},
			check: func(t *testing.T, u graphclienttest.User, r *events.Result) {
				if r.Data.Error == nil || r.Data.Error.Code != events.CodeUserNotFound {
					t.Errorf("error = %+v, want user_not_found", r.Data.Error)
				}
			},
		},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		id, upn := uid(100+i), fmt.Sprintf("user%d@contoso.example", i)
		if c.subject == "" {
			e.seed(id, upn, c.seed...)
			c.subject = upn
		}
		ids[i] = e.send(fmt.Sprintf("k%d", i), c.typ, c.subject, c.data)
	}
	res := e.results(len(cases), 30*time.Second)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := res[ids[i]]
			if r.Data.Status != c.status {
				t.Fatalf("status = %s, want %s; error %+v; ops %+v", r.Data.Status, c.status, r.Data.Error, r.Data.Operations)
			}
			var u graphclienttest.User
			if c.subject == "" {
				u = e.user(uid(100 + i))
			}
			c.check(t, u, r)
		})
	}
	e.noSecretsLeaked(res)
}

// openSecret opens the sealed secret of kind in r with the test's recipient
// key and remembers its value, so noSecretsLeaked can look for it.
func (e *env) openSecret(t *testing.T, r *events.Result, kind string) string {
	t.Helper()
	for _, o := range r.Data.Operations {
		if o.Secret != nil && o.Secret.Kind == kind {
			b, err := events.Open(o.Secret, e.recipient)
			if err != nil {
				t.Fatalf("open %s: %v", kind, err)
			}
			if len(b) < 8 {
				t.Fatalf("%s too short: %d characters", kind, len(b))
			}
			e.secrets = append(e.secrets, string(b))
			return string(b)
		}
	}
	t.Fatalf("no sealed %s in %+v", kind, r.Data.Operations)
	return ""
}

// noSecretsLeaked scans the logs, the results, the dead letters, the ledger
// and the emulator's admin view for every secret the test opened.
func (e *env) noSecretsLeaked(res map[string]*events.Result) {
	e.t.Helper()
	if len(e.secrets) == 0 {
		e.t.Fatal("no secret was opened: the leak check would prove nothing")
	}
	var hay strings.Builder
	hay.WriteString(e.logs.String())
	for _, r := range res {
		hay.Write(mustJSON(e.t, r))
	}
	for _, m := range e.dlq() {
		hay.Write(m.Data())
	}
	hay.WriteString(e.ledgerDump())
	for _, u := range e.graph.Users() {
		hay.Write(mustJSON(e.t, u))
	}
	for _, s := range e.secrets {
		if strings.Contains(hay.String(), s) {
			e.t.Errorf("a secret appears in plain text in logs, results, DLQ, ledger or emulator state")
		}
	}
}

func countKind(u graphclienttest.User, kind string) int {
	n := 0
	for _, k := range kinds(u) {
		if k == kind {
			n++
		}
	}
	return n
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func phoneJSON(u graphclienttest.User) string {
	for _, m := range u.Methods {
		if strings.Contains(string(m), "phoneAuthenticationMethod") {
			return string(m)
		}
	}
	return ""
}

// dlqFor returns the dead letters of the event with this id.
func (e *env) dlqFor(id string) []string {
	var out []string
	for _, m := range e.dlq() {
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m.Data(), &v) == nil && v.ID == id {
			out = append(out, m.Headers().Get("Authflow-Dlq-Reason"))
		}
	}
	return out
}
