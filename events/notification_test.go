package events

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

const notifyUserID = "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9c"

// resultFor builds the result a worker would publish for ev with ops.
func resultFor(ev *Event, status Status, info *ErrorInfo, ops ...OpResult) *Result {
	fin := time.Date(2026, 11, 26, 9, 0, 3, 0, time.UTC)
	return NewResult(ResultID(ev.Source, ev.ID, nil, 0), ev.Subject, ResultData{
		Event: ev.Ref(), Status: status, Error: info, Operations: ops, DryRun: ev.DryRun,
		User:       UserInfo{Ref: ev.Subject, ObjectID: notifyUserID, UPN: "adele.vance@contoso.com"},
		Provenance: &Provenance{Source: ev.Source, TicketID: "INC0012345", Method: VerifiedByCallback, VerifiedBy: "agent.smith@contoso.com"},
		ReceivedAt: fin.Add(-2 * time.Second), FinishedAt: fin,
	}, fin)
}

func TestNewNotification(t *testing.T) {
	t.Parallel()
	phone := decodeOK(t, event(TypePhoneSet, "adele.vance@contoso.com", `{"phoneType":"mobile","phoneNumber":"+1 4255550100"}`))
	email := decodeOK(t, event(TypeEmailSet, "adele.vance@contoso.com", `{"emailAddress":"Adele.Home@Fabrikam.com"}`))
	inventory := decodeOK(t, event(TypeMethodsInventory, "adele.vance@contoso.com", `{}`))
	dry := decodeOK(t, event(TypePhoneRemove, "adele.vance@contoso.com", `{"phoneType":"office","dryRun":true}`))
	reset := decodeOK(t, event(TypeMFAReset, "adele.vance@contoso.com", `{}`))
	created := OpResult{Op: OpEnsurePhone, MethodKind: KindPhone, Outcome: OutcomeCreated, Detail: "mobile +1 ******0100", MethodID: "3179e48a-750b-4051-897c-87b9720928f7"}
	unchanged := OpResult{Op: OpEnsurePhone, MethodKind: KindPhone, Outcome: OutcomeUnchanged, Detail: "mobile +1 ******0100"}
	emailSet := OpResult{Op: OpEnsureEmail, MethodKind: KindEmail, Outcome: OutcomeCreated, Detail: "A***@Fabrikam.com"}
	limited := &ErrorInfo{Code: CodeRateLimited, Message: "limit mfa-resets-per-user reached", Permanent: false}
	tests := []struct {
		name    string
		ev      *Event
		res     *Result
		mode    NotifyMode
		want    bool
		reason  string
		changes int
		exclude []string
	}{
		{"a created phone", phone, resultFor(phone, StatusSucceeded, nil, created), NotifyUser, true, ReasonChanged, 1, nil},
		{"manager too", phone, resultFor(phone, StatusSucceeded, nil, created), NotifyUserAndManager, true, ReasonChanged, 1, nil},
		{"mode none", phone, resultFor(phone, StatusSucceeded, nil, created), NotifyNone, false, "", 0, nil},
		{"invalid mode", phone, resultFor(phone, StatusSucceeded, nil, created), "everyone", false, "", 0, nil},
		{"nothing changed", phone, resultFor(phone, StatusSucceeded, nil, unchanged), NotifyUser, false, "", 0, nil},
		{"read-only", inventory, resultFor(inventory, StatusSucceeded, nil, OpResult{Op: OpReadMethods, Outcome: OutcomeUnchanged}), NotifyUser, false, "", 0, nil},
		{"dry run", dry, resultFor(dry, StatusSucceeded, nil, OpResult{Op: OpRemovePhone, MethodKind: KindPhone, Outcome: OutcomeDeleted}), NotifyUser, false, "", 0, nil},
		{"policy rejection", phone, resultFor(phone, StatusRejected, &ErrorInfo{Code: CodePolicyDenied, Message: "no", Permanent: true}), NotifyUser, false, "", 0, nil},
		{"rate limited", reset, resultFor(reset, StatusRejected, limited), NotifyUser, true, ReasonRateLimited, 0, nil},
		{"failed half way", reset, resultFor(reset, StatusFailed, &ErrorInfo{Code: CodeRetriesExhausted, Message: "Graph 503"},
			OpResult{Op: OpRemoveAllMethods, Outcome: OutcomeDeleted, Detail: "3 methods"},
			OpResult{Op: OpRevokeSessions, Outcome: OutcomeFailed, Error: &ErrorInfo{Code: CodeRetriesExhausted, Message: "Graph 503"}}),
			NotifyUser, true, ReasonChanged, 1, nil},
		{"the email it set is excluded", email, resultFor(email, StatusSucceeded, nil, emailSet), NotifyUser, true, ReasonChanged, 1,
			[]string{AddressDigest("adele.home@fabrikam.com")}},
		{"an unchanged email is no change", email, resultFor(email, StatusSucceeded, nil, OpResult{Op: OpEnsureEmail, MethodKind: KindEmail, Outcome: OutcomeUnchanged}),
			NotifyUser, false, "", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, ok := NewNotification(tc.ev, tc.res, tc.mode)
			if ok != tc.want {
				t.Fatalf("NewNotification ok = %v, want %v", ok, tc.want)
			}
			if !ok {
				return
			}
			d := n.Data
			if d.Reason != tc.reason || len(d.Changes) != tc.changes || d.Notify != tc.mode {
				t.Errorf("reason %q changes %d notify %q; want %q %d %q", d.Reason, len(d.Changes), d.Notify, tc.reason, tc.changes, tc.mode)
			}
			if n.ID != tc.res.ID+":notify" || d.Result != tc.res.ID || n.Subject != tc.ev.Subject {
				t.Errorf("id %q result %q subject %q", n.ID, d.Result, n.Subject)
			}
			if strings.Join(d.Exclude, ",") != strings.Join(tc.exclude, ",") {
				t.Errorf("exclude %v, want %v", d.Exclude, tc.exclude)
			}
			if !d.OccurredAt.Equal(tc.res.Data.FinishedAt) || d.User.ObjectID != notifyUserID || d.Provenance.TicketID != "INC0012345" {
				t.Errorf("data %+v", d)
			}
			b, err := n.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			for _, secret := range []string{"4255550100", "Adele.Home", "adele.home"} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("notification shows %q: %s", secret, b)
				}
			}
			if ok, err := validates(schemas(t).notification, b); !ok {
				t.Errorf("notification does not validate against notification.json: %v\n%s", err, b)
			}
			back, err := DecodeNotification(b)
			if err != nil {
				t.Fatalf("DecodeNotification: %v\n%s", err, b)
			}
			again, _ := back.Marshal()
			if !bytes.Equal(again, b) {
				t.Errorf("round trip changed the notification:\n%s\n%s", b, again)
			}
		})
	}
}

// TestNotificationDeterministic: the notification depends on the result
// only, so one published again after a crash (from the result the ledger
// kept) is byte-identical and deduplicated by its id.
func TestNotificationDeterministic(t *testing.T) {
	t.Parallel()
	ev := decodeOK(t, event(TypeEmailSet, "adele.vance@contoso.com", `{"emailAddress":"adele.home@fabrikam.com"}`))
	res := resultFor(ev, StatusSucceeded, nil, OpResult{Op: OpEnsureEmail, MethodKind: KindEmail, Outcome: OutcomeUpdated, Detail: "a***@fabrikam.com"})
	body, err := res.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := DecodeResult(body)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewNotification(ev, res, NotifyUser)
	b, _ := NewNotification(ev, stored, NotifyUser)
	ab, _ := a.Marshal()
	bb, _ := b.Marshal()
	if !bytes.Equal(ab, bb) {
		t.Errorf("notifications differ:\n%s\n%s", ab, bb)
	}
	if !a.Excluded("ADELE.HOME@fabrikam.com ") || a.Excluded("adele.vance@contoso.com") {
		t.Errorf("Excluded: %v", a.Data.Exclude)
	}
	other := *ev
	other.ID = "e-2"
	c, _ := NewNotification(&other, resultFor(&other, StatusSucceeded, nil, res.Data.Operations...), NotifyUser)
	if c.ID == a.ID {
		t.Errorf("two events share notification id %s", c.ID)
	}
}

func TestDecodeNotificationBad(t *testing.T) {
	t.Parallel()
	ev := decodeOK(t, event(TypePhoneSet, "adele.vance@contoso.com", `{"phoneType":"mobile","phoneNumber":"+1 4255550100"}`))
	n, _ := NewNotification(ev, resultFor(ev, StatusSucceeded, nil, OpResult{Op: OpEnsurePhone, MethodKind: KindPhone, Outcome: OutcomeCreated, Detail: "mobile +1 ******0100"}), NotifyUser)
	good, err := n.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	tests := []struct {
		name, field string
		raw         []byte
	}{
		{"not JSON", "", []byte(`{"specversion":`)},
		{"duplicate key", "", bytes.Replace(good, []byte(`"specversion":"1.0"`), []byte(`"specversion":"1.0","specversion":"1.0"`), 1)},
		{"unknown field", "data.extra", edit(func(m map[string]any) { data(m)["extra"] = true })},
		{"wrong type", "type", edit(func(m map[string]any) { m["type"] = TypeResult })},
		{"wrong source", "source", edit(func(m map[string]any) { m["source"] = "hr/workday" })},
		{"id not of the result", "id", edit(func(m map[string]any) { m["id"] = "something:notify" })},
		{"no object id", "data.user.objectId", edit(func(m map[string]any) { delete(data(m)["user"].(map[string]any), "objectId") })},
		{"changed without changes", "data.changes", edit(func(m map[string]any) { data(m)["changes"] = []any{} })},
		{"missing changes", "data.changes", edit(func(m map[string]any) { delete(data(m), "changes") })},
		{"unchanged listed", "data.changes[0].outcome", edit(func(m map[string]any) {
			data(m)["changes"].([]any)[0].(map[string]any)["outcome"] = "unchanged"
		})},
		{"bad reason", "data.reason", edit(func(m map[string]any) { data(m)["reason"] = "because" })},
		{"notify none", "data.notify", edit(func(m map[string]any) { data(m)["notify"] = "none" })},
		{"clear address", "data.exclude[0]", edit(func(m map[string]any) { data(m)["exclude"] = []any{"adele@fabrikam.com"} })},
		{"error on success", "data.error", edit(func(m map[string]any) {
			data(m)["error"] = map[string]any{"code": "internal", "message": "x", "permanent": false}
		})},
		{"control character in detail", "data.changes[0].detail", edit(func(m map[string]any) {
			data(m)["changes"].([]any)[0].(map[string]any)["detail"] = "mobile\n+1"
		})},
		{"too large", "", append(bytes.Repeat([]byte(" "), 64<<10), good...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := DecodeNotification(tc.raw)
			if err == nil {
				t.Fatalf("DecodeNotification accepted %s", tc.raw)
			}
			if e, ok := err.(*Error); !ok || (tc.field != "" && e.Field != tc.field) {
				t.Errorf("err = %v (field %q), want field %q", err, CodeOf(err), tc.field)
			}
			// What JSON Schema cannot express: duplicate keys, the size
			// limit, the id's tie to the result's.
			schemaBlind := map[string]bool{"duplicate key": true, "too large": true, "id not of the result": true}
			if ok, _ := validates(schemas(t).notification, tc.raw); ok && !schemaBlind[tc.name] {
				t.Errorf("notification.json accepts what the decoder refuses: %s", tc.raw)
			}
		})
	}
}

// TestDocNotification: the example in docs/events.md validates against
// notification.json, decodes, and is what NewNotification makes of its
// result (id, result, user, masked changes).
func TestDocNotification(t *testing.T) {
	t.Parallel()
	var found bool
	for _, b := range docBlocks(t) {
		if b.kind != "example notification" {
			continue
		}
		found = true
		if ok, err := validates(schemas(t).notification, b.body); !ok {
			t.Errorf("docs/events.md:%d: example notification does not validate: %v", b.line, err)
		}
		n, err := DecodeNotification(b.body)
		if err != nil {
			t.Fatalf("docs/events.md:%d: %v", b.line, err)
		}
		if n.ID != NotificationID(ResultID(n.Data.Event.Source, n.Data.Event.ID, nil, 0)) || n.Data.Result != ResultID(n.Data.Event.Source, n.Data.Event.ID, nil, 0) {
			t.Errorf("docs/events.md:%d: id %s and result %s do not follow from the event", b.line, n.ID, n.Data.Result)
		}
		for _, c := range n.Data.Changes {
			if regexp.MustCompile(`[0-9]{5}`).MatchString(c.Detail) {
				t.Errorf("docs/events.md:%d: unmasked number in %q", b.line, c.Detail)
			}
		}
	}
	if !found {
		t.Fatal("docs/events.md has no example notification")
	}
}
