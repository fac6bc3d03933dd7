package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/internal/passkey"
)

// The passkey family: registration on behalf of a user in two events
// (docs/events.md, "Passkey requests"). passkeyOptions gets creation
// options from Graph and seals them to the enrolment station;
// registerPasskey posts the credential the station made.

// passkeyOptions asks Graph for creation options (a new challenge) and
// seals them to op.SealTo. Nothing is written to the user: a retry simply
// asks again, and the earlier challenge expires unused.
func (r *run) passkeyOptions(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if r.dry {
		return []events.OpResult{result(op, graphclient.KindFIDO2, "", events.OutcomeUnchanged, "dry run: no challenge requested")}, nil
	}
	var o graphclient.PasskeyCreationOptions
	err := r.x.call(ctx, func(ctx context.Context) error {
		var err error
		o, err = r.x.graph.PasskeyCreationOptions(ctx, r.user.ID)
		return err
	})
	if err != nil {
		return nil, onMethod(graphclient.KindFIDO2, "", fmt.Errorf("get passkey creation options: %w", err))
	}
	plain, err := json.Marshal(events.PasskeyOptions{UserID: r.user.ID, UserPrincipalName: r.user.UserPrincipalName,
		ChallengeExpires: o.ChallengeExpires.UTC(), PublicKey: webauthnOptions(o)})
	var sealed *events.Sealed
	if err == nil {
		sealed, err = events.Seal(events.SecretPasskeyOptions, plain, op.SealTo, r.x.sealKey)
	}
	if err != nil {
		return nil, onMethod(graphclient.KindFIDO2, "", fmt.Errorf("%w: passkey options: %v", errSeal, err))
	}
	keys := "keys"
	if len(o.ExcludeCredentials) == 1 {
		keys = "key"
	}
	// Unchanged: a challenge is no change to the user's methods (and so
	// no notification); the registration that follows is.
	res := result(op, graphclient.KindFIDO2, "", events.OutcomeUnchanged, fmt.Sprintf("challenge valid until %s, %d %s excluded",
		o.ChallengeExpires.UTC().Format(time.RFC3339), len(o.ExcludeCredentials), keys))
	res.Secret = sealed
	return []events.OpResult{res}, nil
}

// webauthnOptions writes Graph's options in WebAuthn's JSON form.
func webauthnOptions(o graphclient.PasskeyCreationOptions) passkey.CreationOptions {
	out := passkey.CreationOptions{
		Challenge:          o.Challenge,
		RP:                 passkey.RPEntity{ID: o.RPID, Name: o.RPName},
		User:               passkey.UserEntity{ID: o.UserID, Name: o.UserName, DisplayName: o.UserDisplayName},
		Timeout:            o.TimeoutMs,
		ExcludeCredentials: []passkey.CredentialDescriptor{},
		Attestation:        o.Attestation,
	}
	for _, a := range o.Algorithms {
		out.PubKeyCredParams = append(out.PubKeyCredParams, passkey.CredParam{Type: "public-key", Alg: a})
	}
	for _, d := range o.ExcludeCredentials {
		out.ExcludeCredentials = append(out.ExcludeCredentials, passkey.CredentialDescriptor{Type: "public-key", ID: d.ID, Transports: d.Transports})
	}
	if o.AuthenticatorAttachment != "" || o.RequireResidentKey || o.UserVerification != "" {
		sel := &passkey.AuthenticatorSelection{AuthenticatorAttachment: o.AuthenticatorAttachment,
			RequireResidentKey: o.RequireResidentKey, UserVerification: o.UserVerification}
		if o.RequireResidentKey {
			sel.ResidentKey = "required"
		}
		out.AuthenticatorSelection = sel
	}
	return out
}

// registerPasskey posts the station's credential. Graph's challenge is
// single use, so a second POST after a lost reply or a crash would fail:
// the step records which passkeys existed before it posts (an intent), and
// a retry that finds one registered since takes it as its own.
func (r *run) registerPasskey(ctx context.Context, step int, op events.Op) ([]events.OpResult, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	spec := op.Passkey
	if r.dry {
		return []events.OpResult{result(op, graphclient.KindFIDO2, "", events.OutcomeCreated, "dry run: nothing registered")}, nil
	}
	if prior, ok := r.ck.priorIntent(step); ok {
		if m, found := newPasskey(r.methods, prior); found {
			out := []events.OpResult{result(op, graphclient.KindFIDO2, m.ID, events.OutcomeCreated,
				passkeyDetail(m)+"; registered by an interrupted attempt")}
			if err := r.ck.done(ctx, step, out); err != nil {
				return nil, err
			}
			return out, nil
		}
	}
	in := intent{At: r.x.now()}
	for _, m := range r.methods {
		if m.Kind == graphclient.KindFIDO2 {
			in.Before = append(in.Before, m.ID)
		}
	}
	if err := r.ck.intent(ctx, step, in, r.done); err != nil {
		return nil, err
	}
	reg := graphclient.PasskeyRegistration{DisplayName: spec.DisplayName, Credential: graphclient.PasskeyCredential{
		ID: spec.CredentialID, ClientDataJSON: spec.ClientDataJSON, AttestationObject: spec.AttestationObject}}
	m, err := r.create(ctx, func(m graphclient.Method) bool { return isNewPasskey(m, in) }, func(ctx context.Context) (graphclient.Method, error) {
		return r.x.graph.RegisterPasskey(ctx, r.user.ID, reg)
	})
	if err != nil {
		return nil, onMethod(graphclient.KindFIDO2, "", fmt.Errorf("register passkey: %w", err))
	}
	r.replace(m)
	if err := r.wrote(); err != nil {
		return nil, err
	}
	out := []events.OpResult{result(op, graphclient.KindFIDO2, m.ID, events.OutcomeCreated, passkeyDetail(m))}
	if err := r.ck.done(ctx, step, out); err != nil {
		return nil, err
	}
	return out, nil
}

// isNewPasskey reports a passkey that was not there when in was recorded
// and was created since (a minute of slack for clocks).
func isNewPasskey(m graphclient.Method, in intent) bool {
	return m.Kind == graphclient.KindFIDO2 && !slices.Contains(in.Before, m.ID) &&
		(m.Created.IsZero() || !m.Created.Before(in.At.Add(-time.Minute)))
}

func newPasskey(ms []graphclient.Method, in intent) (graphclient.Method, bool) {
	for _, m := range ms {
		if isNewPasskey(m, in) {
			return m, true
		}
	}
	return graphclient.Method{}, false
}

// passkeyDetail names a registered passkey for the result.
func passkeyDetail(m graphclient.Method) string {
	var parts []string
	for _, s := range []string{m.DisplayName, m.PasskeyType, m.Attestation} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "passkey registered"
	}
	return truncDetail(strings.Join(parts, ", "))
}
