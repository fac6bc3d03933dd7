package graphclienttest

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Messages fixed by docs/emulator.md (and §11 of the Graph notes).
const (
	msgDefaultMethod = "Cannot delete default method with other methods configured. Please change default method before deletion."
	msgSMSPolicy     = "Cannot enable SMS sign-in on phone auth method as the credential policy is not enabled on user"
	msgGuestTAP      = "Temporary Access Pass cannot be added to an external guest user"
)

// mfaClaims is the claims request of Graph's challenge for multifactor
// authentication on credential-management calls.
const mfaClaims = `{"access_token":{"amr":{"essential":true,"values":["ngcmfa"]}}}`

// mfaChallenge is the 403 of a credential-management call whose token lacks
// multifactor claims: a WWW-Authenticate claims challenge (base64 of
// mfaClaims) and the claims in the message too.
func mfaChallenge() reply {
	rep := errReply(http.StatusForbidden, "accessDenied",
		"Multifactor authentication is required for this operation. Additional claims required "+mfaClaims)
	rep.authenticate = `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", ` +
		`error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(mfaClaims)) + `"`
	return rep
}

// handle serves a request whose token, throttle and body checks passed.
// It runs with e.mu held and must not block.
func (e *Emulator) handle(c *call) reply {
	rt := &c.rt
	switch rt.op {
	case opUnknown:
		return errReplyf(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", rt.segment)
	case opBadID:
		if rt.userCode {
			return errReplyf(http.StatusBadRequest, "Request_BadRequest", "Invalid object identifier '%s'.", rt.segment)
		}
		return errReplyf(http.StatusBadRequest, "badRequest", "Invalid id '%s'.", rt.segment)
	case opMe:
		return errReply(http.StatusBadRequest, "BadRequest",
			"/me request is only valid with delegated authentication flow. The emulator has no signed-in user: address users by id.")
	}
	if !rt.allows(c.r.Method) {
		rep := errReplyf(http.StatusMethodNotAllowed, "notSupported", "The HTTP method '%s' is not supported on %s.", c.r.Method, rt.tmpl)
		rep.allow = rt.allow
		return rep
	}
	if e.cfg.MFARequired && c.r.Method != http.MethodGet && c.r.Method != http.MethodHead &&
		(strings.HasPrefix(rt.tmpl, authRoute) || strings.HasPrefix(rt.tmpl, betaAuthRoute)) {
		return mfaChallenge()
	}
	switch rt.op {
	case opUsers:
		return e.listUsers(c)
	case opRegistrationDetails, opRegistrationDetail:
		return e.registrationDetails(c) // reports.go
	case opMethodsCount, opCount:
		return errReply(http.StatusBadRequest, "badRequest", "$count is not supported on authentication method collections.")
	case opResetPassword:
		if e.cfg.AppOnly {
			return errReply(http.StatusForbidden, "accessDenied",
				"Request Authorization failed: resetPassword supports delegated permissions only; application permissions are not supported.")
		}
	}
	u := e.lookupUserLocked(rt.user)
	if u == nil {
		return errReplyf(http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '%s' does not exist or one of its queried reference-property objects are not present.", rt.user)
	}
	c.userID = u.id
	switch rt.op {
	case opUser:
		if c.r.Method == http.MethodPatch {
			return e.patchUser(c, u)
		}
		return e.getUser(c, u)
	case opMemberOf:
		return e.memberOf(c, u)
	case opManager:
		return e.manager(c, u) // mail.go
	case opSendMail:
		return e.sendMail(c, u)
	case opRevoke:
		u.sessionsRevoked++
		o := startObj(nil)
		o.str("@odata.context", c.base+"/v1.0/$metadata#Edm.Boolean")
		o.boolean("value", true)
		return jsonReply(http.StatusOK, o.end())
	case opMethods:
		return e.listMethods(c, u, nil)
	case opMethod:
		m := u.find(rt.methodID)
		if m == nil {
			return methodNotFound(rt.methodID)
		}
		return jsonReply(http.StatusOK, e.view(c).appendMethod(nil, m, authContext(c, "methods/$entity"), "", false))
	case opList:
		if c.r.Method == http.MethodPost {
			return e.create(c, u)
		}
		k := rt.kind
		return e.listMethods(c, u, &k)
	case opItem, opRef:
		m := u.findKind(rt.kind, rt.methodID)
		if m == nil {
			return methodNotFound(rt.methodID)
		}
		switch c.r.Method {
		case http.MethodPatch:
			return e.patchMethod(c, u, m)
		case http.MethodDelete:
			return e.deleteMethod(u, m)
		}
		withDevice := rt.kind.info().device && strings.Contains(strings.ToLower(c.q().Get("$expand")), "device")
		return jsonReply(http.StatusOK, e.view(c).appendMethod(nil, m, authContext(c, rt.kind.info().collection+"/$entity"), "", withDevice))
	case opSMS:
		m := u.findKind(kindPhone, rt.methodID)
		if m == nil {
			return methodNotFound(rt.methodID)
		}
		return e.smsSignIn(u, m, rt.enable)
	case opDevice:
		m := u.findKind(rt.kind, rt.methodID)
		if m == nil {
			return methodNotFound(rt.methodID)
		}
		return e.device(c, m)
	case opCreationOptions:
		return e.creationOptions(c, u)
	case opResetPassword:
		return e.resetPassword(c, u)
	case opOperation:
		return e.getOperation(c, u)
	case opQRCodePin:
		return e.qrCodePin(c, u)
	case opSignInPreferences:
		return e.signInPreferences(c, u)
	}
	return errReplyf(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", rt.tmpl)
}

func methodNotFound(id string) reply {
	return errReplyf(http.StatusNotFound, "itemNotFound", "The authentication method '%s' was not found.", id)
}

func (e *Emulator) view(c *call) view { return view{now: c.now, smsOff: e.cfg.SMSSignInDisabled} }

// authContext is the @odata.context of something below the user's
// authentication, keyed by the user segment as the client wrote it.
func authContext(c *call, suffix string) string {
	return c.base + "/v1.0/$metadata#users('" + odataKey(c.rt.user) + "')/authentication/" + suffix
}

// odataKey writes a key as Graph does in @odata.context: percent-encoded,
// with '@' as %40 and a quote doubled.
func odataKey(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(url.PathEscape(s), "@", "%40"), "'", "''")
}

// listMethods lists every method, or those of one type.
func (e *Emulator) listMethods(c *call, u *user, k *kind) reply {
	nav := "methods"
	if k != nil {
		nav = k.info().collection
	}
	v := e.view(c)
	o := startObj(make([]byte, 0, 256+200*len(u.methods)))
	o.str("@odata.context", authContext(c, nav))
	o.key("value")
	o.b = append(o.b, '[')
	n := 0
	for _, m := range u.methods {
		if k != nil && m.kind != *k {
			continue
		}
		if n > 0 {
			o.b = append(o.b, ',')
		}
		n++
		o.b = v.appendMethod(o.b, m, "", "", false)
	}
	o.b = append(o.b, ']')
	return jsonReply(http.StatusOK, o.end())
}

// checkODataType refuses a body whose @odata.type names another type.
func checkODataType(t *string, k kind) (reply, bool) {
	if t == nil {
		return reply{}, true
	}
	if got, ok := kindByODataType(*t); !ok || got != k {
		return errReplyf(http.StatusBadRequest, "badRequest", "The @odata.type '%s' does not match %s.", *t, k.info().odataType), false
	}
	return reply{}, true
}

func badJSON(err error) reply { return errReply(http.StatusBadRequest, "badRequest", err.Error()) }

// create serves POST on a typed collection.
func (e *Emulator) create(c *call, u *user) reply {
	k := c.rt.kind
	var m *method
	var rep reply
	tapValue := ""
	switch k {
	case kindPhone:
		m, rep = e.createPhone(c, u)
	case kindEmail:
		m, rep = createEmail(c, u)
	case kindTAP:
		m, tapValue, rep = e.createTAP(c, u)
	case kindExternal:
		m, rep = createExternal(c, u)
	case kindFido2:
		m, rep = createFido2(c, u)
	}
	if m == nil {
		return rep
	}
	m.created = c.now
	u.add(m)
	body := e.view(c).appendMethod(nil, m, authContext(c, k.info().collection+"/$entity"), tapValue, false)
	return jsonReply(http.StatusCreated, body)
}

func (e *Emulator) createPhone(c *call, u *user) (*method, reply) {
	var b struct {
		ODataType      *string         `json:"@odata.type"`
		PhoneNumber    *string         `json:"phoneNumber"`
		PhoneType      *string         `json:"phoneType"`
		SMSSignInState json.RawMessage `json:"smsSignInState"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return nil, badJSON(err)
	}
	if rep, ok := checkODataType(b.ODataType, kindPhone); !ok {
		return nil, rep
	}
	switch {
	case b.PhoneNumber == nil:
		return nil, errReply(http.StatusBadRequest, "badRequest", "phoneNumber is required. "+phoneFormatMessage)
	case !validPhoneNumber(*b.PhoneNumber):
		return nil, errReply(http.StatusBadRequest, "badRequest", phoneFormatMessage)
	case b.PhoneType == nil:
		return nil, errReply(http.StatusBadRequest, "badRequest", "phoneType is required: mobile, alternateMobile or office.")
	case phoneID(*b.PhoneType) == "":
		return nil, errReplyf(http.StatusBadRequest, "badRequest", "Invalid phoneType '%s': want mobile, alternateMobile or office.", *b.PhoneType)
	case len(b.SMSSignInState) > 0 && string(b.SMSSignInState) != "null":
		return nil, errReply(http.StatusBadRequest, "badRequest", "smsSignInState is read-only; use enableSmsSignIn or disableSmsSignIn.")
	case u.phone(*b.PhoneType) != nil:
		return nil, errReplyf(http.StatusBadRequest, "badRequest",
			"The user already has a phone of type %s; update it (PATCH) or delete it first.", *b.PhoneType)
	case *b.PhoneType == "alternateMobile" && u.phone("mobile") == nil:
		return nil, errReply(http.StatusBadRequest, "badRequest", "An alternateMobile phone requires a mobile phone; add the mobile phone first.")
	}
	m := &method{kind: kindPhone, id: phoneID(*b.PhoneType), number: *b.PhoneNumber, phoneType: *b.PhoneType}
	if m.phoneType == "mobile" && !e.cfg.SMSSignInDisabled {
		// A tenant that enables SMS sign-in registers a new mobile number for it.
		e.registerSMSLocked(u, m)
	}
	return m, reply{}
}

// registerSMSLocked turns SMS sign-in on for a mobile phone, unless another
// user already signs in by SMS with that number.
func (e *Emulator) registerSMSLocked(u *user, m *method) bool {
	if other, ok := e.smsIndex[m.number]; ok && other != u.id {
		m.sms = smsNotUnique
		return false
	}
	m.sms = smsOn
	e.smsIndex[m.number] = u.id
	return true
}

func (e *Emulator) unregisterSMSLocked(u *user, m *method) {
	if m.sms == smsOn && e.smsIndex[m.number] == u.id {
		delete(e.smsIndex, m.number)
	}
	m.sms = smsOff
}

func createEmail(c *call, u *user) (*method, reply) {
	var b struct {
		ODataType    *string `json:"@odata.type"`
		EmailAddress *string `json:"emailAddress"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return nil, badJSON(err)
	}
	if rep, ok := checkODataType(b.ODataType, kindEmail); !ok {
		return nil, rep
	}
	switch {
	case b.EmailAddress == nil || !validEmail(*b.EmailAddress):
		return nil, errReply(http.StatusBadRequest, "badRequest", "emailAddress is required and must be a valid email address.")
	case u.first(kindEmail) != nil:
		return nil, errReply(http.StatusBadRequest, "badRequest", "The user already has an email method; update it (PATCH) or delete it first.")
	}
	return &method{kind: kindEmail, id: emailMethodID, email: *b.EmailAddress}, reply{}
}

// tapAlphabet draws TAP values; it mixes classes as real passes do.
const tapAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789+-!#$%&*=?@"

func (e *Emulator) createTAP(c *call, u *user) (*method, string, reply) {
	var b struct {
		ODataType         *string `json:"@odata.type"`
		StartDateTime     *string `json:"startDateTime"`
		LifetimeInMinutes *int32  `json:"lifetimeInMinutes"`
		IsUsableOnce      *bool   `json:"isUsableOnce"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return nil, "", badJSON(err)
	}
	if rep, ok := checkODataType(b.ODataType, kindTAP); !ok {
		return nil, "", rep
	}
	if u.isGuest() {
		return nil, "", errReply(http.StatusBadRequest, "badRequest", msgGuestTAP)
	}
	p := e.cfg.TAPPolicy
	m := &method{kind: kindTAP, id: newGUID(), start: c.now, lifetime: p.DefaultLifetime, once: p.UsableOnceOnly}
	if b.StartDateTime != nil {
		t, err := parseDateTime(*b.StartDateTime)
		if err != nil {
			return nil, "", errReplyf(http.StatusBadRequest, "badRequest", "Invalid startDateTime: %v.", err)
		}
		m.start = t
	}
	if b.LifetimeInMinutes != nil {
		m.lifetime = int(*b.LifetimeInMinutes)
	}
	switch {
	case m.lifetime < tapAPIMinLifetime || m.lifetime > tapAPIMaxLifetime:
		return nil, "", errReplyf(http.StatusBadRequest, "badRequest",
			"lifetimeInMinutes must be between %d and %d.", tapAPIMinLifetime, tapAPIMaxLifetime)
	case m.lifetime < p.MinLifetime || m.lifetime > p.MaxLifetime:
		return nil, "", errReplyf(http.StatusBadRequest, "badRequest",
			"lifetimeInMinutes %d is outside the tenant's Temporary Access Pass policy (%d to %d minutes).", m.lifetime, p.MinLifetime, p.MaxLifetime)
	}
	if b.IsUsableOnce != nil && !p.UsableOnceOnly {
		m.once = *b.IsUsableOnce
	}
	// One pass per user: a new one replaces the previous.
	if old := u.first(kindTAP); old != nil {
		u.remove(old)
	}
	return m, randomString(tapAlphabet, p.DefaultLength), reply{}
}

func createExternal(c *call, u *user) (*method, reply) {
	var b struct {
		ODataType       *string `json:"@odata.type"`
		ConfigurationID *string `json:"configurationId"`
		DisplayName     *string `json:"displayName"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return nil, badJSON(err)
	}
	if rep, ok := checkODataType(b.ODataType, kindExternal); !ok {
		return nil, rep
	}
	switch {
	case b.ConfigurationID == nil || *b.ConfigurationID == "" || len(*b.ConfigurationID) > 256:
		return nil, errReply(http.StatusBadRequest, "badRequest", "configurationId is required.")
	case b.DisplayName == nil || *b.DisplayName == "" || len(*b.DisplayName) > 256:
		return nil, errReply(http.StatusBadRequest, "badRequest", "displayName is required.")
	}
	for _, m := range u.methods {
		if m.kind == kindExternal && strings.EqualFold(m.props["configurationId"], *b.ConfigurationID) {
			return nil, errReplyf(http.StatusBadRequest, "badRequest",
				"An external authentication method with configurationId '%s' is already registered.", *b.ConfigurationID)
		}
	}
	return &method{kind: kindExternal, id: newGUID(),
		props: map[string]string{"configurationId": *b.ConfigurationID, "displayName": *b.DisplayName}}, reply{}
}

// patchMethod updates a phone or an email: 204, no body.
func (e *Emulator) patchMethod(c *call, u *user, m *method) reply {
	if m.kind == kindEmail {
		var b struct {
			ODataType    *string `json:"@odata.type"`
			EmailAddress *string `json:"emailAddress"`
		}
		if err := decodeJSON(c.body, &b); err != nil {
			return badJSON(err)
		}
		if rep, ok := checkODataType(b.ODataType, kindEmail); !ok {
			return rep
		}
		if b.EmailAddress != nil {
			if !validEmail(*b.EmailAddress) {
				return errReply(http.StatusBadRequest, "badRequest", "emailAddress must be a valid email address.")
			}
			m.email = *b.EmailAddress
		}
		return emptyReply(http.StatusNoContent)
	}
	var b struct {
		ODataType   *string `json:"@odata.type"`
		PhoneNumber *string `json:"phoneNumber"`
		PhoneType   *string `json:"phoneType"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return badJSON(err)
	}
	if rep, ok := checkODataType(b.ODataType, kindPhone); !ok {
		return rep
	}
	if b.PhoneType != nil && *b.PhoneType != m.phoneType {
		return errReplyf(http.StatusBadRequest, "badRequest",
			"phoneType cannot be changed (from %s to %s); add a phone of the new type and delete this one.", m.phoneType, *b.PhoneType)
	}
	if b.PhoneNumber != nil {
		if !validPhoneNumber(*b.PhoneNumber) {
			return errReply(http.StatusBadRequest, "badRequest", phoneFormatMessage)
		}
		if *b.PhoneNumber != m.number {
			e.unregisterSMSLocked(u, m)
			m.number = *b.PhoneNumber
			if m.phoneType == "mobile" && !e.cfg.SMSSignInDisabled {
				e.registerSMSLocked(u, m)
			}
		}
	}
	return emptyReply(http.StatusNoContent)
}

// deleteMethod applies the deletion rules, then removes the method: 204.
func (e *Emulator) deleteMethod(u *user, m *method) reply {
	if m.kind == kindPhone && m.phoneType == "mobile" && u.phone("alternateMobile") != nil {
		return errReply(http.StatusBadRequest, "badRequest",
			"Cannot delete the mobile phone while an alternateMobile phone is registered; update the mobile number or delete the alternateMobile phone instead.")
	}
	if m.id == u.defaultID {
		for _, o := range u.methods {
			if o != m && o.kind != kindPassword {
				return errReply(http.StatusBadRequest, "badRequest", msgDefaultMethod)
			}
		}
		u.defaultID = ""
	}
	if m.kind == kindPhone {
		e.unregisterSMSLocked(u, m)
	}
	u.remove(m)
	return emptyReply(http.StatusNoContent)
}

// smsSignIn serves enableSmsSignIn and disableSmsSignIn: 204, no body.
func (e *Emulator) smsSignIn(u *user, m *method, enable bool) reply {
	if m.phoneType != "mobile" {
		return errReplyf(http.StatusBadRequest, "badRequest",
			"SMS sign-in is only supported on the mobile phone; this phone is %s.", m.phoneType)
	}
	if !enable {
		e.unregisterSMSLocked(u, m)
		return emptyReply(http.StatusNoContent)
	}
	if e.cfg.SMSSignInDisabled {
		return errReply(http.StatusBadRequest, "badRequest", msgSMSPolicy)
	}
	if m.sms == smsOn {
		return emptyReply(http.StatusNoContent)
	}
	if !e.registerSMSLocked(u, m) {
		return errReply(http.StatusBadRequest, "badRequest",
			"Cannot enable SMS sign-in: the phone number is already used for SMS sign-in by another user (phoneNumberNotUnique).")
	}
	return emptyReply(http.StatusNoContent)
}

// device serves the device navigation of Authenticator, Windows Hello and
// platform credential methods.
func (e *Emulator) device(c *call, m *method) reply {
	if m.device == nil {
		return errReply(http.StatusNotFound, "itemNotFound", "The authentication method has no device.")
	}
	d := make(map[string]any, len(m.device)+1)
	for k, v := range m.device {
		d[k] = v
	}
	d["@odata.context"] = c.base + "/v1.0/$metadata#devices/$entity"
	body, err := json.Marshal(d)
	if err != nil {
		return errReply(http.StatusInternalServerError, "generalException", "could not encode the device")
	}
	return jsonReply(http.StatusOK, body)
}

// resetPassword starts a password reset: 202 with the operation's Location,
// and a body only when the service generated the password.
func (e *Emulator) resetPassword(c *call, u *user) reply {
	m := u.find(c.rt.methodID)
	if m == nil {
		return methodNotFound(c.rt.methodID)
	}
	if m.kind != kindPassword {
		return errReplyf(http.StatusBadRequest, "badRequest",
			"resetPassword is only supported on the password authentication method (%s).", passwordMethodID)
	}
	var b struct {
		NewPassword *string `json:"newPassword"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return badJSON(err)
	}
	generated := ""
	if b.NewPassword != nil {
		if !validPassword(*b.NewPassword) {
			return errReply(http.StatusBadRequest, "badRequest", passwordPolicyMessage)
		}
	} else {
		generated = generatePassword()
	}
	u.passwordChanges++
	u.forceChange = true
	op := &operation{id: newGUID(), created: c.now, lastAction: c.now}
	if len(u.ops) >= maxOpsPerUser {
		u.ops = slices.Delete(u.ops, 0, 1)
	}
	u.ops = append(u.ops, op)
	rep := emptyReply(http.StatusAccepted)
	rep.location = c.base + "/v1.0/users/" + u.id + "/authentication/operations/" + op.id + "?aadgdc=DUB02P&aadgsu=ssprprod-a"
	if generated != "" {
		o := startObj(nil)
		o.str("@odata.context", c.base+"/v1.0/$metadata#microsoft.graph.passwordResetResponse")
		o.str("newPassword", generated)
		rep.body = o.end()
	}
	return rep
}

// generatePassword mimics the service's shape ("Cuyo5459"): an upper-case
// letter, three lower-case letters and four digits.
func generatePassword() string {
	return randomString("ABCDEFGHJKLMNPQRSTUVWXYZ", 1) + randomString("abcdefghijkmnopqrstuvwxyz", 3) + randomString("0123456789", 4)
}

// getOperation reports a reset operation: running on the first GET,
// succeeded from the second on.
func (e *Emulator) getOperation(c *call, u *user) reply {
	var op *operation
	for _, o := range u.ops {
		if strings.EqualFold(o.id, c.rt.methodID) {
			op = o
		}
	}
	if op == nil {
		return errReplyf(http.StatusNotFound, "itemNotFound", "The operation '%s' was not found.", c.rt.methodID)
	}
	op.polls++
	status, detail := "running", ""
	if op.polls >= 2 {
		status, detail = "succeeded", "ResetSuccess"
	}
	if op.polls <= 2 {
		op.lastAction = c.now
	}
	o := startObj(nil)
	o.str("@odata.context", authContext(c, "operations/$entity"))
	o.str("id", op.id)
	o.time("createdDateTime", op.created)
	o.time("lastActionDateTime", op.lastAction)
	o.str("resourceLocation", c.base+"/v1.0/users/"+u.id+"/authentication/methods/"+passwordMethodID)
	o.str("status", status)
	o.strOrNull("statusDetail", detail)
	return jsonReply(http.StatusOK, o.end())
}
