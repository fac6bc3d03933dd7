package graphclienttest

import (
	"net/url"
	"strings"
)

// Fixed method ids, the same in every tenant.
const (
	mobilePhoneID    = "3179e48a-750b-4051-897c-87b9720928f7"
	altMobilePhoneID = "b6332ec1-7057-4abe-9331-3d72feddfe41"
	officePhoneID    = "e37fc753-ff3b-4958-9484-eaa9425c82bc"
	emailMethodID    = "3ddfcfc8-9383-446f-83cc-3ab9be4be18f"
	passwordMethodID = "28c10230-6103-485e-b985-444c60001490"
)

// kind is one authentication method type.
type kind int

const (
	kindEmail kind = iota
	kindFido2
	kindAuthenticator
	kindPassword
	kindPhone
	kindSoftwareOath
	kindTAP
	kindWindowsHello
	kindPlatformCredential
	kindExternal
	kindQRCodePin
	numKinds
)

// propSpec is a plain string property of a read-mostly method type; enum, when
// set, lists the values Graph accepts.
type propSpec struct {
	name string
	enum []string
}

// kindInfo describes what Graph v1.0 offers for one method type.
type kindInfo struct {
	collection string // navigation property, e.g. "phoneMethods"
	odataType  string
	props      []propSpec // string properties kept as given (read-only types)
	mfa        bool       // counts as an MFA method for the default-method rule
	post       bool       // POST on the collection
	patch      bool       // PATCH on an item
	del        bool       // DELETE on an item
	device     bool       // has a device navigation property
	fixedID    string

	listRoute, itemRoute, countRoute, deviceRoute string
}

const authRoute = "/v1.0/users/{id}/authentication/"

// keyStrengths is read-only.
var keyStrengths = []string{"normal", "weak", "unknown", "unknownFutureValue"}

// kindTable is read-only after package initialisation.
var kindTable = [numKinds]kindInfo{
	kindEmail: newKind(kindInfo{collection: "emailMethods", odataType: "#microsoft.graph.emailAuthenticationMethod",
		post: true, patch: true, del: true, fixedID: emailMethodID}),
	kindFido2: newKind(kindInfo{collection: "fido2Methods", odataType: "#microsoft.graph.fido2AuthenticationMethod",
		mfa: true, post: true, del: true,
		props: []propSpec{{name: "displayName"}, {name: "aaGuid"}, {name: "model"},
			{name: "attestationLevel", enum: []string{"attested", "notAttested", "unknownFutureValue"}},
			{name: "passkeyType", enum: []string{"deviceBound", "synced", "unknownFutureValue"}}}}),
	kindAuthenticator: newKind(kindInfo{collection: "microsoftAuthenticatorMethods",
		odataType: "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod", mfa: true, del: true, device: true,
		props: []propSpec{{name: "displayName"}, {name: "deviceTag"}, {name: "phoneAppVersion"}}}),
	kindPassword: newKind(kindInfo{collection: "passwordMethods", odataType: "#microsoft.graph.passwordAuthenticationMethod",
		fixedID: passwordMethodID}),
	kindPhone: newKind(kindInfo{collection: "phoneMethods", odataType: "#microsoft.graph.phoneAuthenticationMethod",
		mfa: true, post: true, patch: true, del: true}),
	kindSoftwareOath: newKind(kindInfo{collection: "softwareOathMethods",
		odataType: "#microsoft.graph.softwareOathAuthenticationMethod", mfa: true, del: true}),
	kindTAP: newKind(kindInfo{collection: "temporaryAccessPassMethods",
		odataType: "#microsoft.graph.temporaryAccessPassAuthenticationMethod", post: true, del: true}),
	kindWindowsHello: newKind(kindInfo{collection: "windowsHelloForBusinessMethods",
		odataType: "#microsoft.graph.windowsHelloForBusinessAuthenticationMethod", mfa: true, del: true, device: true,
		props: []propSpec{{name: "displayName"}, {name: "keyStrength", enum: keyStrengths}}}),
	kindPlatformCredential: newKind(kindInfo{collection: "platformCredentialMethods",
		odataType: "#microsoft.graph.platformCredentialAuthenticationMethod", del: true, device: true,
		props: []propSpec{{name: "displayName"}, {name: "keyStrength", enum: keyStrengths},
			{name: "platform", enum: []string{"unknown", "windows", "macOS", "iOS", "android", "linux", "unknownFutureValue"}}}}),
	kindExternal: newKind(kindInfo{collection: "externalAuthenticationMethods",
		odataType: "#microsoft.graph.externalAuthenticationMethod", post: true, del: true,
		props: []propSpec{{name: "configurationId"}, {name: "displayName"}}}),
	// QR code + PIN is a single-valued navigation (PUT/GET/DELETE
	// /qrCodePinMethod, no id in the path); parseRoute handles it apart.
	kindQRCodePin: newKind(kindInfo{collection: "qrCodePinMethod",
		odataType: "#microsoft.graph.qrCodePinAuthenticationMethod", del: true}),
}

func newKind(k kindInfo) kindInfo {
	k.listRoute = authRoute + k.collection
	k.itemRoute = k.listRoute + "/{methodId}"
	k.countRoute = k.listRoute + "/$count"
	k.deviceRoute = k.itemRoute + "/device"
	return k
}

func (k kind) info() *kindInfo { return &kindTable[k] }

// kindByCollection finds a type by its navigation property (case-insensitive,
// as Graph treats path segments).
func kindByCollection(seg string) (kind, bool) {
	for k := range numKinds {
		if strings.EqualFold(seg, kindTable[k].collection) {
			return k, true
		}
	}
	return 0, false
}

// kindByODataType accepts the type with or without the leading '#'.
func kindByODataType(t string) (kind, bool) {
	t = strings.TrimPrefix(t, "#")
	for k := range numKinds {
		if strings.EqualFold(t, kindTable[k].odataType[1:]) {
			return k, true
		}
	}
	return 0, false
}

// Route templates used as keys in Stats and the request log.
const (
	routeUnknown          = "unknown"
	routeMe               = "/v1.0/me"
	routeUsers            = "/v1.0/users"
	routeUser             = "/v1.0/users/{id}"
	routeMemberOf         = "/v1.0/users/{id}/memberOf"
	routeRevoke           = "/v1.0/users/{id}/revokeSignInSessions"
	routeAuthentication   = "/v1.0/users/{id}/authentication"
	routeMethods          = authRoute + "methods"
	routeMethodsCount     = authRoute + "methods/$count"
	routeMethod           = authRoute + "methods/{methodId}"
	routeResetPassword    = authRoute + "methods/{methodId}/resetPassword"
	routeResetPasswordAlt = authRoute + "passwordMethods/{methodId}/resetPassword"
	routeEnableSMS        = authRoute + "phoneMethods/{methodId}/enableSmsSignIn"
	routeDisableSMS       = authRoute + "phoneMethods/{methodId}/disableSmsSignIn"
	routeCreationOptions  = authRoute + "fido2Methods/creationOptions"
	routeExternalRef      = authRoute + "externalAuthenticationMethods/{methodId}/$ref"
	routeOperations       = authRoute + "operations"
	routeOperation        = authRoute + "operations/{operationId}"
	routeQRCodePin        = authRoute + "qrCodePinMethod"
)

// op is what a request asks for once its path is understood.
type op int

const (
	opUnknown op = iota // path not recognised: 400 naming the segment
	opBadID             // a malformed id in the path
	opMe
	opUsers
	opUser
	opMemberOf
	opRevoke
	opAuthentication
	opMethods
	opMethodsCount
	opMethod
	opResetPassword
	opList
	opCount
	opItem
	opSMS
	opDevice
	opRef
	opCreationOptions
	opOperations
	opOperation
	opQRCodePin
	opSignInPreferences // beta.go
)

// route is a parsed Graph path.
type route struct {
	op       op
	tmpl     string // route template for stats
	allow    string // allowed HTTP methods, for 405 and Allow
	user     string // user segment, unescaped: object id or UPN
	kind     kind   // for typed collections
	methodID string // method or operation id
	enable   bool   // opSMS: enable (true) or disable
	segment  string // opUnknown: the offending segment; opBadID: the bad id
	userCode bool   // errors use the directory codes (Request_BadRequest)
}

// allows reports whether the route accepts the HTTP method.
func (rt *route) allows(method string) bool {
	for m := range strings.SplitSeq(rt.allow, ", ") {
		if m == method {
			return true
		}
	}
	return false
}

// parseRoute understands the escaped path below /v1.0.
func parseRoute(escaped string) route {
	escaped = strings.TrimPrefix(escaped, "/")
	escaped = strings.TrimSuffix(escaped, "/")
	raw := strings.Split(escaped, "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return route{op: opUnknown, tmpl: routeUnknown, segment: s}
		}
		segs[i] = u
	}
	unknown := func(i int) route { return route{op: opUnknown, tmpl: routeUnknown, segment: segs[i]} }
	if strings.EqualFold(segs[0], "me") {
		return route{op: opMe, tmpl: routeMe, allow: "GET, POST, PATCH, DELETE"}
	}
	if strings.EqualFold(segs[0], "reports") {
		return parseReportsRoute(segs) // reports.go
	}
	if !strings.EqualFold(segs[0], "users") {
		return unknown(0)
	}
	if len(segs) == 1 {
		return route{op: opUsers, tmpl: routeUsers, allow: "GET", userCode: true}
	}
	rt := route{user: segs[1], userCode: true}
	if !validUserSegment(rt.user) {
		return route{op: opBadID, tmpl: routeUser, segment: rt.user, userCode: true}
	}
	if len(segs) == 2 {
		rt.op, rt.tmpl, rt.allow = opUser, routeUser, "GET, PATCH"
		return rt
	}
	switch {
	case len(segs) == 3 && strings.EqualFold(segs[2], "memberOf"):
		rt.op, rt.tmpl, rt.allow = opMemberOf, routeMemberOf, "GET"
		return rt
	case len(segs) == 3 && strings.EqualFold(segs[2], "revokeSignInSessions"):
		rt.op, rt.tmpl, rt.allow = opRevoke, routeRevoke, "POST"
		return rt
	case len(segs) == 3:
		if mrt, ok := mailRoute(rt, segs[2]); ok { // mail.go
			return mrt
		}
	case !strings.EqualFold(segs[2], "authentication"):
		return unknown(2)
	}
	rt.userCode = false
	if len(segs) == 3 {
		// GET/PATCH/DELETE /authentication exist in the SDK but are not documented.
		rt.op, rt.tmpl, rt.allow = opAuthentication, routeAuthentication, ""
		return rt
	}
	nav := segs[3]
	var k kind
	switch {
	case strings.EqualFold(nav, "methods"):
		return parseMethodsRoute(rt, segs)
	case strings.EqualFold(nav, "operations"):
		return parseOperationsRoute(rt, segs)
	case strings.EqualFold(nav, kindTable[kindQRCodePin].collection):
		if len(segs) != 4 {
			return unknown(4)
		}
		rt.op, rt.tmpl, rt.allow, rt.kind = opQRCodePin, routeQRCodePin, "GET, PUT, DELETE", kindQRCodePin
		return rt
	default:
		var ok bool
		if k, ok = kindByCollection(nav); !ok {
			return unknown(3)
		}
	}
	info := k.info()
	rt.kind = k
	if len(segs) == 4 {
		rt.op, rt.tmpl, rt.allow = opList, info.listRoute, "GET"
		if info.post {
			rt.allow = "GET, POST"
		}
		return rt
	}
	switch {
	case segs[4] == "$count":
		if len(segs) != 5 {
			return unknown(5)
		}
		rt.op, rt.tmpl, rt.allow = opCount, info.countRoute, "GET"
		return rt
	case k == kindFido2 && (strings.EqualFold(segs[4], "creationOptions") || hasPrefixFold(segs[4], "creationOptions(")):
		if len(segs) != 5 {
			return unknown(5)
		}
		// segment keeps a function parameter for creationOptions to refuse.
		rt.op, rt.tmpl, rt.allow, rt.segment = opCreationOptions, routeCreationOptions, "GET", segs[4]
		return rt
	}
	rt.methodID = segs[4]
	if !validMethodID(rt.methodID) {
		return route{op: opBadID, tmpl: info.itemRoute, segment: rt.methodID}
	}
	if len(segs) == 5 {
		rt.op, rt.tmpl, rt.allow = opItem, info.itemRoute, "GET"
		if info.patch {
			rt.allow += ", PATCH"
		}
		if info.del {
			rt.allow += ", DELETE"
		}
		return rt
	}
	if len(segs) != 6 {
		return unknown(6)
	}
	action := segs[5]
	switch {
	case k == kindPhone && strings.EqualFold(action, "enableSmsSignIn"):
		rt.op, rt.tmpl, rt.allow, rt.enable = opSMS, routeEnableSMS, "POST", true
	case k == kindPhone && strings.EqualFold(action, "disableSmsSignIn"):
		rt.op, rt.tmpl, rt.allow = opSMS, routeDisableSMS, "POST"
	case k == kindPassword && strings.EqualFold(action, "resetPassword"):
		rt.op, rt.tmpl, rt.allow = opResetPassword, routeResetPasswordAlt, "POST"
	case info.device && strings.EqualFold(action, "device"):
		rt.op, rt.tmpl, rt.allow = opDevice, info.deviceRoute, "GET"
	case k == kindExternal && action == "$ref":
		rt.op, rt.tmpl, rt.allow = opRef, routeExternalRef, "DELETE"
	default:
		return unknown(5)
	}
	return rt
}

func parseMethodsRoute(rt route, segs []string) route {
	switch {
	case len(segs) == 4:
		rt.op, rt.tmpl, rt.allow = opMethods, routeMethods, "GET"
		return rt
	case segs[4] == "$count":
		if len(segs) != 5 {
			return route{op: opUnknown, tmpl: routeUnknown, segment: segs[5]}
		}
		rt.op, rt.tmpl, rt.allow = opMethodsCount, routeMethodsCount, "GET"
		return rt
	}
	rt.methodID = segs[4]
	if !validMethodID(rt.methodID) {
		return route{op: opBadID, tmpl: routeMethod, segment: rt.methodID}
	}
	switch {
	case len(segs) == 5:
		rt.op, rt.tmpl, rt.allow = opMethod, routeMethod, "GET"
	case len(segs) == 6 && strings.EqualFold(segs[5], "resetPassword"):
		rt.op, rt.tmpl, rt.allow = opResetPassword, routeResetPassword, "POST"
	default:
		return route{op: opUnknown, tmpl: routeUnknown, segment: segs[5]}
	}
	return rt
}

func parseOperationsRoute(rt route, segs []string) route {
	switch len(segs) {
	case 4:
		// Listing operations is in the SDK but not documented.
		rt.op, rt.tmpl, rt.allow = opOperations, routeOperations, ""
	case 5:
		rt.methodID = segs[4]
		if !validMethodID(rt.methodID) {
			return route{op: opBadID, tmpl: routeOperation, segment: rt.methodID}
		}
		rt.op, rt.tmpl, rt.allow = opOperation, routeOperation, "GET"
	default:
		return route{op: opUnknown, tmpl: routeUnknown, segment: segs[5]}
	}
	return rt
}

// validUserSegment accepts an object id (GUID) or something shaped like a UPN.
func validUserSegment(s string) bool {
	if isGUID(s) {
		return true
	}
	if len(s) < 3 || len(s) > 1024 || !strings.Contains(s, "@") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '"' {
			return false
		}
	}
	return true
}

// validMethodID accepts GUIDs and the opaque base64url-like ids Graph uses.
func validMethodID(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '=' || c == '~') {
			return false
		}
	}
	return true
}
