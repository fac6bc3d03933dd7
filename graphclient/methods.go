package graphclient

import (
	"context"
	"fmt"
	"strings"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// maxPages bounds how many nextLinks a listing follows.
const maxPages = 50

func (c *Client) authn(userID string) *users.ItemAuthenticationRequestBuilder {
	return c.root().ByUserId(userID).Authentication()
}

// checkIDs validates a user id and method ids before they go into a path.
func checkIDs(op, userID string, methodIDs ...string) error {
	if err := ValidateUserID(userID); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	for _, id := range methodIDs {
		if err := ValidateMethodID(id); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return nil
}

// Methods lists every authentication method of the user (GET
// /authentication/methods), each typed by its @odata.type.
func (c *Client) Methods(ctx context.Context, userID string) ([]Method, error) {
	const op = "list methods"
	if err := checkIDs(op, userID); err != nil {
		return nil, err
	}
	ctx = ensureRequestID(ctx)
	out := []Method{}
	err := listPages(ctx, c, op, func(ctx context.Context, next string) (models.AuthenticationMethodCollectionResponseable, error) {
		b := c.authn(userID).Methods()
		if next != "" {
			b = b.WithUrl(next)
		}
		return b.Get(ctx, nil)
	}, func(m models.AuthenticationMethodable) {
		if m != nil {
			out = append(out, toMethod(m))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listPages reads a collection page by page: get fetches the first page
// when next is empty and the page at next otherwise; each sees every item.
// It follows at most maxPages nextLinks, and only to our own origin.
func listPages[T any, P interface {
	GetValue() []T
	GetOdataNextLink() *string
}](ctx context.Context, c *Client, op string, get func(ctx context.Context, next string) (P, error), each func(T)) error {
	next := ""
	for page := 0; ; page++ {
		if page == maxPages {
			return &APIError{Op: op, Code: "tooManyPages", Message: fmt.Sprintf("more than %d pages", maxPages), class: ErrPermanent}
		}
		var res P
		resp, err := c.call(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = get(ctx, next)
			return err
		})
		if err != nil {
			return err
		}
		if any(res) == nil {
			return invalidResponse(op, resp, "empty body", ErrTransient)
		}
		for _, v := range res.GetValue() {
			each(v)
		}
		nl := res.GetOdataNextLink()
		if nl == nil || *nl == "" {
			return nil
		}
		if next, err = c.sameOrigin(op, *nl); err != nil {
			return err
		}
	}
}

// phoneType maps a phone type onto the SDK's enum and its fixed method id.
func phoneType(t PhoneType) (models.AuthenticationPhoneType, string, bool) {
	switch t {
	case PhoneMobile:
		return models.MOBILE_AUTHENTICATIONPHONETYPE, MobilePhoneID, true
	case PhoneAlternateMobile:
		return models.ALTERNATEMOBILE_AUTHENTICATIONPHONETYPE, AlternateMobilePhoneID, true
	case PhoneOffice:
		return models.OFFICE_AUTHENTICATIONPHONETYPE, OfficePhoneID, true
	}
	return 0, "", false
}

// AddPhone registers a phone of type t (POST /phoneMethods). number must be
// in Graph's form (see ValidatePhoneNumber).
func (c *Client) AddPhone(ctx context.Context, userID string, t PhoneType, number string) (Method, error) {
	const op = "add phone"
	if err := checkIDs(op, userID); err != nil {
		return Method{}, err
	}
	pt, fixedID, ok := phoneType(t)
	if !ok {
		return Method{}, fmt.Errorf("%s: %w", op, invalidf("phone type %s is not mobile, alternateMobile or office", quoteBounded(string(t))))
	}
	if err := ValidatePhoneNumber(number); err != nil {
		return Method{}, fmt.Errorf("%s: %w", op, err)
	}
	body := models.NewPhoneAuthenticationMethod()
	body.SetPhoneNumber(&number)
	body.SetPhoneType(&pt)
	var res models.PhoneAuthenticationMethodable
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		res, err = c.authn(userID).PhoneMethods().Post(ctx, body, nil)
		return err
	})
	if err != nil {
		return Method{}, err
	}
	if res == nil {
		// Created without a body: phone ids are fixed, so we know it.
		return Method{Kind: KindPhone, ID: fixedID, PhoneType: t, PhoneNumber: number}, nil
	}
	return toMethod(res), nil
}

// UpdatePhone changes the number of a phone method (PATCH; the type cannot
// change).
func (c *Client) UpdatePhone(ctx context.Context, userID, methodID, number string) error {
	const op = "update phone"
	if err := checkIDs(op, userID, methodID); err != nil {
		return err
	}
	if err := ValidatePhoneNumber(number); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	body := models.NewPhoneAuthenticationMethod()
	body.SetPhoneNumber(&number)
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		_, err := c.authn(userID).PhoneMethods().ByPhoneAuthenticationMethodId(methodID).Patch(ctx, body, nil)
		return err
	})
	return err
}

// DeletePhone deletes a phone method.
func (c *Client) DeletePhone(ctx context.Context, userID, methodID string) error {
	return c.deleteMethod(ctx, "delete phone", userID, KindPhone, methodID)
}

// EnableSMSSignIn turns on SMS sign-in for a mobile phone method.
func (c *Client) EnableSMSSignIn(ctx context.Context, userID, methodID string) error {
	const op = "enable sms sign-in"
	if err := checkIDs(op, userID, methodID); err != nil {
		return err
	}
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		return c.authn(userID).PhoneMethods().ByPhoneAuthenticationMethodId(methodID).EnableSmsSignIn().Post(ctx, nil)
	})
	return err
}

// DisableSMSSignIn turns off SMS sign-in for a phone method.
func (c *Client) DisableSMSSignIn(ctx context.Context, userID, methodID string) error {
	const op = "disable sms sign-in"
	if err := checkIDs(op, userID, methodID); err != nil {
		return err
	}
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		return c.authn(userID).PhoneMethods().ByPhoneAuthenticationMethodId(methodID).DisableSmsSignIn().Post(ctx, nil)
	})
	return err
}

// AddEmail registers the user's email method (used for self-service
// password reset only).
func (c *Client) AddEmail(ctx context.Context, userID, address string) (Method, error) {
	const op = "add email"
	if err := checkIDs(op, userID); err != nil {
		return Method{}, err
	}
	if err := validateEmail(address); err != nil {
		return Method{}, fmt.Errorf("%s: %w", op, err)
	}
	body := models.NewEmailAuthenticationMethod()
	body.SetEmailAddress(&address)
	var res models.EmailAuthenticationMethodable
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		res, err = c.authn(userID).EmailMethods().Post(ctx, body, nil)
		return err
	})
	if err != nil {
		return Method{}, err
	}
	if res == nil {
		return Method{Kind: KindEmail, ID: EmailMethodID, EmailAddress: address}, nil
	}
	return toMethod(res), nil
}

// UpdateEmail changes the address of the email method.
func (c *Client) UpdateEmail(ctx context.Context, userID, methodID, address string) error {
	const op = "update email"
	if err := checkIDs(op, userID, methodID); err != nil {
		return err
	}
	if err := validateEmail(address); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	body := models.NewEmailAuthenticationMethod()
	body.SetEmailAddress(&address)
	_, err := c.call(ctx, op, func(ctx context.Context) error {
		_, err := c.authn(userID).EmailMethods().ByEmailAuthenticationMethodId(methodID).Patch(ctx, body, nil)
		return err
	})
	return err
}

// DeleteEmail deletes the email method.
func (c *Client) DeleteEmail(ctx context.Context, userID, methodID string) error {
	return c.deleteMethod(ctx, "delete email", userID, KindEmail, methodID)
}

// TAP lifetime limits of the API (the tenant policy may be narrower).
const (
	minTAPLifetime = 10
	maxTAPLifetime = 43200
)

// CreateTAP issues a Temporary Access Pass. A user has at most one: Graph
// replaces an existing one. The value is in the result and nowhere else.
//
// If Graph created the pass but its response lacks the value, CreateTAP
// returns the Method (so the caller can delete the orphan) with an error
// classed transient.
func (c *Client) CreateTAP(ctx context.Context, userID string, req TAPRequest) (TAP, error) {
	const op = "create tap"
	if err := checkIDs(op, userID); err != nil {
		return TAP{}, err
	}
	if req.LifetimeMinutes != 0 && (req.LifetimeMinutes < minTAPLifetime || req.LifetimeMinutes > maxTAPLifetime) {
		return TAP{}, fmt.Errorf("%s: %w", op, invalidf("TAP lifetime must be %d..%d minutes (or 0 for the policy default)", minTAPLifetime, maxTAPLifetime))
	}
	body := models.NewTemporaryAccessPassAuthenticationMethod()
	if !req.Start.IsZero() {
		start := req.Start.UTC()
		body.SetStartDateTime(&start)
	}
	if req.LifetimeMinutes != 0 {
		lt := int32(req.LifetimeMinutes)
		body.SetLifetimeInMinutes(&lt)
	}
	if req.UsableOnce {
		once := true
		body.SetIsUsableOnce(&once)
	}
	var res models.TemporaryAccessPassAuthenticationMethodable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		res, err = c.authn(userID).TemporaryAccessPassMethods().Post(ctx, body, nil)
		return err
	})
	if err != nil {
		return TAP{}, err
	}
	if res == nil {
		return TAP{}, invalidResponse(op, resp, "created without a body: the pass value is lost", ErrTransient)
	}
	m := toMethod(res)
	v := res.GetTemporaryAccessPass()
	if v == nil || *v == "" {
		return TAP{Method: m}, invalidResponse(op, resp, "created without a pass value", ErrTransient)
	}
	return TAP{Method: m, Value: *v}, nil
}

// DeleteTAP deletes a Temporary Access Pass.
func (c *Client) DeleteTAP(ctx context.Context, userID, methodID string) error {
	return c.deleteMethod(ctx, "delete tap", userID, KindTAP, methodID)
}

// DeleteMethod deletes a method through its typed collection (Graph has no
// generic DELETE /methods/{id}). Every kind but password can be deleted;
// password fails with ErrInvalidInput without a request.
func (c *Client) DeleteMethod(ctx context.Context, userID string, kind Kind, methodID string) error {
	return c.deleteMethod(ctx, "delete "+deleteOpName(kind), userID, kind, methodID)
}

func deleteOpName(k Kind) string {
	switch k {
	case KindPhone, KindEmail, KindFIDO2, KindMicrosoftAuthenticator, KindWindowsHelloForBusiness,
		KindSoftwareOath, KindTAP, KindPassword, KindPlatformCredential, KindExternal, KindQRCodePin:
		return string(k)
	}
	return "method"
}

func (c *Client) deleteMethod(ctx context.Context, op, userID string, kind Kind, methodID string) error {
	if err := checkIDs(op, userID, methodID); err != nil {
		return err
	}
	a := c.authn(userID)
	var del func(ctx context.Context) error
	switch kind {
	case KindPhone:
		del = func(ctx context.Context) error {
			return a.PhoneMethods().ByPhoneAuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindEmail:
		del = func(ctx context.Context) error {
			return a.EmailMethods().ByEmailAuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindTAP:
		del = func(ctx context.Context) error {
			return a.TemporaryAccessPassMethods().ByTemporaryAccessPassAuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindFIDO2:
		del = func(ctx context.Context) error {
			return a.Fido2Methods().ByFido2AuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindMicrosoftAuthenticator:
		del = func(ctx context.Context) error {
			return a.MicrosoftAuthenticatorMethods().ByMicrosoftAuthenticatorAuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindWindowsHelloForBusiness:
		del = func(ctx context.Context) error {
			return a.WindowsHelloForBusinessMethods().ByWindowsHelloForBusinessAuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindSoftwareOath:
		del = func(ctx context.Context) error {
			return a.SoftwareOathMethods().BySoftwareOathAuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindPlatformCredential:
		del = func(ctx context.Context) error {
			return a.PlatformCredentialMethods().ByPlatformCredentialAuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindExternal:
		del = func(ctx context.Context) error {
			return a.ExternalAuthenticationMethods().ByExternalAuthenticationMethodId(methodID).Delete(ctx, nil)
		}
	case KindQRCodePin:
		// One per user, at a single-valued path: the id only names it.
		del = func(ctx context.Context) error { return c.sendQR(ctx, abs.DELETE, userID, nil, nil) }
	case KindPassword:
		return fmt.Errorf("%s: %w", op, invalidf("a password method cannot be deleted"))
	default:
		return fmt.Errorf("%s: %w", op, invalidf("unknown method kind %s", quoteBounded(string(kind))))
	}
	_, err := c.call(ctx, op, del)
	return err
}

// kindFromODataType derives a kind from an @odata.type the SDK does not
// model: "#microsoft.graph.hardwareOathAuthenticationMethod" is
// "hardwareOath".
func kindFromODataType(t string) Kind {
	t = strings.TrimPrefix(t, "#microsoft.graph.")
	t = strings.TrimSuffix(t, "AuthenticationMethod")
	if t == "" {
		return "unknown"
	}
	return Kind(sanitize(t, 64))
}

// toMethod maps an SDK method onto Method.
func toMethod(m models.AuthenticationMethodable) Method {
	out := Method{ID: str(m.GetId()), Created: tm(m.GetCreatedDateTime())}
	switch v := m.(type) {
	case *models.PhoneAuthenticationMethod:
		out.Kind = KindPhone
		if pt := v.GetPhoneType(); pt != nil {
			out.PhoneType = PhoneType(pt.String())
		}
		out.PhoneNumber = str(v.GetPhoneNumber())
		if s := v.GetSmsSignInState(); s != nil {
			out.SMSSignInState = s.String()
		}
	case *models.EmailAuthenticationMethod:
		out.Kind = KindEmail
		out.EmailAddress = str(v.GetEmailAddress())
	case *models.Fido2AuthenticationMethod:
		out.Kind = KindFIDO2
		out.DisplayName = str(v.GetDisplayName())
		out.Model = str(v.GetModel())
		out.AAGUID = str(v.GetAaGuid())
		if pt := v.GetPasskeyType(); pt != nil {
			out.PasskeyType = pt.String()
		}
		if l := v.GetAttestationLevel(); l != nil {
			out.Attestation = l.String()
		}
	case *models.MicrosoftAuthenticatorAuthenticationMethod:
		out.Kind = KindMicrosoftAuthenticator
		out.DisplayName = str(v.GetDisplayName())
		out.DeviceTag = str(v.GetDeviceTag())
		out.PhoneAppVersion = str(v.GetPhoneAppVersion())
	case *models.WindowsHelloForBusinessAuthenticationMethod:
		out.Kind = KindWindowsHelloForBusiness
		out.DisplayName = str(v.GetDisplayName())
		if k := v.GetKeyStrength(); k != nil {
			out.KeyStrength = k.String()
		}
	case *models.SoftwareOathAuthenticationMethod:
		out.Kind = KindSoftwareOath
	case *models.TemporaryAccessPassAuthenticationMethod:
		out.Kind = KindTAP
		out.TAPStart = tm(v.GetStartDateTime())
		if lt := v.GetLifetimeInMinutes(); lt != nil {
			out.TAPLifetimeMinutes = int(*lt)
		}
		out.TAPUsableOnce = boolean(v.GetIsUsableOnce())
		out.TAPUsable = boolean(v.GetIsUsable())
		out.TAPUsabilityReason = str(v.GetMethodUsabilityReason())
	case *models.PasswordAuthenticationMethod:
		out.Kind = KindPassword
	case *models.PlatformCredentialAuthenticationMethod:
		out.Kind = KindPlatformCredential
		out.DisplayName = str(v.GetDisplayName())
		if k := v.GetKeyStrength(); k != nil {
			out.KeyStrength = k.String()
		}
		if p := v.GetPlatform(); p != nil {
			out.Platform = p.String()
		}
	case *models.ExternalAuthenticationMethod:
		out.Kind = KindExternal
		out.DisplayName = str(v.GetDisplayName())
	case *models.QrCodePinAuthenticationMethod:
		out.Kind = KindQRCodePin
		if q := v.GetStandardQRCode(); q != nil {
			out.QRCodeStart, out.QRCodeExpiry = tm(q.GetStartDateTime()), tm(q.GetExpireDateTime())
		}
	default:
		out.Kind = kindFromODataType(str(m.GetOdataType()))
	}
	return out
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func boolean(p *bool) bool { return p != nil && *p }

func tm(p *time.Time) time.Time {
	if p == nil {
		return time.Time{}
	}
	return p.UTC()
}
