package graphclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// PasskeyChallengeLifetime is how long a creationOptions challenge stays
// valid in Graph v1.0: a fixed 5 minutes (beta's challengeTimeoutInMinutes
// has no v1.0 counterpart).
const PasskeyChallengeLifetime = 5 * time.Minute

// Bounds of a passkey registration, in decoded bytes: WebAuthn caps
// credential ids at 1023 bytes; client data is a small JSON; an attestation
// object with a certificate chain is a few kilobytes.
const (
	MaxCredentialIDBytes      = 1023
	MaxClientDataJSONBytes    = 4 << 10
	MaxAttestationObjectBytes = 32 << 10
	MaxPasskeyDisplayName     = 256
)

// PasskeyCreationOptions are the WebAuthn credential creation options of
// GET /fido2Methods/creationOptions, in WebAuthn's own terms. Binary values
// are base64url without padding (Graph's padding, when present, is
// dropped: some tools have met wrongly padded values).
type PasskeyCreationOptions struct {
	// ChallengeExpires is Graph's challengeTimeoutDateTime: the register
	// call must reach Graph before it.
	ChallengeExpires time.Time
	Challenge        string
	RPID, RPName     string
	// UserID is the user handle; UserName the UPN.
	UserID, UserName, UserDisplayName string
	// Algorithms are the COSE algorithms of pubKeyCredParams, in order.
	Algorithms []int
	TimeoutMs  int
	// ExcludeCredentials are the user's registered credentials: an
	// authenticator holding one of them must not register again.
	ExcludeCredentials      []CredentialDescriptor
	AuthenticatorAttachment string // platform, cross-platform or ""
	RequireResidentKey      bool
	UserVerification        string // required, preferred, discouraged or ""
	Attestation             string // none, indirect, direct, enterprise or ""
}

// CredentialDescriptor names a registered credential.
type CredentialDescriptor struct {
	ID         string   `json:"id"`
	Transports []string `json:"transports,omitempty"`
}

// PasskeyCredential is what the authenticator made in the registration
// ceremony (WebAuthn's PublicKeyCredential with an attestation response),
// each value base64url without padding.
type PasskeyCredential struct {
	ID                string
	ClientDataJSON    string
	AttestationObject string
}

// PasskeyRegistration is the body of POST /fido2Methods.
type PasskeyRegistration struct {
	// DisplayName names the key for the user and admins; optional.
	DisplayName string
	Credential  PasskeyCredential
}

// ClientData is the part of WebAuthn's client data that registration
// checks.
type ClientData struct {
	Type      string `json:"type"`
	Challenge string `json:"challenge"`
	Origin    string `json:"origin"`
}

// DecodeB64URL decodes base64url with or without padding.
func DecodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(strings.TrimRight(s, "="))
}

// ValidatePasskeyRegistration checks a registration's shape: the display
// name, base64url values within WebAuthn's bounds, and client data of type
// webauthn.create with a challenge. It does not verify the attestation:
// Graph does.
func ValidatePasskeyRegistration(r PasskeyRegistration) error {
	if n := utf8.RuneCountInString(r.DisplayName); n > MaxPasskeyDisplayName || !utf8.ValidString(r.DisplayName) ||
		strings.ContainsFunc(r.DisplayName, func(c rune) bool { return unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) }) {
		return invalidf("passkey display name must be at most %d printable characters", MaxPasskeyDisplayName)
	}
	c := r.Credential
	for _, f := range []struct {
		name  string
		value string
		max   int
	}{
		{"credential id", c.ID, MaxCredentialIDBytes},
		{"clientDataJSON", c.ClientDataJSON, MaxClientDataJSONBytes},
		{"attestationObject", c.AttestationObject, MaxAttestationObjectBytes},
	} {
		if f.value == "" {
			return invalidf("passkey %s is required", f.name)
		}
		if len(f.value) > base64.RawURLEncoding.EncodedLen(f.max)+2 {
			return invalidf("passkey %s is longer than %d bytes", f.name, f.max)
		}
		b, err := DecodeB64URL(f.value)
		if err != nil || len(b) == 0 {
			return invalidf("passkey %s must be non-empty base64url", f.name)
		}
		if len(b) > f.max {
			return invalidf("passkey %s is longer than %d bytes", f.name, f.max)
		}
	}
	cd, err := ParseClientData(c.ClientDataJSON)
	if err != nil {
		return err
	}
	if cd.Type != "webauthn.create" || cd.Challenge == "" {
		return invalidf("passkey clientDataJSON must have type webauthn.create and a challenge")
	}
	return nil
}

// ParseClientData decodes base64url client data JSON.
func ParseClientData(b64 string) (ClientData, error) {
	raw, err := DecodeB64URL(b64)
	if err != nil {
		return ClientData{}, invalidf("passkey clientDataJSON must be base64url")
	}
	var cd ClientData
	if err := json.Unmarshal(raw, &cd); err != nil {
		return ClientData{}, invalidf("passkey clientDataJSON is not JSON")
	}
	return cd, nil
}

// normB64URL returns s as base64url without padding, accepting padded and
// standard-alphabet input; ok is false when it is not base64 at all.
func normB64URL(s string) (string, bool) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.Strict().DecodeString(s); err == nil {
		return base64.RawURLEncoding.EncodeToString(b), len(b) > 0
	}
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return base64.RawURLEncoding.EncodeToString(b), len(b) > 0
	}
	return "", false
}

// PasskeyCreationOptions asks Graph for the options of a passkey
// registration for the user (GET /fido2Methods/creationOptions). Each call
// makes a new challenge, valid PasskeyChallengeLifetime.
func (c *Client) PasskeyCreationOptions(ctx context.Context, userID string) (PasskeyCreationOptions, error) {
	const op = "get passkey creation options"
	if err := checkIDs(op, userID); err != nil {
		return PasskeyCreationOptions{}, err
	}
	var res models.WebauthnCredentialCreationOptionsable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		var err error
		res, err = c.authn(userID).Fido2Methods().CreationOptions().Get(ctx, nil)
		return err
	})
	if err != nil {
		return PasskeyCreationOptions{}, err
	}
	bad := func(msg string) (PasskeyCreationOptions, error) {
		return PasskeyCreationOptions{}, invalidResponse(op, resp, msg, ErrPermanent)
	}
	if res == nil || res.GetPublicKey() == nil {
		return bad("creation options without publicKey")
	}
	pk := res.GetPublicKey()
	out := PasskeyCreationOptions{ChallengeExpires: tm(res.GetChallengeTimeoutDateTime()),
		Attestation: str(pk.GetAttestation())}
	var ok bool
	if out.Challenge, ok = normB64URL(str(pk.GetChallenge())); !ok {
		return bad("creation options without a base64url challenge")
	}
	if rp := pk.GetRp(); rp != nil {
		out.RPID, out.RPName = str(rp.GetId()), str(rp.GetName())
	}
	if out.RPID == "" {
		return bad("creation options without rp.id")
	}
	if u := pk.GetUser(); u != nil {
		out.UserID, _ = normB64URL(str(u.GetId()))
		out.UserName, out.UserDisplayName = str(u.GetName()), str(u.GetDisplayName())
	}
	if out.UserID == "" {
		return bad("creation options without a base64url user.id")
	}
	for _, p := range pk.GetPubKeyCredParams() {
		if p != nil && p.GetAlg() != nil && (p.GetTypeEscaped() == nil || *p.GetTypeEscaped() == "public-key") {
			out.Algorithms = append(out.Algorithms, int(*p.GetAlg()))
		}
	}
	if len(out.Algorithms) == 0 {
		return bad("creation options without pubKeyCredParams")
	}
	if t := pk.GetTimeout(); t != nil {
		out.TimeoutMs = int(*t)
	}
	for _, d := range pk.GetExcludeCredentials() {
		if d == nil {
			continue
		}
		id, ok := normB64URL(str(d.GetId()))
		if !ok {
			return bad("creation options with an excludeCredentials id that is not base64url")
		}
		out.ExcludeCredentials = append(out.ExcludeCredentials, CredentialDescriptor{ID: id, Transports: d.GetTransports()})
	}
	if s := pk.GetAuthenticatorSelection(); s != nil {
		out.AuthenticatorAttachment = str(s.GetAuthenticatorAttachment())
		out.RequireResidentKey = boolean(s.GetRequireResidentKey())
		out.UserVerification = str(s.GetUserVerification())
	}
	if out.ChallengeExpires.IsZero() {
		out.ChallengeExpires = c.now().UTC().Add(PasskeyChallengeLifetime)
	}
	return out, nil
}

// RegisterPasskey completes a registration (POST /fido2Methods) with the
// credential an authenticator made from PasskeyCreationOptions. Graph
// checks the attestation against the challenge, which is single use: a
// second POST of the same credential fails (ErrConflict).
func (c *Client) RegisterPasskey(ctx context.Context, userID string, reg PasskeyRegistration) (Method, error) {
	const op = "register passkey"
	if err := checkIDs(op, userID); err != nil {
		return Method{}, err
	}
	if err := ValidatePasskeyRegistration(reg); err != nil {
		return Method{}, fmt.Errorf("%s: %w", op, err)
	}
	cred := reg.Credential
	id, _ := normB64URL(cred.ID)
	cdj, _ := normB64URL(cred.ClientDataJSON)
	att, _ := normB64URL(cred.AttestationObject)
	resp := models.NewWebauthnAuthenticatorAttestationResponse()
	resp.SetClientDataJSON(&cdj)
	resp.SetAttestationObject(&att)
	pkc := models.NewWebauthnPublicKeyCredential()
	pkc.SetId(&id)
	pkc.SetResponse(resp)
	pkc.SetClientExtensionResults(models.NewWebauthnAuthenticationExtensionsClientOutputs())
	body := models.NewFido2AuthenticationMethod()
	if reg.DisplayName != "" {
		name := reg.DisplayName
		body.SetDisplayName(&name)
	}
	body.SetPublicKeyCredential(pkc)
	var res models.Fido2AuthenticationMethodable
	r, err := c.call(ctx, op, func(ctx context.Context) error {
		return c.postFido2(ctx, userID, body, &res)
	})
	if err != nil {
		return Method{}, err
	}
	if res == nil {
		// Registered, but which method it is is unknown: the caller reads
		// the methods again.
		return Method{}, invalidResponse(op, r, "registered without a body", ErrTransient)
	}
	return toMethod(res), nil
}

// fido2URL is the collection; msgraph-sdk-go v1.103.0 models the POST body
// but its request builder has no Post.
const fido2URL = "{+baseurl}/users/{user%2Did}/authentication/fido2Methods"

func (c *Client) postFido2(ctx context.Context, userID string, body models.Fido2AuthenticationMethodable, res *models.Fido2AuthenticationMethodable) error {
	ri := abs.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(abs.POST, fido2URL,
		map[string]string{"baseurl": c.base.String(), "user%2Did": userID})
	ri.Headers.TryAdd("Accept", "application/json")
	if err := ri.SetContentFromParsable(ctx, c.adapter, "application/json", body); err != nil {
		return err
	}
	errs := abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}
	v, err := c.adapter.Send(ctx, ri, models.CreateFido2AuthenticationMethodFromDiscriminatorValue, errs)
	if err != nil {
		return err
	}
	if m, ok := v.(models.Fido2AuthenticationMethodable); ok {
		*res = m
	}
	return nil
}
