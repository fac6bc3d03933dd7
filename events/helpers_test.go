package events

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
)

// Test keys are derived from fixed bytes so that seed corpora and expected
// values are stable; they protect nothing.

func testUserKey(t testing.TB, b byte) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func testCurveKey(t testing.TB, b byte) nkeys.KeyPair {
	t.Helper()
	seed, err := nkeys.EncodeSeed(nkeys.PrefixByteCurve, bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromCurveSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func pub(t testing.TB, kp nkeys.KeyPair) string {
	t.Helper()
	p, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testSealTo is a valid curve public key used in test events.
const testSealTo = "XAKKIPSHALQJ3PDNCVGBCWMLY3S5H5Q767LAXDJTJQLX6P4LPZOBGBKQ"

// testEventKey is the key of the test event (source hr/workday, id e-1),
// as approvals name it.
var testEventKey = EventKey("hr/workday", "e-1")

// testTime is the time of test events.
const testTime = "2026-11-26T09:00:00Z"

// event builds an event with a standard envelope around data. typ and
// subject are inserted as they are, so they must be JSON-escaped already.
func event(typ, subject, data string) []byte {
	return []byte(`{"specversion":"1.0","id":"e-1","source":"hr/workday","type":"` + typ + `","subject":"` + subject +
		`","time":"` + testTime + `","data":` + data + `}`)
}

// envelope builds an event from envelope members (already JSON) and data.
func envelope(members ...string) []byte {
	return []byte("{" + strings.Join(members, ",") + "}")
}

// stdMembers are the envelope members of a valid event, for tests that
// drop or change one.
func stdMembers() map[string]string {
	return map[string]string{
		"specversion": `"specversion":"1.0"`,
		"id":          `"id":"e-1"`,
		"source":      `"source":"hr/workday"`,
		"type":        `"type":"authflow.methods.inventory.v1"`,
		"subject":     `"subject":"adele.vance@contoso.com"`,
		"time":        `"time":"` + testTime + `"`,
		"data":        `"data":{}`,
	}
}

// without returns the standard envelope with member key left out, or
// replaced by repl when repl is not empty.
func without(key, repl string) []byte {
	m := stdMembers()
	order := []string{"specversion", "id", "source", "type", "subject", "time", "data"}
	var parts []string
	for _, k := range order {
		switch {
		case k != key:
			parts = append(parts, m[k])
		case repl != "":
			parts = append(parts, repl)
		}
	}
	return envelope(parts...)
}

func decodeOK(t testing.TB, raw []byte) *Event {
	t.Helper()
	ev, err := Decoder{DefaultRegion: "US"}.Decode(raw)
	if err != nil {
		t.Fatalf("Decode(%s) = %v", raw, err)
	}
	return ev
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }
