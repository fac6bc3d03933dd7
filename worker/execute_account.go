package worker

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// The account family: password reset (a secret returned once), sign-in
// sessions, account enabled.

// resetPassword resets the password and seals the new one at once. A retry
// after a crash resets again: the earlier password was never delivered.
func (r *run) resetPassword(ctx context.Context, step int, op events.Op) ([]events.OpResult, error) {
	if r.dry {
		return []events.OpResult{result(op, graphclient.KindPassword, graphclient.PasswordMethodID, events.OutcomeUpdated, "dry run: nothing reset")}, nil
	}
	if err := r.ck.intent(ctx, step, intent{At: r.x.now()}, r.done); err != nil {
		return nil, err
	}
	var secret string
	err := r.write(ctx, func(ctx context.Context) error {
		if r.x.pwMode == PasswordResetAPI {
			var err error
			secret, err = r.x.graph.ResetPassword(ctx, r.user.ID, "")
			return err
		}
		pw, err := generatePassword(20)
		if err != nil {
			return err
		}
		if err := r.x.graph.SetPassword(ctx, r.user.ID, pw, op.ForceChange); err != nil {
			return err
		}
		secret = pw
		return nil
	})
	if err != nil {
		return nil, onMethod(graphclient.KindPassword, graphclient.PasswordMethodID, fmt.Errorf("reset password: %w", err))
	}
	sealed, err := events.Seal(events.SecretPassword, []byte(secret), op.SealTo, r.x.sealKey)
	secret = ""
	if err != nil {
		return nil, onMethod(graphclient.KindPassword, graphclient.PasswordMethodID, fmt.Errorf("%w: password: %v", errSeal, err))
	}
	res := result(op, graphclient.KindPassword, graphclient.PasswordMethodID, events.OutcomeUpdated, "must change at next sign-in")
	res.Secret = sealed
	if err := r.wrote(); err != nil {
		return nil, err
	}
	if err := r.ck.done(ctx, step, []events.OpResult{res}); err != nil {
		return nil, err
	}
	return []events.OpResult{res}, nil
}

func (r *run) revokeSessions(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if !r.dry {
		if err := r.write(ctx, func(ctx context.Context) error { return r.x.graph.RevokeSessions(ctx, r.user.ID) }); err != nil {
			return nil, fmt.Errorf("revoke sessions: %w", err)
		}
		if err := r.wrote(); err != nil {
			return nil, err
		}
	}
	return []events.OpResult{result(op, "", "", events.OutcomeUpdated, "sign-in sessions revoked")}, nil
}

func (r *run) setAccountEnabled(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	detail := map[bool]string{true: "account enabled", false: "account disabled"}[op.Enabled]
	if r.user.AccountEnabled == op.Enabled {
		return []events.OpResult{result(op, "", "", events.OutcomeUnchanged, detail)}, nil
	}
	if !r.dry {
		if err := r.write(ctx, func(ctx context.Context) error {
			return r.x.graph.SetAccountEnabled(ctx, r.user.ID, op.Enabled)
		}); err != nil {
			return nil, fmt.Errorf("set account enabled: %w", err)
		}
		r.user.AccountEnabled = op.Enabled
		if err := r.wrote(); err != nil {
			return nil, err
		}
	}
	return []events.OpResult{result(op, "", "", events.OutcomeUpdated, detail)}, nil
}

// generatePassword returns a random password with upper, lower, digit and
// symbol characters, which Entra's complexity rules accept.
func generatePassword(n int) (string, error) {
	sets := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!@#$%^&*-_=+?"}
	all := strings.Join(sets, "")
	b := make([]byte, n)
	for i := range b {
		set := all
		if i < len(sets) {
			set = sets[i]
		}
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		b[i] = set[k.Int64()]
	}
	// Shuffle so the class order is not fixed.
	for i := len(b) - 1; i > 0; i-- {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("generate password: %w", err)
		}
		j := k.Int64()
		b[i], b[j] = b[j], b[i]
	}
	return string(b), nil
}
