package graphclient

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/authflow/authflow/internal/ident"
)

// inputError is a validation failure. It is ErrInvalidInput (and so
// ErrPermanent).
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }
func (e *inputError) Unwrap() error { return ErrInvalidInput }

func invalidf(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}

// ValidateUserID checks that id is a Graph object id: a GUID in its
// 8-4-4-4-12 hex form. Only such ids go into request paths.
func ValidateUserID(id string) error {
	if !isGUID(id) {
		return invalidf("user id %s is not an object id (GUID)", quoteBounded(id))
	}
	return nil
}

// maxMethodIDLen bounds method ids; real ones are GUIDs (36) or base64url
// strings of about 24 characters.
const maxMethodIDLen = 128

// ValidateMethodID checks that id looks like a Graph method id: 1 to 128
// characters from the GUID and base64url alphabets (A-Z a-z 0-9 - _).
// Ids from that alphabet need no escaping in a path and cannot change it.
func ValidateMethodID(id string) error {
	if id == "" || len(id) > maxMethodIDLen {
		return invalidf("method id must be 1..%d characters", maxMethodIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isIDChar(id[i]) {
			return invalidf("method id %s has a character outside A-Z a-z 0-9 - _", quoteBounded(id))
		}
	}
	return nil
}

func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// isGUID reports whether s is a GUID in 8-4-4-4-12 hex form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// ValidateUPN checks that upn is a well-formed userPrincipalName, by the
// rule the events decoder also applies (ident.CheckUPN): Graph's charset
// A-Z a-z 0-9 ' . - _ ! ^ ~ before exactly one @ (a # only in a guest's
// "#EXT#" marker), a DNS domain after it, at most 64 + 1 + 48 = 113
// characters. A valid UPN is still never put into a path: ResolveUser
// sends it quoted in a $filter.
func ValidateUPN(upn string) error {
	if err := ident.CheckUPN(upn); err != nil {
		return invalidf("userPrincipalName %v", err)
	}
	return nil
}

// UserRef is a parsed reference to a user: exactly one of ID and UPN is set.
type UserRef struct {
	ID  string // object id (GUID)
	UPN string // userPrincipalName
}

// ParseUserRef reads a user reference as given by an event: an object id
// (GUID) or a userPrincipalName.
func ParseUserRef(ref string) (UserRef, error) {
	if isGUID(ref) {
		return UserRef{ID: strings.ToLower(ref)}, nil
	}
	if !strings.Contains(ref, "@") {
		return UserRef{}, invalidf("user reference %s is neither an object id nor a userPrincipalName", quoteBounded(ref))
	}
	if err := ValidateUPN(ref); err != nil {
		return UserRef{}, err
	}
	return UserRef{UPN: ref}, nil
}

// odataQuote quotes s as an OData string literal: single quotes around it,
// each quote inside doubled.
func odataQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// ValidatePhoneNumber checks Graph's phone format "+{country code}
// {number}[x{extension}]", e.g. "+1 5555551234" or "+1 5555551234x123": a
// country code of 1 to 3 digits not starting with 0, one space, the
// subscriber number in digits (country code and number together at most 15
// digits, E.164; number at least 4), and an optional "x" with 1 to 10
// digits. It is the rule the events decoder checks its normalised numbers
// against (ident.ParsePhone). Graph rejects other forms. The error never
// repeats the number.
func ValidatePhoneNumber(number string) error {
	if _, err := ident.ParsePhone(number); err != nil {
		return invalidf("phone number %v", err)
	}
	return nil
}

// maxEmailLen is the SMTP limit on an address.
const maxEmailLen = 254

// validateEmail checks a bare address (no display name, no angle brackets).
func validateEmail(addr string) error {
	if addr == "" || len(addr) > maxEmailLen {
		return invalidf("email address must be 1..%d characters", maxEmailLen)
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		return invalidf("email address must be a bare address like name@example.com")
	}
	_, domain, _ := strings.Cut(addr, "@")
	if strings.HasPrefix(domain, "[") || !strings.Contains(domain, ".") {
		return invalidf("email address needs a DNS domain")
	}
	return nil
}

// maxPasswordLen is Entra's password length limit.
const maxPasswordLen = 256

// validatePassword checks only what keeps the request sane; the password
// policy is the service's business. The error never includes the password.
func validatePassword(pw string) error {
	if pw == "" || utf8.RuneCountInString(pw) > maxPasswordLen {
		return invalidf("password must be 1..%d characters", maxPasswordLen)
	}
	if !utf8.ValidString(pw) {
		return invalidf("password must be valid UTF-8")
	}
	for _, r := range pw {
		if unicode.IsControl(r) {
			return invalidf("password must not contain control characters")
		}
	}
	return nil
}

// quoteBounded quotes an untrusted id for an error message, bounded so that
// a huge input does not make a huge error.
func quoteBounded(s string) string {
	const max = 40
	if len(s) > max {
		return fmt.Sprintf("%q… (%d bytes)", sanitize(s, max), len(s))
	}
	return fmt.Sprintf("%q", s)
}
