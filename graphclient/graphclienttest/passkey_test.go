package graphclienttest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/internal/passkey"
)

const fido2Path = "/users/{u}/authentication/fido2Methods"

// options fetches creation options for userA in WebAuthn's JSON form.
func (e *env) options(path string) (passkey.CreationOptions, response) {
	e.t.Helper()
	r := e.graph("GET", path, "")
	r.want(e.t, 200, "")
	var body struct {
		PublicKey passkey.CreationOptions `json:"publicKey"`
	}
	if err := json.Unmarshal(r.raw, &body); err != nil {
		e.t.Fatal(err)
	}
	return body.PublicKey, r
}

func registration(displayName string, c passkey.Credential) string {
	b := map[string]any{"@odata.type": "#microsoft.graph.fido2AuthenticationMethod",
		"publicKeyCredential": map[string]any{"id": c.ID, "response": map[string]string{
			"clientDataJSON": c.Response.ClientDataJSON, "attestationObject": c.Response.AttestationObject}}}
	if displayName != "" {
		b["displayName"] = displayName
	}
	raw, _ := json.Marshal(b)
	return string(raw)
}

// TestPasskeyCreationOptions checks the options' shape and lifetime.
func TestPasskeyCreationOptions(t *testing.T) {
	e := newEnv(t)
	e.putUser(userA, "kim@contoso.com", `,"displayName":"Kim Akers","methods":[{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","id":"seeded-key","displayName":"old key"}]`)
	o, r := e.options(fido2Path + "/creationOptions()")
	if err := passkey.CheckOptions(o); err != nil {
		t.Fatalf("options unusable: %v: %s", err, r.raw)
	}
	exp, err := time.Parse(time.RFC3339, r.str("challengeTimeoutDateTime"))
	if err != nil || !exp.Equal(e.clock.Now().Add(5*time.Minute)) {
		t.Fatalf("challengeTimeoutDateTime %q, want now + 5 min", r.str("challengeTimeoutDateTime"))
	}
	if o.RP.ID != "login.microsoft.com" || o.User.Name != "kim@contoso.com" || o.User.DisplayName != "Kim Akers" ||
		o.AuthenticatorSelection == nil || o.AuthenticatorSelection.UserVerification != "required" {
		t.Fatalf("options: %s", r.raw)
	}
	if id, _ := passkey.DecodeB64URL(o.User.ID); string(id) != userA {
		t.Fatalf("user handle %q", o.User.ID)
	}
	if len(o.ExcludeCredentials) != 1 || o.ExcludeCredentials[0].Type != "public-key" ||
		o.ExcludeCredentials[0].ID != base64.RawURLEncoding.EncodeToString([]byte("seeded-key")) {
		t.Fatalf("excludeCredentials must list the seeded key: %+v", o.ExcludeCredentials)
	}
	e.putUser(userG, "guest_fabrikam.com#EXT#@contoso.onmicrosoft.com", `,"userType":"Guest"`)
	e.run([]step{
		{"challenge timeout is beta only", "GET", fido2Path + "/creationOptions(challengeTimeoutInMinutes=10)", "", 400, "badRequest"},
		{"as a query too", "GET", fido2Path + "/creationOptions?challengeTimeoutInMinutes=10", "", 400, "badRequest"},
		{"no other parameters", "GET", fido2Path + "/creationOptions(x=1)", "", 400, "badRequest"},
		{"guest", "GET", "/users/" + userG + "/authentication/fido2Methods/creationOptions", "", 400, "badRequest"},
		{"POST is not allowed", "POST", fido2Path + "/creationOptions", "{}", 405, "notSupported"},
	})
	if r := e.graph("GET", fido2Path+"/creationOptions(challengeTimeoutInMinutes=10)", ""); !strings.Contains(r.raw2(), "beta") {
		t.Fatalf("the refusal must point at beta: %s", r.raw)
	}
}

// TestPasskeyRegistration is the rule table of POST fido2Methods, driven by
// the software authenticator.
func TestPasskeyRegistration(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	key := &passkey.SoftAuthenticator{AAGUID: [16]byte{0xcb, 0x69, 0x48, 0x1e}}
	o, _ := e.options(fido2Path + "/creationOptions")
	c, err := key.MakeCredential(o, "")
	if err != nil {
		t.Fatal(err)
	}
	r := e.graph("POST", fido2Path, registration("Kim's key", c))
	r.want(t, 201, "")
	if r.str("displayName") != "Kim's key" || r.str("aaGuid") != "cb69481e-0000-0000-0000-000000000000" ||
		r.str("attestationLevel") != "notAttested" || r.str("passkeyType") != "deviceBound" || !isGUID(r.str("id")) {
		t.Fatalf("registered: %s", r.raw)
	}
	if u, _ := e.srv.User(userA); u.DefaultMethodID != r.str("id") {
		t.Fatal("a passkey is an MFA method: as the first, it is the default")
	}
	e.run([]step{{"challenge is single use", "POST", fido2Path, registration("again", c), 400, "badRequest"}})

	// The registered credential is excluded from now on.
	o2, _ := e.options(fido2Path + "/creationOptions")
	if len(o2.ExcludeCredentials) != 1 || o2.ExcludeCredentials[0].ID != c.ID {
		t.Fatalf("excludeCredentials %+v, want %s", o2.ExcludeCredentials, c.ID)
	}
	if _, err := key.MakeCredential(o2, ""); err == nil {
		t.Fatal("the authenticator registered twice despite excludeCredentials")
	}
	// The same credential under a fresh challenge is refused by the service too.
	dup := c
	cd, _ := json.Marshal(passkey.ClientData{Type: "webauthn.create", Challenge: o2.Challenge, Origin: "https://login.microsoft.com"})
	dup.Response.ClientDataJSON = base64.RawURLEncoding.EncodeToString(cd)
	e.run([]step{{"already registered", "POST", fido2Path, registration("", dup), 400, "badRequest"}})

	// displayName is optional: null then.
	synced := &passkey.SoftAuthenticator{Synced: true}
	o3, _ := e.options(fido2Path + "/creationOptions")
	c3, err := synced.MakeCredential(o3, "")
	if err != nil {
		t.Fatal(err)
	}
	r = e.graph("POST", fido2Path, registration("", c3))
	r.want(t, 201, "")
	if v, ok := r.body["displayName"]; !ok || v != nil || r.str("passkeyType") != "synced" {
		t.Fatalf("without displayName: %s", r.raw)
	}

	// Each broken shape is a 400 naming what is wrong.
	o4, _ := e.options(fido2Path + "/creationOptions")
	fresh := func(mod func(*passkey.CreationOptions), edit func(*passkey.Credential)) string {
		oo := o4
		if mod != nil {
			mod(&oo)
		}
		cc, err := (&passkey.SoftAuthenticator{}).MakeCredential(oo, "")
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(&cc)
		}
		return registration("k", cc)
	}
	cases := []struct {
		name, body, want string
	}{
		{"no credential", `{"displayName":"Key"}`, "publicKeyCredential"},
		{"empty displayName", strings.Replace(fresh(nil, nil), `"displayName":"k"`, `"displayName":""`, 1), "displayName"},
		{"id not base64url", fresh(nil, func(c *passkey.Credential) { c.ID = "*" }), "publicKeyCredential.id"},
		{"id mismatch", fresh(nil, func(c *passkey.Credential) { c.ID = base64.RawURLEncoding.EncodeToString([]byte("other")) }), "does not match"},
		{"other relying party", fresh(func(o *passkey.CreationOptions) { o.RP.ID = "evil.example" }, nil), "relying party"},
		{"unknown challenge", fresh(func(o *passkey.CreationOptions) { o.Challenge = base64.RawURLEncoding.EncodeToString(make([]byte, 32)) }, nil), "challenge"},
		{"not CBOR", fresh(nil, func(c *passkey.Credential) { c.Response.AttestationObject = "AAAA" }), "attestationObject"},
		{"get, not create", fresh(nil, func(c *passkey.Credential) {
			raw, _ := passkey.DecodeB64URL(c.Response.ClientDataJSON)
			c.Response.ClientDataJSON = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), "webauthn.create", "webauthn.get", 1)))
		}), "webauthn.create"},
		{"http origin", fresh(nil, func(c *passkey.Credential) {
			raw, _ := passkey.DecodeB64URL(c.Response.ClientDataJSON)
			c.Response.ClientDataJSON = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), "https://", "http://", 1)))
		}), "https"},
	}
	for _, tc := range cases {
		r := e.graph("POST", fido2Path, tc.body)
		if r.status != 400 || r.code() != "badRequest" || !strings.Contains(r.raw2(), tc.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", tc.name, r.status, r.raw, tc.want)
		}
	}
	// None of them used up the challenge.
	e.graph("POST", fido2Path, fresh(nil, nil)).want(t, 201, "")

	// Challenges expire after 5 minutes.
	o5, _ := e.options(fido2Path + "/creationOptions")
	c5, _ := (&passkey.SoftAuthenticator{}).MakeCredential(o5, "")
	e.clock.Advance(5*time.Minute + time.Second)
	e.run([]step{{"expired challenge", "POST", fido2Path, registration("late", c5), 400, "badRequest"}})

	// Guests cannot register passkeys.
	e.putUser(userG, "guest_fabrikam.com#EXT#@contoso.onmicrosoft.com", `,"userType":"Guest"`)
	e.run([]step{{"guest", "POST", "/users/" + userG + "/authentication/fido2Methods", registration("k", c5), 400, "badRequest"}})
	if n := len(e.methodsOf(userA, "fido2AuthenticationMethod")); n != 3 {
		t.Fatalf("%d passkeys registered, want 3", n)
	}
}
