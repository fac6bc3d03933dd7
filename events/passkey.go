package events

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/authflow/authflow/internal/passkey"
)

// Passkeys on behalf of users: a worker cannot touch the key, so
// registration takes two events. authflow.passkey.options.v1 asks Graph
// for creation options and seals them to an enrolment station;
// the station performs the ceremony (authflow enrol) and sends
// authflow.passkey.register.v1 with the new credential, which the worker
// posts to Graph. Graph's challenge lives 5 minutes, so the second event
// must be processed within that time of the first.
const (
	TypePasskeyOptions  = "authflow.passkey.options.v1"
	TypePasskeyRegister = "authflow.passkey.register.v1"
)

// SecretPasskeyOptions is the kind of a sealed passkey-options secret: the
// JSON of PasskeyOptions.
const SecretPasskeyOptions = "passkeyCreationOptions"

// PasskeyOptions is the plain text of a sealed passkeyCreationOptions
// secret: what the enrolment station needs for the ceremony.
type PasskeyOptions struct {
	// UserID is the Graph object id of the user the passkey is for.
	UserID string `json:"userId"`
	// UserPrincipalName is the user's sign-in name, for the station's
	// operator to check.
	UserPrincipalName string `json:"userPrincipalName"`
	// ChallengeExpires is when Graph stops accepting the challenge.
	ChallengeExpires time.Time `json:"challengeTimeoutDateTime"`
	// PublicKey are the WebAuthn creation options in their JSON form.
	PublicKey passkey.CreationOptions `json:"publicKey"`
}

// PasskeyOptionsRequest (authflow.passkey.options.v1) asks for passkey
// creation options sealed to an enrolment station.
type PasskeyOptionsRequest struct {
	Common
	// SealTo is the enrolment station's nkeys curve public key, "X...".
	SealTo string `json:"sealTo"`
}

func (p *PasskeyOptionsRequest) validate(v *validator) {
	v.required("data.sealTo", p.SealTo)
	v.xkey("data.sealTo", p.SealTo)
}

// PasskeyRegister (authflow.passkey.register.v1) registers the passkey an
// enrolment station made from a passkey.options result.
type PasskeyRegister struct {
	Common
	// DisplayName names the key; optional (Graph's own name otherwise).
	DisplayName string `json:"displayName"`
	// PublicKeyCredential is the new credential in WebAuthn's JSON form.
	PublicKeyCredential *PasskeyCredential `json:"publicKeyCredential"`
}

// PasskeyCredential is WebAuthn's RegistrationResponseJSON (the fields
// Graph takes, and those a browser's toJSON adds).
type PasskeyCredential struct {
	ID                      string                  `json:"id"`
	RawID                   string                  `json:"rawId"`
	Type                    string                  `json:"type"`
	AuthenticatorAttachment string                  `json:"authenticatorAttachment"`
	Response                PasskeyAttestation      `json:"response"`
	ClientExtensionResults  *ClientExtensionResults `json:"clientExtensionResults"`
}

// PasskeyAttestation is the authenticator's attestation response.
type PasskeyAttestation struct {
	ClientDataJSON    string   `json:"clientDataJSON"`
	AttestationObject string   `json:"attestationObject"`
	Transports        []string `json:"transports"`
}

// ClientExtensionResults are the client extension outputs; only credProps
// is known.
type ClientExtensionResults struct {
	CredProps *struct {
		RK *bool `json:"rk"`
	} `json:"credProps"`
}

// Bounds of a passkey registration, in decoded bytes (WebAuthn caps
// credential ids at 1023 bytes).
const (
	maxCredentialIDBytes      = 1023
	maxClientDataBytes        = 4 << 10
	maxAttestationObjectBytes = 32 << 10
	maxPasskeyNameLen         = 256
	maxTransports             = 8
)

var reB64URL = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func passkeyTransports() []string {
	return []string{"usb", "nfc", "ble", "smart-card", "hybrid", "internal"}
}

func (p *PasskeyRegister) validate(v *validator) {
	v.text("data.displayName", p.DisplayName, maxPasskeyNameLen)
	const path = "data.publicKeyCredential"
	c := p.PublicKeyCredential
	if c == nil {
		v.fail(path, "required")
		return
	}
	id := v.b64url(path+".id", c.ID, maxCredentialIDBytes)
	if c.RawID != "" && c.RawID != c.ID {
		v.blind(path+".rawId", "must equal id")
	}
	if c.Type != "" && c.Type != "public-key" {
		v.fail(path+".type", "must be public-key")
	}
	if c.AuthenticatorAttachment != "" && c.AuthenticatorAttachment != "platform" && c.AuthenticatorAttachment != "cross-platform" {
		v.fail(path+".authenticatorAttachment", "must be platform or cross-platform")
	}
	cdRaw := v.b64url(path+".response.clientDataJSON", c.Response.ClientDataJSON, maxClientDataBytes)
	attRaw := v.b64url(path+".response.attestationObject", c.Response.AttestationObject, maxAttestationObjectBytes)
	if len(c.Response.Transports) > maxTransports {
		v.fail(path+".response.transports", "at most %d transports", maxTransports)
	}
	for i, t := range c.Response.Transports {
		if !slices.Contains(passkeyTransports(), t) {
			v.fail(path+".response.transports["+itoa(i)+"]", "must be one of %s", strings.Join(passkeyTransports(), ", "))
		}
	}
	if v.err != nil {
		return
	}
	var cd passkey.ClientData
	if err := json.Unmarshal(cdRaw, &cd); err != nil {
		v.blind(path+".response.clientDataJSON", "must be base64url of a JSON object")
		return
	}
	switch {
	case cd.Type != "webauthn.create":
		v.blind(path+".response.clientDataJSON", "must be client data of type webauthn.create (a registration), got %s", quote(cd.Type))
	case cd.Challenge == "" || !reB64URL.MatchString(strings.TrimRight(cd.Challenge, "=")):
		v.blind(path+".response.clientDataJSON", "must carry the base64url challenge of the creation options")
	case !strings.HasPrefix(cd.Origin, "https://"):
		v.blind(path+".response.clientDataJSON", "must name an https origin")
	}
	if v.err != nil {
		return
	}
	att, err := passkey.ParseAttestationObject(attRaw)
	if err != nil {
		v.blind(path+".response.attestationObject", "%s", err.Error())
		return
	}
	if !bytes.Equal(att.CredentialID, id) {
		v.blind(path+".id", "must be the credential id of the attestation object")
	}
}

// b64url checks a required base64url value without padding whose decoded
// length is 1..max, and returns the decoded bytes.
func (v *validator) b64url(field, s string, max int) []byte {
	v.required(field, s)
	if s == "" || v.err != nil {
		return nil
	}
	if len(s) > (max*4+2)/3 {
		v.fail(field, "longer than %d bytes", max)
		return nil
	}
	if !reB64URL.MatchString(s) {
		v.fail(field, "must be base64url without padding (A-Z a-z 0-9 - _)")
		return nil
	}
	b, err := passkey.DecodeB64URL(s)
	if err != nil || len(b) == 0 || len(b) > max {
		v.blind(field, "must be base64url without padding of 1..%d bytes", max)
		return nil
	}
	return b
}

// blind fails with a check JSON Schema cannot express (the schema sees
// only the base64url text).
func (v *validator) blind(field, format string, args ...any) {
	if v.err == nil {
		v.err = invalid(field, format, args...)
		v.err.rule = rulePasskey
	}
}

// PasskeySpec is the registration an OpRegisterPasskey posts.
type PasskeySpec struct {
	DisplayName       string `json:"displayName,omitempty"`
	CredentialID      string `json:"credentialId"`
	ClientDataJSON    string `json:"clientDataJSON"`
	AttestationObject string `json:"attestationObject"`
}

func (c *PasskeyCredential) spec(displayName string) *PasskeySpec {
	return &PasskeySpec{DisplayName: displayName, CredentialID: c.ID,
		ClientDataJSON: c.Response.ClientDataJSON, AttestationObject: c.Response.AttestationObject}
}

// ClientDataChallenge returns the challenge in a base64url clientDataJSON,
// or "" when it has none.
func ClientDataChallenge(clientDataJSON string) string {
	raw, err := passkey.DecodeB64URL(clientDataJSON)
	if err != nil {
		return ""
	}
	var cd passkey.ClientData
	if json.Unmarshal(raw, &cd) != nil {
		return ""
	}
	return strings.TrimRight(cd.Challenge, "=")
}
