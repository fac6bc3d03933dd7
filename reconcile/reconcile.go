package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
)

// Graph is what reconciliation reads from Microsoft Graph.
// *graphclient.Client implements it.
type Graph interface {
	UsersPage(ctx context.Context, next string) ([]graphclient.User, string, error)
	RegistrationDetailsPage(ctx context.Context, next string) ([]graphclient.RegistrationDetails, string, error)
	Methods(ctx context.Context, userID string) ([]graphclient.Method, error)
}

// Drift kinds.
const (
	KindLeaverEnabled = "leaver_account_enabled" // a leaver whose account can sign in
	KindLeaverMethods = "leaver_has_methods"     // a leaver with methods besides the password
	KindPhoneMissing  = "phone_missing"          // the desired phone of a type is not registered
	KindPhoneDiffers  = "phone_different"        // a phone of that type has another number
	KindEmailMissing  = "email_missing"          // no email method
	KindEmailDiffers  = "email_different"        // the email method has another address
)

// Finding is one difference between the desired and the current state.
// Current and Desired are masked: a phone number keeps its country code
// and last digits, an email address its first letter and domain.
type Finding struct {
	Line int    `json:"line"`
	User string `json:"user"` // as written in the file
	Kind string `json:"kind"`
	// Field is the phone type or email for the phone and email kinds.
	Field   Field  `json:"field,omitempty"`
	Current string `json:"current"`
	Desired string `json:"desired"`
	// Correction is the event type that corrects it.
	Correction string `json:"correction"`
}

// UserError is a row whose user could not be checked.
type UserError struct {
	Line  int    `json:"line"`
	User  string `json:"user"`
	Error string `json:"error"`
}

// Report is the outcome of a reconciliation run.
type Report struct {
	Rows    int `json:"rows"`    // good rows read
	Checked int `json:"checked"` // rows compared with Graph
	// Unknown are rows whose user is not in the directory.
	Unknown []UserError `json:"unknownUsers"`
	// Errors are rows whose user could not be read (after retries).
	Errors []UserError `json:"errors"`
	// Drift is every finding, by line.
	Drift []Finding `json:"drift"`
	// Corrections are the events that correct the drift, by line, a user's
	// in the order they must apply.
	Corrections []Correction `json:"-"`
	// Requests counts the Graph requests made, retries included.
	Requests int `json:"graphRequests"`
	// ReportUsed says whether the registration report answered; without it
	// every user's methods were read one by one.
	ReportUsed bool `json:"registrationReport"`
}

// Config configures a Reconciler.
type Config struct {
	// Graph is required.
	Graph Graph
	// Rate bounds Graph requests per second, retries and pages included; 0
	// means no bound of its own (the Graph client's throttle still
	// applies, and honours Retry-After).
	Rate float64
	// Concurrency is how many users are read at once (default 4).
	Concurrency int
	// Retry is the retry of each Graph request (each page, each user):
	// transient errors and throttling, with Retry-After as the floor of
	// the wait. Defaults to graphclient.DefaultRetryPolicy.
	Retry *graphclient.RetryPolicy
	// Progress, if set, is called with the users done and the total, from
	// one goroutine at a time, at most every 100 ms and at the end.
	Progress func(done, total int)
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Reconciler compares desired rows with Graph. It is safe for concurrent use.
type Reconciler struct {
	cfg     Config
	limiter *rate.Limiter
	retry   graphclient.RetryPolicy
	log     *slog.Logger
}

// New returns a Reconciler, or an error naming the bad field of cfg.
func New(cfg Config) (*Reconciler, error) {
	switch {
	case cfg.Graph == nil:
		return nil, errors.New("reconcile: Config.Graph is required")
	case cfg.Rate < 0:
		return nil, fmt.Errorf("reconcile: Config.Rate must be 0 or positive, got %v", cfg.Rate)
	case cfg.Concurrency < 0 || cfg.Concurrency > 256:
		return nil, fmt.Errorf("reconcile: Config.Concurrency must be 0 (the default, 4) or 1..256, got %d", cfg.Concurrency)
	}
	r := &Reconciler{cfg: cfg, retry: graphclient.DefaultRetryPolicy(), log: cfg.Logger}
	r.cfg.Concurrency = cmp.Or(cfg.Concurrency, 4)
	if cfg.Retry != nil {
		if err := cfg.Retry.Validate(); err != nil {
			return nil, fmt.Errorf("reconcile: Config.Retry: %w", err)
		}
		r.retry = *cfg.Retry
	}
	if cfg.Rate > 0 {
		// A burst of one: requests are spaced evenly, as a per-second
		// budget on the service's side expects.
		r.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return r, nil
}

// directory is the tenant-wide state the scans read.
type directory struct {
	users  map[string]graphclient.User // by object id
	upns   map[string]string           // lower-case UPN -> object id
	report map[string][]string         // object id -> methodsRegistered; nil when the report did not answer
}

// counter counts Graph requests.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

// Run compares the rows with Graph. It reads every user (accountEnabled)
// and the registration report page by page, then the methods of the users
// the report cannot answer for: active users with a desired phone or email
// of a type the report lists (the report names types, not numbers), and
// users the report leaves out (disabled accounts). An error is returned
// only when the scans fail (after retries) or ctx ends; a user that cannot
// be read is in Report.Errors.
func (r *Reconciler) Run(ctx context.Context, rows []Row) (*Report, error) {
	var n counter
	rep := &Report{Rows: len(rows), Unknown: []UserError{}, Errors: []UserError{}, Drift: []Finding{}}
	dir, err := r.scan(ctx, &n)
	rep.Requests = n.n
	if err != nil {
		return rep, err
	}
	rep.ReportUsed = dir.report != nil

	results := make([]rowResult, len(rows))
	var (
		wg   sync.WaitGroup
		next = make(chan int)
		done = make(chan struct{}, len(rows))
	)
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for i := range next {
				results[i] = r.check(ctx, &n, dir, &rows[i])
				done <- struct{}{}
			}
		})
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(done, len(rows))
	}()
feed:
	for i := range rows {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(done)
	<-progressDone
	rep.Requests = n.n
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("reconcile: %w", err)
	}

	seen := map[string]int{} // object id -> line: one user written two ways
	for i, res := range results {
		row := &rows[i]
		switch {
		case res.unknown:
			rep.Unknown = append(rep.Unknown, UserError{Line: row.Line, User: row.User, Error: "not in the directory"})
			continue
		case res.err != nil:
			rep.Errors = append(rep.Errors, UserError{Line: row.Line, User: row.User, Error: res.err.Error()})
			continue
		}
		if first, ok := seen[res.id]; ok {
			rep.Errors = append(rep.Errors, UserError{Line: row.Line, User: row.User,
				Error: fmt.Sprintf("the same user as line %d (written another way); not compared twice", first)})
			continue
		}
		seen[res.id] = row.Line
		rep.Checked++
		rep.Drift = append(rep.Drift, res.drift...)
		rep.Corrections = append(rep.Corrections, res.corrections...)
	}
	return rep, nil
}

// progress reports done counts until done is closed.
func (r *Reconciler) progress(done <-chan struct{}, total int) {
	if r.cfg.Progress == nil {
		for range done {
		}
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	n, shown := 0, -1
	for {
		select {
		case _, ok := <-done:
			if !ok {
				r.cfg.Progress(n, total)
				return
			}
			n++
		case <-tick.C:
			if n != shown {
				r.cfg.Progress(n, total)
				shown = n
			}
		}
	}
}

// do runs one Graph request with the rate bound and the retry policy.
func (r *Reconciler) do(ctx context.Context, n *counter, op func(ctx context.Context) error) error {
	_, err := r.retry.Do(ctx, func(ctx context.Context) error {
		if r.limiter != nil {
			if err := r.limiter.Wait(ctx); err != nil {
				return err
			}
		}
		n.add()
		return op(ctx)
	})
	return err
}

// scan reads every user and the registration report, at the same time.
func (r *Reconciler) scan(ctx context.Context, n *counter) (*directory, error) {
	dir := &directory{users: map[string]graphclient.User{}, upns: map[string]string{}}
	var (
		wg        sync.WaitGroup
		usersErr  error
		report    = map[string][]string{}
		reportErr error
	)
	wg.Go(func() {
		usersErr = pages(ctx, r, n, "users", r.cfg.Graph.UsersPage, func(u graphclient.User) {
			dir.users[u.ID] = u
			dir.upns[strings.ToLower(u.UserPrincipalName)] = u.ID
		})
	})
	wg.Go(func() {
		reportErr = pages(ctx, r, n, "registration report", r.cfg.Graph.RegistrationDetailsPage, func(d graphclient.RegistrationDetails) {
			report[d.UserID] = d.MethodsRegistered
		})
	})
	wg.Wait()
	if usersErr != nil {
		return nil, usersErr
	}
	switch {
	case reportErr == nil:
		dir.report = report
	case ctx.Err() != nil:
		return nil, reportErr
	default:
		// Without AuditLog.Read.All (or the licence the report needs) every
		// user's methods are read one by one instead: slower, as good.
		r.log.Warn("the registration report did not answer: reading each user's methods instead", "err", reportErr)
	}
	return dir, nil
}

// pages reads every page of a listing, each page with retries.
func pages[T any](ctx context.Context, r *Reconciler, n *counter, what string,
	get func(ctx context.Context, next string) ([]T, string, error), each func(T)) error {
	next := ""
	for page := 1; ; page++ {
		var items []T
		var link string
		err := r.do(ctx, n, func(ctx context.Context) error {
			var err error
			items, link, err = get(ctx, next)
			return err
		})
		if err != nil {
			return fmt.Errorf("reconcile: read %s, page %d: %w", what, page, err)
		}
		for _, it := range items {
			each(it)
		}
		if link == "" {
			return nil
		}
		if link == next {
			return fmt.Errorf("reconcile: read %s, page %d: the service linked to the same page again", what, page)
		}
		next = link
	}
}

// rowResult is the outcome of one row.
type rowResult struct {
	id          string
	unknown     bool
	err         error
	drift       []Finding
	corrections []Correction
}

// reportNames are the report's names of the desired fields.
func reportName(f Field) string {
	switch f {
	case FieldMobile:
		return "mobilePhone"
	case FieldAlternateMobile:
		return "alternateMobilePhone"
	case FieldOffice:
		return "officePhone"
	case FieldEmail:
		return "email"
	}
	return ""
}

// check compares one row with the directory, reading the user's methods
// when the scans cannot answer.
func (r *Reconciler) check(ctx context.Context, n *counter, dir *directory, row *Row) rowResult {
	ref, _ := events.ParseUser(row.User) // Read validated it
	id := ref.ObjectID
	if id == "" {
		id = dir.upns[strings.ToLower(ref.UPN)]
	}
	u, ok := dir.users[id]
	if !ok {
		return rowResult{unknown: true}
	}
	res := rowResult{id: id}
	registered, inReport := dir.report[u.ID]
	var opinions []Field
	for _, f := range append(slices.Clone(phoneFields), FieldEmail) {
		if row.value(f) != "" {
			opinions = append(opinions, f)
		}
	}
	var need bool
	switch row.Status {
	case StatusLeft:
		need = !inReport
	default:
		need = len(opinions) > 0 && (!inReport || slices.ContainsFunc(opinions, func(f Field) bool {
			return slices.Contains(registered, reportName(f))
		}))
	}
	var methods []graphclient.Method
	if need {
		err := r.do(ctx, n, func(ctx context.Context) error {
			var err error
			methods, err = r.cfg.Graph.Methods(ctx, u.ID)
			return err
		})
		switch {
		case errors.Is(err, graphclient.ErrUserNotFound):
			return rowResult{unknown: true} // deleted since the scan
		case err != nil:
			res.err = err
			return res
		}
		registered = methodNames(methods)
	}
	add := func(kind string, f Field, current, desired, correction string) {
		res.drift = append(res.drift, Finding{Line: row.Line, User: row.User, Kind: kind, Field: f,
			Current: current, Desired: desired, Correction: correction})
	}
	if row.Status == StatusLeft {
		// A leaver's phones and email in the file are HR's records, not
		// wishes: employee.left removes every method.
		if u.AccountEnabled {
			add(KindLeaverEnabled, "", "enabled", "disabled", events.TypeEmployeeLeft)
		}
		if len(registered) > 0 {
			add(KindLeaverMethods, "", strings.Join(registered, ", "), "none", events.TypeEmployeeLeft)
		}
		if len(res.drift) > 0 {
			res.corrections = append(res.corrections, leftCorrection(row))
		}
		return res
	}
	for _, f := range opinions {
		want := row.value(f)
		var have string
		if need {
			have = currentValue(methods, f)
		}
		switch {
		case f == FieldEmail && have == "":
			add(KindEmailMissing, f, "none", events.MaskEmail(want), events.TypeEmailSet)
		case f == FieldEmail && !strings.EqualFold(have, want):
			add(KindEmailDiffers, f, events.MaskEmail(have), events.MaskEmail(want), events.TypeEmailSet)
		case f == FieldEmail:
			continue
		case have == "":
			add(KindPhoneMissing, f, "none", events.MaskPhone(want), events.TypePhoneSet)
		case samePhone(have, want):
			continue
		default:
			add(KindPhoneDiffers, f, events.MaskPhone(have), events.MaskPhone(want), events.TypePhoneSet)
		}
		res.corrections = append(res.corrections, setCorrection(row, f, want))
	}
	return res
}

// methodNames names a user's methods as the registration report does,
// without the password.
func methodNames(ms []graphclient.Method) []string {
	names := []string{}
	for _, m := range ms {
		var n string
		switch m.Kind {
		case graphclient.KindPassword:
			continue
		case graphclient.KindPhone:
			n = string(m.PhoneType) + "Phone"
		default:
			n = string(m.Kind)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// currentValue is the registered number or address of a field, "" if none.
func currentValue(ms []graphclient.Method, f Field) string {
	for _, m := range ms {
		switch {
		case f == FieldEmail && m.Kind == graphclient.KindEmail:
			return m.EmailAddress
		case f != FieldEmail && m.Kind == graphclient.KindPhone && string(m.PhoneType) == phoneType(f):
			return m.PhoneNumber
		}
	}
	return ""
}

// samePhone compares Graph's form of two numbers; Graph may keep a number
// written differently (spaces, dashes) that means the same.
func samePhone(have, want string) bool {
	if have == want {
		return true
	}
	n, err := events.NormalizePhone(have, "")
	return err == nil && n == want
}
