package worker

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// TestDispatchTable: every operation kind events can plan has exactly one
// step, and the table has nothing else.
func TestDispatchTable(t *testing.T) {
	kinds := events.OpKinds()
	for _, k := range kinds {
		if steps[k] == nil {
			t.Errorf("operation %q has no step in the dispatch table", k)
		}
	}
	for k := range steps {
		if !slices.Contains(kinds, k) {
			t.Errorf("dispatch table entry %q is not an events operation kind", k)
		}
	}
}

// memCheckpoints keeps a run's checkpoints in memory (the ledger's part).
type memCheckpoints struct {
	intents map[int]intent
	results map[int][]events.OpResult
}

func (m *memCheckpoints) prior(i int) ([]events.OpResult, bool) { r, ok := m.results[i]; return r, ok }
func (m *memCheckpoints) priorIntent(i int) (intent, bool)      { r, ok := m.intents[i]; return r, ok }
func (m *memCheckpoints) intent(_ context.Context, i int, in intent, before map[int][]events.OpResult) error {
	m.intents[i] = in
	return nil
}
func (m *memCheckpoints) done(_ context.Context, i int, res []events.OpResult) error {
	m.results[i] = res
	return nil
}

const (
	xMobile  = `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`
	xOffice  = `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550102","phoneType":"office"}`
	xEmail   = `{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"old@example.org"}`
	xAuthApp = `{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"6803c096-c096-6803-96c0-036896c00368","displayName":"Lost Phone","deviceTag":"SoftwareTokenActivated","phoneAppVersion":"6.5.4"}`
	xFido    = `{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"-2_GRUg2-HYz6_1YG4YRAQ2","displayName":"YubiKey 5","model":"YubiKey 5 NFC"}`
	xPasswd  = `{"@odata.type":"#microsoft.graph.passwordAuthenticationMethod"}`
)

// TestExecutorSteps runs plans of events straight through the executor
// against the emulator over HTTP — no NATS, no ledger — and checks each
// step's outcome and the user's methods afterwards, including the second
// run of the same plan (desired state: nothing to do).
func TestExecutorSteps(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	g, err := graphclient.New(graphclient.Config{BaseURL: emu.GraphURL, Token: emu.Token})
	if err != nil {
		t.Fatal(err)
	}
	seal, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	recipient, _ := nkeys.CreateCurveKeys()
	sealTo, _ := recipient.PublicKey()
	x := &executor{graph: g, retry: graphclient.RetryPolicy{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: time.Second},
		sealKey: seal, pwMode: PasswordPatch, now: time.Now, metrics: NewMetrics(prometheus.NewRegistry())}
	dec := events.Decoder{DefaultRegion: "US"}

	cases := []struct {
		name     string
		seed     []string
		typ      string
		data     map[string]any
		outcomes []events.Outcome // of the first run, per result
		again    []events.Outcome // of a second run of the same plan; nil: not run
		kinds    []string         // the user's method kinds afterwards, sorted
	}{
		{
			name: "phone set creates", seed: []string{xPasswd}, typ: events.TypePhoneSet,
			data:     map[string]any{"phoneType": "mobile", "phoneNumber": "+1 425 555 0177"},
			outcomes: []events.Outcome{events.OutcomeCreated}, again: []events.Outcome{events.OutcomeUnchanged},
			kinds: []string{"password", "phone"},
		},
		{
			name: "phone set updates", seed: []string{xMobile, xPasswd}, typ: events.TypePhoneSet,
			data:     map[string]any{"phoneType": "mobile", "phoneNumber": "+1 425 555 0177"},
			outcomes: []events.Outcome{events.OutcomeUpdated}, again: []events.Outcome{events.OutcomeUnchanged},
			kinds: []string{"password", "phone"},
		},
		{
			name: "phone remove", seed: []string{xMobile, xOffice, xPasswd}, typ: events.TypePhoneRemove,
			data:     map[string]any{"phoneType": "office"},
			outcomes: []events.Outcome{events.OutcomeDeleted}, again: []events.Outcome{events.OutcomeUnchanged},
			kinds: []string{"password", "phone"},
		},
		{
			name: "email set", seed: []string{xEmail, xPasswd}, typ: events.TypeEmailSet,
			data:     map[string]any{"emailAddress": "new@example.org"},
			outcomes: []events.Outcome{events.OutcomeUpdated}, again: []events.Outcome{events.OutcomeUnchanged},
			kinds: []string{"email", "password"},
		},
		{
			name: "method remove", seed: []string{xFido, xPasswd}, typ: events.TypeMethodRemove,
			data:     map[string]any{"methodKind": "fido2", "methodId": "-2_GRUg2-HYz6_1YG4YRAQ2"},
			outcomes: []events.Outcome{events.OutcomeDeleted},
			kinds:    []string{"password"},
		},
		{
			name: "TAP issue", seed: []string{xPasswd}, typ: events.TypeTAPIssue,
			data:     map[string]any{"lifetimeInMinutes": 60, "sealTo": sealTo},
			outcomes: []events.Outcome{events.OutcomeCreated},
			kinds:    []string{"password", "temporaryAccessPass"},
		},
		{
			name: "MFA reset removes all but the password", seed: []string{xMobile, xAuthApp, xFido, xEmail, xPasswd}, typ: events.TypeMFAReset,
			data:  map[string]any{},
			kinds: []string{"password"},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "00000000-0000-4000-8000-0000000090" + string(rune('0'+i/10)) + string(rune('0'+i%10))
			upn := "exec" + string(rune('a'+i)) + "@contoso.example"
			u := graphclienttest.User{ID: id, UserPrincipalName: upn}
			for _, m := range tc.seed {
				u.Methods = append(u.Methods, json.RawMessage(m))
			}
			if err := emu.PutUser(u); err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": "x-" + tc.name, "source": "hr/test",
				"type": tc.typ, "subject": upn, "time": time.Now().UTC().Format(time.RFC3339), "data": tc.data})
			ev, err := dec.Decode(raw)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			plan, err := events.Plan(ev)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			ctx := context.Background()
			user, err := g.ResolveUser(ctx, upn)
			if err != nil {
				t.Fatal(err)
			}
			runPlan := func() []events.OpResult {
				r := &run{x: x, user: user, ck: &memCheckpoints{intents: map[int]intent{}, results: map[int][]events.OpResult{}}}
				res, err := r.execute(ctx, plan)
				if err != nil {
					t.Fatalf("execute: %v", err)
				}
				return res
			}
			res := runPlan()
			for _, o := range res {
				if o.Outcome == events.OutcomeFailed {
					t.Fatalf("%s failed: %+v", o.Op, o.Error)
				}
			}
			if tc.outcomes != nil && !slices.Equal(outcomesOf(res), tc.outcomes) {
				t.Errorf("outcomes %v, want %v", outcomesOf(res), tc.outcomes)
			}
			if tc.again != nil {
				if got := outcomesOf(runPlan()); !slices.Equal(got, tc.again) {
					t.Errorf("second run: outcomes %v, want %v", got, tc.again)
				}
			}
			got, ok := emu.User(id)
			if !ok {
				t.Fatalf("user %s gone from the emulator", id)
			}
			var have []string
			for _, m := range got.Methods {
				var v struct {
					Type string `json:"@odata.type"`
				}
				_ = json.Unmarshal(m, &v)
				have = append(have, kindOfODataType(v.Type))
			}
			slices.Sort(have)
			if !slices.Equal(have, tc.kinds) {
				t.Errorf("methods %v, want %v", have, tc.kinds)
			}
		})
	}
}

func outcomesOf(res []events.OpResult) []events.Outcome {
	var out []events.Outcome
	for _, r := range res {
		if r.Op == events.OpReadMethods {
			continue
		}
		out = append(out, r.Outcome)
	}
	return out
}

// kindOfODataType turns "#microsoft.graph.phoneAuthenticationMethod" into "phone".
func kindOfODataType(t string) string {
	const pre, suf = "#microsoft.graph.", "AuthenticationMethod"
	if len(t) > len(pre)+len(suf) {
		return t[len(pre) : len(t)-len(suf)]
	}
	return t
}
