package graphclienttest

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// defaultUserProps is what Graph returns for a user without $select; read-only.
var defaultUserProps = []string{"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
	"officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}

// selectableUserProps are the user properties the emulator knows; read-only.
// Those it does not model (mail, jobTitle, ...) are null.
var selectableUserProps = append([]string{"userType", "accountEnabled", "otherMails"}, defaultUserProps...)

// parseSelect reads $select for users: nil means the default property set.
func parseSelect(c *call) ([]string, *reply) {
	raw := c.q().Get("$select")
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var sel []string
	for p := range strings.SplitSeq(raw, ",") {
		p = strings.TrimSpace(p)
		i := -1
		for j, known := range selectableUserProps {
			if strings.EqualFold(p, known) {
				i = j
			}
		}
		if i < 0 {
			rep := errReplyf(http.StatusBadRequest, "Request_BadRequest",
				"Could not find a property named '%s' on type 'microsoft.graph.user'.", p)
			return nil, &rep
		}
		canon := selectableUserProps[i]
		dup := false
		for _, s := range sel {
			dup = dup || s == canon
		}
		if !dup {
			sel = append(sel, canon)
		}
	}
	return sel, nil
}

func selectSuffix(sel []string) string {
	if sel == nil {
		return ""
	}
	return "(" + strings.Join(sel, ",") + ")"
}

// appendUser writes a user with the selected properties.
func appendUser(b []byte, u *user, sel []string, context string) []byte {
	o := startObj(b)
	if context != "" {
		o.str("@odata.context", context)
	}
	if sel == nil {
		sel = defaultUserProps
	}
	for _, p := range sel {
		if appendMailProp(&o, u, p) { // mail.go
			continue
		}
		switch p {
		case "id":
			o.str(p, u.id)
		case "userPrincipalName":
			o.str(p, u.upn)
		case "displayName":
			o.strOrNull(p, u.displayName)
		case "userType":
			o.str(p, u.userType)
		case "accountEnabled":
			o.boolean(p, u.enabled)
		case "businessPhones":
			o.strings(p, nil)
		default:
			o.null(p)
		}
	}
	return o.end()
}

func (e *Emulator) getUser(c *call, u *user) reply {
	sel, rep := parseSelect(c)
	if rep != nil {
		return *rep
	}
	ctx := c.base + "/v1.0/$metadata#users" + selectSuffix(sel) + "/$entity"
	return jsonReply(http.StatusOK, appendUser(nil, u, sel, ctx))
}

// listUsers serves GET /users: $filter on userPrincipalName or id (eq with
// an OData string), else every user in pages of $top (default 100) with an
// absolute @odata.nextLink.
func (e *Emulator) listUsers(c *call) reply {
	sel, rep := parseSelect(c)
	if rep != nil {
		return *rep
	}
	q := c.q()
	var page []*user
	next := ""
	if filter := q.Get("$filter"); filter != "" {
		prop, val, err := parseEqFilter(filter)
		if err != nil {
			return errReply(http.StatusBadRequest, "Request_UnsupportedQuery", err.Error())
		}
		var u *user
		switch prop {
		case "userPrincipalName":
			if id, ok := e.upns[strings.ToLower(val)]; ok {
				u = e.users[id]
			}
		case "id":
			u = e.users[strings.ToLower(val)]
		}
		if u != nil {
			page = append(page, u)
		}
	} else {
		top := 100
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
		start := sort.SearchStrings(ids, skip)
		if skip != "" && start < len(ids) && ids[start] == skip {
			start++
		}
		end := min(start+top, len(ids))
		for _, id := range ids[start:end] {
			page = append(page, e.users[id])
		}
		if end < len(ids) {
			v := url.Values{}
			v.Set("$top", strconv.Itoa(top))
			v.Set("$skiptoken", ids[end-1])
			if s := q.Get("$select"); s != "" {
				v.Set("$select", s)
			}
			next = c.base + "/v1.0/users?" + v.Encode()
		}
	}
	o := startObj(nil)
	o.str("@odata.context", c.base+"/v1.0/$metadata#users"+selectSuffix(sel))
	if next != "" {
		o.str("@odata.nextLink", next)
	}
	o.key("value")
	o.b = append(o.b, '[')
	for i, u := range page {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		o.b = appendUser(o.b, u, sel, "")
	}
	o.b = append(o.b, ']')
	return jsonReply(http.StatusOK, o.end())
}

// parseEqFilter understands "<property> eq '<OData string>'" for
// userPrincipalName and id; in the literal, two single quotes stand for one.
func parseEqFilter(f string) (prop, val string, err error) {
	f = strings.TrimSpace(f)
	name, rest, ok := strings.Cut(f, " ")
	if !ok {
		return "", "", errors.New("Unsupported query filter: want \"userPrincipalName eq 'name@domain'\".")
	}
	switch {
	case strings.EqualFold(name, "userPrincipalName"):
		prop = "userPrincipalName"
	case strings.EqualFold(name, "id"):
		prop = "id"
	default:
		return "", "", errors.New("Unsupported or invalid query filter clause specified for property '" + name + "' of resource 'User'.")
	}
	rest = strings.TrimSpace(rest)
	opName, lit, ok := strings.Cut(rest, " ")
	if !ok || !strings.EqualFold(opName, "eq") {
		return "", "", errors.New("Unsupported query filter: only 'eq' is supported.")
	}
	lit = strings.TrimSpace(lit)
	if len(lit) < 2 || lit[0] != '\'' || lit[len(lit)-1] != '\'' {
		return "", "", errors.New("Invalid filter clause: the value must be a quoted string, e.g. 'name@domain'.")
	}
	inner := lit[1 : len(lit)-1]
	var sb strings.Builder
	for i := 0; i < len(inner); i++ {
		if inner[i] == '\'' {
			if i+1 >= len(inner) || inner[i+1] != '\'' {
				return "", "", errors.New("Invalid filter clause: a quote inside the string must be doubled ('').")
			}
			i++
		}
		sb.WriteByte(inner[i])
	}
	return prop, sb.String(), nil
}

// patchUser serves PATCH /users/{id}: accountEnabled and passwordProfile.
// Other properties are accepted and ignored. 204, no body.
func (e *Emulator) patchUser(c *call, u *user) reply {
	var b struct {
		AccountEnabled  *bool `json:"accountEnabled"`
		PasswordProfile *struct {
			Password                             *string `json:"password"`
			ForceChangePasswordNextSignIn        *bool   `json:"forceChangePasswordNextSignIn"`
			ForceChangePasswordNextSignInWithMfa *bool   `json:"forceChangePasswordNextSignInWithMfa"`
		} `json:"passwordProfile"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return errReply(http.StatusBadRequest, "Request_BadRequest", err.Error())
	}
	pp := b.PasswordProfile
	if pp != nil && pp.Password != nil && !validPassword(*pp.Password) {
		return errReply(http.StatusBadRequest, "Request_BadRequest", passwordPolicyMessage)
	}
	if b.AccountEnabled != nil {
		u.enabled = *b.AccountEnabled
	}
	if pp != nil {
		force := pp.ForceChangePasswordNextSignIn != nil && *pp.ForceChangePasswordNextSignIn ||
			pp.ForceChangePasswordNextSignInWithMfa != nil && *pp.ForceChangePasswordNextSignInWithMfa
		if pp.Password != nil {
			u.passwordChanges++
			u.forceChange = force
		} else if pp.ForceChangePasswordNextSignIn != nil || pp.ForceChangePasswordNextSignInWithMfa != nil {
			u.forceChange = force
		}
	}
	return emptyReply(http.StatusNoContent)
}

// roleTemplates are the template ids of well-known built-in roles, by
// lower-case name; read-only.
var roleTemplates = map[string]string{
	"global administrator":                    "62e90394-69f5-4237-9190-012177145e10",
	"privileged role administrator":           "e8611ab8-c189-46e8-94e1-60213ab1f814",
	"privileged authentication administrator": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
	"authentication administrator":            "c4e39bd9-1100-46d3-8c65-fb160da0071f",
	"user administrator":                      "fe930be7-5e62-47db-91af-98c3a49a38b1",
	"helpdesk administrator":                  "729827e3-9c14-49f7-bb1b-9608f156bbb8",
	"password administrator":                  "966707d0-3269-4727-9be2-8c3a10f19b9d",
	"security administrator":                  "194ae4cb-b126-40b2-bd5b-6091b380977d",
	"global reader":                           "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
}

// memberOf lists the user's directory roles as directoryRole objects. The
// object id is stable per role name; roleTemplateId is the real template id
// for well-known roles and null otherwise.
func (e *Emulator) memberOf(c *call, u *user) reply {
	o := startObj(nil)
	o.str("@odata.context", c.base+"/v1.0/$metadata#directoryObjects")
	o.key("value")
	o.b = append(o.b, '[')
	for i, r := range u.roles {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		ro := startObj(o.b)
		ro.str("@odata.type", "#microsoft.graph.directoryRole")
		ro.str("id", nameGUID("directoryRole:"+strings.ToLower(r)))
		ro.null("deletedDateTime")
		ro.null("description")
		ro.str("displayName", r)
		ro.strOrNull("roleTemplateId", roleTemplates[strings.ToLower(r)])
		o.b = ro.end()
	}
	o.b = append(o.b, ']')
	return jsonReply(http.StatusOK, o.end())
}
