package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// The default-method family (Config.BetaDefaultMethod, --graph-beta
// default-method). Graph v1.0 can neither read nor change a user's default
// MFA method, and refuses to delete it while other methods remain; Graph
// beta's signInPreferences does both. With the option on, the steps that
// depend on the default read it first: inventory reports it, device lost
// moves it to a remaining method before deleting the lost one, and MFA
// reset deletes it last. With the option off these steps are v1.0's.

// signInPrefs is the beta API; *graphclient.Client implements it.
type signInPrefs interface {
	SignInPreferences(ctx context.Context, userID string) (graphclient.SignInPreferences, error)
	SetPreferredMethod(ctx context.Context, userID string, p graphclient.PreferredMethod) error
}

// betaPrefs is the executor's beta API: nil unless the option is on.
func betaPrefs(cfg Config) signInPrefs {
	if !cfg.BetaDefaultMethod {
		return nil
	}
	p, _ := cfg.Graph.(signInPrefs) // Validate checked it
	return p
}

// markDefault reads the user's default method (once per run) and marks it
// in the run's view of the methods. A beta call that fails for good (the
// API changed, a permission is missing) leaves the default unknown and the
// steps behave as with v1.0; a transient failure is an error like any.
func (r *run) markDefault(ctx context.Context) error {
	if r.x.prefs == nil || r.defaults != nil || r.defaultsErr != nil {
		return nil
	}
	if err := r.load(ctx); err != nil {
		return err
	}
	var p graphclient.SignInPreferences
	err := r.x.call(ctx, func(ctx context.Context) error {
		var err error
		p, err = r.x.prefs.SignInPreferences(ctx, r.user.ID)
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, graphclient.ErrTransient), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, graphclient.ErrUserNotFound):
		return fmt.Errorf("get sign-in preferences: %w", err)
	default:
		r.defaultsErr = err
		return nil
	}
	r.defaults = &p
	r.setDefault(p.Preferred)
	return nil
}

// setDefault marks the method p designates as the default.
func (r *run) setDefault(p graphclient.PreferredMethod) {
	for i := range r.methods {
		r.methods[i].Default = false
	}
	if i := graphclient.DefaultIn(p, r.methods); i >= 0 {
		r.methods[i].Default = true
	}
}

// defaultNote describes the default for an inventory's detail.
func (r *run) defaultNote() string {
	switch {
	case r.defaultsErr != nil:
		return "; default method unknown: " + errMessage(r.defaultsErr)
	case r.defaults == nil:
		return ""
	case r.defaults.Preferred == "":
		return "; no default method"
	}
	note := "; default method " + string(r.defaults.Preferred)
	if r.defaults.SystemPreferred {
		note += " (system-preferred MFA on: Entra picks the method to prompt for)"
	}
	return note
}

// readMethodsDefault is readMethods with the default marked.
func (r *run) readMethodsDefault(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.markDefault(ctx); err != nil {
		return nil, err
	}
	res, err := r.readMethods(ctx, op)
	if err != nil || len(res) != 1 {
		return res, err
	}
	res[0].Detail = truncDetail(res[0].Detail + r.defaultNote())
	for j := range res[0].Methods {
		s := &res[0].Methods[j]
		m, ok := r.find(func(m graphclient.Method) bool { return m.ID == s.ID && string(m.Kind) == s.Kind })
		if !ok {
			continue
		}
		s.Default = m.Default
		switch {
		case m.Kind == graphclient.KindQRCodePin && s.Detail == "" && !m.QRCodeExpiry.IsZero():
			s.Detail = "standard QR code valid until " + m.QRCodeExpiry.Format(time.DateOnly)
		case m.Kind == graphclient.KindFIDO2 && s.Detail == "" && m.PasskeyType != "":
			s.Detail = m.PasskeyType
		}
	}
	return res, nil
}

// removeAllMethodsDefault is removeAllMethods knowing the default, which it
// then deletes last.
func (r *run) removeAllMethodsDefault(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.markDefault(ctx); err != nil {
		return nil, err
	}
	return r.removeAllMethods(ctx, op)
}

// removeDeviceMethodsDefault moves the default off the lost device's
// methods, then removes them.
func (r *run) removeDeviceMethodsDefault(ctx context.Context, op events.Op) ([]events.OpResult, error) {
	if err := r.markDefault(ctx); err != nil {
		return nil, err
	}
	doomed := func(m graphclient.Method) bool {
		return slices.Contains(op.Kinds, string(m.Kind)) && matchesDevice(m, op.Match)
	}
	moved, err := r.moveDefaultOff(ctx, op, doomed)
	if err != nil {
		return moved, err
	}
	res, err := r.removeDeviceMethods(ctx, op)
	return append(moved, res...), err
}

// nameless reports an MFA method that no beta value names: it may be the
// default when beta reads unknownFutureValue.
func nameless(m graphclient.Method) bool {
	return m.Kind == graphclient.KindFIDO2 || m.Kind == graphclient.KindWindowsHelloForBusiness
}

// moveDefaultOff makes a remaining method the default when the default is
// one of the methods about to be deleted (doomed): the strongest remaining
// one that beta can name (Authenticator, then an OATH token, then the
// phones). It reports what it did as a result of op; nothing when the
// default is not doomed or unknown.
func (r *run) moveDefaultOff(ctx context.Context, op events.Op, doomed func(graphclient.Method) bool) ([]events.OpResult, error) {
	if r.defaults == nil {
		return nil, nil
	}
	hit := false
	for _, m := range r.methods {
		if !doomed(m) {
			continue
		}
		hit = hit || m.Default || r.defaults.Preferred == graphclient.PreferredUnknown && nameless(m)
	}
	if !hit {
		return nil, nil
	}
	from := string(r.defaults.Preferred)
	rest := slices.DeleteFunc(slices.Clone(r.methods), doomed)
	var (
		to     graphclient.PreferredMethod
		target graphclient.Method
	)
	for _, p := range graphclient.PreferredMethods() {
		if i := graphclient.DefaultIn(p, rest); i >= 0 {
			to, target = p, rest[i]
			break
		}
	}
	if to == "" {
		return []events.OpResult{result(op, "", "", events.OutcomeSkipped,
			"default method "+from+" not moved: no remaining phone, Authenticator or OATH token can be the default")}, nil
	}
	detail := fmt.Sprintf("default method moved from %s to %s", from, to)
	if r.dry {
		return []events.OpResult{result(op, target.Kind, target.ID, events.OutcomeUpdated, "dry run: "+detail)}, nil
	}
	err := r.write(ctx, func(ctx context.Context) error { return r.x.prefs.SetPreferredMethod(ctx, r.user.ID, to) })
	if err != nil {
		return nil, onMethod(target.Kind, target.ID, fmt.Errorf("set preferred method: %w", err))
	}
	r.defaults.Preferred = to
	r.setDefault(to)
	if err := r.wrote(); err != nil {
		return nil, err
	}
	return []events.OpResult{result(op, target.Kind, target.ID, events.OutcomeUpdated, detail)}, nil
}

// truncDetail keeps a detail within the result's rules: at most 256
// characters, none of them control, line-separator or bidi characters
// (display names come from Graph as users typed them).
func truncDetail(s string) string {
	const max = 256
	s = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) || c == '\u2028' || c == '\u2029' || c == '\ufeff' {
			return -1
		}
		return c
	}, s)
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
