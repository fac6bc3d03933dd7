package graphclienttest

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The authentication-methods registration report,
// GET /v1.0/reports/authenticationMethods/userRegistrationDetails[/{id}],
// computed live from the emulator's state.

// Routes of the report (parseReportsRoute).
const (
	routeRegistrationDetails = "/v1.0/reports/authenticationMethods/userRegistrationDetails"
	routeRegistrationDetail  = routeRegistrationDetails + "/{id}"
)

// The report's ops, numbered apart from the iota block in route.go.
const (
	opRegistrationDetails op = 1000 + iota
	opRegistrationDetail
)

// registrationPageSize is the report's page without $top.
const registrationPageSize = 100

// registrationProps are the properties of a userRegistrationDetails entry
// in the order written; read-only.
var registrationProps = []string{"id", "userPrincipalName", "userDisplayName", "userType", "isAdmin",
	"isSsprRegistered", "isSsprEnabled", "isSsprCapable", "isMfaRegistered", "isMfaCapable",
	"isPasswordlessCapable", "isSystemPreferredAuthenticationMethodEnabled", "methodsRegistered",
	"systemPreferredAuthenticationMethods", "userPreferredMethodForSecondaryAuthentication", "lastUpdatedDateTime"}

// parseReportsRoute understands /reports/authenticationMethods/userRegistrationDetails[/{id}].
func parseReportsRoute(segs []string) route {
	unknown := func(i int) route { return route{op: opUnknown, tmpl: routeUnknown, segment: segs[i]} }
	switch {
	case len(segs) < 2 || !strings.EqualFold(segs[1], "authenticationMethods"):
		return unknown(min(1, len(segs)-1))
	case len(segs) < 3 || !strings.EqualFold(segs[2], "userRegistrationDetails"):
		return unknown(min(2, len(segs)-1))
	case len(segs) == 3:
		return route{op: opRegistrationDetails, tmpl: routeRegistrationDetails, allow: "GET", userCode: true}
	case len(segs) == 4:
		if !isGUID(segs[3]) {
			return route{op: opBadID, tmpl: routeRegistrationDetail, segment: segs[3], userCode: true}
		}
		return route{op: opRegistrationDetail, tmpl: routeRegistrationDetail, allow: "GET", user: segs[3], userCode: true}
	}
	return unknown(4)
}

// registrationDetails serves both report routes. Disabled accounts are not
// in the report: Microsoft documents that it does not work for disabled
// users.
func (e *Emulator) registrationDetails(c *call) reply {
	sel, rep := parseRegistrationSelect(c)
	if rep != nil {
		return *rep
	}
	q := c.q()
	if q.Get("$filter") != "" || q.Get("$orderby") != "" || q.Get("$count") != "" || q.Get("$search") != "" {
		return errReply(http.StatusBadRequest, "Request_UnsupportedQuery",
			"The emulator's registration report supports $select, $top and paging only.")
	}
	ctx := c.base + "/v1.0/$metadata#reports/authenticationMethods/userRegistrationDetails" + selectSuffix(sel)
	if c.rt.op == opRegistrationDetail {
		u := e.users[strings.ToLower(c.rt.user)]
		if u == nil || !u.enabled {
			return errReplyf(http.StatusNotFound, "Request_ResourceNotFound",
				"Resource '%s' does not exist or one of its queried reference-property objects are not present.", c.rt.user)
		}
		c.userID = u.id
		return jsonReply(http.StatusOK, e.appendRegistration(nil, u, sel, ctx+"/$entity"))
	}
	top := registrationPageSize
	if s := q.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 999 {
			return errReplyf(http.StatusBadRequest, "Request_BadRequest",
				"Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", s)
		}
		top = n
	}
	skip := q.Get("$skiptoken")
	ids := e.sortedUserIDsLocked()
	i := sort.SearchStrings(ids, skip)
	if skip != "" && i < len(ids) && ids[i] == skip {
		i++
	}
	var page []*user
	for ; i < len(ids) && len(page) < top; i++ {
		if u := e.users[ids[i]]; u.enabled {
			page = append(page, u)
		}
	}
	next := ""
	if len(page) == top && i < len(ids) {
		v := url.Values{}
		v.Set("$top", strconv.Itoa(top))
		v.Set("$skiptoken", page[len(page)-1].id)
		if s := q.Get("$select"); s != "" {
			v.Set("$select", s)
		}
		next = c.base + routeRegistrationDetails + "?" + v.Encode()
	}
	o := startObj(nil)
	o.str("@odata.context", ctx)
	if next != "" {
		o.str("@odata.nextLink", next)
	}
	o.key("value")
	o.b = append(o.b, '[')
	for j, u := range page {
		if j > 0 {
			o.b = append(o.b, ',')
		}
		o.b = e.appendRegistration(o.b, u, sel, "")
	}
	o.b = append(o.b, ']')
	return jsonReply(http.StatusOK, o.end())
}

// parseRegistrationSelect reads $select for the report: nil means every property.
func parseRegistrationSelect(c *call) ([]string, *reply) {
	raw := c.q().Get("$select")
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var sel []string
	for p := range strings.SplitSeq(raw, ",") {
		p = strings.TrimSpace(p)
		i := slices.IndexFunc(registrationProps, func(k string) bool { return strings.EqualFold(k, p) })
		if i < 0 {
			rep := errReplyf(http.StatusBadRequest, "Request_BadRequest",
				"Could not find a property named '%s' on type 'microsoft.graph.userRegistrationDetails'.", p)
			return nil, &rep
		}
		if !slices.Contains(sel, registrationProps[i]) {
			sel = append(sel, registrationProps[i])
		}
	}
	return sel, nil
}

// appendRegistration writes one report entry with the selected properties.
func (e *Emulator) appendRegistration(b []byte, u *user, sel []string, context string) []byte {
	if sel == nil {
		sel = registrationProps
	}
	names := registeredNames(u)
	has := func(pred func(*method) bool) bool { return slices.ContainsFunc(u.methods, pred) }
	mfa := has(func(m *method) bool { return m.kind.info().mfa })
	sspr := has(func(m *method) bool {
		return m.kind == kindEmail || m.kind == kindPhone || m.kind == kindAuthenticator || m.kind == kindSoftwareOath
	})
	passwordless := has(func(m *method) bool {
		return m.kind == kindFido2 || m.kind == kindWindowsHello || m.kind == kindPlatformCredential || m.kind == kindAuthenticator
	})
	o := startObj(b)
	if context != "" {
		o.str("@odata.context", context)
	}
	for _, p := range sel {
		switch p {
		case "id":
			o.str(p, u.id)
		case "userPrincipalName":
			o.str(p, u.upn)
		case "userDisplayName":
			o.strOrNull(p, u.displayName)
		case "userType":
			o.str(p, strings.ToLower(u.userType))
		case "isAdmin":
			o.boolean(p, len(u.roles) > 0)
		case "isSsprRegistered":
			o.boolean(p, sspr)
		case "isSsprEnabled", "isSsprCapable", "isSystemPreferredAuthenticationMethodEnabled":
			o.boolean(p, false)
		case "isMfaRegistered", "isMfaCapable":
			o.boolean(p, mfa)
		case "isPasswordlessCapable":
			o.boolean(p, passwordless)
		case "methodsRegistered":
			o.strings(p, names)
		case "systemPreferredAuthenticationMethods":
			o.strings(p, nil)
		case "userPreferredMethodForSecondaryAuthentication":
			o.null(p)
		case "lastUpdatedDateTime":
			o.time(p, e.now())
		}
	}
	return o.end()
}

// registeredNames maps the user's methods onto the report's names, in
// registration order, each once. The password is not listed.
func registeredNames(u *user) []string {
	names := []string{}
	for _, m := range u.methods {
		if n := registrationName(m); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// registrationName is the report's name of a method ("" for the password).
func registrationName(m *method) string {
	switch m.kind {
	case kindPhone:
		switch m.phoneType {
		case "mobile":
			return "mobilePhone"
		case "alternateMobile":
			return "alternateMobilePhone"
		case "office":
			return "officePhone"
		}
	case kindEmail:
		return "email"
	case kindAuthenticator:
		return "microsoftAuthenticatorPush"
	case kindSoftwareOath:
		return "softwareOneTimePasscode"
	case kindFido2:
		if m.props["passkeyType"] == "synced" {
			return "passKeySynced"
		}
		return "passKeyDeviceBound"
	case kindWindowsHello:
		return "windowsHelloForBusiness"
	case kindTAP:
		return "temporaryAccessPass"
	case kindPlatformCredential:
		return "macOsSecureEnclaveKey"
	case kindExternal:
		return "externalAuthMethod"
	case kindQRCodePin:
		return "qrCodePin"
	}
	return ""
}
