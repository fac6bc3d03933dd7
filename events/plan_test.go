package events

import (
	"encoding/json"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 1, 16, 0, 0, 0, time.UTC)
	tapJSON := `{"lifetimeInMinutes":120,"sealTo":"` + testSealTo + `"}`
	tapOp := Op{Kind: OpIssueTAP, MethodKind: KindTAP, TAP: &TAPSpec{LifetimeMinutes: 120, UsableOnce: true}, SealTo: testSealTo}
	phone := func(kind OpKind, typ, number string) Op {
		return Op{Kind: kind, MethodKind: KindPhone, Phone: &PhoneSpec{Type: typ, Number: number}}
	}
	revoke := Op{Kind: OpRevokeSessions}
	tests := []struct {
		name, typ, data string
		want            []Op
	}{
		{"joined everything", TypeEmployeeJoined,
			`{"tap":{"lifetimeInMinutes":60,"usableOnce":false,"startDateTime":"2026-12-01T16:00:00Z","sealTo":"` + testSealTo + `"},"enableAccount":true,"email":"a@b.example",` +
				`"smsSignIn":true,"officePhone":"+1 4255550102","alternateMobilePhone":"+1 4255550101","mobilePhone":"+1 4255550100"}`,
			[]Op{
				phone(OpEnsurePhone, PhoneMobile, "+1 4255550100"),
				phone(OpEnsurePhone, PhoneAlternateMobile, "+1 4255550101"),
				phone(OpEnsurePhone, PhoneOffice, "+1 4255550102"),
				{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: true},
				{Kind: OpEnsureEmail, MethodKind: KindEmail, Email: "a@b.example"},
				{Kind: OpSetAccountEnabled, Enabled: true},
				{Kind: OpIssueTAP, MethodKind: KindTAP, TAP: &TAPSpec{LifetimeMinutes: 60, UsableOnce: false, Start: &start}, SealTo: testSealTo},
			}},
		{"joined TAP only, tenant default lifetime", TypeEmployeeJoined, `{"tap":{"sealTo":"` + testSealTo + `"}}`,
			[]Op{{Kind: OpIssueTAP, MethodKind: KindTAP, TAP: &TAPSpec{UsableOnce: true}, SealTo: testSealTo}}},
		{"joined account only", TypeEmployeeJoined, `{"enableAccount":true}`, []Op{{Kind: OpSetAccountEnabled, Enabled: true}}},
		{"moved set and remove", TypeEmployeeMoved,
			`{"mobilePhone":null,"alternateMobilePhone":null,"officePhone":"+1 4255550102","email":null,"smsSignIn":false,"revokeSessions":true}`,
			[]Op{
				phone(OpEnsurePhone, PhoneOffice, "+1 4255550102"),
				{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: false},
				phone(OpRemovePhone, PhoneAlternateMobile, ""),
				phone(OpRemovePhone, PhoneMobile, ""),
				{Kind: OpRemoveEmail, MethodKind: KindEmail},
				revoke,
			}},
		{"moved remove all phones", TypeEmployeeMoved, `{"mobilePhone":null,"officePhone":null,"alternateMobilePhone":null}`,
			[]Op{phone(OpRemovePhone, PhoneAlternateMobile, ""), phone(OpRemovePhone, PhoneOffice, ""), phone(OpRemovePhone, PhoneMobile, "")}},
		{"moved ensure", TypeEmployeeMoved, `{"alternateMobilePhone":"+1 4255550101","mobilePhone":"+1 4255550100","email":"a@b.example","smsSignIn":true}`,
			[]Op{phone(OpEnsurePhone, PhoneMobile, "+1 4255550100"), phone(OpEnsurePhone, PhoneAlternateMobile, "+1 4255550101"),
				{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: true}, {Kind: OpEnsureEmail, MethodKind: KindEmail, Email: "a@b.example"}}},
		{"moved revoke only", TypeEmployeeMoved, `{"revokeSessions":true}`, []Op{revoke}},
		{"left defaults", TypeEmployeeLeft, `{}`,
			[]Op{{Kind: OpSetAccountEnabled, Enabled: false}, revoke, {Kind: OpRemoveAllMethods}}},
		{"left keep methods", TypeEmployeeLeft, `{"removeMethods":false,"revokeSessions":true}`,
			[]Op{{Kind: OpSetAccountEnabled, Enabled: false}, revoke}},
		{"left remove methods only", TypeEmployeeLeft, `{"disableAccount":false,"revokeSessions":false}`, []Op{{Kind: OpRemoveAllMethods}}},
		{"lost defaults", TypeDeviceLost, `{"device":{"displayName":"Megan's iPhone"}}`,
			[]Op{{Kind: OpRemoveDeviceMethods, Match: &DeviceMatch{DisplayName: "Megan's iPhone"}, Kinds: DeviceKinds()}, revoke}},
		{"lost everything", TypeDeviceLost, `{"device":{"deviceId":"d-1"},"kinds":["fido2","microsoftAuthenticator"],"revokeSessions":false,"recoveryTap":` + tapJSON + `}`,
			[]Op{{Kind: OpRemoveDeviceMethods, Match: &DeviceMatch{DeviceID: "d-1"}, Kinds: []string{KindFIDO2, KindAuthenticator}}, tapOp}},
		{"mfa reset defaults", TypeMFAReset, `{}`, []Op{{Kind: OpRemoveAllMethods}, revoke}},
		{"mfa reset with TAP, no revoke", TypeMFAReset, `{"revokeSessions":false,"tap":` + tapJSON + `}`, []Op{{Kind: OpRemoveAllMethods}, tapOp}},
		{"inventory", TypeMethodsInventory, `{"dryRun":true}`, []Op{{Kind: OpReadMethods}}},
		{"phone set", TypePhoneSet, `{"phoneType":"alternateMobile","phoneNumber":"+442079460958"}`, []Op{phone(OpEnsurePhone, PhoneAlternateMobile, "+44 2079460958")}},
		{"phone remove", TypePhoneRemove, `{"phoneType":"mobile"}`, []Op{phone(OpRemovePhone, PhoneMobile, "")}},
		{"sms enable", TypeSMSSignInEnable, `{}`, []Op{{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: true}}},
		{"sms disable", TypeSMSSignInDisable, `{}`, []Op{{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: false}}},
		{"email set", TypeEmailSet, `{"emailAddress":"a@b.example"}`, []Op{{Kind: OpEnsureEmail, MethodKind: KindEmail, Email: "a@b.example"}}},
		{"email remove", TypeEmailRemove, `{}`, []Op{{Kind: OpRemoveEmail, MethodKind: KindEmail}}},
		{"tap issue", TypeTAPIssue, tapJSON, []Op{tapOp}},
		{"tap remove", TypeTAPRemove, `{}`, []Op{{Kind: OpRemoveTAPs, MethodKind: KindTAP}}},
		{"qr code issue", TypeQRCodeIssue, `{"lifetimeInDays":90,"sealTo":"` + testSealTo + `"}`,
			[]Op{{Kind: OpIssueQRCodePin, MethodKind: KindQRCodePin, QRCode: &QRCodeSpec{LifetimeDays: 90}, SealTo: testSealTo}}},
		{"qr code issue default lifetime", TypeQRCodeIssue, `{"sealTo":"` + testSealTo + `"}`,
			[]Op{{Kind: OpIssueQRCodePin, MethodKind: KindQRCodePin, QRCode: &QRCodeSpec{}, SealTo: testSealTo}}},
		{"qr code remove", TypeQRCodeRemove, `{}`, []Op{{Kind: OpRemoveQRCodePin, MethodKind: KindQRCodePin}}},
		{"passkey options", TypePasskeyOptions, `{"sealTo":"` + testSealTo + `"}`,
			[]Op{{Kind: OpPasskeyOptions, MethodKind: KindFIDO2, SealTo: testSealTo}}},
		{"passkey register", TypePasskeyRegister, `{"displayName":"Adele's YubiKey","publicKeyCredential":` + testCredential + `}`,
			[]Op{{Kind: OpRegisterPasskey, MethodKind: KindFIDO2, Passkey: testPasskeyCredential().spec("Adele's YubiKey")}}},
		{"joined with a qr code last", TypeEmployeeJoined, `{"enableAccount":true,"qrCodePin":{"sealTo":"` + testSealTo + `"}}`,
			[]Op{{Kind: OpSetAccountEnabled, Enabled: true},
				{Kind: OpIssueQRCodePin, MethodKind: KindQRCodePin, QRCode: &QRCodeSpec{}, SealTo: testSealTo}}},
		{"method remove", TypeMethodRemove, `{"methodKind":"softwareOath","methodId":"b172893e-893e-b172-3e89-72b13e8972b1"}`,
			[]Op{{Kind: OpRemoveMethod, MethodKind: KindSoftwareOATH, MethodID: "b172893e-893e-b172-3e89-72b13e8972b1"}}},
		{"password reset default", TypePasswordReset, `{"sealTo":"` + testSealTo + `"}`,
			[]Op{{Kind: OpResetPassword, MethodKind: KindPassword, SealTo: testSealTo, ForceChange: true}}},
		{"password reset no force", TypePasswordReset, `{"sealTo":"` + testSealTo + `","forceChange":false}`,
			[]Op{{Kind: OpResetPassword, MethodKind: KindPassword, SealTo: testSealTo, ForceChange: false}}},
		{"approval grant plans nothing", TypeApprovalGrant, `{"eventKey":"` + testEventKey + `"}`, []Op{}},
		{"schedule cancel plans nothing", TypeScheduleCancel, `{"eventKey":"` + testEventKey + `"}`, []Op{}},
		{"approval deny plans nothing", TypeApprovalDeny, `{"eventKey":"` + testEventKey + `","reason":"no"}`, []Op{}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.typ] = true
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := decodeOK(t, event(tc.typ, "adele.vance@contoso.com", tc.data))
			got, err := Plan(ev)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Plan =\n%v\nwant\n%v", got, tc.want)
			}
			for _, op := range got {
				if !op.Kind.Valid() {
					t.Errorf("invalid op kind %q", op.Kind)
				}
			}
			// Pure: the same event gives the same plan, and planning does
			// not change the event.
			before := *ev
			again, err := Plan(ev)
			if err != nil || !reflect.DeepEqual(again, got) || !reflect.DeepEqual(*ev, before) {
				t.Errorf("Plan is not a pure function of the event")
			}
			// The plan does not share memory with the event.
			if len(again) > 0 && again[0].Kinds != nil {
				again[0].Kinds[0] = "mutated"
				if third, _ := Plan(ev); third[0].Kinds[0] == "mutated" {
					t.Error("the plan aliases the event's data")
				}
			}
		})
	}
	for _, typ := range Types() {
		if !covered[typ] {
			t.Errorf("type %s has no plan test", typ)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	t.Parallel()
	if _, err := Plan(nil); CodeOf(err) != CodeInternal {
		t.Errorf("Plan(nil) = %v", err)
	}
	if _, err := Plan(&Event{Type: TypePhoneSet, Payload: &EmailSet{}}); CodeOf(err) != CodeInternal {
		t.Errorf("mismatched payload: %v", err)
	}
	if _, err := Plan(&Event{Type: "authflow.nope.v1"}); CodeOf(err) != CodeInternal {
		t.Errorf("unknown type: %v", err)
	}
}

func TestOpRendering(t *testing.T) {
	t.Parallel()
	ops := []Op{
		{Kind: OpEnsurePhone, MethodKind: KindPhone, Phone: &PhoneSpec{Type: PhoneMobile, Number: "+1 4255550100"}},
		{Kind: OpEnsureEmail, MethodKind: KindEmail, Email: "adele@outlook.com"},
		{Kind: OpSetAccountEnabled, Enabled: false},
	}
	var b strings.Builder
	log := slog.New(slog.NewJSONHandler(&b, nil))
	for _, op := range ops {
		log.Info("op", "op", op)
		_ = op.String()
	}
	out := b.String()
	if strings.Contains(out, "4255550100") || strings.Contains(out, "adele@") {
		t.Errorf("log output leaks a phone number or address: %s", out)
	}
	if !strings.Contains(out, "+1 ******0100") || !strings.Contains(out, `"enabled":false`) {
		t.Errorf("log output lacks the masked number or enabled flag: %s", out)
	}
	j, err := json.Marshal(ops[2])
	if err != nil || string(j) != `{"op":"setAccountEnabled","enabled":false}` {
		t.Errorf("MarshalJSON = %s, %v", j, err)
	}
}
