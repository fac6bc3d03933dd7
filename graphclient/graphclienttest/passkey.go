package graphclienttest

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/authflow/authflow/internal/passkey"
)

// Passkeys (FIDO2) registered on behalf of a user, as Graph v1.0 does it:
// GET creationOptions issues a challenge, POST fido2Methods registers the
// credential an authenticator made from it. The emulator checks shapes and
// lifetimes, never the cryptography (docs/emulator.md).

const (
	// passkeyRPID is the relying party of Entra ID passkeys.
	passkeyRPID = "login.microsoft.com"
	// passkeyChallengeLifetime is fixed in v1.0; beta's
	// challengeTimeoutInMinutes has no v1.0 counterpart.
	passkeyChallengeLifetime = 5 * time.Minute
	msgGuestPasskey          = "Passkeys cannot be registered for an external guest user."
	msgNoChallengeTimeout    = "challengeTimeoutInMinutes is not supported in v1.0: the challenge timeout is fixed at 5 minutes (use the beta API for a custom timeout)."
)

// credentialID is the credential id of a passkey, base64url: the one it
// was registered with, or for a seeded key one derived from its method id.
func (m *method) credentialID() string {
	if m.credID != "" {
		return m.credID
	}
	return base64.RawURLEncoding.EncodeToString([]byte(m.id))
}

// creationOptions issues a registration challenge valid 5 minutes, with
// the user's registered passkeys in excludeCredentials.
func (e *Emulator) creationOptions(c *call, u *user) reply {
	if seg := c.rt.segment; len(seg) > len("creationOptions()") && strings.Contains(strings.ToLower(seg), "challengetimeoutinminutes") ||
		c.q().Has("challengeTimeoutInMinutes") {
		return errReply(http.StatusBadRequest, "badRequest", msgNoChallengeTimeout)
	}
	if seg := c.rt.segment; len(seg) > len("creationOptions()") {
		return errReplyf(http.StatusBadRequest, "badRequest", "creationOptions takes no parameters in v1.0 (got '%s').", seg)
	}
	if u.isGuest() {
		return errReply(http.StatusBadRequest, "badRequest", msgGuestPasskey)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand, Go 1.24+)
	ch := base64.RawURLEncoding.EncodeToString(raw[:])
	expires := c.now.Add(passkeyChallengeLifetime)
	u.challenges = slices.DeleteFunc(u.challenges, func(x challenge) bool { return !c.now.Before(x.expires) })
	if len(u.challenges) >= maxChallengesPerUser {
		u.challenges = slices.Delete(u.challenges, 0, 1)
	}
	u.challenges = append(u.challenges, challenge{value: ch, expires: expires})
	type param struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	}
	type descriptor struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	}
	exclude := []descriptor{}
	for _, m := range u.methods {
		if m.kind == kindFido2 {
			exclude = append(exclude, descriptor{"public-key", m.credentialID()})
		}
	}
	display := cmp.Or(u.displayName, u.upn)
	body, err := json.Marshal(map[string]any{
		"@odata.context":           c.base + "/v1.0/$metadata#microsoft.graph.webauthnCredentialCreationOptions",
		"challengeTimeoutDateTime": string(appendTime(nil, expires)),
		"publicKey": map[string]any{
			"challenge":          ch,
			"timeout":            int(passkeyChallengeLifetime / time.Millisecond),
			"attestation":        "direct",
			"rp":                 map[string]string{"id": passkeyRPID, "name": "Microsoft"},
			"user":               map[string]string{"id": base64.RawURLEncoding.EncodeToString([]byte(u.id)), "name": u.upn, "displayName": display},
			"pubKeyCredParams":   []param{{"public-key", passkey.AlgES256}, {"public-key", -257}},
			"excludeCredentials": exclude,
			"authenticatorSelection": map[string]any{
				"authenticatorAttachment": "cross-platform", "requireResidentKey": true,
				"residentKey": "required", "userVerification": "required",
			},
			"extensions": map[string]any{},
		},
	})
	if err != nil {
		return errReply(http.StatusInternalServerError, "generalException", "could not encode creation options")
	}
	return jsonReply(http.StatusOK, body)
}

// createFido2 registers a passkey from a creationOptions challenge
// (docs/emulator.md lists the checks). displayName is optional.
func createFido2(c *call, u *user) (*method, reply) {
	var b struct {
		ODataType           *string `json:"@odata.type"`
		DisplayName         *string `json:"displayName"`
		PublicKeyCredential *struct {
			ID       *string `json:"id"`
			Response *struct {
				ClientDataJSON    *string `json:"clientDataJSON"`
				AttestationObject *string `json:"attestationObject"`
			} `json:"response"`
		} `json:"publicKeyCredential"`
	}
	if err := decodeJSON(c.body, &b); err != nil {
		return nil, badJSON(err)
	}
	if rep, ok := checkODataType(b.ODataType, kindFido2); !ok {
		return nil, rep
	}
	bad := func(msg string) (*method, reply) { return nil, errReply(http.StatusBadRequest, "badRequest", msg) }
	if u.isGuest() {
		return bad(msgGuestPasskey)
	}
	if b.DisplayName != nil && (*b.DisplayName == "" || len(*b.DisplayName) > 256) {
		return bad("displayName, when given, must be 1 to 256 characters.")
	}
	pk := b.PublicKeyCredential
	if pk == nil || pk.ID == nil || *pk.ID == "" || pk.Response == nil || pk.Response.ClientDataJSON == nil || pk.Response.AttestationObject == nil {
		return bad("publicKeyCredential with id, response.clientDataJSON and response.attestationObject is required.")
	}
	credID, err := passkey.DecodeB64URL(*pk.ID)
	if err != nil || len(credID) == 0 || len(credID) > 1023 {
		return bad("publicKeyCredential.id must be base64url of 1 to 1023 bytes.")
	}
	raw, err := passkey.DecodeB64URL(*pk.Response.ClientDataJSON)
	if err != nil {
		return bad("publicKeyCredential.response.clientDataJSON must be base64url.")
	}
	var cd passkey.ClientData
	if json.Unmarshal(raw, &cd) != nil || cd.Type != "webauthn.create" {
		return bad("clientDataJSON must be JSON with type 'webauthn.create'.")
	}
	if !strings.HasPrefix(cd.Origin, "https://") {
		return bad("clientDataJSON must name an https origin.")
	}
	i := slices.IndexFunc(u.challenges, func(ch challenge) bool { return ch.value == strings.TrimRight(cd.Challenge, "=") })
	if i < 0 || !c.now.Before(u.challenges[i].expires) {
		return bad("The challenge is unknown or has expired; call creationOptions again.")
	}
	attRaw, err := passkey.DecodeB64URL(*pk.Response.AttestationObject)
	if err != nil || len(attRaw) == 0 {
		return bad("publicKeyCredential.response.attestationObject must be non-empty base64url.")
	}
	att, err := passkey.ParseAttestationObject(attRaw)
	switch {
	case err != nil:
		return bad("Invalid attestationObject: " + err.Error() + ".")
	case att.RPIDHash != sha256.Sum256([]byte(passkeyRPID)):
		return bad("The attestation is for another relying party than " + passkeyRPID + ".")
	case att.Flags&passkey.FlagUP == 0 || att.Flags&passkey.FlagUV == 0:
		return bad("The attestation lacks user presence or user verification, which the creation options require.")
	case string(att.CredentialID) != string(credID):
		return bad("publicKeyCredential.id does not match the credential id in the attestation.")
	}
	id := base64.RawURLEncoding.EncodeToString(credID)
	for _, m := range u.methods {
		if m.kind == kindFido2 && m.credentialID() == id {
			return bad("This passkey is already registered for the user (it is in excludeCredentials).")
		}
	}
	u.challenges = slices.Delete(u.challenges, i, i+1)
	level, kindOf := "notAttested", "deviceBound"
	if att.HasCertificates {
		level = "attested"
	}
	if att.Flags&passkey.FlagBE != 0 {
		kindOf = "synced"
	}
	props := map[string]string{"aaGuid": passkey.FormatAAGUID(att.AAGUID), "attestationLevel": level, "passkeyType": kindOf}
	if b.DisplayName != nil {
		props["displayName"] = *b.DisplayName
	}
	return &method{kind: kindFido2, id: newGUID(), credID: id, certs: []string{}, props: props}, reply{}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
