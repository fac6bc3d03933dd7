package events

import (
	"errors"
	"strings"
	"testing"
)

// TestUnknownFieldListsAllowed: an unknown data field is invalid_event at
// its path, and the message lists the fields allowed there and, for a name
// the other event types use (mobilePhone vs phoneNumber, email vs
// emailAddress), which one is meant.
func TestUnknownFieldListsAllowed(t *testing.T) {
	for _, c := range []struct {
		name, typ, data, field string
		want                   []string // parts of the message
	}{
		{"email in email.set", TypeEmailSet, `{"email":"a@example.org"}`, "data.email",
			[]string{"the fields here are dryRun, verification, effectiveAt, emailAddress", `authflow.email.set.v1 takes "emailAddress"`}},
		{"emailAddress in a flow", TypeEmployeeJoined, `{"emailAddress":"a@example.org"}`, "data.emailAddress",
			[]string{"mobilePhone, alternateMobilePhone, officePhone, smsSignIn, email, tap", `the flows take "email"`}},
		{"mobilePhone in phone.set", TypePhoneSet, `{"mobilePhone":"+1 4255550100"}`, "data.mobilePhone",
			[]string{"phoneType, phoneNumber", `"phoneType":"mobile" and "phoneNumber"`}},
		{"officePhone in phone.set", TypePhoneSet, `{"officePhone":"+1 4255550100"}`, "data.officePhone",
			[]string{`"phoneType":"office" and "phoneNumber"`}},
		{"phoneNumber in a flow", TypeEmployeeMoved, `{"phoneNumber":"+1 4255550100"}`, "data.phoneNumber",
			[]string{"mobilePhone", `the flows take "mobilePhone", "alternateMobilePhone" and "officePhone"`}},
		{"nested", TypeTAPIssue, `{"sealTo":"` + testSealTo + `","lifetime":60}`, "data.lifetime",
			[]string{"lifetimeInMinutes, usableOnce, startDateTime, sealTo"}},
		{"no alias", TypePhoneRemove, `{"kind":"mobile"}`, "data.kind",
			[]string{"the fields here are dryRun, verification, effectiveAt, phoneType"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := (Decoder{}).Decode(event(c.typ, "adele@contoso.example", c.data))
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidEvent || e.Field != c.field {
				t.Fatalf("err = %v, want invalid_event at %s", err, c.field)
			}
			for _, w := range c.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q lacks %q", e.Message, w)
				}
			}
			if strings.Contains(e.Message, "4255550100") || strings.Contains(e.Message, "a@example.org") {
				t.Errorf("message echoes the value: %q", e.Message)
			}
		})
	}
}
