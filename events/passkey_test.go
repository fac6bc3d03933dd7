package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/internal/passkey"
)

// testCredential is a credential the software authenticator made for
// rp login.microsoft.com (packed self-attestation); docs/events.md shows it.
const testCredential = `{"id":"rCLYWiL6BNjjnl-7M0OP6_N_Tq63dyA8C0lqUZxh5fw","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoieGhZNURkTDJtVHpRN0U0d1cxRkpxMGI5YzN1SzhvUmdTYTZuVnlIcFhqTSIsIm9yaWdpbiI6Imh0dHBzOi8vbG9naW4ubWljcm9zb2Z0LmNvbSIsImNyb3NzT3JpZ2luIjpmYWxzZX0","attestationObject":"o2NmbXRmcGFja2VkZ2F0dFN0bXSiY2FsZyZjc2lnWEcwRQIhAM3bgG6YfLLcOhiN_oghFY4OyYXj1WIifHryCAPDzK04AiAoWAwliExdwY4nDSG95Ci4l652YrWVMIn5rLF8R9QL-WhhdXRoRGF0YVikNWye1KCTIblpXx6vkYID8bVfaJ2mH7yWGEwVfdpoDIFFAAAAAAAAAAAAAAAAAAAAAAAAAAAAIKwi2Foi-gTY455fuzNDj-vzf06ut3cgPAtJalGcYeX8pQECAyYgASFYINbZX83Fnflq0ymleW9ifxmsFsWVxXgHHi0zLKnXBIuVIlggR_38Tyk3yuTqIrENJIPnktjLJG7L_Ph7FgFiYg--pkw"}}`

func testPasskeyCredential() *PasskeyCredential {
	var c PasskeyCredential
	if err := json.Unmarshal([]byte(testCredential), &c); err != nil {
		panic(err)
	}
	return &c
}

// credentialWith returns testCredential changed by edit, as JSON.
func credentialWith(edit func(m map[string]any, resp map[string]any)) string {
	var m map[string]any
	_ = json.Unmarshal([]byte(testCredential), &m)
	edit(m, m["response"].(map[string]any))
	b, _ := json.Marshal(m)
	return string(b)
}

func passkeyBadCases() []badCase {
	reg := func(data string) []byte { return event(TypePasskeyRegister, "adele.vance@contoso.com", data) }
	withCred := func(edit func(m, r map[string]any)) []byte {
		return reg(`{"publicKeyCredential":` + credentialWith(edit) + `}`)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	clientData := func(s string) func(m, r map[string]any) {
		return func(_, r map[string]any) { r["clientDataJSON"] = b64([]byte(s)) }
	}
	const p = "data.publicKeyCredential"
	return []badCase{
		{name: "passkey options without sealTo", raw: event(TypePasskeyOptions, "adele.vance@contoso.com", `{}`), code: CodeInvalidEvent, field: "data.sealTo"},
		{name: "passkey options sealTo not a key", raw: event(TypePasskeyOptions, "adele.vance@contoso.com", `{"sealTo":"kiosk-1"}`), code: CodeInvalidEvent, field: "data.sealTo"},
		{name: "passkey options unknown field", raw: event(TypePasskeyOptions, "adele.vance@contoso.com", `{"sealTo":"`+testSealTo+`","challengeTimeoutInMinutes":10}`), code: CodeInvalidEvent, field: "data.challengeTimeoutInMinutes"},
		{name: "register without credential", raw: reg(`{"displayName":"key"}`), code: CodeInvalidEvent, field: p},
		{name: "register empty displayName", raw: reg(`{"displayName":"","publicKeyCredential":` + testCredential + `}`), code: CodeInvalidEvent, field: "data.displayName"},
		{name: "register displayName with a line break", raw: reg(`{"displayName":"a\nb","publicKeyCredential":` + testCredential + `}`), code: CodeInvalidEvent, field: "data.displayName"},
		{name: "register without id", raw: withCred(func(m, _ map[string]any) { delete(m, "id") }), code: CodeInvalidEvent, field: p + ".id"},
		{name: "register padded id", raw: withCred(func(m, _ map[string]any) { m["id"] = m["id"].(string) + "=" }), code: CodeInvalidEvent, field: p + ".id"},
		{name: "register standard base64 id", raw: withCred(func(m, _ map[string]any) { m["id"] = "ab+/" }), code: CodeInvalidEvent, field: p + ".id"},
		{name: "register id too long", raw: withCred(func(m, _ map[string]any) { m["id"] = strings.Repeat("A", 1365) }), code: CodeInvalidEvent, field: p + ".id"},
		{name: "register id of impossible length", raw: withCred(func(m, _ map[string]any) { m["id"] = "A" }), code: CodeInvalidEvent, field: p + ".id", schemaBlind: true},
		{name: "register other type", raw: withCred(func(m, _ map[string]any) { m["type"] = "password" }), code: CodeInvalidEvent, field: p + ".type"},
		{name: "register rawId differs", raw: withCred(func(m, _ map[string]any) { m["rawId"] = "AAAA" }), code: CodeInvalidEvent, field: p + ".rawId", schemaBlind: true},
		{name: "register unknown attachment", raw: withCred(func(m, _ map[string]any) { m["authenticatorAttachment"] = "usb" }), code: CodeInvalidEvent, field: p + ".authenticatorAttachment"},
		{name: "register unknown transport", raw: withCred(func(_, r map[string]any) { r["transports"] = []string{"usb", "carrier-pigeon"} }), code: CodeInvalidEvent, field: p + ".response.transports[1]"},
		{name: "register unknown response field", raw: withCred(func(_, r map[string]any) { r["signature"] = "AAAA" }), code: CodeInvalidEvent, field: p + ".response.signature"},
		{name: "register unknown extension", raw: withCred(func(m, _ map[string]any) { m["clientExtensionResults"] = map[string]any{"prf": map[string]any{}} }), code: CodeInvalidEvent, field: p + ".clientExtensionResults.prf"},
		{name: "register client data not JSON", raw: withCred(clientData("nope")), code: CodeInvalidEvent, field: p + ".response.clientDataJSON", schemaBlind: true},
		{name: "register client data of a sign-in", raw: withCred(clientData(`{"type":"webauthn.get","challenge":"abc","origin":"https://login.microsoft.com"}`)), code: CodeInvalidEvent, field: p + ".response.clientDataJSON", schemaBlind: true},
		{name: "register client data without challenge", raw: withCred(clientData(`{"type":"webauthn.create","origin":"https://login.microsoft.com"}`)), code: CodeInvalidEvent, field: p + ".response.clientDataJSON", schemaBlind: true},
		{name: "register client data over http", raw: withCred(clientData(`{"type":"webauthn.create","challenge":"abc","origin":"http://login.microsoft.com"}`)), code: CodeInvalidEvent, field: p + ".response.clientDataJSON", schemaBlind: true},
		{name: "register attestation not CBOR", raw: withCred(func(_, r map[string]any) { r["attestationObject"] = "_____w" }), code: CodeInvalidEvent, field: p + ".response.attestationObject", schemaBlind: true},
		{name: "register attestation of another credential", raw: withCred(func(m, _ map[string]any) { m["id"] = "AAAAAAAA" }), code: CodeInvalidEvent, field: p + ".id", schemaBlind: true},
		{name: "register attestation too long", raw: withCred(func(_, r map[string]any) { r["attestationObject"] = strings.Repeat("A", 43692) }), code: CodeInvalidEvent, field: p + ".response.attestationObject"},
	}
}

// TestPasskeyRegisterAcceptsBrowserJSON: the fields a browser's toJSON
// adds (rawId, type, authenticatorAttachment, transports, credProps) are
// accepted.
func TestPasskeyRegisterAcceptsBrowserJSON(t *testing.T) {
	t.Parallel()
	cred := credentialWith(func(m, r map[string]any) {
		m["rawId"] = m["id"]
		m["authenticatorAttachment"] = "cross-platform"
		m["clientExtensionResults"] = map[string]any{"credProps": map[string]any{"rk": true}}
		r["transports"] = []string{"usb", "nfc"}
	})
	ev := decodeOK(t, event(TypePasskeyRegister, "adele.vance@contoso.com", `{"publicKeyCredential":`+cred+`}`))
	p := ev.Payload.(*PasskeyRegister)
	if p.PublicKeyCredential.RawID != p.PublicKeyCredential.ID || len(p.PublicKeyCredential.Response.Transports) != 2 {
		t.Fatalf("payload %+v", p)
	}
	ops, err := Plan(ev)
	if err != nil || len(ops) != 1 || ops[0].Passkey.CredentialID != p.PublicKeyCredential.ID || ops[0].Passkey.DisplayName != "" {
		t.Fatalf("plan %+v, %v", ops, err)
	}
	if ch := ClientDataChallenge(ops[0].Passkey.ClientDataJSON); ch != "xhY5DdL2mTzQ7E4wW1FJq0b9c3uK8oRgSa6nVyHpXjM" {
		t.Fatalf("challenge %q", ch)
	}
}

// TestSealPasskeyOptions: options with a long excludeCredentials list fit
// the passkey secret's bound (16 KiB) and the result's ciphertext bound.
func TestSealPasskeyOptions(t *testing.T) {
	t.Parallel()
	worker, station := testCurveKey(t, 1), testCurveKey(t, 2)
	o := PasskeyOptions{UserID: "0a1b2c3d-0000-4000-8000-00000000000a", UserPrincipalName: "adele.vance@contoso.com",
		ChallengeExpires: time.Date(2026, 11, 26, 9, 5, 0, 0, time.UTC),
		PublicKey: passkey.CreationOptions{Challenge: "xhY5DdL2mTzQ7E4wW1FJq0b9c3uK8oRgSa6nVyHpXjM",
			RP: passkey.RPEntity{ID: "login.microsoft.com", Name: "Microsoft"}}}
	for range 40 {
		o.PublicKey.ExcludeCredentials = append(o.PublicKey.ExcludeCredentials,
			passkey.CredentialDescriptor{Type: "public-key", ID: strings.Repeat("A", 171)})
	}
	plain, _ := json.Marshal(o)
	s, err := Seal(SecretPasskeyOptions, plain, pub(t, station), worker)
	if err != nil {
		t.Fatalf("Seal %d bytes: %v", len(plain), err)
	}
	r := sampleResult(t)
	r.Data.Operations = []OpResult{{Op: OpPasskeyOptions, MethodKind: KindFIDO2, Outcome: OutcomeCreated, Secret: s}}
	r.Data.Status, r.Data.Error = StatusSucceeded, nil
	if _, err := r.Marshal(); err != nil {
		t.Fatalf("a result with %d bytes of sealed options: %v", len(s.Ciphertext), err)
	}
	got, err := Open(s, station)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open: %v", err)
	}
	if _, err := Seal(SecretPasskeyOptions, make([]byte, 16<<10+1), pub(t, station), worker); err == nil {
		t.Fatal("sealed more than 16 KiB")
	}
	if _, err := Seal(SecretTAP, make([]byte, 4096), pub(t, station), worker); err == nil {
		t.Fatal("the passkey bound leaked to other kinds")
	}
}

// FuzzPasskeyRegister: whatever credential JSON comes in, Decode either
// refuses it or returns one whose id is the attestation's credential id.
func FuzzPasskeyRegister(f *testing.F) {
	f.Add(testCredential)
	f.Add(`{"id":"AAAA","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, cred string) {
		ev, err := Decoder{}.Decode(event(TypePasskeyRegister, "adele.vance@contoso.com", `{"publicKeyCredential":`+cred+`}`))
		if err != nil {
			return
		}
		c := ev.Payload.(*PasskeyRegister).PublicKeyCredential
		id, err := passkey.DecodeB64URL(c.ID)
		if err != nil {
			t.Fatalf("accepted id %q", c.ID)
		}
		att, _ := passkey.DecodeB64URL(c.Response.AttestationObject)
		a, err := passkey.ParseAttestationObject(att)
		if err != nil || !bytes.Equal(a.CredentialID, id) {
			t.Fatalf("accepted an attestation that does not parse or names another credential: %v", err)
		}
		if ClientDataChallenge(c.Response.ClientDataJSON) == "" {
			t.Fatal("accepted client data without a challenge")
		}
	})
}
