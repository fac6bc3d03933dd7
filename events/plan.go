package events

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"time"
)

// OpKind names one desired-state operation. Operations say what must be
// true ("the mobile phone is +1 4255550100"), never what to change, so
// running a plan twice has the effect of running it once.
type OpKind string

// The operations a plan can hold.
const (
	// OpReadMethods reports the user's methods and writes nothing.
	OpReadMethods OpKind = "readMethods"
	// OpEnsurePhone makes the phone of Phone.Type exactly Phone.Number
	// (create it, update it, or leave it).
	OpEnsurePhone OpKind = "ensurePhone"
	// OpRemovePhone makes sure there is no phone of Phone.Type.
	OpRemovePhone OpKind = "removePhone"
	// OpSetSMSSignIn makes SMS sign-in on the mobile phone Enabled or not.
	OpSetSMSSignIn OpKind = "setSmsSignIn"
	// OpEnsureEmail makes the SSPR email exactly Email.
	OpEnsureEmail OpKind = "ensureEmail"
	// OpRemoveEmail makes sure there is no SSPR email.
	OpRemoveEmail OpKind = "removeEmail"
	// OpIssueTAP creates a Temporary Access Pass as TAP describes and seals
	// its value to SealTo. On a retry after a crash, a TAP created by an
	// earlier attempt whose value was never sealed is deleted first.
	OpIssueTAP OpKind = "issueTap"
	// OpRemoveTAPs makes sure the user has no TAP.
	OpRemoveTAPs OpKind = "removeTaps"
	// OpIssueQRCodePin creates a QR code + PIN method as QRCode describes
	// (deleting an existing one first: Graph keeps one per user) and seals
	// its PIN and QR code data to SealTo. On a retry after a crash, a
	// method created by an earlier attempt whose secrets were never sealed
	// is deleted and created again.
	OpIssueQRCodePin OpKind = "issueQrCodePin"
	// OpRemoveQRCodePin makes sure the user has no QR code + PIN method.
	OpRemoveQRCodePin OpKind = "removeQrCodePin"
	// OpRemoveMethod makes sure the method MethodKind/MethodID is gone.
	OpRemoveMethod OpKind = "removeMethod"
	// OpRemoveDeviceMethods removes the methods of the given Kinds that
	// Match: a display name equal to Match.DisplayName (case-insensitive),
	// or a device whose id (or Authenticator device tag) is Match.DeviceID.
	// FIDO2 keys have no device, so they match by display name only.
	OpRemoveDeviceMethods OpKind = "removeDeviceMethods"
	// OpRemoveAllMethods removes every method but the password (phones,
	// email, Authenticator, FIDO2, Windows Hello, software OATH, platform
	// credentials, TAPs, external, QR code + PIN), the default method last, as Graph's
	// "require re-register MFA" procedure asks.
	OpRemoveAllMethods OpKind = "removeAllMethods"
	// OpResetPassword sets a generated password (never one from the event),
	// seals it to SealTo, and requires a change at next sign-in if ForceChange.
	OpResetPassword OpKind = "resetPassword"
	// OpRevokeSessions revokes the user's refresh tokens and sessions.
	OpRevokeSessions OpKind = "revokeSessions"
	// OpSetAccountEnabled makes the account enabled or disabled (Enabled).
	OpSetAccountEnabled OpKind = "setAccountEnabled"
	// OpPasskeyOptions gets passkey creation options for the user (a new
	// challenge, valid 5 minutes) and seals them to SealTo, an enrolment
	// station. It writes no method.
	OpPasskeyOptions OpKind = "passkeyOptions"
	// OpRegisterPasskey posts the credential Passkey describes: the passkey
	// an enrolment station made from passkeyOptions.
	OpRegisterPasskey OpKind = "registerPasskey"
)

// OpKinds returns every operation kind.
func OpKinds() []OpKind {
	return []OpKind{
		OpReadMethods, OpEnsurePhone, OpRemovePhone, OpSetSMSSignIn, OpEnsureEmail,
		OpRemoveEmail, OpIssueTAP, OpRemoveTAPs, OpIssueQRCodePin, OpRemoveQRCodePin, OpRemoveMethod, OpRemoveDeviceMethods,
		OpRemoveAllMethods, OpResetPassword, OpRevokeSessions, OpSetAccountEnabled,
		OpPasskeyOptions, OpRegisterPasskey,
	}
}

// Valid reports whether k is one of the operation kinds.
func (k OpKind) Valid() bool {
	for _, o := range OpKinds() {
		if k == o {
			return true
		}
	}
	return false
}

// Op is one operation of a plan. Only the fields its Kind names are set.
type Op struct {
	Kind OpKind
	// MethodKind is the Graph method kind the operation acts on ("phone",
	// "email", "temporaryAccessPass", "password", or the kind to remove);
	// empty for operations on the account or on several kinds.
	MethodKind string
	Phone      *PhoneSpec   // ensurePhone, removePhone (Number empty)
	Email      string       // ensureEmail
	TAP        *TAPSpec     // issueTap
	QRCode     *QRCodeSpec  // issueQrCodePin
	Passkey    *PasskeySpec // registerPasskey
	MethodID   string       // removeMethod
	Match      *DeviceMatch // removeDeviceMethods
	Kinds      []string     // removeDeviceMethods
	Enabled    bool         // setSmsSignIn, setAccountEnabled
	// SealTo is the recipient's curve public key for issueTap,
	// issueQrCodePin, resetPassword and passkeyOptions.
	SealTo      string
	ForceChange bool // resetPassword
}

// PhoneSpec is a phone of one type; Number is in Graph's form.
type PhoneSpec struct {
	Type   string `json:"type"`
	Number string `json:"number,omitempty"`
}

// TAPSpec is the Temporary Access Pass to create.
type TAPSpec struct {
	LifetimeMinutes int        `json:"lifetimeInMinutes,omitempty"` // 0: the tenant's default
	UsableOnce      bool       `json:"usableOnce"`
	Start           *time.Time `json:"startDateTime,omitempty"` // nil: now
}

// QRCodeSpec is the QR code + PIN method to create.
type QRCodeSpec struct {
	LifetimeDays int        `json:"lifetimeInDays,omitempty"` // 0: Graph's default, 365
	Start        *time.Time `json:"startDateTime,omitempty"`  // nil: now
}

// DeviceMatch says which device's methods to remove.
type DeviceMatch struct {
	DisplayName string `json:"displayName"`
	DeviceID    string `json:"deviceId"`
}

// opJSON is Op's JSON form: Enabled only where it means something.
type opJSON struct {
	Kind        OpKind       `json:"op"`
	MethodKind  string       `json:"methodKind,omitempty"`
	Phone       *PhoneSpec   `json:"phone,omitempty"`
	Email       string       `json:"email,omitempty"`
	TAP         *TAPSpec     `json:"tap,omitempty"`
	QRCode      *QRCodeSpec  `json:"qrCode,omitempty"`
	Passkey     *PasskeySpec `json:"passkey,omitempty"`
	MethodID    string       `json:"methodId,omitempty"`
	Match       *deviceJSON  `json:"match,omitempty"`
	Kinds       []string     `json:"kinds,omitempty"`
	Enabled     *bool        `json:"enabled,omitempty"`
	SealTo      string       `json:"sealTo,omitempty"`
	ForceChange *bool        `json:"forceChange,omitempty"`
}

type deviceJSON struct {
	DisplayName string `json:"displayName,omitempty"`
	DeviceID    string `json:"deviceId,omitempty"`
}

// MarshalJSON renders the operation as docs/events.md shows plans. It
// contains full phone numbers and email addresses: do not log it (Op's
// LogValue masks them).
func (o Op) MarshalJSON() ([]byte, error) {
	j := opJSON{Kind: o.Kind, MethodKind: o.MethodKind, Phone: o.Phone, Email: o.Email, TAP: o.TAP, QRCode: o.QRCode, Passkey: o.Passkey,
		MethodID: o.MethodID, Kinds: o.Kinds, SealTo: o.SealTo}
	if o.Match != nil {
		j.Match = &deviceJSON{DisplayName: o.Match.DisplayName, DeviceID: o.Match.DeviceID}
	}
	switch o.Kind {
	case OpSetSMSSignIn, OpSetAccountEnabled:
		j.Enabled = &o.Enabled
	case OpResetPassword:
		j.ForceChange = &o.ForceChange
	}
	return json.Marshal(j)
}

// LogValue renders the operation for log/slog with the phone number and
// email masked.
func (o Op) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("op", string(o.Kind))}
	if o.MethodKind != "" {
		attrs = append(attrs, slog.String("methodKind", o.MethodKind))
	}
	if o.Phone != nil {
		attrs = append(attrs, slog.String("phoneType", o.Phone.Type))
		if o.Phone.Number != "" {
			attrs = append(attrs, slog.String("phone", MaskPhone(o.Phone.Number)))
		}
	}
	if o.Email != "" {
		attrs = append(attrs, slog.String("email", MaskEmail(o.Email)))
	}
	if o.MethodID != "" {
		attrs = append(attrs, slog.String("methodId", o.MethodID))
	}
	switch o.Kind {
	case OpSetSMSSignIn, OpSetAccountEnabled:
		attrs = append(attrs, slog.Bool("enabled", o.Enabled))
	}
	return slog.GroupValue(attrs...)
}

// Plan returns the operations an event asks for, in the order they must
// run. It is a pure function of the event. Every event type has a plan;
// the orders are:
//
//   - employee.joined: phones (mobile, alternateMobile, office), SMS
//     sign-in, email, enable the account, then the TAP and the QR code +
//     PIN (last, so that secrets are issued only once the rest is in place);
//   - employee.moved: ensure phones (mobile first), SMS sign-in, remove
//     phones (alternateMobile and office before mobile, as Graph
//     requires), email, then revoke sessions;
//   - employee.left: disable the account (no new sign-ins), revoke
//     sessions (end the current ones), remove all methods;
//   - device.lost: remove the device's methods, revoke sessions, recovery TAP;
//   - mfa.reset: remove all methods, revoke sessions, TAP;
//   - single operations: their one operation;
//   - approval.grant, approval.deny, schedule.cancel: none (an empty plan).
func Plan(ev *Event) ([]Op, error) {
	if ev == nil {
		return nil, newError(CodeInternal, "", "plan: nil event")
	}
	if want, ok := newPayload(ev.Type); !ok || reflect.TypeOf(want) != reflect.TypeOf(ev.Payload) {
		return nil, newError(CodeInternal, "", "plan: payload %T does not match type %s", ev.Payload, quote(ev.Type))
	}
	switch p := ev.Payload.(type) {
	case *EmployeeJoined:
		var ops []Op
		ops = appendEnsurePhone(ops, PhoneMobile, p.MobilePhone)
		ops = appendEnsurePhone(ops, PhoneAlternateMobile, p.AlternateMobilePhone)
		ops = appendEnsurePhone(ops, PhoneOffice, p.OfficePhone)
		if p.SMSSignIn {
			ops = append(ops, Op{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: true})
		}
		if p.Email != "" {
			ops = append(ops, Op{Kind: OpEnsureEmail, MethodKind: KindEmail, Email: p.Email})
		}
		if p.EnableAccount {
			ops = append(ops, Op{Kind: OpSetAccountEnabled, Enabled: true})
		}
		if p.TAP != nil {
			ops = append(ops, issueTAP(p.TAP))
		}
		if p.QRCodePin != nil {
			ops = append(ops, issueQRCodePin(p.QRCodePin))
		}
		return ops, nil
	case *EmployeeMoved:
		var ops []Op
		phones := []struct {
			typ string
			n   Nullable[string]
		}{{PhoneMobile, p.MobilePhone}, {PhoneAlternateMobile, p.AlternateMobilePhone}, {PhoneOffice, p.OfficePhone}}
		for _, ph := range phones {
			if ph.n.HasValue() {
				ops = appendEnsurePhone(ops, ph.typ, ph.n.Value)
			}
		}
		if p.SMSSignIn != nil {
			ops = append(ops, Op{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: *p.SMSSignIn})
		}
		for _, i := range []int{1, 2, 0} { // alternateMobile, office, then mobile
			if phones[i].n.IsNull() {
				ops = append(ops, Op{Kind: OpRemovePhone, MethodKind: KindPhone, Phone: &PhoneSpec{Type: phones[i].typ}})
			}
		}
		switch {
		case p.Email.HasValue():
			ops = append(ops, Op{Kind: OpEnsureEmail, MethodKind: KindEmail, Email: p.Email.Value})
		case p.Email.IsNull():
			ops = append(ops, Op{Kind: OpRemoveEmail, MethodKind: KindEmail})
		}
		if p.RevokeSessions {
			ops = append(ops, Op{Kind: OpRevokeSessions})
		}
		return ops, nil
	case *EmployeeLeft:
		var ops []Op
		if orTrue(p.DisableAccount) {
			ops = append(ops, Op{Kind: OpSetAccountEnabled, Enabled: false})
		}
		if orTrue(p.RevokeSessions) {
			ops = append(ops, Op{Kind: OpRevokeSessions})
		}
		if orTrue(p.RemoveMethods) {
			ops = append(ops, Op{Kind: OpRemoveAllMethods})
		}
		return ops, nil
	case *DeviceLost:
		kinds := p.Kinds
		if len(kinds) == 0 {
			kinds = DeviceKinds()
		}
		match := p.Device
		ops := []Op{{Kind: OpRemoveDeviceMethods, Match: &match, Kinds: append([]string(nil), kinds...)}}
		if orTrue(p.RevokeSessions) {
			ops = append(ops, Op{Kind: OpRevokeSessions})
		}
		if p.RecoveryTAP != nil {
			ops = append(ops, issueTAP(p.RecoveryTAP))
		}
		return ops, nil
	case *MFAReset:
		ops := []Op{{Kind: OpRemoveAllMethods}}
		if orTrue(p.RevokeSessions) {
			ops = append(ops, Op{Kind: OpRevokeSessions})
		}
		if p.TAP != nil {
			ops = append(ops, issueTAP(p.TAP))
		}
		return ops, nil
	case *MethodsInventory:
		return []Op{{Kind: OpReadMethods}}, nil
	case *PhoneSet:
		return appendEnsurePhone(nil, p.PhoneType, p.PhoneNumber), nil
	case *PhoneRemove:
		return []Op{{Kind: OpRemovePhone, MethodKind: KindPhone, Phone: &PhoneSpec{Type: p.PhoneType}}}, nil
	case *SMSSignInEnable:
		return []Op{{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: true}}, nil
	case *SMSSignInDisable:
		return []Op{{Kind: OpSetSMSSignIn, MethodKind: KindPhone, Enabled: false}}, nil
	case *EmailSet:
		return []Op{{Kind: OpEnsureEmail, MethodKind: KindEmail, Email: p.EmailAddress}}, nil
	case *EmailRemove:
		return []Op{{Kind: OpRemoveEmail, MethodKind: KindEmail}}, nil
	case *TAPIssue:
		return []Op{issueTAP(&p.TAPRequest)}, nil
	case *TAPRemove:
		return []Op{{Kind: OpRemoveTAPs, MethodKind: KindTAP}}, nil
	case *QRCodeIssue:
		return []Op{issueQRCodePin(&p.QRCodePinRequest)}, nil
	case *QRCodeRemove:
		return []Op{{Kind: OpRemoveQRCodePin, MethodKind: KindQRCodePin}}, nil
	case *PasskeyOptionsRequest:
		return []Op{{Kind: OpPasskeyOptions, MethodKind: KindFIDO2, SealTo: p.SealTo}}, nil
	case *PasskeyRegister:
		return []Op{{Kind: OpRegisterPasskey, MethodKind: KindFIDO2, Passkey: p.PublicKeyCredential.spec(p.DisplayName)}}, nil
	case *MethodRemove:
		return []Op{{Kind: OpRemoveMethod, MethodKind: p.MethodKind, MethodID: p.MethodID}}, nil
	case *PasswordReset:
		return []Op{{Kind: OpResetPassword, MethodKind: KindPassword, SealTo: p.SealTo, ForceChange: orTrue(p.ForceChange)}}, nil
	case *ApprovalGrant, *ApprovalDeny, *ScheduleCancel:
		// A decision acts on a parked event, not on the directory.
		return []Op{}, nil
	}
	return nil, newError(CodeInternal, "", "plan: no plan for payload %T of type %s", ev.Payload, quote(ev.Type))
}

func appendEnsurePhone(ops []Op, typ, number string) []Op {
	if number == "" {
		return ops
	}
	return append(ops, Op{Kind: OpEnsurePhone, MethodKind: KindPhone, Phone: &PhoneSpec{Type: typ, Number: number}})
}

func issueTAP(t *TAPRequest) Op {
	return Op{Kind: OpIssueTAP, MethodKind: KindTAP, TAP: t.spec(), SealTo: t.SealTo}
}

func issueQRCodePin(q *QRCodePinRequest) Op {
	return Op{Kind: OpIssueQRCodePin, MethodKind: KindQRCodePin, QRCode: q.spec(), SealTo: q.SealTo}
}

// String renders the operation kind and its masked arguments, for errors
// and tests.
func (o Op) String() string {
	return fmt.Sprintf("%s%v", o.Kind, o.LogValue().Group()[1:])
}
