package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range badCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Decoder{DefaultRegion: "US"}
			if tc.region == "-" {
				d.DefaultRegion = ""
			}
			ev, err := d.Decode(tc.raw)
			if err == nil {
				t.Fatalf("Decode accepted %q: %+v", tc.raw, ev)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if e.Code != tc.code || e.Field != tc.field {
				t.Fatalf("got code %q field %q (%v), want code %q field %q", e.Code, e.Field, err, tc.code, tc.field)
			}
			if tc.schemaBlind && !e.schemaBlind() {
				t.Errorf("%v: the case is marked schema-blind but the error's rule is not", err)
			}
			// Errors end up in logs and results: one line, bounded, no
			// echo of a phone number.
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") || len(msg) > 400 {
				t.Errorf("error message unsafe for a log line: %q", msg)
			}
			for _, number := range []string{"4255550100", "5555551234", "2079460958"} {
				if strings.Contains(msg, number) {
					t.Errorf("error message %q echoes a phone number", msg)
				}
			}
		})
	}
}

func TestDecodeGood(t *testing.T) {
	t.Parallel()
	for _, tc := range goodCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := decodeOK(t, tc.raw)
			if _, err := Plan(ev); err != nil {
				t.Fatalf("Plan: %v", err)
			}
		})
	}
}

// TestDecodeTypes decodes one event of every type and checks the decoded,
// normalised payload.
func TestDecodeTypes(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC)
	ptr := func(b bool) *bool { return &b }
	n := func(i int) *int { return &i }
	tap := TAPRequest{LifetimeMinutes: n(480), UsableOnce: ptr(true), SealTo: testSealTo}
	verification := &Verification{TicketID: "INC0012345", Method: VerifiedByCallback, VerifiedBy: "Jo Smith"}
	const verJSON = `"verification":{"ticketId":"INC0012345","method":"callback","verifiedBy":"Jo Smith"}`
	tests := []struct {
		typ, data string
		want      any
	}{
		{TypeEmployeeJoined,
			`{"mobilePhone":"(425) 555-0100","alternateMobilePhone":"+1-425-555-0101","officePhone":"+44 20 7946 0958 x12","smsSignIn":true,"email":"adele@outlook.com","enableAccount":true,"dryRun":true,` +
				`"tap":{"lifetimeInMinutes":480,"usableOnce":true,"startDateTime":"2026-12-01T16:00:00Z","sealTo":"` + testSealTo + `"}}`,
			&EmployeeJoined{Common: Common{DryRun: true}, MobilePhone: "+1 4255550100", AlternateMobilePhone: "+1 4255550101", OfficePhone: "+44 2079460958x12",
				SMSSignIn: true, Email: "adele@outlook.com", EnableAccount: true,
				TAP: &TAPRequest{LifetimeMinutes: n(480), UsableOnce: ptr(true), StartDateTime: &start, SealTo: testSealTo}}},
		{TypeEmployeeMoved, `{"mobilePhone":"+14255550142","officePhone":null,"email":"a@b.example","smsSignIn":false,"revokeSessions":true}`,
			&EmployeeMoved{MobilePhone: Nullable[string]{Present: true, Value: "+1 4255550142"}, OfficePhone: Nullable[string]{Present: true, Null: true},
				Email: Nullable[string]{Present: true, Value: "a@b.example"}, SMSSignIn: ptr(false), RevokeSessions: true}},
		{TypeEmployeeLeft, `{"removeMethods":false}`, &EmployeeLeft{RemoveMethods: ptr(false)}},
		{TypeDeviceLost, `{"device":{"displayName":"Megan's iPhone","deviceId":"dev-1"},"kinds":["fido2"],"revokeSessions":false,"recoveryTap":{"lifetimeInMinutes":480,"usableOnce":true,"sealTo":"` + testSealTo + `"},` + verJSON + `}`,
			&DeviceLost{Common: Common{Verification: verification}, Device: DeviceMatch{DisplayName: "Megan's iPhone", DeviceID: "dev-1"}, Kinds: []string{KindFIDO2}, RevokeSessions: ptr(false), RecoveryTAP: &tap}},
		{TypeMFAReset, `{"tap":{"lifetimeInMinutes":480,"usableOnce":true,"sealTo":"` + testSealTo + `"},` + verJSON + `}`,
			&MFAReset{Common: Common{Verification: verification}, TAP: &tap}},
		{TypeMethodsInventory, `{}`, &MethodsInventory{}},
		{TypePhoneSet, `{"phoneType":"office","phoneNumber":"425 555 0100"}`, &PhoneSet{PhoneType: PhoneOffice, PhoneNumber: "+1 4255550100"}},
		{TypePhoneRemove, `{"phoneType":"alternateMobile"}`, &PhoneRemove{PhoneType: PhoneAlternateMobile}},
		{TypeSMSSignInEnable, `{}`, &SMSSignInEnable{}},
		{TypeSMSSignInDisable, `{"dryRun":false}`, &SMSSignInDisable{}},
		{TypeEmailSet, `{"emailAddress":"lee.gu.home@outlook.com"}`, &EmailSet{EmailAddress: "lee.gu.home@outlook.com"}},
		{TypeEmailRemove, `{"dryRun":true}`, &EmailRemove{Common: Common{DryRun: true}}},
		{TypeTAPIssue, `{"lifetimeInMinutes":480,"usableOnce":true,"sealTo":"` + testSealTo + `",` + verJSON + `}`,
			&TAPIssue{Common: Common{Verification: verification}, TAPRequest: tap}},
		{TypeTAPRemove, `{}`, &TAPRemove{}},
		{TypeQRCodeIssue, `{"lifetimeInDays":395,"sealTo":"` + testSealTo + `"}`,
			&QRCodeIssue{QRCodePinRequest: QRCodePinRequest{LifetimeDays: n(395), SealTo: testSealTo}}},
		{TypeQRCodeRemove, `{}`, &QRCodeRemove{}},
		{TypeMethodRemove, `{"methodKind":"microsoftAuthenticator","methodId":"-2_GRUg2-HYz6_1YG4YRAQ2"}`, &MethodRemove{MethodKind: KindAuthenticator, MethodID: "-2_GRUg2-HYz6_1YG4YRAQ2"}},
		{TypePasswordReset, `{"sealTo":"` + testSealTo + `","forceChange":true}`, &PasswordReset{SealTo: testSealTo, ForceChange: ptr(true)}},
		{TypePasskeyOptions, `{"sealTo":"` + testSealTo + `",` + verJSON + `}`,
			&PasskeyOptionsRequest{Common: Common{Verification: verification}, SealTo: testSealTo}},
		{TypePasskeyRegister, `{"displayName":"Adele's YubiKey","publicKeyCredential":` + testCredential + `}`,
			&PasskeyRegister{DisplayName: "Adele's YubiKey", PublicKeyCredential: testPasskeyCredential()}},
		{TypeApprovalGrant, `{"eventKey":"` + testEventKey + `"}`, &ApprovalGrant{EventKey: testEventKey}},
		{TypeScheduleCancel, `{"eventKey":"` + testEventKey + `"}`, &ScheduleCancel{EventKey: testEventKey}},
		{TypeApprovalDeny, `{"eventKey":"` + testEventKey + `","reason":"no ticket for this reset"}`, &ApprovalDeny{EventKey: testEventKey, Reason: "no ticket for this reset"}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.typ] = true
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			raw := event(tc.typ, "Adele.Vance@contoso.com", tc.data)
			ev := decodeOK(t, raw)
			if ev.Type != tc.typ || ev.ID != "e-1" || ev.Source != "hr/workday" || ev.SpecVersion != "1.0" {
				t.Errorf("envelope = %+v", ev)
			}
			if want := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC); !ev.Time.Equal(want) {
				t.Errorf("Time = %v, want %v", ev.Time, want)
			}
			if ev.User != (UserRef{UPN: "Adele.Vance@contoso.com"}) {
				t.Errorf("User = %+v", ev.User)
			}
			if string(ev.Data) != tc.data {
				t.Errorf("Data = %s, want the raw data %s", ev.Data, tc.data)
			}
			if !reflect.DeepEqual(ev.Payload, tc.want) {
				t.Errorf("Payload =\n%+v\nwant\n%+v", ev.Payload, tc.want)
			}
			var c Common // approvals have none: never a dry run, no verification
			if f := reflect.ValueOf(tc.want).Elem().FieldByName("Common"); f.IsValid() {
				c = f.Interface().(Common)
			}
			if ev.DryRun != c.DryRun || !reflect.DeepEqual(ev.Verification, c.Verification) {
				t.Errorf("DryRun = %v, Verification = %+v; want %v, %+v", ev.DryRun, ev.Verification, c.DryRun, c.Verification)
			}
		})
	}
	for _, typ := range Types() {
		if !covered[typ] {
			t.Errorf("type %s has no decode test", typ)
		}
	}
}

func TestDecodeEnvelope(t *testing.T) {
	t.Parallel()
	raw := without("data", `"data":{},"datacontenttype":"application/json","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"congo=t61rcWkgMzE"`)
	ev := decodeOK(t, raw)
	if ev.DataContentType != ContentTypeJSON || ev.TraceParent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || ev.TraceState != "congo=t61rcWkgMzE" {
		t.Errorf("envelope = %+v", ev)
	}
	if ev.Extensions != nil || ev.DataSchema != "" {
		t.Errorf("Extensions = %v, DataSchema = %q, want none", ev.Extensions, ev.DataSchema)
	}
	ev = decodeOK(t, without("data", `"data":{},"dataschema":"https://example.com/s.json","datacontenttype":"application/json; charset=utf-8","ticket":"INC 1","priority":7,"urgent":true`))
	want := Extensions{"ticket": json.RawMessage(`"INC 1"`), "priority": json.RawMessage(`7`), "urgent": json.RawMessage(`true`)}
	if !reflect.DeepEqual(ev.Extensions, want) || ev.DataSchema != "https://example.com/s.json" || ev.DataContentType != "application/json; charset=utf-8" {
		t.Errorf("Extensions = %v, DataSchema = %q, DataContentType = %q", ev.Extensions, ev.DataSchema, ev.DataContentType)
	}
	ev = decodeOK(t, without("time", `"time":"2026-11-26t10:00:00.5+01:00"`))
	if !ev.Time.Equal(time.Date(2026, 11, 26, 9, 0, 0, 5e8, time.UTC)) {
		t.Errorf("Time = %v", ev.Time)
	}
	ev = decodeOK(t, event(TypeMethodsInventory, "3F0C9A4E-8B1D-4C1A-9E0F-2B6D7C8E9A10", `{}`))
	if ev.User != (UserRef{ObjectID: "3f0c9a4e-8b1d-4c1a-9e0f-2b6d7c8e9a10"}) || ev.Subject != "3F0C9A4E-8B1D-4C1A-9E0F-2B6D7C8E9A10" {
		t.Errorf("User = %+v, Subject = %q", ev.User, ev.Subject)
	}
	if got, want := ev.Key(), EventKey("hr/workday", "e-1"); got != want || len(got) != 64 {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if ev.Ref() != (EventRef{Source: "hr/workday", ID: "e-1", Type: TypeMethodsInventory}) {
		t.Errorf("Ref = %+v", ev.Ref())
	}
}

func TestEventKeyUnambiguous(t *testing.T) {
	t.Parallel()
	if EventKey("a", "bc") == EventKey("ab", "c") {
		t.Error("EventKey does not separate source and id")
	}
	if EventKey("a", "b") != EventKey("a", "b") {
		t.Error("EventKey is not deterministic")
	}
}

func TestDecoderLimits(t *testing.T) {
	t.Parallel()
	raw := event(TypeMethodsInventory, "adele.vance@contoso.com", `{}`)
	if _, err := (Decoder{MaxBytes: len(raw)}).Decode(raw); err != nil {
		t.Errorf("an event of exactly MaxBytes: %v", err)
	}
	if _, err := (Decoder{MaxBytes: len(raw) - 1}).Decode(raw); CodeOf(err) != CodePayloadTooLarge {
		t.Errorf("an event of MaxBytes+1: %v, want payload_too_large", err)
	}
	padded := append([]byte(strings.Repeat(" ", DefaultMaxBytes-len(raw))), raw...)
	if _, err := (Decoder{}).Decode(padded); err != nil {
		t.Errorf("an event of exactly DefaultMaxBytes: %v", err)
	}
	if _, err := (Decoder{}).Decode(append(padded, ' ')); CodeOf(err) != CodePayloadTooLarge {
		t.Errorf("an event of DefaultMaxBytes+1: %v, want payload_too_large", err)
	}
	_, err := Decoder{DefaultRegion: "Mars"}.Decode(raw)
	if CodeOf(err) != CodeInternal {
		t.Errorf("unknown default region: %v, want internal", err)
	}
	// A national number is read in the decoder's region; lower case is fine.
	if _, err := (Decoder{DefaultRegion: "US"}).Decode(event(TypePhoneSet, "a@contoso.com", `{"phoneType":"mobile","phoneNumber":"020 7946 0958"}`)); CodeOf(err) != CodeInvalidEvent {
		t.Errorf("a GB national number read in US: %v, want invalid_event", err)
	}
	ev2, err := Decoder{DefaultRegion: "gb"}.Decode(event(TypePhoneSet, "a@contoso.com", `{"phoneType":"mobile","phoneNumber":"020 7946 0958"}`))
	if err != nil || ev2.Payload.(*PhoneSet).PhoneNumber != "+44 2079460958" {
		t.Errorf("GB national number: %v %+v", err, ev2)
	}
}

func TestPeekIdentity(t *testing.T) {
	t.Parallel()
	full := string(event(TypeTAPIssue, "diego@contoso.com", `{"sealTo":"`+testSealTo+`"}`))
	tests := []struct {
		name            string
		raw             string
		source, id, typ string
	}{
		{"valid", full, "hr/workday", "e-1", TypeTAPIssue},
		{"truncated after type", full[:strings.Index(full, `"subject"`)+3], "hr/workday", "e-1", TypeTAPIssue},
		{"truncated inside source", full[:strings.Index(full, "workday")], "", "e-1", ""},
		{"unknown type still read", `{"id":"x","source":"s","type":"authflow.future.thing.v9","data":`, "s", "x", "authflow.future.thing.v9"},
		{"type with bad charset", `{"id":"x","source":"s","type":"Robert'); DROP TABLE"}`, "s", "x", ""},
		{"id with CRLF", `{"id":"x\r\ny","source":"s"}`, "s", "", ""},
		{"id not a string", `{"id":42,"source":"s"}`, "s", "", ""},
		{"duplicate id", `{"id":"a","source":"s","id":"b"}`, "s", "", ""},
		{"nested ids ignored", `{"data":{"id":"inner","source":"inner"},"id":"outer"}`, "", "outer", ""},
		{"not an object", `["id","x"]`, "", "", ""},
		{"garbage", "\x00\xff", "", "", ""},
		{"empty", "", "", "", ""},
		{"source too long", `{"source":"` + strings.Repeat("s", 129) + `"}`, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, id, typ := PeekIdentity([]byte(tc.raw))
			if s != tc.source || id != tc.id || typ != tc.typ {
				t.Errorf("PeekIdentity = %q, %q, %q; want %q, %q, %q", s, id, typ, tc.source, tc.id, tc.typ)
			}
		})
	}
	// A large message is read up to its first MiB.
	huge := `{"id":"x","source":"s","data":{"pad":"` + strings.Repeat("a", 2<<20) + `"}}`
	if s, id, _ := PeekIdentity([]byte(huge)); s != "s" || id != "x" {
		t.Errorf("PeekIdentity on 2 MiB = %q, %q", s, id)
	}
}

func TestParseUser(t *testing.T) {
	t.Parallel()
	good := map[string]UserRef{
		"adele.vance@contoso.com":                        {UPN: "adele.vance@contoso.com"},
		"Adele.Vance@Contoso.COM":                        {UPN: "Adele.Vance@Contoso.COM"},
		"o'brien@contoso.com":                            {UPN: "o'brien@contoso.com"},
		"a_b-c!d^e~f@sub.contoso-x.com":                  {UPN: "a_b-c!d^e~f@sub.contoso-x.com"},
		"john_fabrikam.com#EXT#@contoso.onmicrosoft.com": {UPN: "john_fabrikam.com#EXT#@contoso.onmicrosoft.com"},
		"3F0C9A4E-8B1D-4C1A-9E0F-2B6D7C8E9A10":           {ObjectID: "3f0c9a4e-8b1d-4c1a-9e0f-2b6d7c8e9a10"},
	}
	for in, want := range good {
		got, err := ParseUser(in)
		if err != nil || got != want {
			t.Errorf("ParseUser(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if got.String() == "" {
			t.Errorf("UserRef.String() is empty for %q", in)
		}
	}
	bad := []string{"", "@contoso.com", "adele@", "adele@.com", "adele@-contoso.com", "adele@contoso-.com", ".adele@contoso.com",
		"adele@@contoso.com", "adele@contoso..com", "a#EXT#b#EXT#@contoso.com", "#EXT#@contoso.com", "adele@contoso.com ", " adele@contoso.com",
		"adele@contoso.com\n", "adelé@contoso.com", "adele@xn--contoso.com/", "adele@contoso.com/../x", "3f0c9a4e8b1d4c1a9e0f2b6d7c8e9a10"}
	for _, in := range bad {
		_, err := ParseUser(in)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeInvalidEvent || e.Field != "subject" {
			t.Errorf("ParseUser(%q) = %v, want invalid_event on subject", in, err)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, region, want string
	}{
		{"+14255550100", "", "+1 4255550100"},
		{"+1 4255550100", "", "+1 4255550100"},
		{"+1 (425) 555-0100", "", "+1 4255550100"},
		{"+1.425.555.0100", "", "+1 4255550100"},
		{"(425) 555-0100", "US", "+1 4255550100"},
		{"425-555-0100", "us", "+1 4255550100"},
		{"1 425 555 0100", "US", "+1 4255550100"},
		{"+1 4255550100x123", "", "+1 4255550100x123"},
		{"+1 425 555 0100 x123", "", "+1 4255550100x123"},
		{"+44 20 7946 0958", "US", "+44 2079460958"},
		{"020 7946 0958", "GB", "+44 2079460958"},
		{"0044 20 7946 0958", "GB", "+44 2079460958"},
		{"+44 (0)20 7946 0958", "", "+44 2079460958"},
		{"+39 06 6982 1234", "", "+39 0669821234"}, // Italian leading zero kept
		{"+49 30 901820", "", "+49 30901820"},
		{"+81 3-1234-5678", "", "+81 312345678"},
	}
	for _, tc := range tests {
		got, err := NormalizePhone(tc.in, tc.region)
		if err != nil || got != tc.want {
			t.Errorf("NormalizePhone(%q, %q) = %q, %v; want %q", tc.in, tc.region, got, err, tc.want)
		}
		if !inGraphForm(got) {
			t.Errorf("NormalizePhone(%q) = %q is not in Graph's form", tc.in, got)
		}
		// Normalising a normalised number is the identity.
		if again, err := NormalizePhone(got, ""); err != nil || again != got {
			t.Errorf("NormalizePhone(%q) = %q, %v; not idempotent", got, again, err)
		}
	}
	for _, in := range []string{"", "+", "abc", "+1 800 FLOWERS", "+1 5555551234", "425-555-0100", "+1 4255550100x", "+1 4255550100 ext 12",
		"+1\u00a04255550100", "+٤٢٥٥٥٥٠١٠٠", "+1 425555010012345678", strings.Repeat("1", 41)} {
		if got, err := NormalizePhone(in, ""); err == nil {
			t.Errorf("NormalizePhone(%q) = %q, want an error", in, got)
		} else if strings.Contains(err.Error(), "4255550100") {
			t.Errorf("error %q echoes the number", err)
		}
	}
	if _, err := NormalizePhone("425-555-0100", "Mars"); err == nil {
		t.Error("NormalizePhone with an unknown region: no error")
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	phones := map[string]string{
		"+1 4255550100":      "+1 ******0100",
		"+1 4255550100x123":  "+1 ******0100",
		"+44 2079460958":     "+44 ******0958",
		"+49 30901820":       "+49 ****1820",
		"4255550100":         "****",
		"":                   "****",
		"+1 4255550100\nfoo": "****",
	}
	for in, want := range phones {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
	emails := map[string]string{
		"adele.vance@contoso.com": "a***@contoso.com",
		"a@b.example":             "a***@b.example",
		"not an address":          "****",
		"@contoso.com":            "****",
	}
	for in, want := range emails {
		if got := MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseJSON(t *testing.T) {
	t.Parallel()
	// Duplicates are found in objects large enough to switch to a map.
	var b strings.Builder
	b.WriteString("{")
	for i := range 40 {
		fmt.Fprintf(&b, `"k%d":%d,`, i, i)
	}
	b.WriteString(`"k39":0}`)
	if _, err := parseJSON([]byte(b.String())); err == nil || err.rule != ruleDuplicate {
		t.Errorf("duplicate in a 41-member object: %v", err)
	}
	if _, err := parseJSON([]byte(strings.Replace(b.String(), `"k39":0}`, `"k40":0}`, 1))); err != nil {
		t.Errorf("41 distinct members: %v", err)
	}
	nested := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	if _, err := parseJSON(nested(maxDepth)); err != nil {
		t.Errorf("nesting %d: %v", maxDepth, err)
	}
	if _, err := parseJSON(nested(maxDepth + 1)); err == nil {
		t.Errorf("nesting %d accepted", maxDepth+1)
	}
	if _, err := parseJSON(nested(100000)); err == nil {
		t.Error("nesting 100000 accepted")
	}
	v, err := parseJSON([]byte(`"\ud83d\udcf1 \u00e9\"\\\/\b\f\n\r\t"`))
	if err != nil || v.s != "📱 é\"\\/\b\f\n\r\t" {
		t.Errorf("escapes: %q, %v", v.s, err)
	}
	v, err = parseJSON([]byte("\n\n  {\"a\": tru}"))
	if err == nil || err.Line != 3 || err.Column != 9 {
		t.Errorf("error position: %+v", err)
	}
	for _, in := range []string{`1`, `-0`, `0.5`, `-1.5e-3`, `1E+2`, `true`, `false`, `null`, `{}`, `[]`, `[1,"a",{"b":[null]}]`} {
		if _, err := parseJSON([]byte(in)); err != nil {
			t.Errorf("parseJSON(%s): %v", in, err)
		}
	}
	for _, in := range []string{`01`, `-`, `1.`, `.5`, `1e`, `+1`, `0x10`, `Infinity`, `[1,]`, `{"a"}`, `{"a":1,}`, `{1:2}`, `"\u12"`, `"\x41"`, "\"\t\"", `nul`, `[`, `"abc`} {
		if _, err := parseJSON([]byte(in)); err == nil {
			t.Errorf("parseJSON(%s) accepted", in)
		}
	}
}

func TestJSONInt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lit            string
		n              int64
		isInt, inRange bool
	}{
		{"0", 0, true, true},
		{"-0", 0, true, true},
		{"480", 480, true, true},
		{"-60", -60, true, true},
		{"480.0", 480, true, true},
		{"4.8e2", 480, true, true},
		{"4800e-1", 480, true, true},
		{"48000000000000000000000e-20", 480, true, true},
		{"0.48E3", 480, true, true},
		{"0e999999999999", 0, true, true},
		{"60.5", 0, false, false},
		{"1e-1", 0, false, false},
		{"1e-9999999999999", 0, false, false},
		{"1e400", 0, true, false},
		{"1e9999999999999", 0, true, false},
		{"9223372036854775807", 9223372036854775807, true, true},
		{"9223372036854775808", 0, true, false},
		{"-9223372036854775808", -9223372036854775808, true, true},
	}
	for _, tc := range tests {
		n, isInt, inRange := jsonInt(tc.lit)
		if isInt != tc.isInt || inRange != tc.inRange || (inRange && n != tc.n) {
			t.Errorf("jsonInt(%s) = %d, %v, %v; want %d, %v, %v", tc.lit, n, isInt, inRange, tc.n, tc.isInt, tc.inRange)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := &Error{Code: CodeInvalidEvent, Field: "data.mobilePhone", Message: "not a valid phone number"}
	if got, want := e.Error(), "invalid_event: data.mobilePhone: not a valid phone number"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e2 := &Error{Code: CodeInvalidEvent, Message: "unexpected end of JSON input", Line: 1, Column: 40}
	if got, want := e2.Error(), "invalid_event: unexpected end of JSON input (line 1, column 40)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("decode event: %w", e)
	if CodeOf(wrapped) != CodeInvalidEvent || !errors.Is(wrapped, &Error{Code: CodeInvalidEvent}) || errors.Is(wrapped, &Error{Code: CodeExpired}) {
		t.Error("CodeOf / errors.Is do not see through wrapping")
	}
	if CodeOf(errors.New("x")) != "" || CodeOf(nil) != "" {
		t.Error("CodeOf of a foreign error is not empty")
	}
	if InfoOf(nil) != nil {
		t.Error("InfoOf(nil) != nil")
	}
	if got := InfoOf(e); *got != (ErrorInfo{Code: CodeInvalidEvent, Message: "data.mobilePhone: not a valid phone number", Permanent: true}) {
		t.Errorf("InfoOf = %+v", got)
	}
	if got := InfoOf(errors.New(strings.Repeat("é", 600))); got.Code != CodeInternal || got.Permanent || len(got.Message) > maxMessageLen || !utf8Valid(got.Message) {
		t.Errorf("InfoOf(foreign) = %+v", got)
	}
	if got := InfoOf(fmt.Errorf("run op 2: %w", &Error{Code: CodeRetriesExhausted, Message: "Graph 503"})); got.Code != CodeRetriesExhausted || got.Permanent || got.Message != "run op 2: retries_exhausted: Graph 503" {
		t.Errorf("InfoOf(wrapped) = %+v", got)
	}
}

func TestCodes(t *testing.T) {
	t.Parallel()
	rejected := map[Code]bool{CodeInvalidEvent: true, CodePayloadTooLarge: true, CodeUnknownType: true, CodeBadSignature: true,
		CodeExpired: true, CodeFutureEvent: true, CodeReplayed: true, CodePolicyDenied: true, CodeProtectedUser: true, CodeGuestUser: true,
		CodeRateLimited: true, CodeApprovalDenied: true, CodeApprovalTimeout: true, CodeApprovalInvalid: true}
	if len(Codes()) != 21 {
		t.Fatalf("%d codes, want the 21 documented", len(Codes()))
	}
	for _, c := range Codes() {
		if !c.Valid() {
			t.Errorf("%s not Valid", c)
		}
		wantPermanent := c != CodeRetriesExhausted && c != CodeInternal && c != CodeSealFailed && c != CodeRateLimited
		if c.Permanent() != wantPermanent {
			t.Errorf("%s.Permanent() = %v", c, c.Permanent())
		}
		if want := map[bool]Status{true: StatusRejected, false: StatusFailed}[rejected[c]]; c.Status() != want {
			t.Errorf("%s.Status() = %s, want %s", c, c.Status(), want)
		}
	}
	if Code("nope").Valid() || Code("nope").Permanent() {
		t.Error("an unknown code is valid or permanent")
	}
}
