package graphclient

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/internal/passkey"
)

// webauthnOptions converts the client's options into WebAuthn's JSON form
// (what the worker seals for an enrolment station).
func webauthnOptions(o PasskeyCreationOptions) passkey.CreationOptions {
	out := passkey.CreationOptions{Challenge: o.Challenge, RP: passkey.RPEntity{ID: o.RPID, Name: o.RPName},
		User: passkey.UserEntity{ID: o.UserID, Name: o.UserName, DisplayName: o.UserDisplayName}, Attestation: o.Attestation}
	for _, a := range o.Algorithms {
		out.PubKeyCredParams = append(out.PubKeyCredParams, passkey.CredParam{Type: "public-key", Alg: a})
	}
	for _, d := range o.ExcludeCredentials {
		out.ExcludeCredentials = append(out.ExcludeCredentials, passkey.CredentialDescriptor{Type: "public-key", ID: d.ID})
	}
	return out
}

func TestContractPasskey(t *testing.T) {
	t.Parallel()
	srv, c := contract(t)
	ctx := testCtx(t)
	o, err := c.PasskeyCreationOptions(ctx, kimID)
	if err != nil {
		t.Fatalf("PasskeyCreationOptions: %v", err)
	}
	if o.RPID != "login.microsoft.com" || o.UserName != "Kim.OBrien@contoso.com" || len(o.Algorithms) == 0 ||
		o.UserVerification != "required" || len(o.ExcludeCredentials) != 0 {
		t.Fatalf("options %+v", o)
	}
	if d := time.Until(o.ChallengeExpires); d <= 4*time.Minute || d > PasskeyChallengeLifetime {
		t.Fatalf("challenge expires in %s, want about 5 minutes", d)
	}
	key := &passkey.SoftAuthenticator{AAGUID: [16]byte{0xcb, 0x69}}
	cred, err := key.MakeCredential(webauthnOptions(o), "")
	if err != nil {
		t.Fatal(err)
	}
	reg := PasskeyRegistration{DisplayName: "Kim's key", Credential: PasskeyCredential{ID: cred.ID,
		ClientDataJSON: cred.Response.ClientDataJSON, AttestationObject: cred.Response.AttestationObject}}
	m, err := c.RegisterPasskey(ctx, kimID, reg)
	if err != nil {
		t.Fatalf("RegisterPasskey: %v", err)
	}
	if m.Kind != KindFIDO2 || m.DisplayName != "Kim's key" || m.AAGUID != "cb690000-0000-0000-0000-000000000000" ||
		m.PasskeyType != "deviceBound" || m.Attestation != "notAttested" {
		t.Fatalf("registered %+v", m)
	}
	if _, ms := state(t, srv, kimID); !hasMethod(ms, "#microsoft.graph.fido2AuthenticationMethod", m.ID) {
		t.Fatal("the emulator does not show the passkey")
	}
	// Single-use challenge: the same registration again is a rule violation.
	_, err = c.RegisterPasskey(ctx, kimID, reg)
	mustKind(t, err, ErrConflict)

	// The registered key is excluded now.
	o2, err := c.PasskeyCreationOptions(ctx, kimID)
	if err != nil || len(o2.ExcludeCredentials) != 1 || o2.ExcludeCredentials[0].ID != cred.ID || strings.Contains(o2.Challenge, "=") {
		t.Fatalf("second options %+v, %v", o2, err)
	}

	// Guests: refused by the service.
	_, err = c.PasskeyCreationOptions(ctx, guestID)
	mustKind(t, err, ErrConflict)
	_, err = c.PasskeyCreationOptions(ctx, nobody)
	mustKind(t, err, ErrUserNotFound)
}

func TestContractPasskeyMFARequired(t *testing.T) {
	t.Parallel()
	_, c := contract(t, func(o *graphclienttest.Options) { o.MFARequired = true })
	o, err := c.PasskeyCreationOptions(testCtx(t), kimID)
	if err != nil {
		t.Fatalf("creationOptions is a read: %v", err)
	}
	cred, err := (&passkey.SoftAuthenticator{}).MakeCredential(webauthnOptions(o), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RegisterPasskey(testCtx(t), kimID, PasskeyRegistration{Credential: PasskeyCredential{
		ID: cred.ID, ClientDataJSON: cred.Response.ClientDataJSON, AttestationObject: cred.Response.AttestationObject}})
	mustKind(t, err, ErrMFARequired)
}

func TestValidatePasskeyRegistration(t *testing.T) {
	t.Parallel()
	b := base64.RawURLEncoding.EncodeToString
	cd := b([]byte(`{"type":"webauthn.create","challenge":"abc","origin":"https://login.microsoft.com"}`))
	ok := PasskeyCredential{ID: b([]byte("id")), ClientDataJSON: cd, AttestationObject: b([]byte{0xa3})}
	tests := []struct {
		name string
		mod  func(*PasskeyRegistration)
		want string
	}{
		{"ok", func(*PasskeyRegistration) {}, ""},
		{"padded is accepted", func(r *PasskeyRegistration) { r.Credential.ID = base64.URLEncoding.EncodeToString([]byte("id")) }, ""},
		{"display name too long", func(r *PasskeyRegistration) { r.DisplayName = strings.Repeat("k", 257) }, "display name"},
		{"display name control", func(r *PasskeyRegistration) { r.DisplayName = "a\nb" }, "display name"},
		{"no id", func(r *PasskeyRegistration) { r.Credential.ID = "" }, "credential id"},
		{"id not base64url", func(r *PasskeyRegistration) { r.Credential.ID = "a+b/" }, "credential id"},
		{"id too long", func(r *PasskeyRegistration) { r.Credential.ID = b(make([]byte, 1024)) }, "credential id"},
		{"attestation too long", func(r *PasskeyRegistration) {
			r.Credential.AttestationObject = b(make([]byte, MaxAttestationObjectBytes+1))
		}, "attestationObject"},
		{"client data not JSON", func(r *PasskeyRegistration) { r.Credential.ClientDataJSON = b([]byte("x")) }, "JSON"},
		{"client data for sign-in", func(r *PasskeyRegistration) {
			r.Credential.ClientDataJSON = b([]byte(`{"type":"webauthn.get","challenge":"abc"}`))
		}, "webauthn.create"},
	}
	for _, tt := range tests {
		r := PasskeyRegistration{DisplayName: "key", Credential: ok}
		tt.mod(&r)
		err := ValidatePasskeyRegistration(r)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: err = %v, want one naming %q", tt.name, err, tt.want)
		}
	}
	f := newFakeGraph(t)
	c := newTestClient(t, f.URL)
	_, err := c.RegisterPasskey(testCtx(t), kimID, PasskeyRegistration{})
	mustKind(t, err, ErrInvalidInput)
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func FuzzValidatePasskeyRegistration(f *testing.F) {
	b := base64.RawURLEncoding.EncodeToString
	f.Add("key", b([]byte("id")), b([]byte(`{"type":"webauthn.create","challenge":"abc"}`)), b([]byte{1}))
	f.Add("", "", "", "")
	f.Add("k\x00", "a=", "e30", "AA==")
	f.Fuzz(func(t *testing.T, name, id, cd, att string) {
		r := PasskeyRegistration{DisplayName: name, Credential: PasskeyCredential{ID: id, ClientDataJSON: cd, AttestationObject: att}}
		if ValidatePasskeyRegistration(r) != nil {
			return
		}
		raw, err := DecodeB64URL(id)
		if err != nil || len(raw) == 0 || len(raw) > MaxCredentialIDBytes {
			t.Fatalf("accepted id %q", id)
		}
		if c, err := ParseClientData(cd); err != nil || c.Type != "webauthn.create" || c.Challenge == "" {
			t.Fatalf("accepted client data %q", cd)
		}
	})
}

// TestPasskeyOptionsPadding: padded or standard-alphabet base64 in the
// service's options (a quirk tools have met) comes out as base64url
// without padding; options without a challenge are refused.
func TestPasskeyOptionsPadding(t *testing.T) {
	t.Parallel()
	f := newFakeGraph(t)
	c := newTestClient(t, f.URL)
	f.setHandler(reply(200, `{"challengeTimeoutDateTime":"2026-04-20T10:05:00Z","publicKey":{"challenge":"QTU1MzNDNzAtNkM3Ni00NTRDLUJDQ0YtRTREMDZCNTBFRTRE==",
		"rp":{"id":"login.microsoft.com","name":"Microsoft"},"user":{"id":"ZGF2aWRAY29udG9zby5jb20=","name":"david@contoso.com","displayName":"David"},
		"pubKeyCredParams":[{"type":"public-key","alg":-7}],"timeout":60000,"excludeCredentials":[{"type":"public-key","id":"a+b/cw=="}],
		"authenticatorSelection":{"authenticatorAttachment":"platform","requireResidentKey":true,"userVerification":"required"},"attestation":"direct"}}`,
		"Content-Type", "application/json"))
	o, err := c.PasskeyCreationOptions(testCtx(t), kimID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Challenge != "QTU1MzNDNzAtNkM3Ni00NTRDLUJDQ0YtRTREMDZCNTBFRTRE" || o.UserID != "ZGF2aWRAY29udG9zby5jb20" ||
		o.ExcludeCredentials[0].ID != "a-b_cw" || o.TimeoutMs != 60000 || o.AuthenticatorAttachment != "platform" ||
		!o.ChallengeExpires.Equal(time.Date(2026, 4, 20, 10, 5, 0, 0, time.UTC)) {
		t.Fatalf("options %+v", o)
	}
	f.setHandler(reply(200, `{"publicKey":{"rp":{"id":"login.microsoft.com"},"user":{"id":"AA"},"pubKeyCredParams":[{"type":"public-key","alg":-7}]}}`,
		"Content-Type", "application/json"))
	_, err = c.PasskeyCreationOptions(testCtx(t), kimID)
	mustKind(t, err, ErrPermanent)
}
