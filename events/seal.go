package events

import (
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/nats-io/nkeys"
)

// Kinds of sealed secrets.
const (
	SecretTAP      = "temporaryAccessPass"
	SecretPassword = "password"
	// SecretQRCodePin is a QR code + PIN method's secrets, sealed together
	// as the JSON of QRCodePinSecret.
	SecretQRCodePin = "qrCodePin"
)

// QRCodePinSecret is the plain text of a sealed qrCodePin secret: the
// temporary PIN and the QR code's raw content (which holds its private key;
// a badge printer renders the QR code image from it).
type QRCodePinSecret struct {
	PIN        string `json:"pin"`
	RawContent []byte `json:"rawContent"` // standard base64 in JSON
}

// SecretKinds returns every kind of sealed secret.
func SecretKinds() []string {
	return []string{SecretTAP, SecretPassword, SecretQRCodePin, SecretPasskeyOptions}
}

// Sealed is a secret encrypted to its recipient: NaCl box (X25519,
// XSalsa20-Poly1305) as nkeys xkeys implement it, from the worker's curve
// key (Sender) to the recipient's (Recipient). Only the holder of the
// recipient's seed can open it, and opening also proves who sealed it.
type Sealed struct {
	Kind       string `json:"kind"`       // temporaryAccessPass | password | qrCodePin | passkeyCreationOptions
	Recipient  string `json:"recipient"`  // the recipient's curve public key, X...
	Sender     string `json:"sender"`     // the worker's curve public key, X...
	Ciphertext string `json:"ciphertext"` // standard base64 of the xkv1 box
}

// maxSecretLen bounds the secrets Seal accepts: Graph's TAPs are at most 48
// characters, passwords at most 256, and a QR code's raw content (a GUID, a
// key and the UPN) a few hundred bytes.
const maxSecretLen = 2048

// maxPasskeyOptionsLen bounds sealed passkey options: a user with many
// registered keys has a long excludeCredentials list.
const maxPasskeyOptionsLen = 16 << 10

// Seal encrypts secret to recipientPub with the sender's curve key pair.
// Seal keeps no reference to secret; the caller should clear it (clear(b))
// once sealed, so the plain text lives in memory only for that moment.
func Seal(kind string, secret []byte, recipientPub string, sender nkeys.KeyPair) (*Sealed, error) {
	if !slices.Contains(SecretKinds(), kind) {
		return nil, fmt.Errorf("seal secret: unknown kind %s", quote(kind))
	}
	limit := maxSecretLen
	if kind == SecretPasskeyOptions {
		limit = maxPasskeyOptionsLen
	}
	if len(secret) == 0 || len(secret) > limit {
		return nil, fmt.Errorf("seal secret: secret must be 1..%d bytes", limit)
	}
	if !reXKey.MatchString(recipientPub) || !nkeys.IsValidPublicCurveKey(recipientPub) {
		return nil, fmt.Errorf("seal secret: recipient is not an nkeys curve public key")
	}
	if sender == nil {
		return nil, fmt.Errorf("seal secret: nil sender key pair")
	}
	senderPub, err := sender.PublicKey()
	if err != nil || !nkeys.IsValidPublicCurveKey(senderPub) {
		return nil, fmt.Errorf("seal secret: sender is not a curve key pair")
	}
	box, err := sender.Seal(secret, recipientPub)
	if err != nil {
		return nil, fmt.Errorf("seal secret: %w", err)
	}
	return &Sealed{Kind: kind, Recipient: recipientPub, Sender: senderPub, Ciphertext: base64.StdEncoding.EncodeToString(box)}, nil
}

// Open decrypts a sealed secret with the recipient's curve key pair and
// checks that it was sealed by s.Sender. Callers that expect a particular
// worker should also compare s.Sender with its known public key.
func Open(s *Sealed, recipient nkeys.KeyPair) ([]byte, error) {
	if s == nil || recipient == nil {
		return nil, fmt.Errorf("open secret: nil argument")
	}
	pub, err := recipient.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("open secret: %w", err)
	}
	if pub != s.Recipient {
		return nil, fmt.Errorf("open secret: sealed to another recipient")
	}
	box, err := base64.StdEncoding.Strict().DecodeString(s.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("open secret: ciphertext is not base64: %w", err)
	}
	secret, err := recipient.Open(box, s.Sender)
	if err != nil {
		return nil, fmt.Errorf("open secret: %w", err)
	}
	return secret, nil
}
