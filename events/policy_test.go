package events

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const hrKey = "UCCASVKSZT6UBZZKMMI6GEH2EU22MYUBO7RHKC3SE7GG5ZGTSTIR3GFS"

func TestParsePolicyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		yaml       string
		line       int
		field, msg string
	}{
		{"empty", "", 0, "", "empty policy"},
		{"comment only", "# nothing\n", 0, "", "empty policy"},
		{"syntax", "version: 1\nsources:\n  a: b: c\n", 3, "", "mapping values are not allowed"},
		{"tab indentation", "version: 1\nsources:\n\thr: {}\n", 3, "", "cannot start any token"},
		{"not a mapping", "- a\n- b\n", 1, "", "must be a mapping"},
		{"missing version", "sources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n", 1, "version", "required"},
		{"version 2", "version: 2\n", 1, "version", "unsupported version 2"},
		{"version string", "version: \"1\"\n", 1, "version", "must be an integer"},
		{"unknown setting", "version: 1\nsourcez: {}\n", 2, "sourcez", "unknown setting"},
		{"missing sources", "version: 1\n", 1, "sources", "required"},
		{"empty sources", "version: 1\nsources: {}\n", 1, "sources", "required"},
		{"unknown type", "version: 1\nsources:\n  hr/workday:\n    types:\n      - authflow.employee.left.v1\n      - authflow.employee.joind.v1\n", 6, "sources.hr/workday.types[1]", `unknown event type "authflow.employee.joind.v1"`},
		{"duplicate type", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1, authflow.employee.left.v1]\n", 4, "sources.hr/workday.types[1]", "duplicate type"},
		{"types missing", "version: 1\nsources:\n  hr/workday:\n    signature: optional\n", 4, "sources.hr/workday.types", "required"},
		{"types empty", "version: 1\nsources:\n  hr/workday:\n    types: []\n", 4, "sources.hr/workday.types", "at least one"},
		{"types not a list", "version: 1\nsources:\n  hr/workday:\n    types: authflow.employee.left.v1\n", 4, "sources.hr/workday.types", "must be a list"},
		{"type not a string", "version: 1\nsources:\n  hr/workday:\n    types: [1]\n", 4, "sources.hr/workday.types[0]", "must be a string"},
		{"bad source name", "version: 1\nsources:\n  hr workday:\n    types: [authflow.employee.left.v1]\n", 3, "sources.hr workday", "not a valid event source"},
		{"duplicate source", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n  hr/workday:\n    types: [authflow.employee.joined.v1]\n", 5, "sources.hr/workday", "duplicate key (first at line 3)"},
		{"unknown source setting", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n    signatures: required\n", 5, "sources.hr/workday.signatures", "unknown setting"},
		{"signature value", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n    signature: always\n", 5, "sources.hr/workday.signature", "must be required or optional"},
		{"signature required without keys", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n    signature: required\n", 4, "sources.hr/workday.keys", "at least one pinned key"},
		{"curve key pinned", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n    keys: [" + testSealTo + "]\n", 5, "sources.hr/workday.keys[0]", "not an nkeys ed25519 public key"},
		{"seed pinned", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n    keys:\n      - " + hrKey + "\n      - SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU\n", 7, "sources.hr/workday.keys[1]", "not an nkeys ed25519 public key"},
		{"duplicate key", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n    keys: [" + hrKey + ", " + hrKey + "]\n", 5, "sources.hr/workday.keys[1]", "duplicate key"},
		{"verification for a type not sent", "version: 1\nsources:\n  hd:\n    types: [authflow.tap.issue.v1]\n    requireVerification: [authflow.mfa.reset.v1]\n", 5, "sources.hd.requireVerification", "not in this source's types"},
		{"verification wildcard", "version: 1\nsources:\n  hd:\n    types: [\"*\"]\n    requireVerification: [\"*\"]\n", 5, "sources.hd.requireVerification[0]", "not allowed here"},
		{"maxAge not a duration", "version: 1\nmaxAge: forever\n", 2, "maxAge", "must be a duration"},
		{"maxAge number", "version: 1\nmaxAge: 24\n", 2, "maxAge", "must be a duration"},
		{"maxAge too long", "version: 1\nmaxAge: 1000h\n", 2, "maxAge", "must be between"},
		{"skew negative", "version: 1\nmaxFutureSkew: -5m\n", 2, "maxFutureSkew", "must be between"},
		{"tap min above max", "version: 1\ntap:\n  minLifetimeMinutes: 500\n  maxLifetimeMinutes: 480\n", 3, "tap", "minLifetimeMinutes (500) <= maxLifetimeMinutes (480)"},
		{"tap min below Graph", "version: 1\ntap:\n  minLifetimeMinutes: 5\n", 3, "tap", "need 10 <="},
		{"tap max above Graph", "version: 1\ntap:\n  maxLifetimeMinutes: 50000\n", 3, "tap", "<= 43200"},
		{"tap bool", "version: 1\ntap:\n  allowMultiUse: yes\n", 3, "tap.allowMultiUse", "true or false"},
		{"tap unknown", "version: 1\ntap:\n  lifetime: 60\n", 3, "tap.lifetime", "unknown setting"},
		{"bad object id", "version: 1\nprotectedUsers:\n  objectIds: [not-a-guid]\n", 3, "protectedUsers.objectIds[0]", "not an object id"},
		{"bad UPN pattern", "version: 1\nprotectedUsers:\n  upns: [\"[admin@contoso.com\"]\n", 3, "protectedUsers.upns[0]", "not a valid pattern"},
		{"protected unknown", "version: 1\nprotectedUsers:\n  roles: true\n", 3, "protectedUsers.roles", "unknown setting"},
		{"allow unknown source", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\nprotectedUsers:\n  allow:\n    hr/sap: [authflow.employee.left.v1]\n", 7, "protectedUsers.allow.hr/sap", "not in sources"},
		{"allow type not sent", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\nprotectedUsers:\n  allow:\n    hr/workday: [authflow.mfa.reset.v1]\n", 7, "protectedUsers.allow.hr/workday", "not in this source's types"},
		{"two documents", "version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n---\nversion: 1\n", 5, "", "one YAML document"},
		{"alias", "version: 1\nsources:\n  hr/workday:\n    types: &t [authflow.employee.left.v1]\n  hr/sap:\n    types: *t\n", 4, "sources.hr/workday.types", "anchors and aliases"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePolicy([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParsePolicy accepted it: %+v", p)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *PolicyError", err, err)
			}
			if pe.Line != tc.line || pe.Field != tc.field || !strings.Contains(pe.Message, tc.msg) {
				t.Errorf("got line %d field %q message %q (%v); want line %d field %q message containing %q", pe.Line, pe.Field, pe.Message, err, tc.line, tc.field, tc.msg)
			}
		})
	}
}

func TestPolicyErrorFormat(t *testing.T) {
	t.Parallel()
	_, err := ParsePolicy([]byte("version: 1\nsources:\n  hr/workday:\n    types:\n      - authflow.employee.left.v1\n      - authflow.employee.joind.v1\n"))
	want := `policy: line 6, column 9: sources.hr/workday.types[1]: unknown event type "authflow.employee.joind.v1"`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

func TestLoadPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte("version: 1\nsources:\n  hr/workday:\n    types: [authflow.employee.left.v1]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(file)
	if err != nil || p.MaxAge() != DefaultMaxAge {
		t.Fatalf("LoadPolicy = %v, %v", p, err)
	}
	if _, err := LoadPolicy(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("version: 3\n"), 0o600)
	var pe *PolicyError
	if _, err := LoadPolicy(bad); !errors.As(err, &pe) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v", err)
	}
}

// testPolicy has a signed HR source, an optional-signature helpdesk with
// verification rules, a catch-all for inventory, protected users.
func testPolicy(t testing.TB) *Policy {
	t.Helper()
	hd := pub(t, testUserKey(t, 2))
	p, err := ParsePolicy([]byte(`
version: 1
maxAge: 1h
maxFutureSkew: 2m
tap:
  minLifetimeMinutes: 60
  maxLifetimeMinutes: 480
  maxStartDelay: 24h
sources:
  hr/workday:
    signature: required
    keys: [` + pub(t, testUserKey(t, 1)) + `]
    types: [authflow.employee.joined.v1, authflow.employee.left.v1, authflow.phone.set.v1]
  helpdesk/servicenow:
    keys: [` + hd + `]
    types: [authflow.mfa.reset.v1, authflow.tap.issue.v1, authflow.methods.inventory.v1, authflow.device.lost.v1]
    requireVerification: [authflow.mfa.reset.v1, authflow.tap.issue.v1]
  "*":
    types: [authflow.methods.inventory.v1]
protectedUsers:
  anyDirectoryRole: true
  upns: ["*@admin.contoso.com", "CEO@contoso.com"]
  objectIds: [6E7F8A9B-0C1D-4E2F-8A3B-4C5D6E7F8A9B]
  allow:
    hr/workday: [authflow.employee.left.v1]
    "*": [authflow.methods.inventory.v1]
`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// signed returns headers that sign raw with the test key b.
func signed(t testing.TB, raw []byte, b byte) http.Header {
	t.Helper()
	sig, signer, err := Sign(raw, testUserKey(t, b))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderSignature, sig)
	h.Set(HeaderSigner, signer)
	return h
}

// headerMap is a minimal Headers, like nats.Header's Get.
type headerMap map[string]string

func (m headerMap) Get(k string) string { return m[k] }

func TestCheckAuth(t *testing.T) {
	t.Parallel()
	p := testPolicy(t)
	const verification = `"verification":{"ticketId":"INC1","method":"callback","verifiedBy":"Jo"}`
	mk := func(source, typ, data string) []byte {
		return []byte(strings.Replace(string(event(typ, "adele.vance@contoso.com", data)), `"source":"hr/workday"`, `"source":"`+source+`"`, 1))
	}
	hrLeft := mk("hr/workday", TypeEmployeeLeft, `{}`)
	tampered := []byte(strings.Replace(string(hrLeft), `"data":{}`, `"data":{ }`, 1))
	tap := func(source, tapJSON string) []byte {
		return mk(source, TypeEmployeeJoined, `{"tap":`+tapJSON+`}`)
	}
	tapWith := func(extra string) string { return `{"sealTo":"` + testSealTo + `"` + extra + `}` }
	swapped := signed(t, hrLeft, 1)
	swapped.Set(HeaderSigner, pub(t, testUserKey(t, 3)))
	tests := []struct {
		name string
		raw  []byte
		h    Headers
		code Code
	}{
		{"signed and allowed", hrLeft, signed(t, hrLeft, 1), ""},
		{"nats-style headers", hrLeft, func() Headers {
			h := signed(t, hrLeft, 1)
			return headerMap{HeaderSignature: h.Get(HeaderSignature), HeaderSigner: h.Get(HeaderSigner)}
		}(), ""},
		{"unknown source falls to *, type not allowed", mk("hr/sap", TypeEmployeeLeft, `{}`), nil, CodePolicyDenied},
		{"unknown source, type allowed by *", mk("hr/sap", TypeMethodsInventory, `{}`), nil, ""},
		{"type not allowed for source", mk("hr/workday", TypeMFAReset, `{}`), signed(t, mk("hr/workday", TypeMFAReset, `{}`), 1), CodePolicyDenied},
		{"signature missing", hrLeft, nil, CodeBadSignature},
		{"signature headers empty", hrLeft, http.Header{}, CodeBadSignature},
		{"signer header only", hrLeft, headerMap{HeaderSigner: pub(t, testUserKey(t, 1))}, CodeBadSignature},
		{"signature header only", hrLeft, headerMap{HeaderSignature: signed(t, hrLeft, 1).Get(HeaderSignature)}, CodeBadSignature},
		{"signed by an unpinned key", hrLeft, signed(t, hrLeft, 3), CodeBadSignature},
		{"signer swapped", hrLeft, swapped, CodeBadSignature},
		{"body tampered after signing", tampered, signed(t, hrLeft, 1), CodeBadSignature},
		{"signature of another event", hrLeft, signed(t, mk("hr/workday", TypeEmployeeJoined, `{"enableAccount":true}`), 1), CodeBadSignature},
		{"optional signature absent", mk("helpdesk/servicenow", TypeMethodsInventory, `{}`), nil, ""},
		{"optional signature present and valid", mk("helpdesk/servicenow", TypeMethodsInventory, `{}`), signed(t, mk("helpdesk/servicenow", TypeMethodsInventory, `{}`), 2), ""},
		{"optional signature present and wrong", mk("helpdesk/servicenow", TypeMethodsInventory, `{}`), signed(t, mk("helpdesk/servicenow", TypeMethodsInventory, `{ }`), 2), CodeBadSignature},
		{"optional signature by unpinned key", mk("helpdesk/servicenow", TypeMethodsInventory, `{}`), signed(t, mk("helpdesk/servicenow", TypeMethodsInventory, `{}`), 1), CodeBadSignature},
		{"verification missing", mk("helpdesk/servicenow", TypeMFAReset, `{}`), nil, CodePolicyDenied},
		{"verification present", mk("helpdesk/servicenow", TypeMFAReset, `{`+verification+`}`), nil, ""},
		{"verification not required for device.lost", mk("helpdesk/servicenow", TypeDeviceLost, `{"device":{"deviceId":"d1"}}`), nil, ""},
		{"TAP within bounds", mk("helpdesk/servicenow", TypeTAPIssue, `{"lifetimeInMinutes":480,"sealTo":"`+testSealTo+`",`+verification+`}`), nil, ""},
		{"TAP above policy max", mk("helpdesk/servicenow", TypeTAPIssue, `{"lifetimeInMinutes":481,"sealTo":"`+testSealTo+`",`+verification+`}`), nil, CodePolicyDenied},
		{"TAP below policy min", tap("hr/workday", tapWith(`,"lifetimeInMinutes":30`)), signed(t, tap("hr/workday", tapWith(`,"lifetimeInMinutes":30`)), 1), CodePolicyDenied},
		{"TAP tenant default lifetime", tap("hr/workday", tapWith("")), signed(t, tap("hr/workday", tapWith("")), 1), ""},
		{"TAP multi-use denied", tap("hr/workday", tapWith(`,"usableOnce":false`)), signed(t, tap("hr/workday", tapWith(`,"usableOnce":false`)), 1), CodePolicyDenied},
		{"TAP starts within delay", tap("hr/workday", tapWith(`,"startDateTime":"2026-11-27T09:00:00Z"`)), signed(t, tap("hr/workday", tapWith(`,"startDateTime":"2026-11-27T09:00:00Z"`)), 1), ""},
		{"TAP starts too late", tap("hr/workday", tapWith(`,"startDateTime":"2026-11-27T09:00:01Z"`)), signed(t, tap("hr/workday", tapWith(`,"startDateTime":"2026-11-27T09:00:01Z"`)), 1), CodePolicyDenied},
		{"recovery TAP out of bounds", mk("helpdesk/servicenow", TypeDeviceLost, `{"device":{"deviceId":"d1"},"recoveryTap":{"lifetimeInMinutes":43200,"sealTo":"`+testSealTo+`"}}`), nil, CodePolicyDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := decodeOK(t, tc.raw)
			err := p.CheckAuth(ev, tc.raw, tc.h)
			if CodeOf(err) != tc.code || (tc.code != "" && CodeOf(err) == "") {
				t.Fatalf("CheckAuth = %v, want code %q", err, tc.code)
			}
		})
	}
	if err := p.CheckAuth(nil, nil, nil); CodeOf(err) != CodeInternal {
		t.Errorf("CheckAuth(nil) = %v", err)
	}
}

func TestCheckFreshness(t *testing.T) {
	t.Parallel()
	p := testPolicy(t) // maxAge 1h, skew 2m
	ev := decodeOK(t, event(TypeMethodsInventory, "a@contoso.com", `{}`))
	at := ev.Time
	tests := []struct {
		now  time.Time
		code Code
	}{
		{at, ""},
		{at.Add(time.Hour), ""},
		{at.Add(time.Hour + time.Nanosecond), CodeExpired},
		{at.Add(1000 * time.Hour), CodeExpired},
		{at.Add(-2 * time.Minute), ""},
		{at.Add(-2*time.Minute - time.Nanosecond), CodeFutureEvent},
		{at.AddDate(-1, 0, 0), CodeFutureEvent},
	}
	for _, tc := range tests {
		if err := p.CheckFreshness(ev, tc.now); CodeOf(err) != tc.code {
			t.Errorf("now = event time %+v: %v, want %q", tc.now.Sub(at), err, tc.code)
		}
	}
	// Defaults: 24h and 5m.
	dp := DevPolicy()
	if err := dp.CheckFreshness(ev, at.Add(24*time.Hour+time.Second)); CodeOf(err) != CodeExpired {
		t.Errorf("default max age: %v", err)
	}
	if err := dp.CheckFreshness(ev, at.Add(-5*time.Minute-time.Second)); CodeOf(err) != CodeFutureEvent {
		t.Errorf("default skew: %v", err)
	}
	if err := dp.CheckFreshness(nil, at); CodeOf(err) != CodeInternal {
		t.Errorf("nil event: %v", err)
	}
}

func TestCheckTarget(t *testing.T) {
	t.Parallel()
	p := testPolicy(t)
	mk := func(source, typ, subject, data string) *Event {
		raw := strings.Replace(string(event(typ, subject, data)), `"source":"hr/workday"`, `"source":"`+source+`"`, 1)
		return decodeOK(t, []byte(raw))
	}
	const admin = "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b"
	reset := `{"verification":{"ticketId":"INC1","method":"callback","verifiedBy":"Jo"}}`
	tests := []struct {
		name       string
		ev         *Event
		target     Target
		needsRoles bool
		code       Code
	}{
		{"ordinary user", mk("helpdesk/servicenow", TypeMFAReset, "lee.gu@contoso.com", reset), Target{ObjectID: "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e", UPN: "lee.gu@contoso.com"}, true, ""},
		{"role holder", mk("helpdesk/servicenow", TypeMFAReset, "lee.gu@contoso.com", reset), Target{UPN: "lee.gu@contoso.com", DirectoryRoles: []string{"Global Administrator"}}, true, CodeProtectedUser},
		{"listed object id in subject", mk("helpdesk/servicenow", TypeMFAReset, strings.ToUpper(admin), reset), Target{}, true, CodeProtectedUser},
		{"listed object id resolved", mk("helpdesk/servicenow", TypeMFAReset, "someone@contoso.com", reset), Target{ObjectID: admin}, true, CodeProtectedUser},
		{"UPN pattern", mk("helpdesk/servicenow", TypeMFAReset, "Jo@Admin.Contoso.com", reset), Target{}, true, CodeProtectedUser},
		{"UPN pattern on resolved UPN", mk("helpdesk/servicenow", TypeMFAReset, admin[:35]+"0", reset), Target{UPN: "ceo@contoso.com"}, true, CodeProtectedUser},
		{"UPN exact entry, case-insensitive", mk("helpdesk/servicenow", TypeMFAReset, "ceo@CONTOSO.com", reset), Target{}, true, CodeProtectedUser},
		{"pattern does not match a suffix", mk("helpdesk/servicenow", TypeMFAReset, "jo@notadmin.contoso.com", reset), Target{}, true, ""},
		{"leaver from HR is allowed", mk("hr/workday", TypeEmployeeLeft, "jo@admin.contoso.com", `{}`), Target{DirectoryRoles: []string{"x"}}, false, ""},
		{"joiner from HR is not", mk("hr/workday", TypeEmployeeJoined, "jo@admin.contoso.com", `{"enableAccount":true}`), Target{}, true, CodeProtectedUser},
		{"inventory is read-only", mk("helpdesk/servicenow", TypeMethodsInventory, "ceo@contoso.com", `{}`), Target{DirectoryRoles: []string{"x"}}, false, ""},
		{"device lost on an admin", mk("helpdesk/servicenow", TypeDeviceLost, "lee.gu@contoso.com", `{"device":{"deviceId":"d"}}`), Target{DirectoryRoles: []string{"Helpdesk Administrator"}}, true, CodeProtectedUser},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := p.NeedsRoles(tc.ev); got != tc.needsRoles {
				t.Errorf("NeedsRoles = %v, want %v", got, tc.needsRoles)
			}
			if err := p.CheckTarget(tc.ev, tc.target); CodeOf(err) != tc.code {
				t.Errorf("CheckTarget = %v, want %q", err, tc.code)
			}
		})
	}
	if err := p.CheckTarget(nil, Target{}); CodeOf(err) != CodeInternal {
		t.Errorf("CheckTarget(nil) = %v", err)
	}
	if p.NeedsRoles(nil) {
		t.Error("NeedsRoles(nil)")
	}
	// A policy that does not protect role holders never needs roles.
	dp := DevPolicy()
	ev := mk("x", TypeMFAReset, "a@contoso.com", `{}`)
	if dp.NeedsRoles(ev) || dp.CheckTarget(ev, Target{DirectoryRoles: []string{"Global Administrator"}}) != nil {
		t.Error("DevPolicy protects users")
	}
}

func TestDevPolicy(t *testing.T) {
	t.Parallel()
	p := DevPolicy()
	raw := event(TypeTAPIssue, "a@contoso.com", `{"lifetimeInMinutes":43200,"usableOnce":false,"sealTo":"`+testSealTo+`"}`)
	ev := decodeOK(t, raw)
	if err := p.CheckAuth(ev, raw, nil); err != nil {
		t.Errorf("DevPolicy refused an unsigned event: %v", err)
	}
	if err := p.CheckAuth(ev, raw, signed(t, raw, 9)); err != nil {
		t.Errorf("DevPolicy refused a validly signed event: %v", err)
	}
	if err := p.CheckAuth(ev, append([]byte(" "), raw...), signed(t, raw, 9)); CodeOf(err) != CodeBadSignature {
		t.Errorf("DevPolicy accepted a bad signature: %v", err)
	}
}

func TestPolicyPriority(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte("version: 1\nsources:\n  helpdesk/sn:\n    types: [\"*\"]\n    priority: interactive\n  hr/workday:\n    types: [\"*\"]\n  \"*\":\n    types: [authflow.methods.inventory.v1]\n    priority: bulk\n"))
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{"helpdesk/sn": PriorityInteractive, "hr/workday": PriorityBulk, "other": PriorityBulk} {
		if got := p.Priority(src); got != want {
			t.Errorf("Priority(%s) = %s, want %s", src, got, want)
		}
	}
	if !p.HasInteractive() {
		t.Error("HasInteractive = false")
	}
	dev := DevPolicy()
	if dev.Priority("helpdesk/anything") != PriorityInteractive || dev.Priority("hr/x") != PriorityBulk {
		t.Error("dev policy: helpdesk/ sources must be interactive, others bulk")
	}
	if _, err := ParsePolicy([]byte("version: 1\nsources:\n  a:\n    types: [\"*\"]\n    priority: urgent\n")); err == nil || !strings.Contains(err.Error(), "interactive or bulk") {
		t.Errorf("bad priority: %v", err)
	}
}
