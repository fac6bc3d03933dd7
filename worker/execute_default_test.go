package worker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// stepEnv runs plans straight through an executor against the emulator
// over HTTP, without NATS (as TestExecutorSteps does).
type stepEnv struct {
	t    *testing.T
	emu  *graphclienttest.Server
	g    *graphclient.Client
	x    *executor
	seal nkeys.KeyPair
	n    int
}

func newStepEnv(t *testing.T, beta bool, opts ...func(*graphclienttest.Options)) *stepEnv {
	t.Helper()
	emu := graphclienttest.NewServer(t, opts...)
	g, err := graphclient.New(graphclient.Config{BaseURL: emu.GraphURL, Token: emu.Token})
	if err != nil {
		t.Fatal(err)
	}
	seal, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	x := &executor{graph: g, retry: graphclient.RetryPolicy{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond, MaxElapsed: time.Second},
		sealKey: seal, pwMode: PasswordPatch, now: time.Now, metrics: NewMetrics(prometheus.NewRegistry())}
	if beta {
		x.prefs = betaPrefs(Config{BetaDefaultMethod: true, Graph: g})
	}
	return &stepEnv{t: t, emu: emu, g: g, x: x, seal: seal}
}

// seed stores a user with these methods (Graph JSON) and returns its id.
func (e *stepEnv) seed(defaultID string, methods ...string) (string, string) {
	e.t.Helper()
	e.n++
	id := "00000000-0000-4000-8000-0000000091" + string(rune('0'+e.n/10)) + string(rune('0'+e.n%10))
	upn := "dflt" + string(rune('a'+e.n)) + "@contoso.example"
	u := graphclienttest.User{ID: id, UserPrincipalName: upn, DefaultMethodID: defaultID}
	for _, m := range methods {
		u.Methods = append(u.Methods, json.RawMessage(m))
	}
	if err := e.emu.PutUser(u); err != nil {
		e.t.Fatal(err)
	}
	return id, upn
}

// plan decodes an event of typ for upn and plans it.
func (e *stepEnv) plan(typ, upn string, data map[string]any) ([]events.Op, *events.Event) {
	e.t.Helper()
	raw, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": "x-" + upn + typ, "source": "hr/test",
		"type": typ, "subject": upn, "time": time.Now().UTC().Format(time.RFC3339), "data": data})
	ev, err := events.Decoder{DefaultRegion: "US"}.Decode(raw)
	if err != nil {
		e.t.Fatalf("decode: %v", err)
	}
	plan, err := events.Plan(ev)
	if err != nil {
		e.t.Fatalf("plan: %v", err)
	}
	return plan, ev
}

// run decodes an event of typ for upn, plans it and executes the plan once.
func (e *stepEnv) run(typ, upn string, data map[string]any) []events.OpResult {
	e.t.Helper()
	plan, ev := e.plan(typ, upn, data)
	ctx := context.Background()
	user, err := e.g.ResolveUser(ctx, upn)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &run{x: e.x, user: user, dry: ev.DryRun, ck: &memCheckpoints{intents: map[int]intent{}, results: map[int][]events.OpResult{}}}
	res, err := r.execute(ctx, plan)
	if err != nil {
		e.t.Fatalf("execute: %v", err)
	}
	for _, o := range res {
		if _, err := events.NewResult("r", "", events.ResultData{Operations: []events.OpResult{o}, Status: events.StatusSucceeded}, time.Now()).Marshal(); err != nil && o.Outcome != events.OutcomeFailed {
			e.t.Fatalf("result of %s does not marshal: %v", o.Op, err)
		}
	}
	return res
}

func (e *stepEnv) methodIDs(id string) []string {
	e.t.Helper()
	u, _ := e.emu.User(id)
	var out []string
	for _, raw := range u.Methods {
		var m struct{ ID string }
		_ = json.Unmarshal(raw, &m)
		out = append(out, m.ID)
	}
	return out
}

const (
	dMobile = `{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550100","phoneType":"mobile"}`
	dAuth   = `{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","id":"auth-lost","displayName":"Lost Phone"}`
	dOath   = `{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod","id":"oath-1"}`
	dKey    = `{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"key-lost","displayName":"Lost Key"}`
)

// TestDeviceLostMovesDefault: the lost Authenticator is the default. With
// v1.0 only, Graph refuses its deletion; with the beta option, the default
// moves to the strongest remaining method first, and the deletion goes
// through.
func TestDeviceLostMovesDefault(t *testing.T) {
	lost := map[string]any{"device": map[string]any{"displayName": "Lost Phone"}, "revokeSessions": false}

	v1 := newStepEnv(t, false)
	id, upn := v1.seed("auth-lost", dMobile, dAuth, dOath)
	res := v1.run(events.TypeDeviceLost, upn, lost)
	if len(res) != 1 || res[0].Outcome != events.OutcomeFailed || res[0].MethodID != "auth-lost" {
		t.Fatalf("v1.0: %+v, want the deletion refused", res)
	}
	if ids := v1.methodIDs(id); !strings.Contains(strings.Join(ids, ","), "auth-lost") {
		t.Fatalf("v1.0 deleted the default: %v", ids)
	}

	beta := newStepEnv(t, true)
	id, upn = beta.seed("auth-lost", dMobile, dAuth, dOath)
	res = beta.run(events.TypeDeviceLost, upn, lost)
	if len(res) != 2 || res[0].Outcome != events.OutcomeUpdated || res[0].MethodID != "oath-1" ||
		res[0].Detail != "default method moved from push to oath" || res[1].Outcome != events.OutcomeDeleted || res[1].MethodID != "auth-lost" {
		t.Fatalf("beta: %+v", res)
	}
	if u, _ := beta.emu.User(id); u.DefaultMethodID != "oath-1" {
		t.Fatalf("emulator default %q, want oath-1", u.DefaultMethodID)
	}
	// Done again: the default is not on a lost method any more.
	if res := beta.run(events.TypeDeviceLost, upn, lost); len(res) != 1 || res[0].Outcome != events.OutcomeUnchanged {
		t.Fatalf("second run: %+v", res)
	}

	// A lost passkey that is the default (beta: unknownFutureValue) moves
	// it to the mobile phone; a dry run says so and writes nothing.
	id, upn = beta.seed("key-lost", dKey, dMobile)
	dry := map[string]any{"device": map[string]any{"displayName": "Lost Key"}, "revokeSessions": false, "dryRun": true}
	res = beta.run(events.TypeDeviceLost, upn, dry)
	if len(res) != 2 || res[0].Detail != "dry run: default method moved from unknownFutureValue to sms" {
		t.Fatalf("dry run: %+v", res)
	}
	if u, _ := beta.emu.User(id); u.DefaultMethodID != "key-lost" {
		t.Fatal("the dry run moved the default")
	}
	delete(dry, "dryRun")
	res = beta.run(events.TypeDeviceLost, upn, dry)
	if len(res) != 2 || res[0].MethodID != graphclient.MobilePhoneID || res[1].Outcome != events.OutcomeDeleted {
		t.Fatalf("lost passkey: %+v", res)
	}

	// Nothing left that beta can name: reported, and Graph's refusal stands.
	_, upn = beta.seed("key-lost", dKey, `{"@odata.type":"#microsoft.graph.windowsHelloForBusinessAuthenticationMethod","id":"hello-1","displayName":"PC"}`)
	res = beta.run(events.TypeDeviceLost, upn, map[string]any{"device": map[string]any{"displayName": "Lost Key"}, "revokeSessions": false})
	if len(res) != 2 || res[0].Outcome != events.OutcomeSkipped || res[1].Outcome != events.OutcomeFailed {
		t.Fatalf("nothing to move to: %+v", res)
	}
}

// TestInventoryReportsDefault: with the option, the inventory marks the
// default and says which it is; without, it marks nothing.
func TestInventoryReportsDefault(t *testing.T) {
	for _, beta := range []bool{false, true} {
		e := newStepEnv(t, beta)
		_, upn := e.seed("auth-lost", dMobile, dAuth)
		res := e.run(events.TypeMethodsInventory, upn, map[string]any{})
		if len(res) != 1 {
			t.Fatalf("%+v", res)
		}
		var marked []string
		for _, m := range res[0].Methods {
			if m.Default {
				marked = append(marked, m.ID)
			}
		}
		switch {
		case beta && (len(marked) != 1 || marked[0] != "auth-lost" || !strings.HasSuffix(res[0].Detail, "; default method push")):
			t.Errorf("beta: default %v, detail %q", marked, res[0].Detail)
		case !beta && (len(marked) != 0 || strings.Contains(res[0].Detail, "default")):
			t.Errorf("v1.0: default %v, detail %q", marked, res[0].Detail)
		}
	}
}

// TestMFAResetDeletesDefaultLast: with the default known, MFA reset deletes
// it last in one pass: one DELETE per method, none refused.
func TestMFAResetDeletesDefaultLast(t *testing.T) {
	e := newStepEnv(t, true)
	id, upn := e.seed("auth-lost", dAuth, dMobile, dOath, dKey)
	e.emu.ResetStats()
	res := e.run(events.TypeMFAReset, upn, map[string]any{"revokeSessions": false})
	if len(res) != 4 || res[3].MethodID != "auth-lost" {
		t.Fatalf("%+v, want the default deleted last", res)
	}
	for k, byStatus := range e.emu.Stats().Requests {
		if strings.HasPrefix(k, "DELETE") && byStatus["400"] > 0 {
			t.Errorf("%s refused %d times: the order did not know the default", k, byStatus["400"])
		}
	}
	if ids := e.methodIDs(id); len(ids) != 1 || ids[0] != graphclient.PasswordMethodID {
		t.Fatalf("left %v", ids)
	}
}

// TestDefaultMethodBetaUnavailable: a beta that fails for good
// leaves the default unknown (noted in the inventory) and the steps work
// as with v1.0.
func TestDefaultMethodBetaUnavailable(t *testing.T) {
	e := newStepEnv(t, true)
	// A beta URL the emulator does not serve (404) stands for a beta API
	// that went away.
	g, err := graphclient.New(graphclient.Config{BaseURL: e.emu.GraphURL, BetaURL: e.emu.URL + "/nowhere", Token: e.emu.Token})
	if err != nil {
		t.Fatal(err)
	}
	e.x.prefs = g
	_, upn := e.seed("", dMobile)
	res := e.run(events.TypeMethodsInventory, upn, map[string]any{})
	if len(res) != 1 || res[0].Outcome != events.OutcomeUnchanged || !strings.Contains(res[0].Detail, "default method unknown") {
		t.Fatalf("%+v", res)
	}
}

func TestConfigBetaDefaultMethod(t *testing.T) {
	cfg := Config{BetaDefaultMethod: true, Graph: noPrefsGraph{}}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "BetaDefaultMethod") {
		t.Fatalf("Validate = %v, want BetaDefaultMethod named", err)
	}
	cfg.BetaDefaultMethod = false
	if err := cfg.Validate(); err != nil {
		t.Fatalf("off: %v", err)
	}
}

// noPrefsGraph is a Graph without the beta calls.
type noPrefsGraph struct{ Graph }
