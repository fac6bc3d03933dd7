package events

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// CheckEmail reports whether addr is an address that email.set and the
// other email fields accept, so that a publisher can refuse a bad one
// before it builds an event. The error never contains the address.
func CheckEmail(addr string) error {
	switch {
	case addr == "":
		return errors.New("required")
	case utf8.RuneCountInString(addr) > maxEmailLen:
		return errors.New("longer than " + strconv.Itoa(maxEmailLen) + " characters")
	case !reEmail.MatchString(addr):
		return errors.New("must be an email address")
	}
	return nil
}
