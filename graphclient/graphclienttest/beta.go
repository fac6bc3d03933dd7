package graphclienttest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// Graph beta: the emulator serves exactly GET and PATCH
// /beta/users/{id}/authentication/signInPreferences (docs/emulator.md).

const betaAuthRoute = "/beta/users/{id}/authentication/"

const routeSignInPreferences = betaAuthRoute + "signInPreferences"

// preferredValues are the settable values of
// userPreferredMethodForSecondaryAuthentication.
var preferredValues = []string{"push", "oath", "voiceMobile", "voiceAlternateMobile", "voiceOffice", "sms"}

// parseBetaRoute understands the escaped path below /beta: only
// users/{id}/authentication/signInPreferences; every other path is an
// unknown segment.
func parseBetaRoute(escaped string) route {
	escaped = strings.Trim(escaped, "/")
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
	want := []string{"users", "", "authentication", "signInPreferences"}
	for i, w := range want {
		if i >= len(segs) {
			return unknown(len(segs) - 1)
		}
		if w != "" && !strings.EqualFold(segs[i], w) {
			return unknown(i)
		}
	}
	if len(segs) > len(want) {
		return unknown(len(want))
	}
	if !validUserSegment(segs[1]) {
		return route{op: opBadID, tmpl: routeSignInPreferences, segment: segs[1], userCode: true}
	}
	return route{op: opSignInPreferences, tmpl: routeSignInPreferences, allow: "GET, PATCH", user: segs[1]}
}

// preferredNames reports whether a preference value designates m: the
// rules of docs/emulator.md (push and oath an Authenticator, oath also a
// software OATH token, sms and voiceMobile the mobile phone, the voice
// values the other phones).
func preferredNames(v string, m *method) bool {
	switch v {
	case "push":
		return m.kind == kindAuthenticator
	case "oath":
		return m.kind == kindSoftwareOath || m.kind == kindAuthenticator
	case "sms", "voiceMobile":
		return m.kind == kindPhone && m.phoneType == "mobile"
	case "voiceAlternateMobile":
		return m.kind == kindPhone && m.phoneType == "alternateMobile"
	case "voiceOffice":
		return m.kind == kindPhone && m.phoneType == "office"
	}
	return false
}

// preferredTarget is the method a value makes the default: the first
// method it names, software OATH before Authenticator for oath.
func preferredTarget(u *user, v string) *method {
	if v == "oath" {
		if m := u.first(kindSoftwareOath); m != nil {
			return m
		}
	}
	for _, m := range u.methods {
		if preferredNames(v, m) {
			return m
		}
	}
	return nil
}

// preferredOf reports the user's default as beta names it: "" (null)
// without a default; the value last set while it still names the default;
// else the value of the default's type; unknownFutureValue for a default
// no value names (FIDO2, Windows Hello).
func preferredOf(u *user) string {
	if u.defaultID == "" {
		return ""
	}
	m := u.find(u.defaultID)
	if m == nil {
		return ""
	}
	if u.preferred != "" && preferredNames(u.preferred, m) {
		return u.preferred
	}
	switch {
	case m.kind == kindAuthenticator:
		return "push"
	case m.kind == kindSoftwareOath:
		return "oath"
	case m.kind == kindPhone && m.phoneType == "mobile":
		return "sms"
	case m.kind == kindPhone && m.phoneType == "alternateMobile":
		return "voiceAlternateMobile"
	case m.kind == kindPhone && m.phoneType == "office":
		return "voiceOffice"
	}
	return "unknownFutureValue"
}

// signInPreferences serves GET (200) and PATCH (204, no body).
func (e *Emulator) signInPreferences(c *call, u *user) reply {
	if c.r.Method == http.MethodGet {
		o := startObj(nil)
		o.str("@odata.context", c.base+"/beta/$metadata#users('"+odataKey(c.rt.user)+"')/authentication/signInPreferences")
		o.str("@odata.type", "#microsoft.graph.signInPreferences")
		o.boolean("isSystemPreferredAuthenticationMethodEnabled", u.systemPreferred)
		o.strOrNull("userPreferredMethodForSecondaryAuthentication", preferredOf(u))
		return jsonReply(http.StatusOK, o.end())
	}
	var b struct {
		ODataType       *string         `json:"@odata.type"`
		Preferred       json.RawMessage `json:"userPreferredMethodForSecondaryAuthentication"`
		SystemPreferred *bool           `json:"isSystemPreferredAuthenticationMethodEnabled"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return badJSON(err)
	}
	if b.ODataType != nil && !strings.EqualFold(strings.TrimPrefix(*b.ODataType, "#"), "microsoft.graph.signInPreferences") {
		return errReplyf(http.StatusBadRequest, "badRequest", "The @odata.type '%s' does not match #microsoft.graph.signInPreferences.", *b.ODataType)
	}
	var target *method
	value := ""
	if len(b.Preferred) > 0 {
		if string(b.Preferred) == "null" {
			return errReply(http.StatusBadRequest, "badRequest",
				"userPreferredMethodForSecondaryAuthentication cannot be cleared; set another method as the default.")
		}
		if err := json.Unmarshal(b.Preferred, &value); err != nil {
			return errReply(http.StatusBadRequest, "badRequest", "Invalid value for property 'userPreferredMethodForSecondaryAuthentication': expected a string.")
		}
		ok := false
		for _, v := range preferredValues {
			ok = ok || v == value
		}
		if !ok {
			return errReplyf(http.StatusBadRequest, "badRequest",
				"Invalid userPreferredMethodForSecondaryAuthentication '%s': want push, oath, voiceMobile, voiceAlternateMobile, voiceOffice or sms.", value)
		}
		if target = preferredTarget(u, value); target == nil {
			return errReplyf(http.StatusBadRequest, "badRequest",
				"The user has no registered method for '%s'; register it before making it the default.", value)
		}
	}
	if target != nil {
		u.defaultID, u.preferred = target.id, value
	}
	if b.SystemPreferred != nil {
		u.systemPreferred = *b.SystemPreferred
	}
	return emptyReply(http.StatusNoContent)
}
