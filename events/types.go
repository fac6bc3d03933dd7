package events

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nkeys"
)

// Event types: authflow.<noun>.<verb>.v<version>. A new version of a type is
// a new constant and a new payload type; the old one stays until retired.
const (
	// Flows.
	TypeEmployeeJoined   = "authflow.employee.joined.v1"
	TypeEmployeeMoved    = "authflow.employee.moved.v1"
	TypeEmployeeLeft     = "authflow.employee.left.v1"
	TypeDeviceLost       = "authflow.device.lost.v1"
	TypeMFAReset         = "authflow.mfa.reset.v1"
	TypeMethodsInventory = "authflow.methods.inventory.v1"
	// Single operations.
	TypePhoneSet         = "authflow.phone.set.v1"
	TypePhoneRemove      = "authflow.phone.remove.v1"
	TypeSMSSignInEnable  = "authflow.smssignin.enable.v1"
	TypeSMSSignInDisable = "authflow.smssignin.disable.v1"
	TypeEmailSet         = "authflow.email.set.v1"
	TypeEmailRemove      = "authflow.email.remove.v1"
	TypeTAPIssue         = "authflow.tap.issue.v1"
	TypeTAPRemove        = "authflow.tap.remove.v1"
	TypeQRCodeIssue      = "authflow.qrcode.issue.v1"
	TypeQRCodeRemove     = "authflow.qrcode.remove.v1"
	TypeMethodRemove     = "authflow.method.remove.v1"
	TypePasswordReset    = "authflow.password.reset.v1"
	// Decisions on events parked for four-eyes approval (approval.go).
	TypeApprovalGrant = "authflow.approval.grant.v1"
	TypeApprovalDeny  = "authflow.approval.deny.v1"
	// TypeScheduleCancel cancels a future-dated event (schedulecancel.go).
	TypeScheduleCancel = "authflow.schedule.cancel.v1"
)

// Types returns every event type of the catalogue: flows first, then single
// operations, then the approval decisions.
func Types() []string {
	return []string{
		TypeEmployeeJoined, TypeEmployeeMoved, TypeEmployeeLeft, TypeDeviceLost,
		TypeMFAReset, TypeMethodsInventory,
		TypePhoneSet, TypePhoneRemove, TypeSMSSignInEnable, TypeSMSSignInDisable,
		TypeEmailSet, TypeEmailRemove, TypeTAPIssue, TypeTAPRemove,
		TypeQRCodeIssue, TypeQRCodeRemove, TypeMethodRemove, TypePasswordReset,
		TypePasskeyOptions, TypePasskeyRegister,
		TypeApprovalGrant, TypeApprovalDeny, TypeScheduleCancel,
	}
}

// KnownType reports whether typ is in the catalogue.
func KnownType(typ string) bool {
	_, ok := newPayload(typ)
	return ok
}

// ReadOnly reports whether events of type typ never write to the directory:
// the inventory, and the approval decisions (which act on a parked event,
// not on the directory).
func ReadOnly(typ string) bool {
	return typ == TypeMethodsInventory || IsApproval(typ) || typ == TypeScheduleCancel
}

// newPayload returns a pointer to a zero payload for typ.
func newPayload(typ string) (payload, bool) {
	switch typ {
	case TypeEmployeeJoined:
		return new(EmployeeJoined), true
	case TypeEmployeeMoved:
		return new(EmployeeMoved), true
	case TypeEmployeeLeft:
		return new(EmployeeLeft), true
	case TypeDeviceLost:
		return new(DeviceLost), true
	case TypeMFAReset:
		return new(MFAReset), true
	case TypeMethodsInventory:
		return new(MethodsInventory), true
	case TypePhoneSet:
		return new(PhoneSet), true
	case TypePhoneRemove:
		return new(PhoneRemove), true
	case TypeSMSSignInEnable:
		return new(SMSSignInEnable), true
	case TypeSMSSignInDisable:
		return new(SMSSignInDisable), true
	case TypeEmailSet:
		return new(EmailSet), true
	case TypeEmailRemove:
		return new(EmailRemove), true
	case TypeTAPIssue:
		return new(TAPIssue), true
	case TypeTAPRemove:
		return new(TAPRemove), true
	case TypeQRCodeIssue:
		return new(QRCodeIssue), true
	case TypeQRCodeRemove:
		return new(QRCodeRemove), true
	case TypeMethodRemove:
		return new(MethodRemove), true
	case TypePasswordReset:
		return new(PasswordReset), true
	case TypePasskeyOptions:
		return new(PasskeyOptionsRequest), true
	case TypePasskeyRegister:
		return new(PasskeyRegister), true
	case TypeApprovalGrant:
		return new(ApprovalGrant), true
	case TypeApprovalDeny:
		return new(ApprovalDeny), true
	case TypeScheduleCancel:
		return new(ScheduleCancel), true
	}
	return nil, false
}

// Method kinds, equal to the names of Graph's authentication-method
// collections without the "Methods" suffix.
const (
	KindPhone              = "phone"
	KindEmail              = "email"
	KindFIDO2              = "fido2"
	KindAuthenticator      = "microsoftAuthenticator"
	KindWindowsHello       = "windowsHelloForBusiness"
	KindSoftwareOATH       = "softwareOath"
	KindTAP                = "temporaryAccessPass"
	KindPassword           = "password"
	KindPlatformCredential = "platformCredential"
	KindExternal           = "external"
	KindQRCodePin          = "qrCodePin"
)

// RemovableKinds are the kinds method.remove accepts: those Graph can only
// delete, by id.
func RemovableKinds() []string {
	return []string{KindFIDO2, KindAuthenticator, KindWindowsHello, KindSoftwareOATH, KindPlatformCredential}
}

// DeviceKinds are the kinds bound to a device that device.lost can remove;
// the default when device.lost names none.
func DeviceKinds() []string {
	return []string{KindAuthenticator, KindWindowsHello, KindPlatformCredential, KindFIDO2}
}

// Phone types, as Graph names them.
const (
	PhoneMobile          = "mobile"
	PhoneAlternateMobile = "alternateMobile"
	PhoneOffice          = "office"
)

// How a helpdesk verified the caller (Verification.Method).
const (
	VerifiedByCallback   = "callback"    // called back on the number HR holds
	VerifiedByManager    = "manager"     // the manager confirmed the request
	VerifiedInPerson     = "in-person"   // ID checked in person or on video
	VerifiedByVerifiedID = "verified-id" // a Microsoft Entra Verified ID presentation
)

func verificationMethods() []string {
	return []string{VerifiedByCallback, VerifiedByManager, VerifiedInPerson, VerifiedByVerifiedID}
}

// payload is implemented by every event's data type.
type payload interface {
	common() *Common
	validate(v *validator)
}

// Common holds the data fields every event type accepts.
type Common struct {
	// DryRun asks for the plan and the diff, with nothing written.
	DryRun bool `json:"dryRun"`
	// Verification is the helpdesk's evidence of who asked; the policy can
	// require it per source and type.
	Verification *Verification `json:"verification"`
	// EffectiveAt (RFC 3339) defers the event: it is accepted and checked
	// now and applied at that time (docs/events.md, "Future-dated events").
	EffectiveAt string `json:"effectiveAt"`
}

func (c *Common) common() *Common { return c }

// Verification records how a helpdesk verified the person it acts for.
type Verification struct {
	TicketID   string `json:"ticketId"`   // the helpdesk ticket
	Method     string `json:"method"`     // callback | manager | in-person | verified-id
	VerifiedBy string `json:"verifiedBy"` // the agent who verified, as free text (name or UPN)
}

// TAPRequest asks for a Temporary Access Pass, sealed to SealTo.
type TAPRequest struct {
	// LifetimeMinutes is 10..43200 (Graph's range, narrowed by the policy);
	// nil leaves it to the tenant's default.
	LifetimeMinutes *int `json:"lifetimeInMinutes"`
	// UsableOnce defaults to true.
	UsableOnce *bool `json:"usableOnce"`
	// StartDateTime defaults to now.
	StartDateTime *time.Time `json:"startDateTime"`
	// SealTo is the recipient's nkeys curve (xkey) public key, "X...".
	SealTo string `json:"sealTo"`
}

// spec converts the request for a plan.
func (t *TAPRequest) spec() *TAPSpec {
	s := &TAPSpec{UsableOnce: t.UsableOnce == nil || *t.UsableOnce, Start: t.StartDateTime}
	if t.LifetimeMinutes != nil {
		s.LifetimeMinutes = *t.LifetimeMinutes
	}
	return s
}

// EmployeeJoined (authflow.employee.joined.v1) prepares a new hire's methods.
type EmployeeJoined struct {
	Common
	MobilePhone          string      `json:"mobilePhone"`
	AlternateMobilePhone string      `json:"alternateMobilePhone"`
	OfficePhone          string      `json:"officePhone"`
	SMSSignIn            bool        `json:"smsSignIn"` // enable SMS sign-in on MobilePhone
	Email                string      `json:"email"`     // the SSPR email
	TAP                  *TAPRequest `json:"tap"`
	// QRCodePin asks for a QR code + PIN method (frontline workers).
	QRCodePin     *QRCodePinRequest `json:"qrCodePin"`
	EnableAccount bool              `json:"enableAccount"`
}

func (p *EmployeeJoined) validate(v *validator) {
	v.phone("data.mobilePhone", &p.MobilePhone)
	v.phone("data.alternateMobilePhone", &p.AlternateMobilePhone)
	v.phone("data.officePhone", &p.OfficePhone)
	v.email("data.email", p.Email)
	v.tap("data.tap", p.TAP)
	if p.QRCodePin != nil {
		v.qrCodePin("data.qrCodePin", p.QRCodePin)
	}
	if p.SMSSignIn && p.MobilePhone == "" {
		v.fail("data.smsSignIn", "needs data.mobilePhone")
	}
	if p.MobilePhone == "" && p.AlternateMobilePhone == "" && p.OfficePhone == "" &&
		p.Email == "" && p.TAP == nil && p.QRCodePin == nil && !p.EnableAccount {
		v.fail("data", "nothing to do: set a phone, email, tap, qrCodePin or enableAccount")
	}
}

// EmployeeMoved (authflow.employee.moved.v1) changes what moved with the
// person. A field with a value is ensured, a field set to null is removed,
// an absent field is left alone.
type EmployeeMoved struct {
	Common
	MobilePhone          Nullable[string] `json:"mobilePhone"`
	AlternateMobilePhone Nullable[string] `json:"alternateMobilePhone"`
	OfficePhone          Nullable[string] `json:"officePhone"`
	Email                Nullable[string] `json:"email"`
	SMSSignIn            *bool            `json:"smsSignIn"`      // enable or disable SMS sign-in
	RevokeSessions       bool             `json:"revokeSessions"` // default false
}

func (p *EmployeeMoved) validate(v *validator) {
	for _, f := range []struct {
		field string
		n     *Nullable[string]
	}{
		{"data.mobilePhone", &p.MobilePhone},
		{"data.alternateMobilePhone", &p.AlternateMobilePhone},
		{"data.officePhone", &p.OfficePhone},
	} {
		if f.n.HasValue() {
			v.phone(f.field, &f.n.Value)
		}
	}
	if p.Email.HasValue() {
		v.email("data.email", p.Email.Value)
	}
	if p.MobilePhone.IsNull() && p.AlternateMobilePhone.HasValue() {
		v.fail("data.mobilePhone", "cannot remove the mobile phone while setting an alternate mobile phone")
	}
	if p.MobilePhone.IsNull() && p.SMSSignIn != nil && *p.SMSSignIn {
		v.fail("data.smsSignIn", "cannot enable SMS sign-in while removing the mobile phone")
	}
	if !p.MobilePhone.Present && !p.AlternateMobilePhone.Present && !p.OfficePhone.Present &&
		!p.Email.Present && p.SMSSignIn == nil && !p.RevokeSessions {
		v.fail("data", "nothing to do: set or null a phone or email, set smsSignIn, or revokeSessions")
	}
}

// EmployeeLeft (authflow.employee.left.v1) takes every way in away from a
// leaver. Each step defaults to true; a leaver must not keep working
// credentials.
type EmployeeLeft struct {
	Common
	DisableAccount *bool `json:"disableAccount"`
	RevokeSessions *bool `json:"revokeSessions"`
	RemoveMethods  *bool `json:"removeMethods"`
}

func (p *EmployeeLeft) validate(v *validator) {
	if !orTrue(p.DisableAccount) && !orTrue(p.RevokeSessions) && !orTrue(p.RemoveMethods) {
		v.fail("data", "nothing to do: disableAccount, revokeSessions and removeMethods are all false")
	}
}

// DeviceLost (authflow.device.lost.v1) removes the methods bound to a lost
// device, revokes sessions and can issue a recovery TAP.
type DeviceLost struct {
	Common
	Device         DeviceMatch `json:"device"`
	Kinds          []string    `json:"kinds"`          // default DeviceKinds()
	RevokeSessions *bool       `json:"revokeSessions"` // default true
	RecoveryTAP    *TAPRequest `json:"recoveryTap"`
}

func (p *DeviceLost) validate(v *validator) {
	if p.Device.DisplayName == "" && p.Device.DeviceID == "" {
		v.fail("data.device", "required, with displayName or deviceId")
	}
	v.text("data.device.displayName", p.Device.DisplayName, maxTextLen)
	v.match("data.device.deviceId", p.Device.DeviceID, reDeviceID, maxDeviceIDLen, "a device id (letters, digits, . _ -)")
	if p.Kinds != nil {
		if len(p.Kinds) == 0 {
			v.fail("data.kinds", "must not be empty (omit it for the default kinds)")
		}
		for i, k := range p.Kinds {
			field := "data.kinds[" + strconv.Itoa(i) + "]"
			if !slices.Contains(DeviceKinds(), k) {
				v.fail(field, "must be one of %s", strings.Join(DeviceKinds(), ", "))
			} else if slices.Index(p.Kinds, k) != i {
				v.fail(field, "duplicate kind")
			}
		}
	}
	v.tap("data.recoveryTap", p.RecoveryTAP)
}

// MFAReset (authflow.mfa.reset.v1) removes every method but the password so
// that the user registers again, revokes sessions and can issue a TAP.
type MFAReset struct {
	Common
	RevokeSessions *bool       `json:"revokeSessions"` // default true
	TAP            *TAPRequest `json:"tap"`
}

func (p *MFAReset) validate(v *validator) { v.tap("data.tap", p.TAP) }

// MethodsInventory (authflow.methods.inventory.v1) reports the user's
// methods and writes nothing.
type MethodsInventory struct{ Common }

func (p *MethodsInventory) validate(*validator) {}

// PhoneSet (authflow.phone.set.v1) makes the phone of one type this number.
type PhoneSet struct {
	Common
	PhoneType   string `json:"phoneType"`
	PhoneNumber string `json:"phoneNumber"`
}

func (p *PhoneSet) validate(v *validator) {
	v.phoneType("data.phoneType", p.PhoneType)
	v.required("data.phoneNumber", p.PhoneNumber)
	v.phone("data.phoneNumber", &p.PhoneNumber)
}

// PhoneRemove (authflow.phone.remove.v1) removes the phone of one type.
type PhoneRemove struct {
	Common
	PhoneType string `json:"phoneType"`
}

func (p *PhoneRemove) validate(v *validator) { v.phoneType("data.phoneType", p.PhoneType) }

// SMSSignInEnable (authflow.smssignin.enable.v1) enables SMS sign-in on
// the mobile phone.
type SMSSignInEnable struct{ Common }

func (p *SMSSignInEnable) validate(*validator) {}

// SMSSignInDisable (authflow.smssignin.disable.v1) disables SMS sign-in.
type SMSSignInDisable struct{ Common }

func (p *SMSSignInDisable) validate(*validator) {}

// EmailSet (authflow.email.set.v1) makes the SSPR email this address.
type EmailSet struct {
	Common
	EmailAddress string `json:"emailAddress"`
}

func (p *EmailSet) validate(v *validator) {
	v.required("data.emailAddress", p.EmailAddress)
	v.email("data.emailAddress", p.EmailAddress)
}

// EmailRemove (authflow.email.remove.v1) removes the SSPR email.
type EmailRemove struct{ Common }

func (p *EmailRemove) validate(*validator) {}

// TAPIssue (authflow.tap.issue.v1) issues a Temporary Access Pass.
type TAPIssue struct {
	Common
	TAPRequest
}

func (p *TAPIssue) validate(v *validator) { v.tapFields("data", &p.TAPRequest) }

// TAPRemove (authflow.tap.remove.v1) removes the user's TAPs.
type TAPRemove struct{ Common }

func (p *TAPRemove) validate(*validator) {}

// QR code + PIN lifetime limits of Graph v1.0, in days.
const (
	MinQRCodeLifetimeDays = 1
	MaxQRCodeLifetimeDays = 395
)

// QRCodePinRequest asks for a QR code + PIN method, its PIN and QR code
// data sealed to SealTo.
type QRCodePinRequest struct {
	// LifetimeDays is the standard QR code's lifetime, 1..395; nil means
	// Graph's default, 365.
	LifetimeDays *int `json:"lifetimeInDays"`
	// StartDateTime defaults to now.
	StartDateTime *time.Time `json:"startDateTime"`
	// SealTo is the recipient's nkeys curve (xkey) public key, "X...".
	SealTo string `json:"sealTo"`
}

func (q *QRCodePinRequest) spec() *QRCodeSpec {
	s := &QRCodeSpec{Start: q.StartDateTime}
	if q.LifetimeDays != nil {
		s.LifetimeDays = *q.LifetimeDays
	}
	return s
}

// QRCodeIssue (authflow.qrcode.issue.v1) creates the user's QR code + PIN
// method, replacing an existing one.
type QRCodeIssue struct {
	Common
	QRCodePinRequest
}

func (p *QRCodeIssue) validate(v *validator) { v.qrCodePin("data", &p.QRCodePinRequest) }

// QRCodeRemove (authflow.qrcode.remove.v1) removes the user's QR code + PIN
// method.
type QRCodeRemove struct{ Common }

func (p *QRCodeRemove) validate(*validator) {}

// MethodRemove (authflow.method.remove.v1) removes one method by kind and id.
type MethodRemove struct {
	Common
	MethodKind string `json:"methodKind"`
	MethodID   string `json:"methodId"`
}

func (p *MethodRemove) validate(v *validator) {
	v.required("data.methodKind", p.MethodKind)
	if p.MethodKind != "" && !slices.Contains(RemovableKinds(), p.MethodKind) {
		v.fail("data.methodKind", "must be one of %s", strings.Join(RemovableKinds(), ", "))
	}
	v.required("data.methodId", p.MethodID)
	v.match("data.methodId", p.MethodID, reMethodID, maxMethodIDLen, "a Graph method id (letters, digits, - _)")
}

// PasswordReset (authflow.password.reset.v1) resets the password to a
// generated one, sealed to SealTo.
type PasswordReset struct {
	Common
	SealTo      string `json:"sealTo"`
	ForceChange *bool  `json:"forceChange"` // change at next sign-in; default true
}

func (p *PasswordReset) validate(v *validator) {
	v.required("data.sealTo", p.SealTo)
	v.xkey("data.sealTo", p.SealTo)
}

func orTrue(b *bool) bool { return b == nil || *b }

// validator checks a payload and normalises it in place; it keeps the first
// failure only, so the error names the first bad field in document order of
// the checks.
type validator struct {
	region string
	err    *Error
}

func (v *validator) fail(field, format string, args ...any) {
	if v.err == nil {
		v.err = invalid(field, format, args...)
	}
}

func (v *validator) required(field, s string) {
	if s == "" {
		v.fail(field, "required")
	}
}

// match checks an optional string (empty = absent) against a pattern.
func (v *validator) match(field, s string, re *regexp.Regexp, max int, what string) {
	if s == "" {
		return
	}
	if utf8.RuneCountInString(s) > max {
		v.fail(field, "longer than %d characters", max)
		return
	}
	if !re.MatchString(s) {
		v.fail(field, "must be %s", what)
	}
}

func (v *validator) text(field, s string, max int) {
	v.match(field, s, reText, max, "printable text without control or bidi characters")
}

func (v *validator) email(field, s string) {
	v.match(field, s, reEmail, maxEmailLen, "an email address")
}

func (v *validator) xkey(field, s string) {
	if s == "" {
		return
	}
	if !reXKey.MatchString(s) {
		v.fail(field, "must be an nkeys curve public key (X followed by 55 base32 characters)")
		return
	}
	if !nkeys.IsValidPublicCurveKey(s) {
		if v.err == nil {
			v.err = invalid(field, "not a valid nkeys curve public key (bad checksum)")
			v.err.rule = ruleKey
		}
	}
}

func (v *validator) phoneType(field, s string) {
	v.required(field, s)
	switch s {
	case "", PhoneMobile, PhoneAlternateMobile, PhoneOffice:
	default:
		v.fail(field, "must be mobile, alternateMobile or office")
	}
}

// phone validates and normalises an optional phone number in place.
func (v *validator) phone(field string, s *string) {
	if *s == "" || v.err != nil {
		return
	}
	n, err := normalizePhone(*s, v.region)
	if err != nil {
		e := invalid(field, "%s", err.msg)
		e.rule = err.rule
		v.err = e
		return
	}
	*s = n
}

func (v *validator) tap(path string, t *TAPRequest) {
	if t != nil {
		v.tapFields(path, t)
	}
}

func (v *validator) tapFields(path string, t *TAPRequest) {
	if t.LifetimeMinutes != nil && (*t.LifetimeMinutes < 10 || *t.LifetimeMinutes > 43200) {
		v.fail(path+".lifetimeInMinutes", "must be between 10 and 43200 minutes")
	}
	v.required(path+".sealTo", t.SealTo)
	v.xkey(path+".sealTo", t.SealTo)
}

func (v *validator) qrCodePin(path string, q *QRCodePinRequest) {
	if q.LifetimeDays != nil && (*q.LifetimeDays < MinQRCodeLifetimeDays || *q.LifetimeDays > MaxQRCodeLifetimeDays) {
		v.fail(path+".lifetimeInDays", "must be between %d and %d days", MinQRCodeLifetimeDays, MaxQRCodeLifetimeDays)
	}
	v.required(path+".sealTo", q.SealTo)
	v.xkey(path+".sealTo", q.SealTo)
}

func (v *validator) verification(path string, x *Verification) {
	if x == nil {
		return
	}
	v.required(path+".ticketId", x.TicketID)
	v.match(path+".ticketId", x.TicketID, reTicketID, maxTicketIDLen, "a ticket id (letters, digits, . _ : # / -)")
	v.required(path+".method", x.Method)
	if x.Method != "" && !slices.Contains(verificationMethods(), x.Method) {
		v.fail(path+".method", "must be one of %s", strings.Join(verificationMethods(), ", "))
	}
	v.required(path+".verifiedBy", x.VerifiedBy)
	v.text(path+".verifiedBy", x.VerifiedBy, maxTextLen)
}
