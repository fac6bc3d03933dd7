package worker

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/internal/passkey"
)

// openOptions opens the sealed options of a passkeyOptions result.
func openOptions(t *testing.T, res []events.OpResult, station nkeys.KeyPair) events.PasskeyOptions {
	t.Helper()
	if len(res) != 1 || res[0].Outcome != events.OutcomeUnchanged || res[0].Secret == nil || res[0].Secret.Kind != events.SecretPasskeyOptions {
		t.Fatalf("options result %+v", res)
	}
	plain, err := events.Open(res[0].Secret, station)
	if err != nil {
		t.Fatal(err)
	}
	var o events.PasskeyOptions
	if err := json.Unmarshal(plain, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func credentialData(c passkey.Credential, name string) map[string]any {
	d := map[string]any{"publicKeyCredential": map[string]any{"id": c.ID, "type": c.Type,
		"response": map[string]any{"clientDataJSON": c.Response.ClientDataJSON, "attestationObject": c.Response.AttestationObject}}}
	if name != "" {
		d["displayName"] = name
	}
	return d
}

// TestPasskeySteps: options sealed to the station, a ceremony by the
// software authenticator, the registration posted; the emulator shows the
// passkey, and the next options exclude it.
func TestPasskeySteps(t *testing.T) {
	e := newStepEnv(t, false)
	station, _ := nkeys.CreateCurveKeys()
	sealTo, _ := station.PublicKey()
	id, upn := e.seed("", dMobile)

	o := openOptions(t, e.run(events.TypePasskeyOptions, upn, map[string]any{"sealTo": sealTo}), station)
	if o.UserID != id || o.UserPrincipalName != upn || time.Until(o.ChallengeExpires) > 5*time.Minute || time.Until(o.ChallengeExpires) < 4*time.Minute {
		t.Fatalf("options %+v", o)
	}
	if err := passkey.CheckOptions(o.PublicKey); err != nil || len(o.PublicKey.ExcludeCredentials) != 0 {
		t.Fatalf("options unusable: %v %+v", err, o.PublicKey)
	}
	key := &passkey.SoftAuthenticator{}
	cred, err := key.MakeCredential(o.PublicKey, "")
	if err != nil {
		t.Fatal(err)
	}
	res := e.run(events.TypePasskeyRegister, upn, credentialData(cred, "Desk key"))
	if len(res) != 1 || res[0].Outcome != events.OutcomeCreated || res[0].MethodKind != "fido2" || res[0].Detail != "Desk key, deviceBound, notAttested" {
		t.Fatalf("register: %+v", res)
	}
	u, _ := e.emu.User(id)
	if !strings.Contains(string(u.Methods[len(u.Methods)-1]), `"id":"`+res[0].MethodID+`"`) {
		t.Fatalf("the emulator does not show passkey %s: %s", res[0].MethodID, u.Methods)
	}
	// The same credential again: Graph's challenge is spent.
	if res := e.run(events.TypePasskeyRegister, upn, credentialData(cred, "")); res[0].Outcome != events.OutcomeFailed || res[0].Error.Code != events.CodeGraphPermanent {
		t.Fatalf("replayed registration: %+v", res)
	}
	o2 := openOptions(t, e.run(events.TypePasskeyOptions, upn, map[string]any{"sealTo": sealTo}), station)
	if len(o2.PublicKey.ExcludeCredentials) != 1 || o2.PublicKey.ExcludeCredentials[0].ID != cred.ID {
		t.Fatalf("excludeCredentials %+v", o2.PublicKey.ExcludeCredentials)
	}
	if _, err := key.MakeCredential(o2.PublicKey, ""); err == nil {
		t.Fatal("the station's key registered twice")
	}
}

// TestPasskeyRegisterAfterCrash: an earlier attempt posted the credential
// (its intent is recorded) but crashed before recording the result; the
// retry finds the passkey instead of posting again, which Graph would
// refuse.
func TestPasskeyRegisterAfterCrash(t *testing.T) {
	e := newStepEnv(t, false)
	station, _ := nkeys.CreateCurveKeys()
	sealTo, _ := station.PublicKey()
	_, upn := e.seed("", dMobile)
	o := openOptions(t, e.run(events.TypePasskeyOptions, upn, map[string]any{"sealTo": sealTo}), station)
	cred, err := (&passkey.SoftAuthenticator{}).MakeCredential(o.PublicKey, "")
	if err != nil {
		t.Fatal(err)
	}
	var crashed bool
	e.x.hook = func(p string) error {
		if p == HookAfterGraphWrite && !crashed {
			crashed = true
			return errCrash
		}
		return nil
	}
	ck := &memCheckpoints{intents: map[int]intent{}, results: map[int][]events.OpResult{}}
	plan, ev := e.plan(events.TypePasskeyRegister, upn, credentialData(cred, "k"))
	user, _ := e.g.ResolveUser(t.Context(), upn)
	if _, err := (&run{x: e.x, user: user, ck: ck}).execute(t.Context(), plan); err == nil {
		t.Fatal("the crash hook did not end the attempt")
	}
	res, err := (&run{x: e.x, user: user, dry: ev.DryRun, ck: ck}).execute(t.Context(), plan)
	if err != nil || len(res) != 1 || res[0].Outcome != events.OutcomeCreated || !strings.HasSuffix(res[0].Detail, "registered by an interrupted attempt") {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	for k, byStatus := range e.emu.Stats().Requests {
		if strings.HasPrefix(k, "POST") && strings.Contains(k, "fido2Methods") && (byStatus["201"] != 1 || len(byStatus) != 1) {
			t.Fatalf("%s: %v, want exactly one POST", k, byStatus)
		}
	}
}

// TestPasskeyGuestAndMFA: Graph's refusals end up as the step's error.
func TestPasskeyGuestAndMFA(t *testing.T) {
	e := newStepEnv(t, false, func(o *graphclienttest.Options) { o.MFARequired = true })
	station, _ := nkeys.CreateCurveKeys()
	sealTo, _ := station.PublicKey()
	guest := graphclienttest.User{ID: "00000000-0000-4000-8000-000000009201", UserPrincipalName: "g_fabrikam.com#EXT#@contoso.example", UserType: "Guest"}
	if err := e.emu.PutUser(guest); err != nil {
		t.Fatal(err)
	}
	if res := e.run(events.TypePasskeyOptions, guest.UserPrincipalName, map[string]any{"sealTo": sealTo}); res[0].Outcome != events.OutcomeFailed ||
		!strings.Contains(res[0].Error.Message, "guest") {
		t.Fatalf("guest: %+v", res)
	}
	_, upn := e.seed("", dMobile)
	o := openOptions(t, e.run(events.TypePasskeyOptions, upn, map[string]any{"sealTo": sealTo}), station)
	cred, _ := (&passkey.SoftAuthenticator{}).MakeCredential(o.PublicKey, "")
	if res := e.run(events.TypePasskeyRegister, upn, credentialData(cred, "")); res[0].Outcome != events.OutcomeFailed || res[0].Error.Code != events.CodeMFARequired {
		t.Fatalf("MFA required: %+v", res)
	}
}
