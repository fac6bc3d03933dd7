package events

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleResult(t testing.TB) *Result {
	t.Helper()
	worker, recipient := testCurveKey(t, 1), testCurveKey(t, 2)
	sealed, err := Seal(SecretTAP, []byte("hG7#kd2Q"), pub(t, recipient), worker)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 9, 0, 0, 180_000_000, time.UTC)
	r := NewResult(EventKey("hr/workday", "e-1"), "adele.vance@contoso.com", ResultData{
		Event:  EventRef{Source: "hr/workday", ID: "e-1", Type: TypeEmployeeJoined},
		User:   UserInfo{Ref: "adele.vance@contoso.com", ObjectID: "5a0e8c8b-3d5f-4f6e-9b1a-2c3d4e5f6071"},
		Status: StatusFailed,
		Operations: []OpResult{
			{Op: OpEnsurePhone, MethodKind: KindPhone, MethodID: "3179e48a-750b-4051-897c-87b9720928f7", Outcome: OutcomeCreated, Detail: "mobile " + MaskPhone("+1 4255550100")},
			{Op: OpReadMethods, Outcome: OutcomeUnchanged, Methods: []MethodSummary{{Kind: KindPassword, ID: "28c10230-6103-485e-b985-444c60001490", CreatedAt: at.Add(-time.Hour)}, {Kind: KindAuthenticator, ID: "6803c096", DisplayName: "Adele's iPhone"}}},
			{Op: OpSetSMSSignIn, MethodKind: KindPhone, Outcome: OutcomeFailed, Error: InfoOf(&Error{Code: CodeGraphPermanent, Message: "Graph 400 badRequest"})},
			{Op: OpIssueTAP, MethodKind: KindTAP, MethodID: "6f1967b7-15e8-4935-ac26-d50770ed07a7", Outcome: OutcomeSkipped, Secret: sealed},
		},
		Error:      InfoOf(&Error{Code: CodeGraphPermanent, Message: "operation 3 failed"}),
		Extensions: Extensions{"comexampleticket": json.RawMessage(`"INC0012345"`), "priority": json.RawMessage(`5`), "urgent": json.RawMessage(`true`)},
		Attempts:   2,
		ReceivedAt: at,
		StartedAt:  at.Add(35 * time.Millisecond),
		FinishedAt: at.Add(970 * time.Millisecond),
		DurationMs: 970,
	}, at.Add(time.Second))
	r.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	return r
}

func TestResultRoundTrip(t *testing.T) {
	t.Parallel()
	r := sampleResult(t)
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeResult(b)
	if err != nil {
		t.Fatalf("DecodeResult(%s): %v", b, err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip changed the result:\n%+v\n%+v", back, r)
	}
	b2, err := back.Marshal()
	if err != nil || string(b2) != string(b) {
		t.Errorf("re-marshal differs:\n%s\n%s", b2, b)
	}
	// A rejected result with nothing but the error.
	rej := NewResult("dlq-42", "", ResultData{Status: StatusRejected, Error: InfoOf(&Error{Code: CodeInvalidEvent, Message: "x"})}, time.Now())
	b, err = rej.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"operations":[]`) || strings.Contains(string(b), "startedAt") || strings.Contains(string(b), `"subject"`) {
		t.Errorf("rejected result JSON: %s", b)
	}
	if _, err := DecodeResult(b); err != nil {
		t.Errorf("DecodeResult(rejected): %v", err)
	}
	// nil Operations marshal as [].
	rej.Data.Operations = nil
	if b, err := rej.Marshal(); err != nil || !strings.Contains(string(b), `"operations":[]`) {
		t.Errorf("nil operations: %s, %v", b, err)
	}
}

func TestResultValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(r *Result)
		field  string
	}{
		{"spec version", func(r *Result) { r.SpecVersion = "0.3" }, "specversion"},
		{"type", func(r *Result) { r.Type = TypeEmployeeJoined }, "type"},
		{"content type", func(r *Result) { r.DataContentType = "" }, "datacontenttype"},
		{"no time", func(r *Result) { r.Time = time.Time{} }, "time"},
		{"no id", func(r *Result) { r.ID = "" }, "id"},
		{"id with newline", func(r *Result) { r.ID = "a\nb" }, "id"},
		{"no source", func(r *Result) { r.Source = "" }, "source"},
		{"bad subject", func(r *Result) { r.Subject = "a/b@contoso.com" }, "subject"},
		{"bad traceparent", func(r *Result) { r.TraceParent = "x" }, "traceparent"},
		{"bad event source", func(r *Result) { r.Data.Event.Source = "hr workday" }, "data.event.source"},
		{"bad event type", func(r *Result) { r.Data.Event.Type = "Employee Joined" }, "data.event.type"},
		{"bad user ref", func(r *Result) { r.Data.User.Ref = "x" }, "data.user.ref"},
		{"bad user object id", func(r *Result) { r.Data.User.ObjectID = "adele@contoso.com" }, "data.user.objectId"},
		{"bad status", func(r *Result) { r.Data.Status = "done" }, "data.status"},
		{"failed without error", func(r *Result) { r.Data.Error = nil }, "data.error"},
		{"succeeded with error", func(r *Result) { r.Data.Status = StatusSucceeded }, "data.error"},
		{"unknown error code", func(r *Result) { r.Data.Error.Code = "oops" }, "data.error.code"},
		{"negative attempts", func(r *Result) { r.Data.Attempts = -1 }, "data.attempts"},
		{"negative duration", func(r *Result) { r.Data.DurationMs = -1 }, "data.durationMs"},
		{"unknown op", func(r *Result) { r.Data.Operations[0].Op = "deleteUser" }, "data.operations[0].op"},
		{"unknown outcome", func(r *Result) { r.Data.Operations[0].Outcome = "done" }, "data.operations[0].outcome"},
		{"unknown method kind", func(r *Result) { r.Data.Operations[0].MethodKind = "sms" }, "data.operations[0].methodKind"},
		{"method id with slash", func(r *Result) { r.Data.Operations[0].MethodID = "a/b" }, "data.operations[0].methodId"},
		{"detail with newline", func(r *Result) { r.Data.Operations[0].Detail = "ok\nforged log line" }, "data.operations[0].detail"},
		{"failed op without error", func(r *Result) { r.Data.Operations[2].Error = nil }, "data.operations[2].error"},
		{"ok op with error", func(r *Result) { r.Data.Operations[0].Error = InfoOf(errors.New("x")) }, "data.operations[0].error"},
		{"secret kind", func(r *Result) { r.Data.Operations[3].Secret.Kind = "plain" }, "data.operations[3].secret.kind"},
		{"secret recipient", func(r *Result) { r.Data.Operations[3].Secret.Recipient = "bob" }, "data.operations[3].secret.recipient"},
		{"secret sender", func(r *Result) { r.Data.Operations[3].Secret.Sender = hrKey }, "data.operations[3].secret.sender"},
		{"secret not base64", func(r *Result) { r.Data.Operations[3].Secret.Ciphertext = "hG7#kd2Q" }, "data.operations[3].secret.ciphertext"},
		{"secret empty", func(r *Result) { r.Data.Operations[3].Secret.Ciphertext = "" }, "data.operations[3].secret.ciphertext"},
		{"method summary kind", func(r *Result) { r.Data.Operations[1].Methods[0].Kind = "sms" }, "data.operations[1].methods[0].kind"},
		{"method summary id", func(r *Result) { r.Data.Operations[1].Methods[0].ID = "" }, "data.operations[1].methods[0].id"},
		{"method summary name", func(r *Result) { r.Data.Operations[1].Methods[1].DisplayName = "\u202eenohPi" }, "data.operations[1].methods[1].displayName"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := sampleResult(t)
			tc.change(r)
			_, err := r.Marshal()
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeInvalidEvent || e.Field != tc.field {
				t.Errorf("Marshal = %v, want invalid_event on %s", err, tc.field)
			}
		})
	}
}

func TestResultMarshalNormalizes(t *testing.T) {
	t.Parallel()
	r := sampleResult(t)
	r.Data.Error = &ErrorInfo{Code: CodeRetriesExhausted, Permanent: true, Message: strings.Repeat("é", 600)}
	r.Data.Operations[2].Error = &ErrorInfo{Code: CodeGraphPermanent}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if e := back.Data.Error; e.Permanent || len([]rune(e.Message)) != maxMessageLen {
		t.Errorf("error not normalised: permanent %v, %d characters", e.Permanent, len([]rune(e.Message)))
	}
	if e := back.Data.Operations[2].Error; e.Message != string(CodeGraphPermanent) || !e.Permanent {
		t.Errorf("operation error not normalised: %+v", e)
	}
	// The caller's result is left as it was.
	if !r.Data.Error.Permanent || r.Data.Operations[2].Error.Message != "" {
		t.Error("Marshal changed its receiver")
	}
	// DecodeResult stays strict: an inconsistent permanent flag is refused.
	bad := strings.Replace(string(b), `"permanent":false`, `"permanent":true`, 1)
	if _, err := DecodeResult([]byte(bad)); CodeOf(err) != CodeInvalidEvent {
		t.Errorf("DecodeResult accepted permanent:true for retries_exhausted: %v", err)
	}
}

func TestDecodeResultRejects(t *testing.T) {
	t.Parallel()
	good, err := sampleResult(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s := string(good)
	tests := []struct {
		name string
		raw  string
		code Code
	}{
		{"truncated", s[:len(s)-5], CodeInvalidEvent},
		{"unknown field", strings.Replace(s, `"attempts":2`, `"attempts":2,"extra":1`, 1), CodeInvalidEvent},
		{"duplicate key", strings.Replace(s, `"attempts":2`, `"attempts":2,"attempts":3`, 1), CodeInvalidEvent},
		{"attempts missing", strings.Replace(s, `"attempts":2,`, ``, 1), CodeInvalidEvent},
		{"duration missing", strings.Replace(s, `,"durationMs":970`, ``, 1), CodeInvalidEvent},
		{"operations missing", strings.Replace(s, `"operations":[`, `"operationz":[`, 1), CodeInvalidEvent},
		{"user missing", strings.Replace(s, `"user":{"ref":"adele.vance@contoso.com","objectId":"5a0e8c8b-3d5f-4f6e-9b1a-2c3d4e5f6071"},`, ``, 1), CodeInvalidEvent},
		{"plaintext secret field", strings.Replace(s, `"secret":{`, `"secret":{"value":"hG7#kd2Q",`, 1), CodeInvalidEvent},
		{"attempts fraction", strings.Replace(s, `"attempts":2`, `"attempts":2.5`, 1), CodeInvalidEvent},
		{"too large", `{"pad":"` + strings.Repeat("x", maxResultBytes) + `"}`, CodePayloadTooLarge},
		{"extension with a core name", strings.Replace(s, `"extensions":{`, `"extensions":{"data":"x",`, 1), CodeInvalidEvent},
		{"extension with a bad name", strings.Replace(s, `"extensions":{`, `"extensions":{"Ticket":"x",`, 1), CodeInvalidEvent},
		{"extension null", strings.Replace(s, `"extensions":{`, `"extensions":{"a":null,`, 1), CodeInvalidEvent},
		{"extension object", strings.Replace(s, `"extensions":{`, `"extensions":{"a":{},`, 1), CodeInvalidEvent},
		{"extension fraction", strings.Replace(s, `"priority":5`, `"priority":5.5`, 1), CodeInvalidEvent},
		{"extensions not an object", strings.Replace(s, `"extensions":{`, `"extensions":[{`, 1), CodeInvalidEvent},
		{"17 extensions", strings.Replace(s, `"extensions":{`, `"extensions":{"a1":1,"a2":1,"a3":1,"a4":1,"a5":1,"a6":1,"a7":1,"a8":1,"a9":1,"a10":1,"a11":1,"a12":1,"a13":1,"a14":1,`, 1), CodeInvalidEvent},
		{"an event, not a result", string(event(TypeMethodsInventory, "a@contoso.com", `{}`)), CodeInvalidEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.raw == s {
				t.Fatal("the case did not change the input")
			}
			if _, err := DecodeResult([]byte(tc.raw)); CodeOf(err) != tc.code {
				t.Errorf("DecodeResult = %v, want %s", err, tc.code)
			}
		})
	}
}

func TestResultEnums(t *testing.T) {
	t.Parallel()
	for _, s := range []Status{StatusSucceeded, StatusFailed, StatusRejected} {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	for _, o := range []Outcome{OutcomeCreated, OutcomeUpdated, OutcomeDeleted, OutcomeUnchanged, OutcomeSkipped, OutcomeFailed} {
		if !o.Valid() {
			t.Errorf("%s not valid", o)
		}
	}
	if Status("ok").Valid() || Outcome("ok").Valid() || OpKind("ok").Valid() {
		t.Error("unknown values are valid")
	}
	if len(OpKinds()) != 18 || len(MethodKinds()) != 11 {
		t.Errorf("%d op kinds, %d method kinds", len(OpKinds()), len(MethodKinds()))
	}
}

func TestResultExtensionsCanonical(t *testing.T) {
	t.Parallel()
	for _, x := range []Extensions{
		{"priority": json.RawMessage(`5.0`)},
		{"ticket": json.RawMessage(` "a"`)},
		{"ticket": json.RawMessage(`"\u0041"`)},
		{"ticket": json.RawMessage(`"a\nb"`)},
		{"data": json.RawMessage(`"a"`)},
		{"Ticket": json.RawMessage(`"a"`)},
		{"ticket": json.RawMessage(`{"a":1}`)},
		{"ticket": json.RawMessage(`"a"x`)},
	} {
		r := sampleResult(t)
		r.Data.Extensions = x
		if b, err := r.Marshal(); CodeOf(err) != CodeInvalidEvent {
			t.Errorf("Marshal with extensions %v = %s, %v; want invalid_event", x, b, err)
		}
	}
	// What the decoder stores is canonical.
	ev := decodeOK(t, without("data", `"data":{},"n":4.2e1,"s":"<a & b>","b":false`))
	r := sampleResult(t)
	r.Data.Extensions = ev.Extensions
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json escapes <, > and & in every result string alike.
	if !strings.Contains(string(b), `"extensions":{"b":false,"n":42,"s":"\u003ca \u0026 b\u003e"}`) {
		t.Errorf("result extensions: %s", b)
	}
	back, err := DecodeResult(b)
	if err != nil || !reflect.DeepEqual(back.Data.Extensions, ev.Extensions) {
		t.Errorf("DecodeResult: %v, extensions %v", err, back.Data.Extensions)
	}
}
