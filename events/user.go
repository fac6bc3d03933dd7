package events

import (
	"strings"
	"unicode/utf8"

	"github.com/authflow/authflow/internal/ident"
)

// UserRef is the user an event names in its subject: exactly one of
// ObjectID (a lower-case canonical GUID) and UPN is set.
type UserRef struct {
	ObjectID string
	UPN      string
}

// String returns the object id or the UPN.
func (u UserRef) String() string {
	if u.ObjectID != "" {
		return u.ObjectID
	}
	return u.UPN
}

// ParseUser parses an event subject: an object id (GUID, any case; returned
// in lower case) or a user principal name by the rule graphclient also
// applies (ident.CheckUPN): Graph's character set A-Z a-z 0-9 ' . - _ ! ^ ~
// before the @, no leading, trailing or double dots, a guest's "#EXT#"
// marker just before the @ as the only # allowed, a DNS domain after it,
// at most 64 characters before the @, 48 after it and 113 in all.
// Anything else (/, .., ?, %, whitespace, CR or LF, non-ASCII look-alikes)
// is refused with an error naming the field "subject".
func ParseUser(subject string) (UserRef, error) {
	u, err := parseUser(subject)
	if err != nil {
		return UserRef{}, err
	}
	return u, nil
}

// ruleUPNParts marks a UPN refused only for the length of its local part
// or domain, which the schemas' upn pattern and maxLength do not count.
// (The other rules are in errors.go; this one stays with the check that
// sets it.)
const ruleUPNParts rule = 100

func parseUser(subject string) (UserRef, *Error) {
	switch {
	case subject == "":
		return UserRef{}, invalid("subject", "required")
	case reGUID.MatchString(subject):
		return UserRef{ObjectID: strings.ToLower(subject)}, nil
	case !strings.Contains(subject, "@"):
		return UserRef{}, invalid("subject", "must be an object id (GUID) or a user principal name")
	}
	if err := ident.CheckUPN(subject); err != nil {
		e := invalid("subject", "user principal name %s", err)
		if reUPN.MatchString(subject) && utf8.RuneCountInString(subject) <= maxUPNLen {
			e.rule = ruleUPNParts
		}
		return UserRef{}, e
	}
	return UserRef{UPN: subject}, nil
}
