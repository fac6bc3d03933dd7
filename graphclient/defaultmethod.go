package graphclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	abs "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// PreferredMethod is a value of Graph beta's
// userDefaultAuthenticationMethodType: the user's default second factor, by
// type rather than by method id.
type PreferredMethod string

// The values of userPreferredMethodForSecondaryAuthentication. There is no
// value for a passkey (FIDO2), Windows Hello or a platform credential.
const (
	PreferredPush                 PreferredMethod = "push"                 // Microsoft Authenticator notification
	PreferredOATH                 PreferredMethod = "oath"                 // a code: software OATH token or Authenticator
	PreferredVoiceMobile          PreferredMethod = "voiceMobile"          // a call to the mobile phone
	PreferredVoiceAlternateMobile PreferredMethod = "voiceAlternateMobile" // a call to the alternate mobile phone
	PreferredVoiceOffice          PreferredMethod = "voiceOffice"          // a call to the office phone
	PreferredSMS                  PreferredMethod = "sms"                  // a text to the mobile phone
	// PreferredUnknown is Graph's unknownFutureValue: a default that this
	// API version cannot name. It can be read, never set.
	PreferredUnknown PreferredMethod = "unknownFutureValue"
)

// PreferredMethods returns the values SetPreferredMethod accepts, strongest
// first: the order in which a new default is picked.
func PreferredMethods() []PreferredMethod {
	return []PreferredMethod{PreferredPush, PreferredOATH, PreferredSMS, PreferredVoiceMobile,
		PreferredVoiceAlternateMobile, PreferredVoiceOffice}
}

// ValidatePreferredMethod checks that p can be set as a default.
func ValidatePreferredMethod(p PreferredMethod) error {
	for _, v := range PreferredMethods() {
		if p == v {
			return nil
		}
	}
	return invalidf("preferred method %s is not one of push, oath, sms, voiceMobile, voiceAlternateMobile, voiceOffice", quoteBounded(string(p)))
}

// SignInPreferences is a user's beta signInPreferences.
type SignInPreferences struct {
	// Preferred is userPreferredMethodForSecondaryAuthentication; "" when
	// the user has no default.
	Preferred PreferredMethod
	// SystemPreferred is isSystemPreferredAuthenticationMethodEnabled:
	// when true, Entra picks the method to prompt for and Preferred is
	// used only by the NPS extension and the AD FS adapter. The rule that
	// the default method cannot be deleted while others remain holds
	// either way.
	SystemPreferred bool
}

// PreferredFor returns the value that names m as the default, and false
// for a method no value names (email, FIDO2, Windows Hello, TAP, ...). A
// mobile phone is named by sms.
func PreferredFor(m Method) (PreferredMethod, bool) {
	switch {
	case m.Kind == KindMicrosoftAuthenticator:
		return PreferredPush, true
	case m.Kind == KindSoftwareOath:
		return PreferredOATH, true
	case m.Kind == KindPhone && m.PhoneType == PhoneMobile:
		return PreferredSMS, true
	case m.Kind == KindPhone && m.PhoneType == PhoneAlternateMobile:
		return PreferredVoiceAlternateMobile, true
	case m.Kind == KindPhone && m.PhoneType == PhoneOffice:
		return PreferredVoiceOffice, true
	}
	return "", false
}

// DefaultIn returns the index in ms of the method that p designates, or -1:
// push is the first Authenticator; oath the first software OATH token, else
// the first Authenticator (which also shows codes); sms and voiceMobile the
// mobile phone; voiceAlternateMobile and voiceOffice those phones.
func DefaultIn(p PreferredMethod, ms []Method) int {
	first := func(pred func(Method) bool) int {
		for i, m := range ms {
			if pred(m) {
				return i
			}
		}
		return -1
	}
	phone := func(t PhoneType) int {
		return first(func(m Method) bool { return m.Kind == KindPhone && m.PhoneType == t })
	}
	switch p {
	case PreferredPush:
		return first(func(m Method) bool { return m.Kind == KindMicrosoftAuthenticator })
	case PreferredOATH:
		if i := first(func(m Method) bool { return m.Kind == KindSoftwareOath }); i >= 0 {
			return i
		}
		return first(func(m Method) bool { return m.Kind == KindMicrosoftAuthenticator })
	case PreferredSMS, PreferredVoiceMobile:
		return phone(PhoneMobile)
	case PreferredVoiceAlternateMobile:
		return phone(PhoneAlternateMobile)
	case PreferredVoiceOffice:
		return phone(PhoneOffice)
	}
	return -1
}

// betaBaseURL derives Graph beta's root from the v1.0 root: the last path
// segment "v1.0" becomes "beta". raw, when set, is taken instead; it must
// be on the base's scheme and host (the token goes nowhere else).
func betaBaseURL(base *url.URL, raw string) (*url.URL, error) {
	if raw == "" {
		p, ok := strings.CutSuffix(base.Path, "/v1.0")
		if !ok {
			return nil, nil // no beta: the calls say so
		}
		u := *base
		u.Path = p + "/beta"
		return &u, nil
	}
	u, err := parseBaseURL(raw, false)
	if err != nil {
		return nil, fmt.Errorf("BetaURL: %w", err)
	}
	if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Host, base.Host) {
		return nil, errors.New("BetaURL must have the scheme and host of BaseURL")
	}
	return u, nil
}

// signInPrefsBody is the beta signInPreferences resource for kiota: the SDK
// (a v1.0 SDK) has no model for it.
type signInPrefsBody struct {
	preferred       *string
	systemPreferred *bool
}

func (b *signInPrefsBody) Serialize(w absser.SerializationWriter) error {
	if b.preferred != nil {
		if err := w.WriteStringValue("userPreferredMethodForSecondaryAuthentication", b.preferred); err != nil {
			return err
		}
	}
	if b.systemPreferred != nil {
		return w.WriteBoolValue("isSystemPreferredAuthenticationMethodEnabled", b.systemPreferred)
	}
	return nil
}

func (b *signInPrefsBody) GetFieldDeserializers() map[string]func(absser.ParseNode) error {
	return map[string]func(absser.ParseNode) error{
		"userPreferredMethodForSecondaryAuthentication": func(n absser.ParseNode) error {
			v, err := n.GetStringValue()
			b.preferred = v
			return err
		},
		"isSystemPreferredAuthenticationMethodEnabled": func(n absser.ParseNode) error {
			v, err := n.GetBoolValue()
			b.systemPreferred = v
			return err
		},
	}
}

// sendSignInPrefs sends one request to the beta signInPreferences of a
// user through the SDK's adapter (middleware, token, error mapping).
func (c *Client) sendSignInPrefs(ctx context.Context, method abs.HttpMethod, userID string, body, res *signInPrefsBody) error {
	u := *c.beta
	u.Path += "/users/" + userID + "/authentication/signInPreferences"
	ri := abs.NewRequestInformation()
	ri.Method = method
	ri.SetUri(u)
	ri.Headers.TryAdd("Accept", "application/json")
	if body != nil {
		if err := ri.SetContentFromParsable(ctx, c.adapter, "application/json", body); err != nil {
			return err
		}
	}
	errs := abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}
	if res == nil {
		return c.adapter.SendNoContent(ctx, ri, errs)
	}
	v, err := c.adapter.Send(ctx, ri, func(absser.ParseNode) (absser.Parsable, error) { return &signInPrefsBody{}, nil }, errs)
	if err != nil {
		return err
	}
	if p, ok := v.(*signInPrefsBody); ok {
		*res = *p
	}
	return nil
}

func (c *Client) checkBeta(op string) error {
	if c.beta == nil {
		return fmt.Errorf("%s: %w", op, invalidf("no Graph beta URL: BaseURL does not end in /v1.0 and Config.BetaURL is not set"))
	}
	return nil
}

// SignInPreferences reads the user's default method (GET
// /beta/users/{id}/authentication/signInPreferences). It is a beta API:
// Microsoft may change it, so callers use it only when told to.
func (c *Client) SignInPreferences(ctx context.Context, userID string) (SignInPreferences, error) {
	const op = "get sign-in preferences"
	if err := checkIDs(op, userID); err != nil {
		return SignInPreferences{}, err
	}
	if err := c.checkBeta(op); err != nil {
		return SignInPreferences{}, err
	}
	var res signInPrefsBody
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		return c.sendSignInPrefs(ctx, abs.GET, userID, nil, &res)
	})
	if err != nil {
		return SignInPreferences{}, err
	}
	out := SignInPreferences{SystemPreferred: boolean(res.systemPreferred)}
	if p := str(res.preferred); p != "" {
		out.Preferred = PreferredMethod(sanitize(p, 64))
		if ValidatePreferredMethod(out.Preferred) != nil && out.Preferred != PreferredUnknown {
			return SignInPreferences{}, invalidResponse(op, resp,
				"userPreferredMethodForSecondaryAuthentication has an unknown value "+quoteBounded(p), ErrPermanent)
		}
	}
	return out, nil
}

// SetPreferredMethod makes p the user's default method (PATCH
// /beta/users/{id}/authentication/signInPreferences). The user must have a
// method that p names (see DefaultIn), or Graph refuses (ErrConflict).
func (c *Client) SetPreferredMethod(ctx context.Context, userID string, p PreferredMethod) error {
	const op = "set preferred method"
	if err := checkIDs(op, userID); err != nil {
		return err
	}
	if err := ValidatePreferredMethod(p); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := c.checkBeta(op); err != nil {
		return err
	}
	v := string(p)
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		return c.sendSignInPrefs(ctx, abs.PATCH, userID, &signInPrefsBody{preferred: &v}, nil)
	})
	return err
}
