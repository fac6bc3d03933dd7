// Package passkey holds the WebAuthn registration pieces of authflow's
// passkey flow: the JSON forms of creation options and of a new credential
// (WebAuthn Level 3's PublicKeyCredentialCreationOptionsJSON and
// RegistrationResponseJSON), a software authenticator, and shape checks of
// an attestation object.
//
// No maintained pure-Go CTAP2 library was available to this project, so
// the enrolment station performs the ceremony with SoftAuthenticator: a
// P-256 key made in memory, with packed self-attestation. It shows the
// flow end to end and lets tests register passkeys; a station with
// hardware keys needs a CTAP client in its place. Nothing here verifies
// attestation signatures: Microsoft Graph does.
package passkey

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// AlgES256 is the COSE algorithm ECDSA with P-256 and SHA-256, the one
// SoftAuthenticator uses.
const AlgES256 = -7

// CreationOptions are WebAuthn credential creation options in their JSON
// form: binary values are base64url without padding.
type CreationOptions struct {
	Challenge              string                  `json:"challenge"`
	RP                     RPEntity                `json:"rp"`
	User                   UserEntity              `json:"user"`
	PubKeyCredParams       []CredParam             `json:"pubKeyCredParams"`
	Timeout                int                     `json:"timeout,omitempty"`
	ExcludeCredentials     []CredentialDescriptor  `json:"excludeCredentials"`
	AuthenticatorSelection *AuthenticatorSelection `json:"authenticatorSelection,omitempty"`
	Attestation            string                  `json:"attestation,omitempty"`
}

// RPEntity is the relying party.
type RPEntity struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// UserEntity is the account the credential is for; ID is the user handle.
type UserEntity struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
}

// CredParam is one acceptable key type.
type CredParam struct {
	Type string `json:"type"`
	Alg  int    `json:"alg"`
}

// CredentialDescriptor names a credential.
type CredentialDescriptor struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Transports []string `json:"transports,omitempty"`
}

// AuthenticatorSelection says which authenticators may register.
type AuthenticatorSelection struct {
	AuthenticatorAttachment string `json:"authenticatorAttachment,omitempty"`
	RequireResidentKey      bool   `json:"requireResidentKey"`
	ResidentKey             string `json:"residentKey,omitempty"`
	UserVerification        string `json:"userVerification,omitempty"`
}

// Credential is a new credential in its JSON form (the registration
// response an authenticator's client returns).
type Credential struct {
	ID       string              `json:"id"`
	Type     string              `json:"type"`
	Response AttestationResponse `json:"response"`
}

// AttestationResponse is the authenticator's attestation.
type AttestationResponse struct {
	ClientDataJSON    string `json:"clientDataJSON"`
	AttestationObject string `json:"attestationObject"`
}

// ClientData is WebAuthn's collected client data.
type ClientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

// Authenticator data flags.
const (
	FlagUP byte = 0x01 // user present
	FlagUV byte = 0x04 // user verified
	FlagBE byte = 0x08 // backup eligible: a synced passkey
	FlagBS byte = 0x10 // backed up
	FlagAT byte = 0x40 // attested credential data included
)

var b64 = base64.RawURLEncoding

// DecodeB64URL decodes base64url with or without padding.
func DecodeB64URL(s string) ([]byte, error) {
	return b64.Strict().DecodeString(strings.TrimRight(s, "="))
}

// ErrExcluded is MakeCredential's answer when the authenticator already
// holds one of the options' excludeCredentials: the user has this
// authenticator registered.
var ErrExcluded = errors.New("the authenticator already holds a credential listed in excludeCredentials")

// SoftAuthenticator is a software authenticator: it keeps its keys in
// memory only, so its passkeys exist for the life of the value. It is safe
// for concurrent use.
type SoftAuthenticator struct {
	// AAGUID identifies the authenticator model; zero is "none given".
	AAGUID [16]byte
	// Synced makes its credentials backup eligible (BE and BS set), like a
	// passkey in a cloud keychain.
	Synced bool

	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey // by credential id (base64url)
}

// CheckOptions reports what makes creation options unusable for a
// registration by an ES256 authenticator.
func CheckOptions(o CreationOptions) error {
	switch ch, err := DecodeB64URL(o.Challenge); {
	case err != nil || len(ch) < 16:
		return errors.New("creation options: challenge must be base64url of at least 16 bytes")
	case o.RP.ID == "" || strings.ContainsAny(o.RP.ID, "/:@ ") || len(o.RP.ID) > 253:
		return errors.New("creation options: rp.id must be a host name")
	}
	if id, err := DecodeB64URL(o.User.ID); err != nil || len(id) == 0 || len(id) > 64 {
		return errors.New("creation options: user.id must be base64url of 1..64 bytes")
	}
	if !slices.ContainsFunc(o.PubKeyCredParams, func(p CredParam) bool { return p.Type == "public-key" && p.Alg == AlgES256 }) {
		return errors.New("creation options: pubKeyCredParams does not offer ES256 (-7)")
	}
	for _, d := range o.ExcludeCredentials {
		if _, err := DecodeB64URL(d.ID); err != nil {
			return errors.New("creation options: an excludeCredentials id is not base64url")
		}
	}
	return nil
}

// MakeCredential performs a registration ceremony for o as a WebAuthn
// client and authenticator would: client data of type webauthn.create for
// origin (https://<rp.id> when empty), a new P-256 key, authenticator data
// with user presence and verification, and a packed self-attestation
// (fmt none when o asks for no attestation).
func (a *SoftAuthenticator) MakeCredential(o CreationOptions, origin string) (Credential, error) {
	if err := CheckOptions(o); err != nil {
		return Credential{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range o.ExcludeCredentials {
		id, _ := DecodeB64URL(d.ID)
		if _, ok := a.keys[b64.EncodeToString(id)]; ok {
			return Credential{}, ErrExcluded
		}
	}
	if origin == "" {
		origin = "https://" + o.RP.ID
	}
	cd, err := json.Marshal(ClientData{Type: "webauthn.create", Challenge: strings.TrimRight(o.Challenge, "="), Origin: origin})
	if err != nil {
		return Credential{}, fmt.Errorf("client data: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Credential{}, fmt.Errorf("make key: %w", err)
	}
	credID := make([]byte, 32)
	_, _ = rand.Read(credID) // never fails (crypto/rand, Go 1.24+)
	cose, err := coseKey(&key.PublicKey)
	if err != nil {
		return Credential{}, err
	}
	flags := FlagUP | FlagUV | FlagAT
	if a.Synced {
		flags |= FlagBE | FlagBS
	}
	rpHash := sha256.Sum256([]byte(o.RP.ID))
	var ad bytes.Buffer
	ad.Write(rpHash[:])
	ad.WriteByte(flags)
	ad.Write([]byte{0, 0, 0, 0}) // signature counter
	ad.Write(a.AAGUID[:])
	_ = binary.Write(&ad, binary.BigEndian, uint16(len(credID)))
	ad.Write(credID)
	ad.Write(cose)
	authData := ad.Bytes()

	att := attestationObject{Fmt: "none", AttStmt: map[string]any{}, AuthData: authData}
	if o.Attestation != "none" {
		cdHash := sha256.Sum256(cd)
		digest := sha256.Sum256(append(slices.Clone(authData), cdHash[:]...))
		sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
		if err != nil {
			return Credential{}, fmt.Errorf("attestation signature: %w", err)
		}
		att = attestationObject{Fmt: "packed", AttStmt: map[string]any{"alg": AlgES256, "sig": sig}, AuthData: authData}
	}
	raw, err := ctap2.Marshal(att)
	if err != nil {
		return Credential{}, fmt.Errorf("attestation object: %w", err)
	}
	if a.keys == nil {
		a.keys = map[string]*ecdsa.PrivateKey{}
	}
	id := b64.EncodeToString(credID)
	a.keys[id] = key
	return Credential{ID: id, Type: "public-key", Response: AttestationResponse{
		ClientDataJSON: b64.EncodeToString(cd), AttestationObject: b64.EncodeToString(raw)}}, nil
}

// Holds reports whether the authenticator holds the credential id.
func (a *SoftAuthenticator) Holds(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.keys[strings.TrimRight(id, "=")]
	return ok
}

type attestationObject struct {
	Fmt      string         `cbor:"fmt"`
	AttStmt  map[string]any `cbor:"attStmt"`
	AuthData []byte         `cbor:"authData"`
}

// ctap2 encodes as CTAP2 canonical CBOR (keys sorted by length, then bytes).
var ctap2 = func() cbor.EncMode {
	em, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		panic(err) // the options are the library's own
	}
	return em
}()

// strict decodes bounded CBOR and refuses duplicate map keys.
var strict = func() cbor.DecMode {
	dm, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxNestedLevels: 16,
		MaxArrayElements: 64, MaxMapPairs: 64}.DecMode()
	if err != nil {
		panic(err) // fixed, valid options
	}
	return dm
}()

// coseKey encodes an EC2 P-256 public key as a COSE_Key.
func coseKey(pub *ecdsa.PublicKey) ([]byte, error) {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return ctap2.Marshal(map[int]any{1: 2, 3: AlgES256, -1: 1, -2: raw[1:33], -3: raw[33:65]})
}

// Attestation is what ParseAttestationObject reads from an attestation
// object.
type Attestation struct {
	Format       string
	RPIDHash     [32]byte
	Flags        byte
	AAGUID       [16]byte
	CredentialID []byte
	// HasCertificates reports an x5c chain in the statement (an attested
	// authenticator; self-attestation has none).
	HasCertificates bool
}

// ParseAttestationObject checks the shape of a CBOR attestation object:
// text fmt, map attStmt, and authenticator data with attested credential
// data (AAGUID, credential id, a COSE key map). It verifies no signature.
func ParseAttestationObject(b []byte) (Attestation, error) {
	var ao struct {
		Fmt      *string                    `cbor:"fmt"`
		AttStmt  map[string]cbor.RawMessage `cbor:"attStmt"`
		AuthData []byte                     `cbor:"authData"`
	}
	rest, err := strict.UnmarshalFirst(b, &ao)
	switch {
	case err != nil:
		return Attestation{}, fmt.Errorf("attestationObject is not a CBOR map of fmt, attStmt and authData: %v", err)
	case len(rest) != 0:
		return Attestation{}, errors.New("attestationObject has bytes after its CBOR map")
	case ao.Fmt == nil || *ao.Fmt == "":
		return Attestation{}, errors.New("attestationObject has no fmt")
	case ao.AttStmt == nil:
		return Attestation{}, errors.New("attestationObject has no attStmt map")
	case len(ao.AuthData) < 37:
		return Attestation{}, errors.New("attestationObject's authData is shorter than 37 bytes")
	}
	out := Attestation{Format: *ao.Fmt, Flags: ao.AuthData[32]}
	copy(out.RPIDHash[:], ao.AuthData[:32])
	_, out.HasCertificates = ao.AttStmt["x5c"]
	if out.Flags&FlagAT == 0 {
		return out, errors.New("authData has no attested credential data (AT flag)")
	}
	rest = ao.AuthData[37:]
	if len(rest) < 18 {
		return out, errors.New("authData's attested credential data is truncated")
	}
	copy(out.AAGUID[:], rest[:16])
	n := int(binary.BigEndian.Uint16(rest[16:18]))
	rest = rest[18:]
	if n == 0 || n > 1023 || len(rest) < n {
		return out, errors.New("authData's credential id is empty, longer than 1023 bytes or truncated")
	}
	out.CredentialID = rest[:n]
	var key map[int]cbor.RawMessage
	if _, err := strict.UnmarshalFirst(rest[n:], &key); err != nil || key[1] == nil || key[3] == nil {
		return out, errors.New("authData's credential public key is not a COSE key (kty and alg)")
	}
	return out, nil
}

// FormatAAGUID writes an AAGUID as a GUID.
func FormatAAGUID(g [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
}
