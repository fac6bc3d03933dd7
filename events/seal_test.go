package events

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	worker, recipient := testCurveKey(t, 1), testCurveKey(t, 2)
	for _, kind := range []string{SecretTAP, SecretPassword} {
		secret := []byte("hG7#kd2Q-" + kind)
		s, err := Seal(kind, secret, pub(t, recipient), worker)
		if err != nil {
			t.Fatal(err)
		}
		if s.Kind != kind || s.Recipient != pub(t, recipient) || s.Sender != pub(t, worker) {
			t.Errorf("Sealed = %+v", s)
		}
		if strings.Contains(s.Ciphertext, string(secret)) {
			t.Error("ciphertext contains the secret")
		}
		got, err := Open(s, recipient)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("Open = %q, %v", got, err)
		}
		// Fresh nonce each time: sealing twice gives different boxes.
		s2, _ := Seal(kind, secret, pub(t, recipient), worker)
		if s2.Ciphertext == s.Ciphertext {
			t.Error("two seals of one secret are identical")
		}
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	worker, recipient, stranger := testCurveKey(t, 1), testCurveKey(t, 2), testCurveKey(t, 3)
	s, err := Seal(SecretTAP, []byte("hG7#kd2Q"), pub(t, recipient), worker)
	if err != nil {
		t.Fatal(err)
	}
	box, _ := base64.StdEncoding.DecodeString(s.Ciphertext)
	tampered := append([]byte(nil), box...)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name string
		s    Sealed
		kp   nkeys.KeyPair
	}{
		{"wrong recipient key", *s, stranger},
		{"recipient field forged", Sealed{Kind: s.Kind, Recipient: pub(t, stranger), Sender: s.Sender, Ciphertext: s.Ciphertext}, stranger},
		{"sender forged", Sealed{Kind: s.Kind, Recipient: s.Recipient, Sender: pub(t, stranger), Ciphertext: s.Ciphertext}, recipient},
		{"ciphertext tampered", Sealed{Kind: s.Kind, Recipient: s.Recipient, Sender: s.Sender, Ciphertext: base64.StdEncoding.EncodeToString(tampered)}, recipient},
		{"ciphertext truncated", Sealed{Kind: s.Kind, Recipient: s.Recipient, Sender: s.Sender, Ciphertext: base64.StdEncoding.EncodeToString(box[:20])}, recipient},
		{"ciphertext not base64", Sealed{Kind: s.Kind, Recipient: s.Recipient, Sender: s.Sender, Ciphertext: "!!"}, recipient},
		{"ed25519 key to open", *s, testUserKey(t, 2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got, err := Open(&tc.s, tc.kp); err == nil {
				t.Errorf("Open = %q, want an error", got)
			}
		})
	}
	if _, err := Open(nil, recipient); err == nil {
		t.Error("Open(nil)")
	}
}

func TestSealRejects(t *testing.T) {
	t.Parallel()
	worker, recipient := testCurveKey(t, 1), pub(t, testCurveKey(t, 2))
	tests := []struct {
		name, kind string
		secret     []byte
		to         string
		sender     nkeys.KeyPair
	}{
		{"unknown kind", "apiKey", []byte("x"), recipient, worker},
		{"empty secret", SecretTAP, nil, recipient, worker},
		{"huge secret", SecretTAP, make([]byte, 2049), recipient, worker},
		{"recipient not a key", SecretTAP, []byte("x"), "alice", worker},
		{"recipient is a user key", SecretTAP, []byte("x"), pub(t, testUserKey(t, 1)), worker},
		{"recipient bad checksum", SecretTAP, []byte("x"), recipient[:55] + "A", worker},
		{"sender not curve", SecretTAP, []byte("x"), recipient, testUserKey(t, 1)},
		{"nil sender", SecretTAP, []byte("x"), recipient, nil},
	}
	for _, tc := range tests {
		if _, err := Seal(tc.kind, tc.secret, tc.to, tc.sender); err == nil {
			t.Errorf("%s: Seal succeeded", tc.name)
		}
	}
}

// TestResultNeverCarriesPlaintext seals secrets into a result the way the
// worker does and checks that no form of the plain text is in its JSON.
func TestResultNeverCarriesPlaintext(t *testing.T) {
	t.Parallel()
	worker, recipient := testCurveKey(t, 1), testCurveKey(t, 2)
	tapValue, password := []byte("hG7#kd2Q"), []byte("Vobu7412-Kaso")
	tapSealed, err := Seal(SecretTAP, tapValue, pub(t, recipient), worker)
	if err != nil {
		t.Fatal(err)
	}
	pwSealed, err := Seal(SecretPassword, password, pub(t, recipient), worker)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 9, 0, 1, 0, time.UTC)
	r := NewResult(EventKey("hr/workday", "e-1"), "adele.vance@contoso.com", ResultData{
		Event:  EventRef{Source: "hr/workday", ID: "e-1", Type: TypeEmployeeJoined},
		User:   UserInfo{Ref: "adele.vance@contoso.com"},
		Status: StatusSucceeded,
		Operations: []OpResult{
			{Op: OpIssueTAP, MethodKind: KindTAP, MethodID: "6f1967b7-15e8-4935-ac26-d50770ed07a7", Outcome: OutcomeCreated, Secret: tapSealed},
			{Op: OpResetPassword, MethodKind: KindPassword, Outcome: OutcomeUpdated, Secret: pwSealed},
		},
		Attempts: 1,
	}, now)
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{tapValue, password} {
		for _, form := range []string{string(secret), base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret), strings.ReplaceAll(string(secret), "#", `\u0023`)} {
			if bytes.Contains(b, []byte(form)) {
				t.Errorf("result JSON contains the secret (as %q): %s", form, b)
			}
		}
	}
	// And the recipient can still open what the result carries.
	back, err := DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(back.Data.Operations[0].Secret, recipient)
	if err != nil || !bytes.Equal(got, tapValue) {
		t.Errorf("Open from the decoded result = %q, %v", got, err)
	}
}
