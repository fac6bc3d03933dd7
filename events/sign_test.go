package events

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	raw := event(TypeEmployeeLeft, "adele.vance@contoso.com", `{}`)
	for _, create := range []func() (nkeys.KeyPair, error){nkeys.CreateUser, nkeys.CreateAccount, nkeys.CreateOperator, nkeys.CreateServer} {
		kp, err := create()
		if err != nil {
			t.Fatal(err)
		}
		sig, signer, err := Sign(raw, kp)
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != 86 || signer != pub(t, kp) {
			t.Errorf("Sign = %q, %q", sig, signer)
		}
		if err := Verify(raw, sig, signer); err != nil {
			t.Errorf("Verify of a fresh signature: %v", err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	kp := testUserKey(t, 1)
	raw := event(TypeEmployeeLeft, "adele.vance@contoso.com", `{}`)
	sig, signer, err := Sign(raw, kp)
	if err != nil {
		t.Fatal(err)
	}
	sigBytes, _ := base64.RawURLEncoding.DecodeString(sig)
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 1; return c }
	other := pub(t, testUserKey(t, 2))
	tests := []struct {
		name        string
		raw         []byte
		sig, signer string
	}{
		{"body with one bit flipped", flip(raw, 40), sig, signer},
		{"body with a trailing space", append(append([]byte(nil), raw...), ' '), sig, signer},
		{"empty body", nil, sig, signer},
		{"signature with one bit flipped", raw, base64.RawURLEncoding.EncodeToString(flip(sigBytes, 10)), signer},
		{"signature of other bytes", raw, func() string { s, _, _ := Sign([]byte("x"), kp); return s }(), signer},
		{"another signer", raw, sig, other},
		{"missing signature", raw, "", signer},
		{"missing signer", raw, sig, ""},
		{"padded signature", raw, base64.URLEncoding.EncodeToString(sigBytes), signer},
		{"standard base64 signature", raw, strings.NewReplacer("-", "+", "_", "/").Replace(sig) + "", signer},
		{"short signature", raw, sig[:85], signer},
		{"long signature", raw, sig + "A", signer},
		{"hex signature", raw, strings.Repeat("ab", 43), signer},
		{"signer is a curve key", raw, sig, testSealTo},
		{"signer is a seed", raw, sig, "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"},
		{"signer with bad checksum", raw, sig, signer[:55] + "A"},
		{"signer lower case", raw, sig, strings.ToLower(signer)},
		{"signer garbage", raw, sig, "U\r\nX-Injected: 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.name == "standard base64 signature" && tc.sig == sig {
				t.Skip("signature has no URL-specific characters")
			}
			err := Verify(tc.raw, tc.sig, tc.signer)
			if CodeOf(err) != CodeBadSignature {
				t.Errorf("Verify = %v, want bad_signature", err)
			}
		})
	}
}

func TestSignErrors(t *testing.T) {
	t.Parallel()
	if _, _, err := Sign([]byte("x"), nil); err == nil {
		t.Error("Sign with nil key pair")
	}
	if _, _, err := Sign([]byte("x"), testCurveKey(t, 1)); err == nil {
		t.Error("Sign with a curve key")
	}
	pubOnly, err := nkeys.FromPublicKey(pub(t, testUserKey(t, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Sign([]byte("x"), pubOnly); err == nil {
		t.Error("Sign with a public key only")
	}
}
