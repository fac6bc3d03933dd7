package graphclienttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// User is the admin shape of a user (PUT/GET /_emulator/users/{id}).
//
// On input, Methods are Graph JSON objects with "@odata.type"; a method
// without "id" gets one (the fixed id for phones, email and password).
// Every user has the password method: it is added when missing. The facts
// PasswordChanges, ForceChangePasswordNextSignIn and SessionsRevoked are
// what the Graph API did to the user; PUT stores them as given. A TAP's
// value and passwords are never stored, so they are never returned.
type User struct {
	// ID is the object id, a GUID.
	ID string `json:"id"`
	// UserPrincipalName is the sign-in name; unique, case-insensitive.
	UserPrincipalName string `json:"userPrincipalName"`
	// DisplayName is optional.
	DisplayName string `json:"displayName,omitempty"`
	// UserType is "Member" (the default) or "Guest".
	UserType string `json:"userType,omitempty"`
	// AccountEnabled defaults to true when nil; never nil on output.
	AccountEnabled *bool `json:"accountEnabled,omitempty"`
	// DirectoryRoles are role display names, e.g. "Global Administrator";
	// GET /users/{id}/memberOf lists them as directoryRole objects.
	DirectoryRoles []string `json:"directoryRoles,omitempty"`
	// DefaultMethodID is the default MFA method. When empty on input, the
	// first MFA-capable method (phone, Authenticator, software OATH, FIDO2,
	// Windows Hello) becomes the default.
	DefaultMethodID string `json:"defaultMethodId,omitempty"`
	// Methods are the registered methods in Graph JSON, in registration order.
	Methods []json.RawMessage `json:"methods,omitempty"`
	// PasswordChanges counts password resets and passwordProfile updates.
	PasswordChanges int `json:"passwordChanges"`
	// ForceChangePasswordNextSignIn is set by resetPassword and by PATCH passwordProfile.
	ForceChangePasswordNextSignIn bool `json:"forceChangePasswordNextSignIn"`
	// SessionsRevoked counts revokeSignInSessions calls.
	SessionsRevoked int `json:"sessionsRevoked"`
	// Mail is the primary SMTP address (Graph's mail); a user without
	// one has no mailbox and cannot be a sendMail sender.
	Mail string `json:"mail,omitempty"`
	// OtherMails are the user's additional addresses (Graph's otherMails).
	OtherMails []string `json:"otherMails,omitempty"`
	// ManagerID is the object id of the manager (GET /users/{id}/manager).
	ManagerID string `json:"managerId,omitempty"`
}

type smsState uint8

const (
	smsOff smsState = iota
	smsOn
	smsNotUnique // auto-registration found the number in use by another user
)

// method is one registered authentication method.
type method struct {
	kind    kind
	id      string
	created time.Time

	number, phoneType string // phone
	sms               smsState

	email string

	start    time.Time // TAP
	lifetime int
	once     bool
	used     bool

	qrStart, qrExpire time.Time // qrCodePin: the standard QR code
	qrID, pinID       string    // qrCodePin
	pinForce          bool      // qrCodePin: forceChangePinNextSignIn

	props  map[string]string // string properties of read-only types
	certs  []string          // fido2 attestationCertificates
	credID string            // fido2: the credential id, base64url (passkey.go)
	device map[string]any    // device navigation, when seeded
}

// operation is a password-reset long-running operation.
type operation struct {
	id                  string
	created, lastAction time.Time
	polls               int
}

// challenge is an outstanding FIDO2 creationOptions challenge.
type challenge struct {
	value   string
	expires time.Time
}

// user is the stored user.
type user struct {
	id, upn, displayName, userType string
	enabled                        bool
	roles                          []string
	defaultID                      string
	preferred                      string // beta signInPreferences as last set (beta.go)
	systemPreferred                bool   // beta isSystemPreferredAuthenticationMethodEnabled
	methods                        []*method
	ops                            []*operation
	challenges                     []challenge
	passwordChanges                int
	sessionsRevoked                int
	forceChange                    bool
	mail                           mailFields // mail.go
}

const (
	maxOpsPerUser        = 20
	maxChallengesPerUser = 10
	userTypeMember       = "Member"
	userTypeGuest        = "Guest"
)

func (u *user) find(id string) *method {
	for _, m := range u.methods {
		if strings.EqualFold(m.id, id) {
			return m
		}
	}
	return nil
}

func (u *user) findKind(k kind, id string) *method {
	if m := u.find(id); m != nil && m.kind == k {
		return m
	}
	return nil
}

func (u *user) first(k kind) *method {
	for _, m := range u.methods {
		if m.kind == k {
			return m
		}
	}
	return nil
}

func (u *user) phone(phoneType string) *method {
	for _, m := range u.methods {
		if m.kind == kindPhone && m.phoneType == phoneType {
			return m
		}
	}
	return nil
}

func (u *user) remove(m *method) {
	u.methods = slices.DeleteFunc(u.methods, func(x *method) bool { return x == m })
}

// add registers a method; the first MFA-capable method becomes the default
// when the user has none.
func (u *user) add(m *method) {
	u.methods = append(u.methods, m)
	if u.defaultID == "" && m.kind.info().mfa {
		u.defaultID = m.id
	}
}

func (u *user) isGuest() bool { return u.userType == userTypeGuest }

// phoneIDs maps a phone type to its fixed method id.
func phoneID(phoneType string) string {
	switch phoneType {
	case "mobile":
		return mobilePhoneID
	case "alternateMobile":
		return altMobilePhoneID
	case "office":
		return officePhoneID
	}
	return ""
}

// validPhoneNumber checks the "+{cc} {number}[x{ext}]" form: a 1-3 digit
// country code not starting with 0, one space, 4-20 digits, and an optional
// 'x' with 1-10 digits.
func validPhoneNumber(s string) bool {
	rest, ok := strings.CutPrefix(s, "+")
	if !ok {
		return false
	}
	cc, rest, ok := strings.Cut(rest, " ")
	if !ok || len(cc) < 1 || len(cc) > 3 || !allDigits(cc) || cc[0] == '0' {
		return false
	}
	num, ext, hasExt := strings.Cut(rest, "x")
	if len(num) < 4 || len(num) > 20 || !allDigits(num) {
		return false
	}
	return !hasExt || len(ext) >= 1 && len(ext) <= 10 && allDigits(ext)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

const phoneFormatMessage = "Invalid phone number. The expected format is '+{country code} {number}x{extension}', e.g. '+1 5555551234' or '+1 5555551234x123'."

func validEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || len(s) > 254 || strings.Contains(domain, "@") ||
		!strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func validUPN(s string) bool {
	return len(s) <= 1024 && !isGUID(s) && validUserSegment(s)
}

// validPassword applies the Entra password policy: 8..256 characters and
// three of lower case, upper case, digits and symbols.
func validPassword(p string) bool {
	if len(p) < 8 || len(p) > 256 {
		return false
	}
	var lower, upper, digit, symbol int
	for _, r := range p {
		switch {
		case 'a' <= r && r <= 'z':
			lower = 1
		case 'A' <= r && r <= 'Z':
			upper = 1
		case '0' <= r && r <= '9':
			digit = 1
		case r < ' ' || r == 0x7f:
			return false
		default:
			symbol = 1
		}
	}
	return lower+upper+digit+symbol >= 3
}

const passwordPolicyMessage = "The specified password does not comply with password complexity requirements. Please provide a different password."

// parseDateTime accepts RFC 3339, and an offset-less timestamp as UTC.
func parseDateTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date-time (want RFC 3339, e.g. 2026-01-02T15:04:05Z)", s)
}

// seedMethod is the admin input for one method.
type seedMethod struct {
	ODataType             *string        `json:"@odata.type"`
	ID                    *string        `json:"id"`
	CreatedDateTime       *string        `json:"createdDateTime"`
	PhoneNumber           *string        `json:"phoneNumber"`
	PhoneType             *string        `json:"phoneType"`
	SMSSignInState        *string        `json:"smsSignInState"`
	EmailAddress          *string        `json:"emailAddress"`
	StartDateTime         *string        `json:"startDateTime"`
	LifetimeInMinutes     *int32         `json:"lifetimeInMinutes"`
	IsUsableOnce          *bool          `json:"isUsableOnce"`
	MethodUsabilityReason *string        `json:"methodUsabilityReason"`
	AttestationCerts      []string       `json:"attestationCertificates"`
	Device                map[string]any `json:"device"`
}

// smsStates are the values of authenticationMethodSignInState; read-only.
var smsStates = []string{"notSupported", "notAllowedByPolicy", "notEnabled", "phoneNumberNotUnique", "ready", "notConfigured", "unknownFutureValue"}

// parseSeedMethod turns admin JSON into a method.
func parseSeedMethod(raw json.RawMessage, now time.Time) (*method, error) {
	var f seedMethod
	if err := decodeJSON(raw, &f); err != nil {
		return nil, err
	}
	if f.ODataType == nil {
		return nil, errors.New("@odata.type is required")
	}
	k, ok := kindByODataType(*f.ODataType)
	if !ok {
		return nil, fmt.Errorf("unknown @odata.type %q", *f.ODataType)
	}
	info := k.info()
	m := &method{kind: k, created: now}
	if f.CreatedDateTime != nil {
		t, err := parseDateTime(*f.CreatedDateTime)
		if err != nil {
			return nil, fmt.Errorf("createdDateTime: %w", err)
		}
		m.created = t
	}
	fixed := info.fixedID
	switch k {
	case kindPhone:
		if f.PhoneNumber == nil || !validPhoneNumber(*f.PhoneNumber) {
			return nil, errors.New(phoneFormatMessage)
		}
		if f.PhoneType == nil || phoneID(*f.PhoneType) == "" {
			return nil, errors.New("phoneType must be mobile, alternateMobile or office")
		}
		m.number, m.phoneType = *f.PhoneNumber, *f.PhoneType
		fixed = phoneID(m.phoneType)
		if f.SMSSignInState != nil {
			if !slices.Contains(smsStates, *f.SMSSignInState) {
				return nil, fmt.Errorf("unknown smsSignInState %q", *f.SMSSignInState)
			}
			if *f.SMSSignInState == "ready" {
				if m.phoneType != "mobile" {
					return nil, errors.New("SMS sign-in can only be ready on the mobile phone")
				}
				m.sms = smsOn
			}
		}
	case kindEmail:
		if f.EmailAddress == nil || !validEmail(*f.EmailAddress) {
			return nil, errors.New("emailAddress must be a valid email address")
		}
		m.email = *f.EmailAddress
	case kindTAP:
		m.start, m.lifetime = m.created, 60
		if f.StartDateTime != nil {
			t, err := parseDateTime(*f.StartDateTime)
			if err != nil {
				return nil, fmt.Errorf("startDateTime: %w", err)
			}
			m.start = t
		}
		if f.LifetimeInMinutes != nil {
			m.lifetime = int(*f.LifetimeInMinutes)
			if m.lifetime < tapAPIMinLifetime || m.lifetime > tapAPIMaxLifetime {
				return nil, fmt.Errorf("lifetimeInMinutes must be within %d..%d", tapAPIMinLifetime, tapAPIMaxLifetime)
			}
		}
		m.once = f.IsUsableOnce != nil && *f.IsUsableOnce
		m.used = f.MethodUsabilityReason != nil && *f.MethodUsabilityReason == "OneTimeUsed"
	case kindFido2:
		m.certs = f.AttestationCerts
	case kindQRCodePin:
		if err := m.seedQR(raw); err != nil {
			return nil, err
		}
	}
	if len(info.props) > 0 {
		var all map[string]json.RawMessage
		if err := json.Unmarshal(raw, &all); err != nil {
			return nil, err
		}
		for _, p := range info.props {
			v, ok := all[p.name]
			if !ok || string(v) == "null" {
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("property %q must be a string", p.name)
			}
			if p.enum != nil && !slices.Contains(p.enum, s) {
				return nil, fmt.Errorf("property %q: %q is not one of %s", p.name, s, strings.Join(p.enum, ", "))
			}
			if m.props == nil {
				m.props = map[string]string{}
			}
			m.props[p.name] = s
		}
	}
	if f.Device != nil {
		if !info.device {
			return nil, fmt.Errorf("%s has no device", info.odataType)
		}
		m.device = f.Device
	}
	switch {
	case fixed != "":
		if f.ID != nil && !strings.EqualFold(*f.ID, fixed) {
			return nil, fmt.Errorf("id of %s must be %s", info.odataType, fixed)
		}
		m.id = fixed
	case f.ID != nil:
		if !validMethodID(*f.ID) {
			return nil, fmt.Errorf("id %q is not a valid method id (letters, digits, '-', '_', '.', '=', '~'; at most 256)", *f.ID)
		}
		m.id = *f.ID
	default:
		m.id = newGUID()
	}
	return m, nil
}

// buildUser validates the admin shape and builds the stored user.
func buildUser(in User, now time.Time) (*user, error) {
	if !isGUID(in.ID) {
		return nil, fmt.Errorf("id %q is not an object id (GUID)", in.ID)
	}
	if !validUPN(in.UserPrincipalName) {
		return nil, fmt.Errorf("userPrincipalName %q is not a valid UPN (name@domain, no spaces or double quotes)", in.UserPrincipalName)
	}
	u := &user{
		id:              strings.ToLower(in.ID),
		upn:             in.UserPrincipalName,
		displayName:     in.DisplayName,
		enabled:         in.AccountEnabled == nil || *in.AccountEnabled,
		passwordChanges: in.PasswordChanges,
		sessionsRevoked: in.SessionsRevoked,
		forceChange:     in.ForceChangePasswordNextSignIn,
	}
	switch {
	case in.UserType == "" || strings.EqualFold(in.UserType, userTypeMember):
		u.userType = userTypeMember
	case strings.EqualFold(in.UserType, userTypeGuest):
		u.userType = userTypeGuest
	default:
		return nil, fmt.Errorf("userType %q: want Member or Guest", in.UserType)
	}
	if err := setMailFields(u, in); err != nil {
		return nil, err
	}
	if in.PasswordChanges < 0 || in.SessionsRevoked < 0 {
		return nil, errors.New("passwordChanges and sessionsRevoked must not be negative")
	}
	for _, r := range in.DirectoryRoles {
		r = strings.TrimSpace(r)
		if r == "" || len(r) > 256 {
			return nil, errors.New("directoryRoles must be non-empty names of at most 256 characters")
		}
		if !slices.ContainsFunc(u.roles, func(x string) bool { return strings.EqualFold(x, r) }) {
			u.roles = append(u.roles, r)
		}
	}
	for i, raw := range in.Methods {
		m, err := parseSeedMethod(raw, now)
		if err != nil {
			return nil, fmt.Errorf("methods[%d]: %w", i, err)
		}
		if u.find(m.id) != nil {
			return nil, fmt.Errorf("methods[%d]: duplicate method id %s (one phone per type, one email, one TAP, one password)", i, m.id)
		}
		u.methods = append(u.methods, m)
	}
	if u.phone("alternateMobile") != nil && u.phone("mobile") == nil {
		return nil, errors.New("an alternateMobile phone requires a mobile phone")
	}
	if n := countKind(u.methods, kindQRCodePin); n > 1 {
		return nil, errors.New("a user has at most one QR code PIN method")
	}
	if u.first(kindTAP) != nil && u.isGuest() {
		return nil, errors.New("Temporary Access Pass cannot be added to an external guest user")
	}
	if u.first(kindPassword) == nil {
		u.methods = slices.Insert(u.methods, 0, &method{kind: kindPassword, id: passwordMethodID, created: now})
	}
	if in.DefaultMethodID != "" {
		m := u.find(in.DefaultMethodID)
		if m == nil || !m.kind.info().mfa {
			return nil, fmt.Errorf("defaultMethodId %q must be the id of one of the user's MFA methods (phone, Authenticator, software OATH, FIDO2, Windows Hello)", in.DefaultMethodID)
		}
		u.defaultID = m.id
	} else {
		for _, m := range u.methods {
			if m.kind.info().mfa {
				u.defaultID = m.id
				break
			}
		}
	}
	return u, nil
}

// view is what rendering a method depends on besides the method.
type view struct {
	now    time.Time
	smsOff bool // tenant SMS sign-in policy off
}

// smsSignInState reports a phone's state: only mobile supports SMS sign-in.
func (v view) smsSignInState(m *method) string {
	switch {
	case m.phoneType != "mobile":
		return "notSupported"
	case v.smsOff:
		return "notAllowedByPolicy"
	case m.sms == smsOn:
		return "ready"
	case m.sms == smsNotUnique:
		return "phoneNumberNotUnique"
	}
	return "notEnabled"
}

// tapUsability computes isUsable and methodUsabilityReason.
func (v view) tapUsability(m *method) (bool, string) {
	switch {
	case m.used:
		return false, "OneTimeUsed"
	case v.now.Before(m.start):
		return false, "NotYetValid"
	case !v.now.Before(m.start.Add(time.Duration(m.lifetime) * time.Minute)):
		return false, "Expired"
	}
	return true, "EnabledByPolicy"
}

// appendMethod writes a method as Graph JSON. context, when set, becomes
// "@odata.context"; tapValue is the pass, given only in the POST answer.
func (v view) appendMethod(b []byte, m *method, context, tapValue string, withDevice bool) []byte {
	info := m.kind.info()
	o := startObj(b)
	if context != "" {
		o.str("@odata.context", context)
	}
	o.str("@odata.type", info.odataType)
	o.str("id", m.id)
	switch m.kind {
	case kindPhone:
		o.str("phoneNumber", m.number)
		o.str("phoneType", m.phoneType)
		o.str("smsSignInState", v.smsSignInState(m))
	case kindEmail:
		o.str("emailAddress", m.email)
	case kindPassword:
		o.null("password")
	case kindSoftwareOath:
		o.null("secretKey")
	case kindTAP:
		o.strOrNull("temporaryAccessPass", tapValue)
	case kindFido2:
		o.strings("attestationCertificates", m.certs)
	case kindQRCodePin:
		// GET never returns the PIN or the QR image (docs/emulator.md).
		appendQR(&o, m, nil)
	}
	for _, p := range info.props {
		o.strOrNull(p.name, m.props[p.name])
	}
	o.time("createdDateTime", m.created)
	if m.kind == kindTAP {
		usable, reason := v.tapUsability(m)
		o.time("startDateTime", m.start)
		o.integer("lifetimeInMinutes", m.lifetime)
		o.boolean("isUsableOnce", m.once)
		o.boolean("isUsable", usable)
		o.str("methodUsabilityReason", reason)
	}
	if withDevice && info.device {
		if m.device == nil {
			o.null("device")
		} else {
			d, err := json.Marshal(m.device)
			if err != nil {
				o.null("device")
			} else {
				o.raw("device", d)
			}
		}
	}
	return o.end()
}

// adminUserLocked renders a user in the admin shape.
func (e *Emulator) adminUserLocked(u *user, now time.Time) User {
	v := view{now: now, smsOff: e.cfg.SMSSignInDisabled}
	enabled := u.enabled
	out := User{
		ID:                            u.id,
		UserPrincipalName:             u.upn,
		DisplayName:                   u.displayName,
		UserType:                      u.userType,
		AccountEnabled:                &enabled,
		DirectoryRoles:                slices.Clone(u.roles),
		DefaultMethodID:               u.defaultID,
		Methods:                       make([]json.RawMessage, 0, len(u.methods)),
		PasswordChanges:               u.passwordChanges,
		ForceChangePasswordNextSignIn: u.forceChange,
		SessionsRevoked:               u.sessionsRevoked,
	}
	for _, m := range u.methods {
		out.Methods = append(out.Methods, v.appendMethod(nil, m, "", "", m.device != nil))
	}
	mailFieldsOut(&out, u)
	return out
}

func (e *Emulator) sortedUserIDsLocked() []string {
	ids := make([]string, 0, len(e.users))
	for id := range e.users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// lookupUserLocked resolves a path segment (object id or UPN).
func (e *Emulator) lookupUserLocked(seg string) *user {
	if isGUID(seg) {
		return e.users[strings.ToLower(seg)]
	}
	if id, ok := e.upns[strings.ToLower(seg)]; ok {
		return e.users[id]
	}
	return nil
}
