package graphclienttest

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TAPPolicy is the tenant's Temporary Access Pass policy. Zero fields take
// the Entra defaults: lifetimes 60..480 minutes, 60 by default, 8 characters,
// multi-use allowed. The JSON names are those of Graph's
// temporaryAccessPassAuthenticationMethodConfiguration.
type TAPPolicy struct {
	// MinLifetime is the shortest lifetime a pass may ask for, in minutes. Defaults to 60.
	MinLifetime int `json:"minimumLifetimeInMinutes"`
	// MaxLifetime is the longest lifetime a pass may ask for, in minutes. Defaults to 480.
	MaxLifetime int `json:"maximumLifetimeInMinutes"`
	// DefaultLifetime applies when a request gives none, in minutes. Defaults to 60.
	DefaultLifetime int `json:"defaultLifetimeInMinutes"`
	// DefaultLength is the number of characters of a new pass (8..48). Defaults to 8.
	DefaultLength int `json:"defaultLength"`
	// UsableOnceOnly forces every new pass to be one-time use.
	UsableOnceOnly bool `json:"isUsableOnce"`
}

// Graph's own bounds for lifetimeInMinutes, whatever the policy says.
const (
	tapAPIMinLifetime = 10
	tapAPIMaxLifetime = 43200
)

func (p TAPPolicy) withDefaults() TAPPolicy {
	if p.MinLifetime == 0 {
		p.MinLifetime = 60
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = 480
	}
	if p.DefaultLifetime == 0 {
		p.DefaultLifetime = 60
	}
	if p.DefaultLength == 0 {
		p.DefaultLength = 8
	}
	return p
}

func (p TAPPolicy) validate() error {
	switch {
	case p.MinLifetime < tapAPIMinLifetime || p.MaxLifetime > tapAPIMaxLifetime:
		return fmt.Errorf("TAP policy lifetimes must lie within %d..%d minutes", tapAPIMinLifetime, tapAPIMaxLifetime)
	case p.MinLifetime > p.MaxLifetime:
		return fmt.Errorf("TAP policy minimum lifetime %d exceeds maximum %d", p.MinLifetime, p.MaxLifetime)
	case p.DefaultLifetime < p.MinLifetime || p.DefaultLifetime > p.MaxLifetime:
		return fmt.Errorf("TAP policy default lifetime %d is outside %d..%d", p.DefaultLifetime, p.MinLifetime, p.MaxLifetime)
	case p.DefaultLength < 8 || p.DefaultLength > 48:
		return fmt.Errorf("TAP policy default length %d is outside 8..48", p.DefaultLength)
	}
	return nil
}

// Options configures an Emulator. Zero values mean the documented defaults.
type Options struct {
	// Token is the only bearer token accepted on /v1.0. Required.
	Token string
	// TAPPolicy is the tenant TAP policy; zero fields take the defaults of TAPPolicy.
	TAPPolicy TAPPolicy
	// SMSSignInDisabled turns the tenant SMS sign-in policy off:
	// enableSmsSignIn then answers 400 badRequest.
	SMSSignInDisabled bool
	// AppOnly makes the caller an application: resetPassword, a
	// delegated-only API, answers 403 accessDenied.
	AppOnly bool
	// MFARequired makes every credential-management call (a write under
	// /users/{id}/authentication/) answer 403 with a claims challenge for
	// multifactor authentication (amr ngcmfa), which the emulator's token
	// never satisfies.
	MFARequired bool
	// Now is the clock; it must be safe for concurrent use. Defaults to time.Now.
	Now func() time.Time
	// Logger receives debug and info records; nil discards them.
	// Secrets (TAP values, passwords, the token) are never logged.
	Logger *slog.Logger
}

// Config is the part of Options that can change at run time
// (Emulator.SetConfig, PUT /_emulator/config).
type Config struct {
	// TAPPolicy is the tenant TAP policy.
	TAPPolicy TAPPolicy `json:"temporaryAccessPassPolicy"`
	// SMSSignInDisabled turns the tenant SMS sign-in policy off.
	SMSSignInDisabled bool `json:"smsSignInDisabled"`
	// AppOnly makes the caller an application (resetPassword answers 403).
	AppOnly bool `json:"appOnly"`
	// MFARequired makes credential-management calls answer 403 with a
	// claims challenge for multifactor authentication.
	MFARequired bool `json:"mfaRequired"`
}

func (c Config) withDefaults() Config {
	c.TAPPolicy = c.TAPPolicy.withDefaults()
	return c
}

// Emulator is an in-memory Microsoft Graph v1.0 serving the user
// authentication-methods API and the few user endpoints the worker needs,
// plus an admin API under /_emulator/. It is an http.Handler; all methods
// are safe for concurrent use.
type Emulator struct {
	token string
	now   func() time.Time
	log   *slog.Logger

	// mu guards everything below. It is never held while sleeping or
	// writing to a connection.
	mu        sync.Mutex
	cfg       Config
	users     map[string]*user  // by lower-case object id
	upns      map[string]string // lower-case UPN -> object id
	smsIndex  map[string]string // phone number with SMS sign-in on -> object id
	faults    Faults
	draws     faultDraws
	bucket    tokenBucket
	stats     counters
	reqlog    requestLog
	notBefore map[string]time.Time // client-request-id -> end of the Retry-After it was given
	throttle  time.Time            // end of the latest throttle window
	mail      mailStore            // mail.go
}

// New returns an Emulator with no users. It fails when Options.Token is
// empty or the TAP policy is inconsistent.
func New(opts Options) (*Emulator, error) {
	if opts.Token == "" {
		return nil, errors.New("new emulator: Options.Token is required")
	}
	cfg := Config{TAPPolicy: opts.TAPPolicy, SMSSignInDisabled: opts.SMSSignInDisabled, AppOnly: opts.AppOnly,
		MFARequired: opts.MFARequired}.withDefaults()
	if err := cfg.TAPPolicy.validate(); err != nil {
		return nil, fmt.Errorf("new emulator: %w", err)
	}
	e := &Emulator{
		token:     opts.Token,
		now:       opts.Now,
		log:       opts.Logger,
		cfg:       cfg,
		users:     map[string]*user{},
		upns:      map[string]string{},
		smsIndex:  map[string]string{},
		notBefore: map[string]time.Time{},
		stats:     newCounters(),
		reqlog:    newRequestLog(maxLogEntries),
	}
	e.faults, _ = Faults{}.normalize() // the zero Faults is valid; this fills the documented defaults
	e.draws = newFaultDraws(0)
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// ServeHTTP serves Graph under /v1.0/ and the admin API under /_emulator/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case p == "/v1.0" || strings.HasPrefix(p, "/v1.0/"):
		e.serveGraph(w, r, p[len("/v1.0"):])
	case p == "/beta" || strings.HasPrefix(p, "/beta/"):
		e.serveRoute(w, r, parseBetaRoute(p[len("/beta"):]))
	case p == "/_emulator" || strings.HasPrefix(p, "/_emulator/"):
		e.serveAdmin(w, r, strings.TrimPrefix(p, "/_emulator"))
	default:
		writeError(w, http.StatusNotFound, "NotFound",
			"The emulator serves Microsoft Graph under /v1.0/ (and GET/PATCH /beta/users/{id}/authentication/signInPreferences) and its admin API under /_emulator/.", newGUID(), "", nil)
	}
}

// Config returns the current run-time configuration.
func (e *Emulator) Config() Config {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg
}

// SetConfig replaces the run-time configuration. Zero TAP policy fields take
// their defaults; an inconsistent policy is refused.
func (e *Emulator) SetConfig(c Config) error {
	c = c.withDefaults()
	if err := c.TAPPolicy.validate(); err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	e.mu.Lock()
	e.cfg = c
	e.mu.Unlock()
	e.log.Info("emulator config changed", "tapPolicy", c.TAPPolicy, "smsSignInDisabled", c.SMSSignInDisabled, "appOnly", c.AppOnly,
		"mfaRequired", c.MFARequired)
	return nil
}

// PutUser creates or replaces a user, with the same validation as
// PUT /_emulator/users/{id}.
func (e *Emulator) PutUser(u User) error {
	_, err := e.putUser(u)
	return err
}

// putUser reports whether the user was created (rather than replaced).
func (e *Emulator) putUser(in User) (created bool, err error) {
	now := e.now()
	nu, err := buildUser(in, now)
	if err != nil {
		return false, fmt.Errorf("put user: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if other, ok := e.upns[strings.ToLower(nu.upn)]; ok && other != nu.id {
		return false, fmt.Errorf("put user: userPrincipalName %q already belongs to user %s", nu.upn, other)
	}
	for _, m := range nu.methods {
		if m.sms == smsOn {
			if other, ok := e.smsIndex[m.number]; ok && other != nu.id {
				return false, fmt.Errorf("put user: phone number %q is already used for SMS sign-in by user %s", m.number, other)
			}
		}
	}
	old, existed := e.users[nu.id]
	if existed {
		e.dropUserLocked(old)
	}
	e.users[nu.id] = nu
	e.upns[strings.ToLower(nu.upn)] = nu.id
	for _, m := range nu.methods {
		if m.sms == smsOn {
			e.smsIndex[m.number] = nu.id
		}
	}
	e.log.Debug("emulator user stored", "id", nu.id, "methods", len(nu.methods), "replaced", existed)
	return !existed, nil
}

// dropUserLocked removes a user and its index entries.
func (e *Emulator) dropUserLocked(u *user) {
	delete(e.users, u.id)
	delete(e.upns, strings.ToLower(u.upn))
	for _, m := range u.methods {
		if m.sms == smsOn && e.smsIndex[m.number] == u.id {
			delete(e.smsIndex, m.number)
		}
	}
}

// User returns a user in the admin shape (never a TAP value or a password).
func (e *Emulator) User(id string) (User, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.users[strings.ToLower(id)]
	if !ok {
		return User{}, false
	}
	return e.adminUserLocked(u, e.now()), true
}

// Users returns every user in the admin shape, ordered by object id.
func (e *Emulator) Users() []User {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	out := make([]User, 0, len(e.users))
	for _, id := range e.sortedUserIDsLocked() {
		out = append(out, e.adminUserLocked(e.users[id], now))
	}
	return out
}

// DeleteUser removes one user; it reports whether the user existed.
func (e *Emulator) DeleteUser(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, ok := e.users[strings.ToLower(id)]
	if ok {
		e.dropUserLocked(u)
	}
	return ok
}

// DeleteUsers removes every user.
func (e *Emulator) DeleteUsers() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.users)
	clear(e.upns)
	clear(e.smsIndex)
}

// Faults returns the current fault injection settings.
func (e *Emulator) Faults() Faults {
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.faults
	f.ErrorStatuses = append([]int(nil), f.ErrorStatuses...)
	return f
}

// SetFaults replaces the fault injection settings (the zero Faults turns
// every fault off), refills the throttle budget and restarts the random
// draws from f.Seed.
func (e *Emulator) SetFaults(f Faults) error {
	f, err := f.normalize()
	if err != nil {
		return fmt.Errorf("set faults: %w", err)
	}
	now := e.now()
	e.mu.Lock()
	e.faults = f
	e.draws = newFaultDraws(f.Seed)
	e.bucket = newTokenBucket(f.ThrottleRPS, now)
	e.mu.Unlock()
	e.log.Info("emulator faults changed", "faults", f)
	return nil
}

// Stats returns a copy of the request counters.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats.snapshot()
}

// ResetStats clears the counters and the request log.
func (e *Emulator) ResetStats() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats = newCounters()
	e.reqlog.reset()
	clear(e.notBefore)
	e.throttle = time.Time{}
}

// Requests returns the request log, oldest first (at most the last 100,000
// Graph requests).
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reqlog.entries(0, "", 0)
}
