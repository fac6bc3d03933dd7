package passkey

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func testOptions() CreationOptions {
	return CreationOptions{
		Challenge:        b64.EncodeToString(bytes.Repeat([]byte{7}, 32)),
		RP:               RPEntity{ID: "login.microsoft.com", Name: "Microsoft"},
		User:             UserEntity{ID: b64.EncodeToString([]byte("0a1b2c3d")), Name: "kim@contoso.com", DisplayName: "Kim"},
		PubKeyCredParams: []CredParam{{"public-key", -257}, {"public-key", AlgES256}},
		Attestation:      "direct",
	}
}

// TestMakeCredential registers a credential and reads it back as a
// verifier would: client data, authenticator data, and the packed
// self-attestation signature over authData || SHA-256(clientDataJSON).
func TestMakeCredential(t *testing.T) {
	a := &SoftAuthenticator{AAGUID: [16]byte{1, 2, 3}}
	o := testOptions()
	c, err := a.MakeCredential(o, "")
	if err != nil {
		t.Fatal(err)
	}
	cdRaw, err := DecodeB64URL(c.Response.ClientDataJSON)
	if err != nil {
		t.Fatal(err)
	}
	var cd ClientData
	if err := json.Unmarshal(cdRaw, &cd); err != nil || cd.Type != "webauthn.create" || cd.Challenge != o.Challenge || cd.Origin != "https://login.microsoft.com" {
		t.Fatalf("client data %s: %v", cdRaw, err)
	}
	raw, err := DecodeB64URL(c.Response.AttestationObject)
	if err != nil {
		t.Fatal(err)
	}
	att, err := ParseAttestationObject(raw)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := DecodeB64URL(c.ID)
	if att.Format != "packed" || att.RPIDHash != sha256.Sum256([]byte("login.microsoft.com")) ||
		att.Flags&(FlagUP|FlagUV|FlagAT) != FlagUP|FlagUV|FlagAT || att.Flags&FlagBE != 0 ||
		!bytes.Equal(att.CredentialID, id) || att.AAGUID != a.AAGUID || att.HasCertificates {
		t.Fatalf("attestation %+v", att)
	}
	if got := FormatAAGUID(att.AAGUID); got != "01020300-0000-0000-0000-000000000000" {
		t.Fatalf("aaguid %s", got)
	}
	var ao struct {
		AttStmt struct {
			Alg int    `cbor:"alg"`
			Sig []byte `cbor:"sig"`
		} `cbor:"attStmt"`
		AuthData []byte `cbor:"authData"`
	}
	if err := cbor.Unmarshal(raw, &ao); err != nil || ao.AttStmt.Alg != AlgES256 {
		t.Fatalf("attStmt: %v %+v", err, ao.AttStmt)
	}
	h := sha256.Sum256(cdRaw)
	digest := sha256.Sum256(append(slices.Clone(ao.AuthData), h[:]...))
	if !ecdsa.VerifyASN1(&a.keys[c.ID].PublicKey, digest[:], ao.AttStmt.Sig) {
		t.Fatal("self-attestation signature does not verify")
	}
	if !a.Holds(c.ID) {
		t.Fatal("Holds is false for its own credential")
	}

	// excludeCredentials stops a second registration by this authenticator only.
	o.ExcludeCredentials = []CredentialDescriptor{{Type: "public-key", ID: c.ID}}
	if _, err := a.MakeCredential(o, ""); !errors.Is(err, ErrExcluded) {
		t.Fatalf("excluded: %v", err)
	}
	if _, err := (&SoftAuthenticator{}).MakeCredential(o, ""); err != nil {
		t.Fatalf("another authenticator: %v", err)
	}

	// Synced passkeys and attestation "none".
	o.ExcludeCredentials, o.Attestation = nil, "none"
	s := &SoftAuthenticator{Synced: true}
	c2, err := s.MakeCredential(o, "https://example.test")
	if err != nil {
		t.Fatal(err)
	}
	raw2, _ := DecodeB64URL(c2.Response.AttestationObject)
	att2, err := ParseAttestationObject(raw2)
	if err != nil || att2.Format != "none" || att2.Flags&(FlagBE|FlagBS) != FlagBE|FlagBS {
		t.Fatalf("synced: %+v %v", att2, err)
	}
}

func TestCheckOptions(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*CreationOptions)
		want string
	}{
		{"ok", func(*CreationOptions) {}, ""},
		{"short challenge", func(o *CreationOptions) { o.Challenge = "AAAA" }, "challenge"},
		{"challenge not base64url", func(o *CreationOptions) { o.Challenge = strings.Repeat("*", 43) }, "challenge"},
		{"no rp", func(o *CreationOptions) { o.RP.ID = "" }, "rp.id"},
		{"rp is a URL", func(o *CreationOptions) { o.RP.ID = "https://login.microsoft.com" }, "rp.id"},
		{"no user id", func(o *CreationOptions) { o.User.ID = "" }, "user.id"},
		{"user id too long", func(o *CreationOptions) { o.User.ID = b64.EncodeToString(make([]byte, 65)) }, "user.id"},
		{"no ES256", func(o *CreationOptions) { o.PubKeyCredParams = []CredParam{{"public-key", -257}} }, "ES256"},
		{"bad exclude id", func(o *CreationOptions) {
			o.ExcludeCredentials = []CredentialDescriptor{{Type: "public-key", ID: "*"}}
		}, "excludeCredentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions()
			tt.mod(&o)
			err := CheckOptions(o)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestParseAttestationObjectRejects(t *testing.T) {
	a := &SoftAuthenticator{}
	c, err := a.MakeCredential(testOptions(), "")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := DecodeB64URL(c.Response.AttestationObject)
	var ao attestationObject
	if err := cbor.Unmarshal(good, &ao); err != nil {
		t.Fatal(err)
	}
	enc := func(v any) []byte {
		b, err := ctap2.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	noAT := slices.Clone(ao.AuthData)
	noAT[32] &^= FlagAT
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"not CBOR", []byte{0xff}, "CBOR"},
		{"trailing bytes", append(slices.Clone(good), 0), "after"},
		{"no fmt", enc(map[string]any{"attStmt": map[string]any{}, "authData": ao.AuthData}), "fmt"},
		{"no attStmt", enc(map[string]any{"fmt": "none", "authData": ao.AuthData}), "attStmt"},
		{"short authData", enc(attestationObject{Fmt: "none", AttStmt: map[string]any{}, AuthData: ao.AuthData[:36]}), "37"},
		{"no attested data", enc(attestationObject{Fmt: "none", AttStmt: map[string]any{}, AuthData: noAT}), "AT"},
		{"truncated credential", enc(attestationObject{Fmt: "none", AttStmt: map[string]any{}, AuthData: ao.AuthData[:60]}), "credential id"},
		{"no key", enc(attestationObject{Fmt: "none", AttStmt: map[string]any{}, AuthData: ao.AuthData[:37+18+32]}), "COSE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAttestationObject(tt.raw)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

// FuzzParseAttestationObject: no input panics, and what parses has a
// credential id within WebAuthn's bound.
func FuzzParseAttestationObject(f *testing.F) {
	a := &SoftAuthenticator{}
	c, _ := a.MakeCredential(testOptions(), "")
	good, _ := DecodeB64URL(c.Response.AttestationObject)
	f.Add(good)
	f.Add([]byte{0xa3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		att, err := ParseAttestationObject(b)
		if err == nil && (len(att.CredentialID) == 0 || len(att.CredentialID) > 1023 || att.Flags&FlagAT == 0) {
			t.Fatalf("accepted %+v", att)
		}
	})
}
