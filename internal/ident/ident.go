// Package ident holds the syntax rules of the two user identifiers authflow
// hands to Microsoft Graph: user principal names and phone numbers in
// Graph's "+{country code} {number}[x{extension}]" form.
//
// The events decoder and graphclient both check these, one when an event
// arrives and one before a request leaves; each rule lives here once so
// that an identifier the decoder accepts is never refused by graphclient
// (which would fail the event after it was accepted, instead of rejecting
// it). The package uses only the standard library, and its errors never
// repeat the identifier (a phone number is personal data).
package ident

import (
	"errors"
	"strings"
)

// Limits of a userPrincipalName in Entra ID (the username policy): 113
// characters in all, at most 64 before the @ and 48 after it. A DNS label
// is at most 63 characters (RFC 1035); the domain limit makes that bound
// unreachable, but it is the rule a domain must meet anywhere.
const (
	MaxUPNLen       = 113
	MaxUPNLocalLen  = 64
	MaxUPNDomainLen = 48
	MaxLabelLen     = 63
)

// guestMarker ends the local part of a B2B guest's UPN.
const guestMarker = "#EXT#"

// CheckUPN returns nil if upn is a user principal name authflow accepts,
// or an error saying which rule it breaks:
//
//   - at most 113 characters: at most 64 before exactly one @, at most 48
//     after it;
//   - before the @, Graph's character set A-Z a-z 0-9 ' . - _ ! ^ ~, with
//     no leading, trailing or doubled dot (Entra refuses a dot just
//     before the @); Graph also allows #, but authflow accepts it only in
//     a guest's "#EXT#" marker just before the @, since # is a URL
//     fragment delimiter and has no other legitimate use in an event;
//   - after the @, a DNS name of at least two labels of letters, digits
//     and hyphens, each 1-63 characters and not starting or ending with a
//     hyphen.
//
// Only ASCII passes, so lengths in bytes and in characters agree.
func CheckUPN(upn string) error {
	if upn == "" {
		return errors.New("is empty")
	}
	if len(upn) > MaxUPNLen {
		if !isASCII(upn) {
			return errors.New("has a character outside ASCII") // and more than 113 bytes, which may be fewer characters
		}
		return errors.New("is longer than 113 characters")
	}
	local, domain, ok := strings.Cut(upn, "@")
	if !ok || strings.Contains(domain, "@") {
		return errors.New("must contain exactly one @")
	}
	if err := checkLocal(local); err != nil {
		return err
	}
	return checkDomain(domain)
}

func checkLocal(local string) error {
	if local == "" {
		return errors.New("has nothing before the @")
	}
	if len(local) > MaxUPNLocalLen {
		return errors.New("has more than 64 characters before the @")
	}
	name, guest := strings.CutSuffix(local, guestMarker)
	if guest && name == "" {
		return errors.New("has nothing before a guest's #EXT# marker")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '#' {
			return errors.New("has a # outside a guest's #EXT# marker just before the @")
		}
		if !isLocalChar(c) {
			return errors.New("has a character outside A-Z a-z 0-9 ' . - _ ! ^ ~ before the @")
		}
	}
	if name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return errors.New("starts or ends with a dot, or has two dots in a row, before the @")
	}
	return nil
}

func isLocalChar(c byte) bool {
	switch c {
	case '\'', '.', '-', '_', '!', '^', '~':
		return true
	}
	return isAlnum(c)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func checkDomain(domain string) error {
	if domain == "" {
		return errors.New("has nothing after the @")
	}
	if len(domain) > MaxUPNDomainLen {
		return errors.New("has more than 48 characters after the @")
	}
	labels := 0
	for label := range strings.SplitSeq(domain, ".") {
		labels++
		if label == "" || len(label) > MaxLabelLen {
			return errors.New("has an empty domain label or one longer than 63 characters")
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return errors.New("has a character outside A-Z a-z 0-9 - in a domain label")
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("has a domain label that starts or ends with a hyphen")
		}
	}
	if labels < 2 {
		return errors.New("has a domain without a dot")
	}
	return nil
}

// Limits of a phone number in Graph's form. E.164 (ITU-T) allows at most
// 15 digits for country code and number together; Graph documents the form
// "+{country code} {number}x{extension}".
const (
	MaxE164Digits       = 15
	MaxCountryCodeLen   = 3
	MinNationalDigits   = 4
	MaxExtensionDigits  = 10
	maxGraphPhoneLength = 1 + MaxE164Digits + 1 + 1 + MaxExtensionDigits
)

// Phone is a phone number in Graph's form, split into its parts, all
// ASCII digits.
type Phone struct {
	CountryCode string // 1-3 digits, not starting with 0
	National    string // the national significant number, at least 4 digits
	Extension   string // "" or 1-10 digits
}

// String renders p in Graph's form, "+{cc} {national}[x{extension}]".
func (p Phone) String() string {
	s := "+" + p.CountryCode + " " + p.National
	if p.Extension != "" {
		s += "x" + p.Extension
	}
	return s
}

// Check returns nil if p meets Graph's form: a country code of 1-3 digits
// not starting with 0, a national number of at least 4 digits, at most 15
// digits for the two together (E.164), and an optional extension of 1-10
// digits.
func (p Phone) Check() error {
	cc := p.CountryCode
	if cc == "" || len(cc) > MaxCountryCodeLen || !allDigits(cc) || cc[0] == '0' {
		return errors.New("needs a country code of 1-3 digits, not starting with 0")
	}
	if !allDigits(p.National) || len(p.National) < MinNationalDigits {
		return errors.New("needs at least 4 digits after the country code, with no spaces or punctuation")
	}
	if len(cc)+len(p.National) > MaxE164Digits {
		return errors.New("has more than 15 digits; E.164 allows at most 15 for country code and number")
	}
	if p.Extension != "" && (!allDigits(p.Extension) || len(p.Extension) > MaxExtensionDigits) {
		return errors.New("extension must be 1-10 digits after x")
	}
	return nil
}

// ParsePhone reads a phone number in Graph's form,
// "+{country code} {number}[x{extension}]" (e.g. "+1 4255550100x123"), and
// checks it (see Phone.Check). Nothing else is accepted: no other spaces
// or punctuation, no non-ASCII digits.
func ParsePhone(s string) (Phone, error) {
	if len(s) > maxGraphPhoneLength {
		return Phone{}, errors.New("is too long for Graph's form +{country code} {number}[x{extension}]")
	}
	rest, ok := strings.CutPrefix(s, "+")
	if !ok {
		return Phone{}, errors.New(`must start with "+": Graph's form is +{country code} {number}[x{extension}]`)
	}
	cc, rest, ok := strings.Cut(rest, " ")
	if !ok {
		return Phone{}, errors.New("needs one space after the country code: Graph's form is +{country code} {number}[x{extension}]")
	}
	national, ext, hasExt := strings.Cut(rest, "x")
	if hasExt && ext == "" {
		return Phone{}, errors.New("extension must be 1-10 digits after x")
	}
	p := Phone{CountryCode: cc, National: national, Extension: ext}
	if err := p.Check(); err != nil {
		return Phone{}, err
	}
	return p, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
