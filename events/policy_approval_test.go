package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// approvalSources is safetySources with two approvers (test keys 7 and 8).
func approvalSources(t testing.TB) string {
	return safetySources + "approvers:\n  - " + pub(t, testUserKey(t, 7)) + "\n  - " + pub(t, testUserKey(t, 8)) + "\n"
}

func TestParseApprovalPolicyErrors(t *testing.T) {
	t.Parallel()
	a7 := pub(t, testUserKey(t, 7))
	other := pub(t, testUserKey(t, 9))
	// Line numbers: the first line after safetySources is 9, after
	// approvalSources 12.
	const rule = "approvals:\n  - name: r\n"
	tests := []struct {
		name, base, yaml string
		line             int
		field, msg       string
	}{
		{"approvers not a list", safetySources, "approvers: " + a7 + "\n", 9, "approvers", "must be a list"},
		{"approvers empty", safetySources, "approvers: []\n", 9, "approvers", "at least one key"},
		{"approver not a key", safetySources, "approvers: [bob]\n", 9, "approvers[0]", "not an nkeys user public key"},
		{"approver a curve key", safetySources, "approvers: [" + testSealTo + "]\n", 9, "approvers[0]", "not an nkeys user public key"},
		{"approver an account key", safetySources, "approvers: [" + pubAccount(t) + "]\n", 9, "approvers[0]", "not an nkeys user public key"},
		{"approver bad checksum", safetySources, "approvers: [" + a7[:55] + flip(a7[55]) + "]\n", 9, "approvers[0]", "not an nkeys user public key"},
		{"approver twice", safetySources, "approvers: [" + a7 + ", " + a7 + "]\n", 9, "approvers[1]", "duplicate key"},
		{"rules without approvers", safetySources, rule, 10, "approvals", "need approvers"},
		{"approvals not a list", approvalSources(t), "approvals:\n  name: r\n", 13, "approvals", "must be a list of rules"},
		{"rule not a mapping", approvalSources(t), "approvals:\n  - r\n", 13, "approvals[0]", "must be a mapping"},
		{"rule without name", approvalSources(t), "approvals:\n  - timeout: 1h\n", 13, "approvals[0].name", "required"},
		{"bad name", approvalSources(t), "approvals:\n  - name: admin resets\n", 13, "approvals[0].name", "letters, digits"},
		{"duplicate name", approvalSources(t), "approvals:\n  - {name: r}\n  - {name: r}\n", 14, "approvals[1].name", "duplicate rule name r"},
		{"unknown setting", approvalSources(t), rule + "    quorum: 2\n", 14, "approvals[0].quorum", "unknown setting (known: name, types, sources, users, bulk, timeout, approvers)"},
		{"unknown type", approvalSources(t), rule + "    types: [authflow.mfa.rest.v1]\n", 14, "approvals[0].types[0]", "unknown event type"},
		{"type wildcard", approvalSources(t), rule + "    types: [\"*\"]\n", 14, "approvals[0].types[0]", "not allowed here"},
		{"read-only type", approvalSources(t), rule + "    types: [authflow.mfa.reset.v1, authflow.methods.inventory.v1]\n", 14, "approvals[0].types[1]", "never waits for approval"},
		{"approval type", approvalSources(t), rule + "    types: [authflow.approval.grant.v1]\n", 14, "approvals[0].types[0]", "never waits for approval"},
		{"unknown source", approvalSources(t), rule + "    sources: [hr/sap]\n", 14, "approvals[0].sources[0]", "not in sources"},
		{"source wildcard", approvalSources(t), rule + "    sources: [\"*\"]\n", 14, "approvals[0].sources[0]", "omit sources"},
		{"no sources", approvalSources(t), rule + "    sources: []\n", 14, "approvals[0].sources", "at least one source"},
		{"type its sources never send", approvalSources(t), rule + "    sources: [hr/workday]\n    types: [authflow.mfa.reset.v1]\n", 13, "approvals[0].types", "none of the rule's sources may send authflow.mfa.reset.v1"},
		{"users not a mapping", approvalSources(t), rule + "    users: admins\n", 14, "approvals[0].users", "must be a mapping"},
		{"users naming nobody", approvalSources(t), rule + "    users: {anyDirectoryRole: false}\n", 14, "approvals[0].users", "names nobody"},
		{"users unknown setting", approvalSources(t), rule + "    users:\n      allow: {hr/workday: [authflow.employee.left.v1]}\n", 15, "approvals[0].users.allow", "unknown setting (known: upns, objectIds, anyDirectoryRole)"},
		{"users bad upn pattern", approvalSources(t), rule + "    users:\n      upns: [\"[admin\"]\n", 15, "approvals[0].users.upns[0]", "not a valid pattern"},
		{"users bad object id", approvalSources(t), rule + "    users:\n      objectIds: [admin]\n", 15, "approvals[0].users.objectIds[0]", "not an object id"},
		{"users role not a bool", approvalSources(t), rule + "    users:\n      anyDirectoryRole: yes please\n", 15, "approvals[0].users.anyDirectoryRole", "true or false"},
		{"bulk without max", approvalSources(t), rule + "    bulk:\n      window: 10m\n", 15, "approvals[0].bulk.max", "required"},
		{"bulk without window", approvalSources(t), rule + "    bulk:\n      max: 50\n", 15, "approvals[0].bulk.window", "required"},
		{"bulk max zero", approvalSources(t), rule + "    bulk: {max: 0, window: 10m}\n", 14, "approvals[0].bulk.max", "between 1 and 10000"},
		{"bulk window short", approvalSources(t), rule + "    bulk: {max: 5, window: 30s}\n", 14, "approvals[0].bulk.window", "between 1m0s and 720h0m0s"},
		{"bulk unknown setting", approvalSources(t), rule + "    bulk: {max: 5, window: 10m, per: user}\n", 14, "approvals[0].bulk.per", "unknown setting (known: max, window)"},
		{"timeout short", approvalSources(t), rule + "    timeout: 10s\n", 14, "approvals[0].timeout", "between 1m0s and 168h0m0s"},
		{"timeout long", approvalSources(t), rule + "    timeout: 720h\n", 14, "approvals[0].timeout", "between 1m0s and 168h0m0s"},
		{"timeout not a duration", approvalSources(t), rule + "    timeout: 1 hour\n", 14, "approvals[0].timeout", "must be a duration"},
		{"rule approver not listed", approvalSources(t), rule + "    approvers: [" + other + "]\n", 14, "approvals[0].approvers[0]", "not one of the policy's approvers"},
		{"rule approvers empty", approvalSources(t), rule + "    approvers: []\n", 14, "approvals[0].approvers", "at least one key"},
		{"rule approver twice", approvalSources(t), rule + "    approvers: [" + a7 + ", " + a7 + "]\n", 14, "approvals[0].approvers[1]", "duplicate key"},
		{"alias", approvalSources(t), "approvals:\n  - &r {name: a}\n  - *r\n", 13, "approvals[0]", "anchors and aliases"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePolicy([]byte(tc.base + tc.yaml))
			if err == nil {
				t.Fatalf("ParsePolicy accepted it: %+v", p)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *PolicyError", err, err)
			}
			if pe.Line != tc.line || pe.Field != tc.field || !strings.Contains(pe.Message, tc.msg) {
				t.Errorf("got line %d field %q message %q; want line %d field %q message containing %q", pe.Line, pe.Field, pe.Message, tc.line, tc.field, tc.msg)
			}
		})
	}
}

func pubAccount(t testing.TB) string {
	t.Helper()
	// An account key (A...) is an nkeys public key, but not a user's.
	return "A" + pub(t, testUserKey(t, 3))[1:]
}

// flip returns another base32 character than c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// fakeCounter is an in-memory ApprovalCounter: one set of event keys per
// counter, without windows (the limits package tests those).
type fakeCounter struct {
	counted map[string][]string // counter name + scope -> event keys
	err     error
}

func (f *fakeCounter) Admit(_ context.Context, eventKey string, c LimitCheck) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	if f.counted == nil {
		f.counted = map[string][]string{}
	}
	k := c.Rule.Name + "\x00" + c.Scope
	for _, e := range f.counted[k] {
		if e == eventKey {
			return true, nil
		}
	}
	if len(f.counted[k]) >= c.Rule.Max {
		return false, nil
	}
	f.counted[k] = append(f.counted[k], eventKey)
	return true, nil
}

func TestPolicyApprovalRule(t *testing.T) {
	t.Parallel()
	a8 := pub(t, testUserKey(t, 8))
	p, err := ParsePolicy([]byte(approvalSources(t) + `approvals:
  - name: admin-resets
    types: [authflow.mfa.reset.v1, authflow.tap.issue.v1]
    sources: [helpdesk/servicenow]
    users:
      anyDirectoryRole: true
      upns: ["*@admin.contoso.com"]
      objectIds: [6E7F8A9B-0C1D-4E2F-8A3B-4C5D6E7F8A9B]
    timeout: 30m
  - name: mass-leavers
    types: [authflow.employee.left.v1]
    sources: [hr/workday]
    bulk:
      max: 2
      window: 10m
    timeout: 4h
    approvers: [` + a8 + `]
  - name: any-password-reset
    types: [authflow.password.reset.v1]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.MaxApprovalTimeout(); got != 4*time.Hour {
		t.Errorf("MaxApprovalTimeout = %s", got)
	}
	if got := p.MaxBulkWindow(); got != 10*time.Minute {
		t.Errorf("MaxBulkWindow = %s", got)
	}
	if rules := p.Approvals(); len(rules) != 3 || rules[2].Timeout != DefaultApprovalTimeout || rules[1].Bulk == nil || rules[1].Bulk.Max != 2 {
		t.Errorf("Approvals = %+v", rules)
	}
	withSource := func(raw []byte, src string) []byte {
		return []byte(strings.Replace(string(raw), `"source":"hr/workday"`, `"source":"`+src+`"`, 1))
	}
	helpdesk := func(typ, subject, data string) *Event {
		return decodeOK(t, withSource(event(typ, subject, data), "helpdesk/servicenow"))
	}
	reset := helpdesk(TypeMFAReset, "megan.bowen@contoso.com", `{}`)
	adminUPN := helpdesk(TypeMFAReset, "Root@Admin.Contoso.com", `{}`)
	byID := helpdesk(TypeMFAReset, "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b", `{}`)
	dry := helpdesk(TypeMFAReset, "megan.bowen@contoso.com", `{"dryRun":true}`)
	tap := helpdesk(TypeTAPIssue, "megan.bowen@contoso.com", `{"sealTo":"`+testSealTo+`"}`)
	inventory := helpdesk(TypeMethodsInventory, "megan.bowen@contoso.com", `{}`)
	password := decodeOK(t, withSource(event(TypePasswordReset, "adele.vance@contoso.com", `{"sealTo":"`+testSealTo+`"}`), "it/scripts"))
	role := Target{ObjectID: "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e", UPN: "megan.bowen@contoso.com", DirectoryRoles: []string{"Helpdesk Administrator"}}
	plain := Target{ObjectID: "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e", UPN: "megan.bowen@contoso.com"}
	tests := []struct {
		name string
		ev   *Event
		t    Target
		want string // the rule, "" for none
	}{
		{"reset of a role holder", reset, role, "admin-resets"},
		{"reset of a user without roles", reset, plain, ""},
		{"reset by an admin UPN, any case", adminUPN, Target{}, "admin-resets"},
		{"the resolved UPN counts too", reset, Target{UPN: "ops@admin.contoso.com"}, "admin-resets"},
		{"a listed object id", byID, Target{}, "admin-resets"},
		{"TAP of a role holder", tap, role, "admin-resets"},
		{"dry run never waits", dry, role, ""},
		{"read-only never waits", inventory, role, ""},
		{"a rule for every source and user", password, Target{}, "any-password-reset"},
	}
	for _, tc := range tests {
		r, ok, err := p.ApprovalRule(context.Background(), tc.ev, tc.t, nil)
		if err != nil || ok != (tc.want != "") || r.Name != tc.want {
			t.Errorf("%s: ApprovalRule = %q, %v, %v; want %q", tc.name, r.Name, ok, err, tc.want)
		}
		if ok && r.Name == "admin-resets" && (r.Timeout != 30*time.Minute || len(r.Approvers) != 0) {
			t.Errorf("%s: rule %+v", tc.name, r)
		}
	}

	// Bulk: the first two leavers from one source run, the third waits;
	// another source has its own count; a redelivery counts once.
	left := func(id, src string) *Event {
		raw := strings.Replace(string(event(TypeEmployeeLeft, "adele.vance@contoso.com", `{}`)), `"id":"e-1"`, `"id":"`+id+`"`, 1)
		return decodeOK(t, withSource([]byte(raw), src))
	}
	c := &fakeCounter{}
	for i, want := range []bool{false, false, true, true} {
		ev := left(fmt.Sprint("l-", i), "hr/workday")
		r, ok, err := p.ApprovalRule(context.Background(), ev, plain, c)
		if err != nil || ok != want || (ok && (r.Name != "mass-leavers" || r.Timeout != 4*time.Hour || r.Approvers[0] != a8)) {
			t.Errorf("leaver %d: %+v, %v, %v; want waiting %v", i, r, ok, err, want)
		}
	}
	if _, ok, _ := p.ApprovalRule(context.Background(), left("l-0", "hr/workday"), plain, c); ok {
		t.Error("a redelivered leaver that was counted now waits")
	}
	if n := len(c.counted["approval.mass-leavers\x00hr/workday"]); n != 2 {
		t.Errorf("counter holds %d events, want 2 (a waiting event is not counted)", n)
	}
	// The counter's name cannot be a limit rule's (limit names have no dot).
	for name := range c.counted {
		if reLimitName.MatchString(strings.Split(name, "\x00")[0]) {
			t.Errorf("counter name %q could be a limit rule's", name)
		}
	}
	if _, _, err := p.ApprovalRule(context.Background(), left("l-9", "hr/workday"), plain, nil); CodeOf(err) != CodeInternal {
		t.Errorf("bulk rule without a counter: %v", err)
	}
	boom := errors.New("nats: timeout")
	if _, _, err := p.ApprovalRule(context.Background(), left("l-9", "hr/workday"), plain, &fakeCounter{err: boom}); !errors.Is(err, boom) || !strings.Contains(err.Error(), "mass-leavers") {
		t.Errorf("counter error: %v", err)
	}
	// A policy without approvals parks nothing and needs no counter.
	plainPolicy, _ := ParsePolicy([]byte(safetySources))
	if _, ok, err := plainPolicy.ApprovalRule(context.Background(), reset, role, nil); ok || err != nil {
		t.Errorf("no rules: %v, %v", ok, err)
	}
}

func TestNeedsRolesForApprovals(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(approvalSources(t) + `approvals:
  - name: admin-resets
    types: [authflow.mfa.reset.v1]
    users: {anyDirectoryRole: true}
  - name: upn-only
    types: [authflow.tap.issue.v1]
    users: {upns: ["*@admin.contoso.com"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	withSource := func(raw []byte) []byte {
		return []byte(strings.Replace(string(raw), `"source":"hr/workday"`, `"source":"helpdesk/servicenow"`, 1))
	}
	for _, tc := range []struct {
		ev   *Event
		want bool
	}{
		{decodeOK(t, withSource(event(TypeMFAReset, "a@contoso.com", `{}`))), true},
		{decodeOK(t, withSource(event(TypeMFAReset, "a@contoso.com", `{"dryRun":true}`))), false},
		{decodeOK(t, withSource(event(TypeTAPIssue, "a@contoso.com", `{"sealTo":"`+testSealTo+`"}`))), false},
		{decodeOK(t, withSource(event(TypeMethodsInventory, "a@contoso.com", `{}`))), false},
	} {
		if got := p.NeedsRoles(tc.ev); got != tc.want {
			t.Errorf("NeedsRoles(%s, dry run %v) = %v", tc.ev.Type, tc.ev.DryRun, got)
		}
	}
}

func TestCheckAuthApproval(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(approvalSources(t)))
	if err != nil {
		t.Fatal(err)
	}
	// From a source the policy does not list: the approver's key decides.
	raw := []byte(strings.Replace(string(event(TypeApprovalGrant, "adele.vance@contoso.com", `{"eventKey":"`+testEventKey+`"}`)),
		`"source":"hr/workday"`, `"source":"approvals/cli"`, 1))
	ev := decodeOK(t, raw)
	tampered := []byte(strings.Replace(string(raw), testEventKey[:8], "00000000", 1))
	tests := []struct {
		name string
		raw  []byte
		h    Headers
		want Code
	}{
		{"an approver", raw, signed(t, raw, 7), ""},
		{"the other approver", raw, signed(t, raw, 8), ""},
		{"unsigned", raw, nil, CodeBadSignature},
		{"empty headers", raw, headerMap{}, CodeBadSignature},
		{"signature only", raw, headerMap{HeaderSignature: signed(t, raw, 7).Get(HeaderSignature)}, CodeBadSignature},
		{"tampered", tampered, signed(t, raw, 7), CodeBadSignature},
		{"an unknown key", raw, signed(t, raw, 9), CodeApprovalInvalid},
	}
	for _, tc := range tests {
		err := p.CheckAuth(ev, tc.raw, tc.h)
		if CodeOf(err) != tc.want {
			t.Errorf("%s: CheckAuth = %v, want %q", tc.name, err, tc.want)
		}
	}
	// A policy without approvers refuses every approval.
	none, _ := ParsePolicy([]byte(safetySources))
	if err := none.CheckAuth(ev, raw, signed(t, raw, 7)); CodeOf(err) != CodeApprovalInvalid {
		t.Errorf("no approvers: %v", err)
	}
	if !p.IsApprover(pub(t, testUserKey(t, 7))) || p.IsApprover(pub(t, testUserKey(t, 9))) || p.IsApprover("") || len(p.Approvers()) != 2 {
		t.Error("IsApprover / Approvers")
	}
}

func TestDevPolicyWith(t *testing.T) {
	t.Parallel()
	approver := pub(t, testUserKey(t, 7))
	p, err := DevPolicyWith(approver)
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsApprover(approver) || DevPolicy().IsApprover(approver) {
		t.Error("the approver is not (only) DevPolicyWith's")
	}
	helpdesk := []byte(strings.Replace(string(event(TypeMFAReset, "admin@contoso.example", `{}`)), `"source":"hr/workday"`, `"source":"helpdesk/demo"`, 1))
	reset := decodeOK(t, helpdesk)
	if err := p.CheckAuth(reset, helpdesk, nil); err != nil || p.Priority("helpdesk/demo") != PriorityInteractive {
		t.Errorf("DevPolicyWith is not DevPolicy underneath: %v", err)
	}
	if !p.NeedsRoles(reset) || DevPolicy().NeedsRoles(reset) {
		t.Error("NeedsRoles")
	}
	r, ok, err := p.ApprovalRule(context.Background(), reset, Target{DirectoryRoles: []string{"Global Administrator"}}, nil)
	if err != nil || !ok || r.Name != DevApprovalRule || r.Timeout != time.Hour {
		t.Errorf("admin reset: %+v, %v, %v", r, ok, err)
	}
	if _, ok, _ := p.ApprovalRule(context.Background(), reset, Target{}, nil); ok {
		t.Error("a reset of a user without roles waits")
	}
	lost := decodeOK(t, event(TypeDeviceLost, "admin@contoso.example", `{"device":{"displayName":"x"}}`))
	if _, ok, _ := p.ApprovalRule(context.Background(), lost, Target{DirectoryRoles: []string{"Global Administrator"}}, nil); ok {
		t.Error("another type waits")
	}
	for _, bad := range []string{"", "bob", testSealTo, pubAccount(t)} {
		if _, err := DevPolicyWith(bad); err == nil {
			t.Errorf("DevPolicyWith(%q) accepted it", bad)
		}
	}
}
