package events

import (
	"strings"
	"unicode/utf8"
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
// in lower case) or a user principal name in Graph's character set
// (A-Z a-z 0-9 ' . - _ ! ^ ~ before the @, no leading, trailing or double
// dots; a guest's "#EXT#" marker just before the @ is the only # allowed).
// Anything else (/, .., ?, %, whitespace, CR or LF, non-ASCII look-alikes)
// is refused with an error naming the field "subject".
func ParseUser(subject string) (UserRef, error) {
	u, err := parseUser(subject)
	if err != nil {
		return UserRef{}, err
	}
	return u, nil
}

func parseUser(subject string) (UserRef, *Error) {
	switch {
	case subject == "":
		return UserRef{}, invalid("subject", "required")
	case reGUID.MatchString(subject):
		return UserRef{ObjectID: strings.ToLower(subject)}, nil
	case utf8.RuneCountInString(subject) > maxUPNLen:
		return UserRef{}, invalid("subject", "longer than %d characters", maxUPNLen)
	case reUPN.MatchString(subject):
		return UserRef{UPN: subject}, nil
	}
	return UserRef{}, invalid("subject", "must be an object id (GUID) or a user principal name in Graph's character set")
}
