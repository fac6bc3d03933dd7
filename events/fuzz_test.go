package events

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// FuzzDecode checks that Decode never panics, that every rejection is an
// *Error with a decoder code, that whatever Decode accepts the schema
// accepts and plans cleanly, and that the schema accepts a rejected input
// only for the reasons JSON Schema cannot express. Seeds: the checked-in
// corpus in testdata/fuzz/FuzzDecode (the documented examples and the bad
// cases) and the good cases.
func FuzzDecode(f *testing.F) {
	for _, tc := range goodCases() {
		f.Add(tc.raw)
	}
	s, err := compiledSchemas()
	if err != nil {
		f.Fatal(err)
	}
	d := Decoder{DefaultRegion: "US"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		src, id, typ := PeekIdentity(raw)
		if (src != "" && checkString("source", src, reSource, maxSourceLen) != nil) ||
			(id != "" && checkString("id", id, reID, maxIDLen) != nil) ||
			(typ != "" && checkString("type", typ, reTypeName, maxTypeLen) != nil) {
			t.Fatalf("PeekIdentity returned an unsafe value: %q %q %q", src, id, typ)
		}
		ev, err := d.Decode(raw)
		if err != nil {
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			switch e.Code {
			case CodeInvalidEvent, CodeUnknownType, CodePayloadTooLarge:
			default:
				t.Fatalf("Decode returned code %s", e.Code)
			}
			if strings.ContainsAny(e.Error(), "\r\n") {
				t.Fatalf("error message spans lines: %q", e.Error())
			}
			if e.Code == CodePayloadTooLarge {
				return
			}
			if ok, _ := validates(s.event, raw); ok && !e.schemaBlind() {
				t.Fatalf("the schema accepts what the decoder rejects (%v): %q", err, raw)
			}
			return
		}
		if ok, verr := validates(s.event, raw); !ok {
			t.Fatalf("the decoder accepts what the schema rejects (%v): %q", verr, raw)
		}
		if (ev.User.ObjectID == "") == (ev.User.UPN == "") {
			t.Fatalf("User = %+v: exactly one must be set", ev.User)
		}
		if ev.User.ObjectID != "" && (ev.User.ObjectID != strings.ToLower(ev.User.ObjectID) || !reGUID.MatchString(ev.User.ObjectID)) {
			t.Fatalf("ObjectID %q is not a lower-case GUID", ev.User.ObjectID)
		}
		if ev.User.UPN != "" && (!reUPN.MatchString(ev.User.UPN) || strings.ContainsAny(ev.User.UPN, "/\\?%\r\n")) {
			t.Fatalf("UPN %q is not safe", ev.User.UPN)
		}
		if src != ev.Source || id != ev.ID || typ != ev.Type {
			t.Fatalf("PeekIdentity = %q %q %q, Decode = %q %q %q", src, id, typ, ev.Source, ev.ID, ev.Type)
		}
		ops, err := Plan(ev)
		if err != nil {
			t.Fatalf("Plan of a decoded event: %v", err)
		}
		// The worker copies the extensions into the result: that result
		// must marshal and validate.
		res := NewResult(ev.Key(), ev.Subject, ResultData{Event: ev.Ref(), Status: StatusSucceeded, Extensions: ev.Extensions}, ev.Time)
		rb, err := res.Marshal()
		if err != nil {
			t.Fatalf("a result carrying the extensions %v: %v", ev.Extensions, err)
		}
		if ok, verr := validates(s.result, rb); !ok {
			t.Fatalf("the result schema rejects the extensions (%v): %s", verr, rb)
		}
		for _, op := range ops {
			if !op.Kind.Valid() {
				t.Fatalf("op kind %q", op.Kind)
			}
			if op.Phone != nil && op.Phone.Number != "" && !inGraphForm(op.Phone.Number) {
				t.Fatalf("phone %q is not in Graph's form", op.Phone.Number)
			}
			if op.MethodID != "" && !reMethodID.MatchString(op.MethodID) {
				t.Fatalf("method id %q is not safe in a URL path", op.MethodID)
			}
		}
		again, err := d.Decode(bytes.Clone(raw))
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("Decode is not deterministic")
		}
	})
}

// FuzzVerify checks that Verify never panics, fails only with
// bad_signature, accepts nothing but the genuine signature of a known
// test key (ed25519 as Go implements it is strongly unforgeable, so a
// second valid signature would be a defect), and that Sign/Verify round
// trips over any bytes and breaks on any change.
func FuzzVerify(f *testing.F) {
	// The seed corpus holds signatures by these two keys only.
	known := map[string]nkeys.KeyPair{}
	for _, b := range []byte{1, 2} {
		kp := testUserKey(f, b)
		known[pub(f, kp)] = kp
	}
	kp := testUserKey(f, 1)
	f.Fuzz(func(t *testing.T, raw []byte, sig, signer string) {
		err := Verify(raw, sig, signer)
		if err != nil {
			if CodeOf(err) != CodeBadSignature {
				t.Fatalf("Verify = %v, want bad_signature", err)
			}
		} else {
			signerKP, ok := known[signer]
			if !ok {
				t.Fatalf("Verify accepted a signature by a key no seed signs with: %q", signer)
			}
			if want, _, _ := Sign(raw, signerKP); sig != want {
				t.Fatalf("Verify accepted a signature that is not the genuine one: %q, want %q", sig, want)
			}
		}
		s, p, err := Sign(raw, kp)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(raw, s, p); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if len(raw) > 0 {
			changed := bytes.Clone(raw)
			changed[len(changed)/2] ^= 0x20
			if Verify(changed, s, p) == nil {
				t.Fatal("a changed message still verifies")
			}
		}
		if Verify(append(bytes.Clone(raw), 0), s, p) == nil {
			t.Fatal("an extended message still verifies")
		}
	})
}
