package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/notify"
	"github.com/authflow/authflow/worker"
)

// Kinds of audit records (auditRecord.Kind).
const (
	auditKindResult       = "result"
	auditKindNotification = "notification"
	// auditKindUndecodable is a stored message that did not decode: the
	// export shows the gap rather than skipping it silently.
	auditKindUndecodable = "undecodable"
)

// runAudit exports results and notifications together, in the order the
// server stored them, for a SIEM: the audit record of what authflow did.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var nf natsFlags
	fs := newFlagSet("audit", stderr)
	nf.register(fs)
	now := time.Now()
	since := &whenValue{now: now}
	until := &whenValue{now: now}
	format := &enumValue{v: "jsonl", allowed: []string{"jsonl", "csv"}}
	fs.Var(since, "since", "export what was stored from `TIME` on: RFC 3339 (2026-05-01T08:00:00Z), a date (2026-05-01, midnight UTC), or a duration before now (24h, 90m, 7d); required")
	fs.Var(until, "until", "export what was stored before `TIME` (the same forms as --since; default: up to the end of the streams when the export starts)")
	subject := fs.String("subject", "", "only the records of this `USER`, by object id or UPN (any case), whichever name the events used")
	fs.Var(format, "format", "output `FORMAT`: jsonl (one JSON object per line) or csv (a header row, then one row per record)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !since.set {
		return usagef("--since is required (e.g. --since 24h or --since 2026-05-01T00:00:00Z)")
	}
	from, to := since.t, until.t
	if until.set && !to.After(from) {
		return usagef("--until (%s) must be after --since (%s)", to.UTC().Format(time.RFC3339Nano), from.UTC().Format(time.RFC3339Nano))
	}
	var out auditWriter
	switch format.v {
	case "jsonl":
		out = newJSONLWriter(stdout)
	case "csv":
		out = newCSVWriter(stdout)
	}
	var match func(streamSubject string, u events.UserInfo) bool
	if *subject != "" {
		k, err := userKey(*subject)
		if err != nil {
			return usagef("--subject: %v", err)
		}
		name := *subject
		resultKey, noticeKey := worker.ResultSubject(k), notify.Subject(k)
		// The user under either name: a record naming them (ref, objectId
		// or upn), or one stored under the key authflow send derives for
		// the name (also the result of an event that did not decode).
		match = func(streamSubject string, u events.UserInfo) bool {
			return u.Names(name) || streamSubject == resultKey || streamSubject == noticeKey
		}
	}
	if err := nf.validate(); err != nil {
		return err
	}

	// NATS errors (a permission the reader lacks) on stderr, as warnings.
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := nf.connect(ctx, "authflow-audit", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	x := newAuditExport(js, out, stderr, from, to)
	x.match = match
	x.progress = newAuditProgress(stderr, isTerminal(stderr))
	if isTerminal(stdout) {
		// The records on the terminal show the progress; a line of ours
		// would only break them up.
		x.progress.off = true
	}
	return x.run(ctx)
}

// whenValue is a --since or --until flag: parseWhen's forms, checked as
// the flag is set, so that a bad value in the environment is reported
// with its variable.
type whenValue struct {
	now time.Time
	t   time.Time
	set bool
}

func (w *whenValue) String() string {
	if w == nil || !w.set {
		return ""
	}
	return w.t.UTC().Format(time.RFC3339Nano)
}

func (w *whenValue) Set(v string) error {
	t, err := parseWhen(v, w.now)
	if err != nil {
		return err
	}
	w.t, w.set = t, true
	return nil
}

// enumValue is a flag that takes one of a few words.
type enumValue struct {
	v       string
	allowed []string
}

func (e *enumValue) String() string {
	if e == nil {
		return ""
	}
	return e.v
}

func (e *enumValue) Set(v string) error {
	if !slices.Contains(e.allowed, v) {
		return fmt.Errorf("must be %s", strings.Join(e.allowed, " or "))
	}
	e.v = v
	return nil
}

// parseWhen parses a --since or --until value: an RFC 3339 date-time, an
// RFC 3339 full-date (midnight UTC), or a duration before now (Go's
// syntax, 24h or 90m, or whole days, 7d).
func parseWhen(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(v, "d"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
		days, err := strconv.Atoi(n)
		if err != nil || days > 100*366 {
			return time.Time{}, errors.New("too many days")
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return time.Time{}, errors.New("want an RFC 3339 time (2026-05-01T08:00:00Z), a date (2026-05-01) or a duration before now (24h, 7d)")
		}
	}
	if d < 0 {
		return time.Time{}, errors.New("the duration must not be negative")
	}
	return now.Add(-d), nil
}

// auditExport merges the results and notifications streams.
type auditExport struct {
	js       jetstream.JetStream
	from, to time.Time // to: zero for the end of the streams
	match    func(streamSubject string, u events.UserInfo) bool
	out      auditWriter
	stderr   io.Writer
	progress *auditProgress
	// idle is how long a stream may deliver nothing before the export asks
	// the server whether anything is left to read from it.
	idle time.Duration
	// openTimeout bounds opening one stream (its info and its consumer);
	// stall bounds the wait for the next message of a stream that has more.
	openTimeout, stall time.Duration

	counts      map[string]int // records written, by kind
	undecodable int
}

// newAuditExport returns an export of what was stored in [from, to) (to
// zero: up to the end of the streams) with the default timeouts and a
// progress line for a pipe.
func newAuditExport(js jetstream.JetStream, out auditWriter, stderr io.Writer, from, to time.Time) *auditExport {
	return &auditExport{
		js: js, from: from, to: to, out: out, stderr: stderr,
		progress: newAuditProgress(stderr, false),
		idle:     2 * time.Second, openTimeout: 10 * time.Second, stall: 30 * time.Second,
	}
}

// auditStreams are the streams of the audit record, in the order that
// breaks ties: a result before the notification that follows it.
var auditStreams = []struct{ name, kind string }{
	{worker.ResultsStream, auditKindResult},
	{notify.Stream, auditKindNotification},
}

func (x *auditExport) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	x.counts = map[string]int{}
	var srcs []*auditSource
	var last time.Time // the last stored time of any stream, for the percentage
	for _, s := range auditStreams {
		// Bounded: a request the server refuses for lack of permission gets
		// no answer at all.
		octx, ocancel := context.WithTimeout(ctx, x.openTimeout)
		src, err := openAuditSource(ctx, octx, x.js, s.name, s.kind, x.from, x.to)
		ocancel()
		if err != nil && ctx.Err() != nil {
			return x.interrupted()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w (no answer from the JetStream API in %s: the reader needs the permissions in docs/audit.md)", err, x.openTimeout)
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) && s.kind == auditKindNotification {
			// A deployment from before notifications: export the results.
			fmt.Fprintf(x.stderr, "authflow audit: warning: stream %s not found: the export holds results only\n", s.name)
			continue
		}
		if err != nil {
			return err
		}
		if src.lastTime.After(last) {
			last = src.lastTime
		}
		srcs = append(srcs, src)
		defer src.stop()
	}
	end := last
	if !x.to.IsZero() && x.to.Before(end) {
		end = x.to
	}
	x.progress.begin(time.Now(), x.from, end)
	defer x.progress.end() // an error goes on a line of its own
	// The ticker also flushes the output while a stream is slow, so that
	// a reader of the pipe sees records as they come.
	tick := time.NewTicker(max(x.progress.every, 100*time.Millisecond))
	defer tick.Stop()
	for {
		for _, src := range srcs {
			if err := x.fill(ctx, src, tick.C); err != nil {
				return err
			}
		}
		// The earliest head; ties go to the first stream.
		var next *auditSource
		for _, src := range srcs {
			if src.head != nil && (next == nil || src.head.md.Timestamp.Before(next.head.md.Timestamp)) {
				next = src
			}
		}
		if next == nil {
			break
		}
		m := next.head
		next.head = nil
		if err := x.emit(next.kind, m); err != nil {
			return err
		}
		x.progress.at = m.md.Timestamp
		x.progress.show(time.Now(), x.total(), x.counts)
	}
	if err := x.out.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if ctx.Err() != nil {
		return x.interrupted()
	}
	x.progress.finish(time.Now(), x.total(), x.counts)
	if x.undecodable > 0 {
		fmt.Fprintf(x.stderr, "authflow audit: warning: %d stored messages did not decode; they are in the export as kind %q\n", x.undecodable, auditKindUndecodable)
	}
	return nil
}

// interrupted is the error of an export stopped before its end: what was
// written is a prefix of the export, in order.
func (x *auditExport) interrupted() error {
	_ = x.out.Flush()
	return fmt.Errorf("interrupted after %d records: the export is incomplete", x.total())
}

func (x *auditExport) total() int {
	n := 0
	for _, c := range x.counts {
		n += c
	}
	return n
}

// fill waits until src has a head or is done, updating the progress line
// meanwhile. A stream that stays silent is asked whether anything is left:
// its last messages may have been deleted since the export began.
func (x *auditExport) fill(ctx context.Context, src *auditSource, tick <-chan time.Time) error {
	if src.head != nil || src.done {
		return nil
	}
	start := time.Now()
	idle := time.NewTimer(x.idle)
	defer idle.Stop()
	for {
		select {
		case m, ok := <-src.ch:
			if !ok {
				src.done = true
				return nil
			}
			if m.err != nil {
				return fmt.Errorf("read %s: %w", src.name, m.err)
			}
			src.head = &m
			return nil
		case <-tick:
			if err := x.out.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			x.progress.show(time.Now(), x.total(), x.counts)
		case <-idle.C:
			info, err := src.consumer.Info(ctx)
			if err == nil && info.NumPending == 0 && info.Delivered.Stream <= src.read.Load() {
				src.stop() // nothing left: the reader closes the channel
			} else if time.Since(start) > x.stall {
				// A pull the server refuses (no permission) gets no answer;
				// fail rather than wait for ever.
				return fmt.Errorf("read %s: no message in %s although the stream holds more (the reader needs the permissions in docs/audit.md)", src.name, x.stall)
			}
			idle.Reset(x.idle)
		case <-ctx.Done():
			return x.interrupted()
		}
	}
}

// emit decodes one stored message and writes its record, when it passes
// the filter.
func (x *auditExport) emit(kind string, m *auditMsg) error {
	rec := auditRecord{
		StoredAt: m.md.Timestamp.UTC(), Stream: m.md.Stream, Seq: m.md.Sequence.Stream, Kind: kind,
		Operations: []auditOp{},
	}
	subj := m.msg.Subject()
	var err error
	switch kind {
	case auditKindResult:
		var res *events.Result
		if res, err = events.DecodeResult(m.msg.Data()); err == nil {
			rec.fromResult(res)
		}
	case auditKindNotification:
		var n *events.Notification
		if n, err = events.DecodeNotification(m.msg.Data()); err == nil {
			rec.fromNotification(n)
		}
	}
	if err != nil {
		x.undecodable++
		rec.Kind = auditKindUndecodable
		rec.Error = &events.ErrorInfo{Code: events.CodeInvalidEvent, Message: truncate("the stored message did not decode as a "+kind+": "+err.Error(), 512), Permanent: true}
	}
	if x.match != nil && !x.match(subj, rec.User) {
		return nil
	}
	if err := x.out.Write(&rec); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	x.counts[rec.Kind]++
	return nil
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// auditSource reads one stream with an ordered consumer from the start
// time, up to the end of the stream as it was when the export began (or
// the first message stored after --until).
type auditSource struct {
	name, kind string
	consumer   jetstream.Consumer
	ch         chan auditMsg
	head       *auditMsg
	done       bool
	lastTime   time.Time
	read       atomic.Uint64 // the stream sequence of the last message read
	stop       func()
}

type auditMsg struct {
	msg jetstream.Msg
	md  *jetstream.MsgMetadata
	err error
}

// openAuditSource opens stream name with requests bounded by octx; its
// reader runs until ctx is done.
func openAuditSource(ctx, octx context.Context, js jetstream.JetStream, name, kind string, from, to time.Time) (*auditSource, error) {
	s, err := js.Stream(octx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	st := s.CachedInfo().State
	src := &auditSource{name: name, kind: kind, ch: make(chan auditMsg, 256), lastTime: st.LastTime, stop: func() {}}
	if st.Msgs == 0 || st.LastTime.Before(from) || (!to.IsZero() && !st.FirstTime.Before(to)) {
		close(src.ch) // nothing in the window
		return src, nil
	}
	end := st.LastSeq
	c, err := s.OrderedConsumer(octx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from,
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	it, err := c.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	src.consumer = c
	src.stop = it.Stop
	go func() {
		defer close(src.ch)
		defer it.Stop()
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			var md *jetstream.MsgMetadata
			if err == nil {
				md, err = m.Metadata()
			}
			if err != nil {
				select {
				case src.ch <- auditMsg{err: err}:
				case <-ctx.Done():
				}
				return
			}
			src.read.Store(md.Sequence.Stream)
			if md.Sequence.Stream > end || (!to.IsZero() && !md.Timestamp.Before(to)) {
				return
			}
			select {
			case src.ch <- auditMsg{msg: m, md: md}:
			case <-ctx.Done():
				return
			}
			if md.Sequence.Stream == end || md.NumPending == 0 {
				return
			}
		}
	}()
	return src, nil
}

// auditRecord is one line of the export: a result or a notification,
// without any secret. A sealed secret is named by its kind and recipient
// key, never its ciphertext; inventories are left out, and so are the
// digests of the addresses a notification excludes.
type auditRecord struct {
	StoredAt    time.Time          `json:"storedAt"` // when the server stored it: the export's order
	Stream      string             `json:"stream"`
	Seq         uint64             `json:"seq"`
	Kind        string             `json:"kind"` // result, notification or undecodable
	ID          string             `json:"id"`   // the CloudEvent id
	Time        time.Time          `json:"time,omitzero"`
	Event       events.EventRef    `json:"event"`
	User        events.UserInfo    `json:"user"`
	Status      events.Status      `json:"status,omitempty"`
	Error       *events.ErrorInfo  `json:"error,omitempty"`
	Reason      string             `json:"reason,omitempty"` // notification: changed or rate_limited
	Result      string             `json:"result,omitempty"` // notification: the id of its result
	Notify      events.NotifyMode  `json:"notify,omitempty"` // notification: user or user+manager
	DryRun      bool               `json:"dryRun,omitempty"`
	Provenance  *events.Provenance `json:"provenance,omitempty"`
	Redrive     *events.Redrive    `json:"redrive,omitempty"`
	Attempts    int                `json:"attempts,omitempty"`
	ReceivedAt  time.Time          `json:"receivedAt,omitzero"`
	FinishedAt  time.Time          `json:"finishedAt,omitzero"` // notification: occurredAt
	DurationMs  int64              `json:"durationMs,omitempty"`
	TraceParent string             `json:"traceparent,omitempty"`
	Operations  []auditOp          `json:"operations"` // notification: its changes
}

// auditOp is one operation of a result, or one change of a notification.
type auditOp struct {
	Op         events.OpKind     `json:"op"`
	MethodKind string            `json:"methodKind,omitempty"`
	MethodID   string            `json:"methodId,omitempty"`
	Outcome    events.Outcome    `json:"outcome"`
	Detail     string            `json:"detail,omitempty"` // masked, as the result has it
	Error      *events.ErrorInfo `json:"error,omitempty"`
	// SecretIssued is the kind of the secret the operation sealed
	// (temporaryAccessPass, password, qrCodePin): that one was issued, and
	// SealedTo whose curve public key can open it. Never the secret.
	SecretIssued string `json:"secretIssued,omitempty"`
	SealedTo     string `json:"sealedTo,omitempty"`
}

func (r *auditRecord) fromResult(res *events.Result) {
	d := res.Data
	r.ID, r.Time, r.Event, r.User = res.ID, res.Time, d.Event, d.User
	r.Status, r.Error, r.DryRun, r.Provenance, r.Redrive = d.Status, d.Error, d.DryRun, d.Provenance, d.Redrive
	r.Attempts, r.ReceivedAt, r.FinishedAt, r.DurationMs, r.TraceParent = d.Attempts, d.ReceivedAt, d.FinishedAt, d.DurationMs, res.TraceParent
	for _, op := range d.Operations {
		a := auditOp{Op: op.Op, MethodKind: op.MethodKind, MethodID: op.MethodID, Outcome: op.Outcome, Detail: op.Detail, Error: op.Error}
		if op.Secret != nil {
			a.SecretIssued, a.SealedTo = op.Secret.Kind, op.Secret.Recipient
		}
		r.Operations = append(r.Operations, a)
	}
}

func (r *auditRecord) fromNotification(n *events.Notification) {
	d := n.Data
	r.ID, r.Time, r.Event, r.User = n.ID, n.Time, d.Event, d.User
	r.Status, r.Error, r.Reason, r.Result, r.Notify = d.Status, d.Error, d.Reason, d.Result, d.Notify
	r.Provenance, r.FinishedAt, r.TraceParent = d.Provenance, d.OccurredAt, n.TraceParent
	for _, c := range d.Changes {
		r.Operations = append(r.Operations, auditOp{Op: c.Op, MethodKind: c.MethodKind, Outcome: c.Outcome, Detail: c.Detail})
	}
}

// auditWriter writes records in one format.
type auditWriter interface {
	Write(*auditRecord) error
	Flush() error
}

type jsonlWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

func newJSONLWriter(w io.Writer) *jsonlWriter {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &jsonlWriter{bw: bw, enc: enc}
}

func (w *jsonlWriter) Write(r *auditRecord) error { return w.enc.Encode(r) }
func (w *jsonlWriter) Flush() error               { return w.bw.Flush() }

// auditColumns are the CSV columns, in order. They are a contract with
// the SIEM that reads them: add at the end, never reorder or rename.
var auditColumns = []string{
	"storedAt", "stream", "seq", "kind", "id", "time",
	"eventSource", "eventId", "eventType",
	"userRef", "userObjectId", "userUpn",
	"status", "errorCode", "errorMessage",
	"reason", "result", "notify", "dryRun",
	"source", "signer", "ticketId", "verificationMethod", "verifiedBy",
	"redriveCount", "redriveBy",
	"attempts", "receivedAt", "finishedAt", "durationMs",
	"secretsIssued", "operations", "traceparent",
}

type csvWriter struct {
	cw     *csv.Writer
	header bool
}

func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{cw: csv.NewWriter(w)} }

func (w *csvWriter) writeHeader() error {
	if w.header {
		return nil
	}
	w.header = true
	return w.cw.Write(auditColumns)
}

func (w *csvWriter) Write(r *auditRecord) error {
	if err := w.writeHeader(); err != nil {
		return err
	}
	ops, err := json.Marshal(r.Operations)
	if err != nil {
		return err
	}
	var code, msg string
	if r.Error != nil {
		code, msg = string(r.Error.Code), r.Error.Message
	}
	var pv events.Provenance
	if r.Provenance != nil {
		pv = *r.Provenance
	}
	var rdCount, rdBy string
	if r.Redrive != nil {
		rdCount, rdBy = strconv.Itoa(r.Redrive.Count), r.Redrive.By
	}
	var secrets []string
	for _, op := range r.Operations {
		if op.SecretIssued != "" {
			secrets = append(secrets, op.SecretIssued)
		}
	}
	// Attempts and duration are a result's; a notification leaves them empty.
	attempts, duration := "", ""
	if r.Kind == auditKindResult {
		attempts, duration = strconv.Itoa(r.Attempts), strconv.FormatInt(r.DurationMs, 10)
	}
	row := []string{
		csvTime(r.StoredAt), r.Stream, strconv.FormatUint(r.Seq, 10), r.Kind, r.ID, csvTime(r.Time),
		r.Event.Source, r.Event.ID, r.Event.Type,
		r.User.Ref, r.User.ObjectID, r.User.UPN,
		string(r.Status), code, msg,
		r.Reason, r.Result, string(r.Notify), strconv.FormatBool(r.DryRun),
		pv.Source, pv.Signer, pv.TicketID, pv.Method, pv.VerifiedBy,
		rdCount, rdBy,
		attempts, csvTime(r.ReceivedAt), csvTime(r.FinishedAt), duration,
		strings.Join(secrets, " "), string(ops), r.TraceParent,
	}
	return w.cw.Write(row)
}

// Flush writes the header also when no record matched, so that the output
// is always a valid CSV file.
func (w *csvWriter) Flush() error {
	if err := w.writeHeader(); err != nil {
		return err
	}
	w.cw.Flush()
	return w.cw.Error()
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// auditProgress is the progress line on stderr: on a terminal one line
// rewritten four times a second (after the first second), elsewhere a
// plain line every few seconds, so that short exports print nothing.
type auditProgress struct {
	w        io.Writer
	tty      bool
	every    time.Duration // between lines
	delay    time.Duration // before the first
	start    time.Time
	from, to time.Time // the window of stored times, for the percentage
	at       time.Time // the stored time of the last record read
	last     time.Time // when the last line was written
	shown    bool
	off      bool
}

func newAuditProgress(w io.Writer, tty bool) *auditProgress {
	if tty {
		return &auditProgress{w: w, tty: true, every: 250 * time.Millisecond, delay: time.Second}
	}
	return &auditProgress{w: w, every: 5 * time.Second, delay: 5 * time.Second}
}

func (p *auditProgress) begin(now, from, to time.Time) { p.start, p.from, p.to = now, from, to }

func (p *auditProgress) line(n int, counts map[string]int) string {
	s := fmt.Sprintf("authflow audit: %d records (%d results, %d notifications)", n, counts[auditKindResult], counts[auditKindNotification])
	if !p.at.IsZero() {
		s += ", stored up to " + p.at.UTC().Format(time.RFC3339)
		if span := p.to.Sub(p.from); span > 0 {
			pct := min(100, max(0, int(100*p.at.Sub(p.from)/span)))
			s += fmt.Sprintf(" (%d%%)", pct)
		}
	}
	return s
}

// show writes the line when it is due: delay after the start, then every
// interval.
func (p *auditProgress) show(now time.Time, n int, counts map[string]int) {
	if p.off || now.Sub(p.start) < p.delay || (p.shown && now.Sub(p.last) < p.every) {
		return
	}
	p.shown, p.last = true, now
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", p.line(n, counts))
		return
	}
	fmt.Fprintln(p.w, p.line(n, counts))
}

// finish ends a progress line that was shown with the totals.
func (p *auditProgress) finish(now time.Time, n int, counts map[string]int) {
	if !p.shown {
		return
	}
	p.shown = false
	s := fmt.Sprintf("authflow audit: done: %d records (%d results, %d notifications) in %s", n, counts[auditKindResult], counts[auditKindNotification], now.Sub(p.start).Round(time.Millisecond))
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s\n", s)
		return
	}
	fmt.Fprintln(p.w, s)
}

// end ends a line rewritten in place that finish did not end.
func (p *auditProgress) end() {
	if p.shown && p.tty {
		fmt.Fprintln(p.w)
	}
	p.shown = false
}
