package events

import (
	"encoding/base64"
	"fmt"

	"github.com/nats-io/nkeys"
)

// Message headers that carry an event's signature.
const (
	// HeaderSignature is the ed25519 signature over the exact message
	// bytes, base64url without padding (86 characters).
	HeaderSignature = "Authflow-Signature"
	// HeaderSigner is the signer's nkeys public key (U..., A..., ...).
	HeaderSigner = "Authflow-Signer"
)

const (
	sigLen        = 64 // ed25519.SignatureSize
	sigEncodedLen = 86 // base64url, no padding
	publicKeyLen  = 56 // encoded nkeys public key
)

// Sign signs the exact bytes of a message with an ed25519 nkeys key pair
// (a user, account, operator, server or cluster key; not a curve key) and
// returns the values of HeaderSignature and HeaderSigner. Sign the bytes
// you publish, after all formatting.
func Sign(raw []byte, kp nkeys.KeyPair) (sig, signer string, err error) {
	if kp == nil {
		return "", "", fmt.Errorf("sign event: nil key pair")
	}
	signer, err = kp.PublicKey()
	if err != nil {
		return "", "", fmt.Errorf("sign event: %w", err)
	}
	if signer == "" || signer[0] == 'X' {
		return "", "", fmt.Errorf("sign event: a curve (X) key cannot sign; use an ed25519 nkey")
	}
	b, err := kp.Sign(raw)
	if err != nil {
		return "", "", fmt.Errorf("sign event: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), signer, nil
}

// Verify checks that sig (HeaderSignature) is signer's (HeaderSigner)
// ed25519 signature over raw. Every failure is a *Error with code
// bad_signature. It does not say whether the signer is trusted: the policy
// pins the keys each source may sign with.
func Verify(raw []byte, sig, signer string) error {
	if len(signer) != publicKeyLen || signer[0] == 'X' || !nkeys.IsValidPublicKey(signer) {
		return newError(CodeBadSignature, "", "%s is not an nkeys ed25519 public key", HeaderSigner)
	}
	if len(sig) != sigEncodedLen {
		return newError(CodeBadSignature, "", "%s must be %d base64url characters", HeaderSignature, sigEncodedLen)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || len(b) != sigLen {
		return newError(CodeBadSignature, "", "%s is not base64url without padding", HeaderSignature)
	}
	pub, err := nkeys.FromPublicKey(signer)
	if err != nil {
		return newError(CodeBadSignature, "", "%s is not an nkeys ed25519 public key", HeaderSigner)
	}
	if err := pub.Verify(raw, b); err != nil {
		return newError(CodeBadSignature, "", "the signature does not match the message and signer")
	}
	return nil
}
