package events

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const safetySources = `version: 1
sources:
  hr/workday:
    types: [authflow.employee.joined.v1, authflow.employee.left.v1, authflow.email.set.v1]
  helpdesk/servicenow:
    types: [authflow.mfa.reset.v1, authflow.tap.issue.v1, authflow.password.reset.v1, authflow.methods.inventory.v1]
  "*":
    types: ["*"]
`

func TestParseSafetyPolicyErrors(t *testing.T) {
	t.Parallel()
	// Line numbers count from the first line of safetySources (9 lines).
	tests := []struct {
		name, yaml string
		line       int
		field, msg string
	}{
		{"notify not a mapping", "notify: user\n", 9, "notify", "must be a mapping"},
		{"notify unknown", "notify:\n  users: all\n", 10, "notify.users", "unknown setting (known: default, sources)"},
		{"bad default", "notify:\n  default: manager\n", 10, "notify.default", `must be user, user+manager or none, not "manager"`},
		{"default not a string", "notify:\n  default: [user]\n", 10, "notify.default", "must be user, user+manager or none"},
		{"unknown source", "notify:\n  sources:\n    hr/sap: none\n", 11, "notify.sources.hr/sap", "not in sources"},
		{"bad source mode", "notify:\n  sources:\n    hr/workday: everyone\n", 11, "notify.sources.hr/workday", "must be user, user+manager or none"},
		{"source list", "notify:\n  sources:\n    hr/workday: [user]\n", 11, "notify.sources.hr/workday", "a mapping of event types to modes"},
		{"empty type map", "notify:\n  sources:\n    hr/workday: {}\n", 11, "notify.sources.hr/workday", "at least one event type"},
		{"unknown type", "notify:\n  sources:\n    hr/workday:\n      authflow.employee.gone.v1: none\n", 12, "notify.sources.hr/workday.authflow.employee.gone.v1", "unknown event type"},
		{"type not sent", "notify:\n  sources:\n    hr/workday:\n      authflow.mfa.reset.v1: none\n", 12, "notify.sources.hr/workday.authflow.mfa.reset.v1", "not in this source's types"},
		{"read-only type", "notify:\n  sources:\n    helpdesk/servicenow:\n      authflow.methods.inventory.v1: user\n", 12, "notify.sources.helpdesk/servicenow.authflow.methods.inventory.v1", "never notified"},
		{"bad type mode", "notify:\n  sources:\n    hr/workday:\n      authflow.employee.left.v1: nobody\n", 12, "notify.sources.hr/workday.authflow.employee.left.v1", "must be user"},
		{"duplicate type", "notify:\n  sources:\n    hr/workday:\n      authflow.employee.left.v1: none\n      authflow.employee.left.v1: user\n", 13, "notify.sources.hr/workday.authflow.employee.left.v1", "duplicate key"},
		{"limits not a list", "limits:\n  name: x\n", 10, "limits", "must be a list"},
		{"limit not a mapping", "limits:\n  - x\n", 10, "limits[0]", "must be a mapping"},
		{"limit without name", "limits:\n  - per: user\n    max: 2\n    window: 24h\n", 10, "limits[0].name", "required"},
		{"bad name", "limits:\n  - name: mfa resets\n    per: user\n    max: 2\n    window: 24h\n", 10, "limits[0].name", "letters, digits"},
		{"without per", "limits:\n  - name: a\n    max: 2\n    window: 24h\n", 10, "limits[0].per", "required"},
		{"bad per", "limits:\n  - name: a\n    per: tenant\n    max: 2\n    window: 24h\n", 11, "limits[0].per", "user, requester, signer or source"},
		{"without max", "limits:\n  - name: a\n    per: user\n    window: 24h\n", 10, "limits[0].max", "required"},
		{"max zero", "limits:\n  - name: a\n    per: user\n    max: 0\n    window: 24h\n", 12, "limits[0].max", "between 1 and 10000"},
		{"max huge", "limits:\n  - name: a\n    per: user\n    max: 10001\n    window: 24h\n", 12, "limits[0].max", "between 1 and 10000"},
		{"max string", "limits:\n  - name: a\n    per: user\n    max: two\n    window: 24h\n", 12, "limits[0].max", "must be an integer"},
		{"without window", "limits:\n  - name: a\n    per: user\n    max: 2\n", 10, "limits[0].window", "required"},
		{"window short", "limits:\n  - name: a\n    per: user\n    max: 2\n    window: 10s\n", 13, "limits[0].window", "between 1m0s and 720h0m0s"},
		{"window not a duration", "limits:\n  - name: a\n    per: user\n    max: 2\n    window: daily\n", 13, "limits[0].window", "must be a duration"},
		{"unknown setting", "limits:\n  - name: a\n    per: user\n    max: 2\n    window: 1h\n    burst: 3\n", 14, "limits[0].burst", "unknown setting"},
		{"unknown type", "limits:\n  - name: a\n    per: user\n    types: [authflow.mfa.rest.v1]\n    max: 2\n    window: 1h\n", 12, "limits[0].types[0]", "unknown event type"},
		{"type wildcard", "limits:\n  - name: a\n    per: user\n    types: [\"*\"]\n    max: 2\n    window: 1h\n", 12, "limits[0].types[0]", "not allowed here"},
		{"unknown source", "limits:\n  - name: a\n    per: source\n    sources: [hr/sap]\n    max: 2\n    window: 1h\n", 12, "limits[0].sources[0]", "not in sources"},
		{"source wildcard", "limits:\n  - name: a\n    per: source\n    sources: [\"*\"]\n    max: 2\n    window: 1h\n", 12, "limits[0].sources[0]", "omit sources"},
		{"duplicate source", "limits:\n  - name: a\n    per: source\n    sources: [hr/workday, hr/workday]\n    max: 2\n    window: 1h\n", 12, "limits[0].sources[1]", "duplicate source"},
		{"type its sources never send", "limits:\n  - name: a\n    per: user\n    sources: [hr/workday]\n    types: [authflow.mfa.reset.v1]\n    max: 2\n    window: 1h\n", 10, "limits[0].types", "none of the rule's sources may send authflow.mfa.reset.v1"},
		{"duplicate name", "limits:\n  - {name: a, per: user, max: 2, window: 1h}\n  - {name: a, per: source, max: 9, window: 1h}\n", 11, "limits[1].name", "duplicate rule name a"},
		{"alias", "limits:\n  - &r {name: a, per: user, max: 2, window: 1h}\n  - *r\n", 10, "limits[0]", "anchors and aliases"},
		{"top level twice", "limits: []\nlimits: []\n", 10, "limits", "duplicate key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := ParsePolicy([]byte(safetySources + tc.yaml))
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

func TestPolicyNotify(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(safetySources + `notify:
  sources:
    helpdesk/servicenow: user+manager
    hr/workday:
      authflow.employee.left.v1: none
      authflow.email.set.v1: user+manager
`))
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParsePolicy([]byte(safetySources + `notify:
  default: none
  sources:
    "*":
      "*": user
      authflow.phone.set.v1: user+manager
`))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ParsePolicy([]byte(safetySources))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		p           *Policy
		source, typ string
		want        NotifyMode
		whyThisCase string
	}{
		{plain, "hr/workday", TypeEmployeeJoined, NotifyUser, "default for every write"},
		{plain, "anything/else", TypePasswordReset, NotifyUser, "default for every write"},
		{plain, "hr/workday", TypeMethodsInventory, NotifyNone, "read-only"},
		{plain, "hr/workday", "authflow.nope.v1", NotifyNone, "unknown type"},
		{DevPolicy(), "helpdesk/x", TypeMFAReset, NotifyUser, "the development policy notifies the user"},
		{p, "helpdesk/servicenow", TypeMFAReset, NotifyUserAndManager, "source-wide"},
		{p, "hr/workday", TypeEmployeeLeft, NotifyNone, "per type"},
		{p, "hr/workday", TypeEmailSet, NotifyUserAndManager, "per type"},
		{p, "hr/workday", TypeEmployeeJoined, NotifyUser, "type not listed: the default"},
		{p, "other", TypePhoneSet, NotifyUser, "source not listed and no *"},
		{q, "hr/workday", TypeEmployeeLeft, NotifyUser, "the * source's *"},
		{q, "other", TypePhoneSet, NotifyUserAndManager, "the * source's type"},
	}
	for _, tc := range tests {
		if got := tc.p.Notify(tc.source, tc.typ); got != tc.want {
			t.Errorf("Notify(%s, %s) = %s, want %s (%s)", tc.source, tc.typ, got, tc.want, tc.whyThisCase)
		}
	}
	r, err := ParsePolicy([]byte(safetySources + "notify:\n  default: none\n"))
	if err != nil || r.Notify("hr/workday", TypeEmployeeLeft) != NotifyNone {
		t.Errorf("default none: %v", err)
	}
}

func TestPolicyLimitChecks(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(safetySources + `limits:
  - name: mfa-resets-per-user
    per: user
    types: [authflow.mfa.reset.v1]
    max: 2
    window: 24h
  - name: helpdesk-agent
    per: requester
    sources: [helpdesk/servicenow]
    max: 20
    window: 1h
  - name: signer-key
    per: signer
    max: 200
    window: 1h
  - name: hr-feed
    per: source
    sources: [hr/workday]
    max: 500
    window: 1h
  - name: inventory
    per: user
    types: [authflow.methods.inventory.v1]
    max: 5
    window: 10m
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.MaxLimitWindow(); got != 24*time.Hour {
		t.Errorf("MaxLimitWindow = %s", got)
	}
	if got := len(p.Limits()); got != 5 {
		t.Errorf("%d rules", got)
	}
	target := Target{ObjectID: "6E7F8A9B-0C1D-4E2F-8A3B-4C5D6E7F8A9C"}
	signer := pub(t, testUserKey(t, 2))
	withSource := func(raw []byte, src string) []byte {
		return []byte(strings.Replace(string(raw), `"source":"hr/workday"`, `"source":"`+src+`"`, 1))
	}
	reset := decodeOK(t, withSource(event(TypeMFAReset, "adele.vance@contoso.com",
		`{"verification":{"ticketId":"INC1","method":"callback","verifiedBy":" Agent.Smith@contoso.com "}}`), "helpdesk/servicenow"))
	unverified := decodeOK(t, withSource(event(TypeMFAReset, "adele.vance@contoso.com", `{}`), "helpdesk/servicenow"))
	dry := decodeOK(t, withSource(event(TypeMFAReset, "adele.vance@contoso.com", `{"dryRun":true}`), "helpdesk/servicenow"))
	joined := decodeOK(t, event(TypeEmployeeJoined, "adele.vance@contoso.com", `{"enableAccount":true}`))
	inventory := decodeOK(t, event(TypeMethodsInventory, "adele.vance@contoso.com", `{}`))
	tests := []struct {
		name   string
		ev     *Event
		signer string
		want   []string // rule=scope
	}{
		{"signed verified reset", reset, signer, []string{
			"mfa-resets-per-user=6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9c", "helpdesk-agent=agent.smith@contoso.com", "signer-key=" + signer}},
		{"unsigned unverified reset", unverified, "", []string{"mfa-resets-per-user=6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9c"}},
		{"dry run counts nowhere", dry, signer, nil},
		{"HR joiner", joined, "", []string{"hr-feed=hr/workday"}},
		{"inventory only where listed", inventory, signer, []string{"inventory=6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9c"}},
	}
	for _, tc := range tests {
		var got []string
		for _, c := range p.LimitChecks(tc.ev, target, tc.signer) {
			got = append(got, c.Rule.Name+"="+c.Scope)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: checks %v, want %v", tc.name, got, tc.want)
		}
	}
	// Without a resolved target, a subject that is an object id still
	// counts by it.
	byID := decodeOK(t, withSource(event(TypeMFAReset, "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9c", `{}`), "helpdesk/servicenow"))
	if c := p.LimitChecks(byID, Target{}, ""); len(c) != 1 || c[0].Scope != "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9c" {
		t.Errorf("by id: %+v", c)
	}
	err = RateLimitError(p.Limits()[0])
	if CodeOf(err) != CodeRateLimited || !strings.Contains(err.Error(), "mfa-resets-per-user") || !strings.Contains(err.Error(), "at most 2 events per 24h0m0s for this user") {
		t.Errorf("RateLimitError = %v", err)
	}
	if info := InfoOf(err); info.Permanent || CodeRateLimited.Status() != StatusRejected {
		t.Errorf("info %+v", info)
	}
}
