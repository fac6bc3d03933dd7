package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// demoUser is a user `authflow dev` seeds into the Graph emulator. The ids
// and UPNs are fixed and documented (docs/cli.md) so that events can be
// sent to them by hand.
type demoUser struct {
	id, upn, display, story string
	methods                 []string // Graph JSON of each method, in registration order
	roles                   []string // directory roles held
}

// demoUsers returns the seeded users. The first MFA-capable method seeded
// (the mobile phone, for everyone who has one) becomes the default.
func demoUsers() []demoUser {
	return []demoUser{
		{
			id: "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0001", upn: "adele.vance@contoso.example", display: "Adele Vance",
			story: "new hire: no methods yet",
		},
		{
			id: "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0002", upn: "alex.wilber@contoso.example", display: "Alex Wilber",
			story: "moves team: mobile phone and SSPR email",
			methods: []string{
				`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550101","phoneType":"mobile"}`,
				`{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"alex.wilber@fabrikam.example"}`,
			},
		},
		{
			id: "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0003", upn: "lee.gu@contoso.example", display: "Lee Gu",
			story: `lost phone: mobile phone, Authenticator on "Pixel 8", Windows Hello on "LEE-LAPTOP"`,
			methods: []string{
				`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550103","phoneType":"mobile"}`,
				`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","displayName":"Pixel 8","deviceTag":"SoftwareTokenActivated","phoneAppVersion":"6.2409.6389"}`,
				`{"@odata.type":"#microsoft.graph.windowsHelloForBusinessAuthenticationMethod","displayName":"LEE-LAPTOP","keyStrength":"normal"}`,
			},
		},
		{
			id: "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0004", upn: "nestor.wilke@contoso.example", display: "Nestor Wilke",
			story: "MFA reset: mobile phone, Authenticator, software OATH token, SSPR email",
			methods: []string{
				`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550104","phoneType":"mobile"}`,
				`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","displayName":"iPhone 15","deviceTag":"SoftwareTokenActivated","phoneAppVersion":"6.8.12"}`,
				`{"@odata.type":"#microsoft.graph.softwareOathAuthenticationMethod"}`,
				`{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":"nestor.wilke@fabrikam.example"}`,
			},
		},
		{
			id: "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0005", upn: "diego.siciliani@contoso.example", display: "Diego Siciliani",
			story: "leaver: mobile phone, FIDO2 key, Authenticator",
			methods: []string{
				`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550105","phoneType":"mobile"}`,
				`{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","displayName":"YubiKey 5 NFC","model":"YubiKey 5 NFC","aaGuid":"2fc0579f-8113-47ea-b116-bb5a8db9202a"}`,
				`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","displayName":"Galaxy S24","deviceTag":"SoftwareTokenActivated","phoneAppVersion":"6.2409.6389"}`,
			},
		},
		{
			id: demoAdminID, upn: demoAdminUPN, display: "Megan Bowen",
			story: "administrator (Global Administrator): an MFA reset waits for approval",
			methods: []string{
				`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":"+1 4255550106","phoneType":"mobile"}`,
				`{"@odata.type":"#microsoft.graph.fido2AuthenticationMethod","displayName":"YubiKey 5C","model":"YubiKey 5C","aaGuid":"ee882879-721c-4913-9775-3dfcce97072a"}`,
			},
			roles: []string{"Global Administrator"},
		},
	}
}

// The demo administrator: the development policy holds an MFA reset of a
// role holder back for approval (events.DevPolicyWith).
const (
	demoAdminID  = "3b1f8a52-6c0e-4d2a-9f4b-7e5d1c2a0006"
	demoAdminUPN = "megan.bowen@contoso.example"
)

// seedDemoUsers puts the demo users into the emulator, replacing them if
// they exist.
func seedDemoUsers(emu *graphclienttest.Emulator) error {
	enabled := true
	for _, du := range demoUsers() {
		u := graphclienttest.User{
			ID: du.id, UserPrincipalName: du.upn, DisplayName: du.display,
			UserType: "Member", AccountEnabled: &enabled, DirectoryRoles: du.roles,
		}
		for _, m := range du.methods {
			u.Methods = append(u.Methods, json.RawMessage(m))
		}
		if err := emu.PutUser(u); err != nil {
			return fmt.Errorf("seed demo user %s: %w", du.upn, err)
		}
	}
	return nil
}

// demoEvent is one event of the demo and the result it must get.
type demoEvent struct {
	name    string
	typ     string
	source  string
	subject string
	data    string
	want    events.Status
	dryRun  bool
}

// demoEvents returns the demo: one event of each flow, an invalid event and
// a dry run. sealTo is the curve public key the TAP is sealed to.
func demoEvents(sealTo string) []demoEvent {
	return []demoEvent{
		{
			name: "joined with a TAP", typ: events.TypeEmployeeJoined, source: "hr/demo", subject: "adele.vance@contoso.example",
			// A national number, as HR systems send them: read in the default region (US).
			data: fmt.Sprintf(`{"mobilePhone":"425-555-0100","email":"adele.vance@fabrikam.example","tap":{"lifetimeInMinutes":60,"usableOnce":true,"sealTo":%q}}`, sealTo),
			want: events.StatusSucceeded,
		},
		{
			name: "moved", typ: events.TypeEmployeeMoved, source: "hr/demo", subject: "alex.wilber@contoso.example",
			data: `{"mobilePhone":"+1 425 555 0110","officePhone":"+1 425 555 0111","email":"alex.wilber@contoso-partners.example","revokeSessions":true}`,
			want: events.StatusSucceeded,
		},
		{
			name: "device lost", typ: events.TypeDeviceLost, source: "helpdesk/demo", subject: "lee.gu@contoso.example",
			data: `{"device":{"displayName":"Pixel 8"}}`,
			want: events.StatusSucceeded,
		},
		{
			name: "MFA reset", typ: events.TypeMFAReset, source: "helpdesk/demo", subject: "nestor.wilke@contoso.example",
			data: `{"verification":{"ticketId":"INC-1042","method":"callback","verifiedBy":"helpdesk agent"}}`,
			want: events.StatusSucceeded,
		},
		{
			name: "left", typ: events.TypeEmployeeLeft, source: "hr/demo", subject: "diego.siciliani@contoso.example",
			data: `{}`,
			want: events.StatusSucceeded,
		},
		{
			name: "invalid event", typ: events.TypeEmployeeJoined, source: "hr/demo", subject: "adele.vance@contoso.example",
			data: `{"mobilePhone":"call me maybe"}`,
			want: events.StatusRejected,
		},
		{
			name: "dry run", typ: events.TypeMFAReset, source: "helpdesk/demo", subject: "alex.wilber@contoso.example",
			data: `{}`, dryRun: true,
			want: events.StatusSucceeded,
		},
	}
}

// demoTracker matches results to the demo events by source and id.
type demoTracker struct {
	pending map[string]demoEvent // by source + "\x00" + id
	done    []string             // names, in arrival order
	wrong   []string             // what did not match expectations
	total   int
}

func newDemoTracker() *demoTracker {
	return &demoTracker{pending: map[string]demoEvent{}}
}

func (t *demoTracker) expect(source, id string, ev demoEvent) {
	t.pending[source+"\x00"+id] = ev
	t.total++
}

// observe records a result; it reports whether the result was one of the demo's.
func (t *demoTracker) observe(r *events.Result) bool {
	k := r.Data.Event.Source + "\x00" + r.Data.Event.ID
	ev, ok := t.pending[k]
	if !ok {
		return false
	}
	delete(t.pending, k)
	t.done = append(t.done, ev.name)
	if r.Data.Status != ev.want || r.Data.DryRun != ev.dryRun {
		t.wrong = append(t.wrong, fmt.Sprintf("%s: got %s (dry run %t), want %s (dry run %t)", ev.name, r.Data.Status, r.Data.DryRun, ev.want, ev.dryRun))
	}
	return true
}

func (t *demoTracker) complete() bool { return len(t.pending) == 0 }

func (t *demoTracker) missing() []string {
	var out []string
	for _, ev := range demoEvents("") { // stable order
		for _, p := range t.pending {
			if p.name == ev.name {
				out = append(out, ev.name)
			}
		}
	}
	return out
}

// demoTimeout bounds how long --exit-after-demo waits for the results.
const demoTimeout = 60 * time.Second
