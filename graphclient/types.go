package graphclient

import (
	"fmt"
	"log/slog"
	"time"
)

// Kind is the type of an authentication method, named like its Graph
// navigation property without the "Methods" suffix.
type Kind string

// The method kinds of Graph v1.0.
const (
	KindPhone                   Kind = "phone"
	KindEmail                   Kind = "email"
	KindFIDO2                   Kind = "fido2"
	KindMicrosoftAuthenticator  Kind = "microsoftAuthenticator"
	KindWindowsHelloForBusiness Kind = "windowsHelloForBusiness"
	KindSoftwareOath            Kind = "softwareOath"
	KindTAP                     Kind = "temporaryAccessPass"
	KindPassword                Kind = "password"
	KindPlatformCredential      Kind = "platformCredential"
	KindExternal                Kind = "external"
	KindQRCodePin               Kind = "qrCodePin"
)

// PhoneType is the type of a phone method. A user has at most one of each.
type PhoneType string

// The phone types.
const (
	PhoneMobile          PhoneType = "mobile"
	PhoneAlternateMobile PhoneType = "alternateMobile"
	PhoneOffice          PhoneType = "office"
)

// Fixed method ids, the same in every tenant.
const (
	// PasswordMethodID is the id of every user's password method.
	PasswordMethodID = "28c10230-6103-485e-b985-444c60001490"
	// EmailMethodID is the id of every user's email method.
	EmailMethodID = "3ddfcfc8-9383-446f-83cc-3ab9be4be18f"
	// MobilePhoneID is the id of the mobile phone method.
	MobilePhoneID = "3179e48a-750b-4051-897c-87b9720928f7"
	// AlternateMobilePhoneID is the id of the alternate mobile phone method.
	AlternateMobilePhoneID = "b6332ec1-7057-4abe-9331-3d72feddfe41"
	// OfficePhoneID is the id of the office phone method.
	OfficePhoneID = "e37fc753-ff3b-4958-9484-eaa9425c82bc"
)

// Method is one registered authentication method. Fields that do not apply
// to its Kind are zero.
type Method struct {
	Kind    Kind
	ID      string
	Created time.Time // zero when Graph does not say

	// DisplayName is set for fido2, microsoftAuthenticator,
	// windowsHelloForBusiness, platformCredential and external methods.
	DisplayName     string
	DeviceTag       string // microsoftAuthenticator
	PhoneAppVersion string // microsoftAuthenticator
	Model           string // fido2
	AAGUID          string // fido2
	PasskeyType     string // fido2: deviceBound or synced
	Attestation     string // fido2: attestationLevel, attested or notAttested
	KeyStrength     string // windowsHelloForBusiness, platformCredential
	Platform        string // platformCredential

	PhoneType      PhoneType // phone
	PhoneNumber    string    // phone
	SMSSignInState string    // phone: ready, notEnabled, notSupported, ...

	EmailAddress string // email

	TAPStart           time.Time // temporaryAccessPass
	TAPLifetimeMinutes int       // temporaryAccessPass
	TAPUsableOnce      bool      // temporaryAccessPass
	TAPUsable          bool      // temporaryAccessPass
	TAPUsabilityReason string    // temporaryAccessPass: EnabledByPolicy, Expired, NotYetValid, ...

	QRCodeStart  time.Time // qrCodePin: the standard QR code's startDateTime
	QRCodeExpiry time.Time // qrCodePin: the standard QR code's expireDateTime

	// Default reports whether this is the user's default MFA method. Graph
	// v1.0 cannot read the default method, so it is false unless known.
	Default bool
}

// User is the part of a Graph user that the flows need.
type User struct {
	ID                string
	UserPrincipalName string
	UserType          string // "Member" or "Guest"
	AccountEnabled    bool
}

// TAPRequest asks for a Temporary Access Pass.
type TAPRequest struct {
	// Start is when the pass becomes usable; zero means now.
	Start time.Time
	// LifetimeMinutes is 10..43200 within the tenant policy; 0 means the
	// policy default.
	LifetimeMinutes int
	// UsableOnce asks for a one-time pass. False leaves it to the tenant
	// policy (which may force one-time passes).
	UsableOnce bool
}

// TAP is a newly created Temporary Access Pass.
//
// Value is the secret. Graph returns it once, in the create response; seal
// it at once. TAP's String, GoString and LogValue redact it so that logging
// a TAP by mistake does not leak it.
type TAP struct {
	Method Method
	Value  string
}

// String describes the pass without its value.
func (t TAP) String() string {
	return fmt.Sprintf("TAP{id:%s start:%s lifetime:%dm usableOnce:%t value:[REDACTED]}",
		t.Method.ID, t.Method.TAPStart.Format(time.RFC3339), t.Method.TAPLifetimeMinutes, t.Method.TAPUsableOnce)
}

// GoString is String, so that %#v redacts the value too.
func (t TAP) GoString() string { return t.String() }

// LogValue keeps the value out of slog output.
func (t TAP) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", t.Method.ID),
		slog.Time("start", t.Method.TAPStart),
		slog.Int("lifetimeMinutes", t.Method.TAPLifetimeMinutes),
		slog.Bool("usableOnce", t.Method.TAPUsableOnce),
		slog.String("value", "[REDACTED]"),
	)
}
