package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/reconcile"
	"github.com/authflow/authflow/worker"
)

// defaultReconcileRate is --rate: Graph requests per second. Well below
// Graph's per-application budget, so that a sweep leaves room for the
// worker's own requests.
const defaultReconcileRate = 20

type reconcileFlags struct {
	graph         graphFlags
	nats          natsFlags
	desired       string
	format        string
	apply         bool
	rate          float64
	concurrency   int
	jsonOut       bool
	signSeed      string
	defaultRegion string
}

func (f *reconcileFlags) register(fs *flag.FlagSet) {
	f.graph.register(fs)
	f.nats.register(fs)
	fs.StringVar(&f.desired, "desired", "", "the desired state `FILE` (an HR export: CSV with a header row, or JSON Lines); required")
	fs.StringVar(&f.format, "format", "", "format of --desired: csv or jsonl (default: jsonl for .jsonl and .ndjson files, else csv)")
	fs.BoolVar(&f.apply, "apply", false, "publish the corrective events (source "+reconcile.Source+", signed with --sign-seed) to NATS")
	fs.Float64Var(&f.rate, "rate", defaultReconcileRate, "at most `N` Graph requests per second (pages and retries count); Retry-After is honoured on top")
	fs.IntVar(&f.concurrency, "concurrency", 4, "users read from Graph at once (1..256)")
	fs.BoolVar(&f.jsonOut, "json", false, "print the report as one JSON object")
	fs.StringVar(&f.signSeed, "sign-seed", "", "with --apply: sign the corrections with the nkeys seed in `FILE` (authflow keys new-signing; pin its public key for "+reconcile.Source+" in the policy)")
	fs.StringVar(&f.defaultRegion, "default-region", "US", "ISO 3166 `REGION` national phone numbers in --desired are read in (use the worker's)")
}

func (f *reconcileFlags) validate() error {
	switch {
	case f.desired == "":
		return usagef("--desired is required: the desired state file (see docs/reconcile.md)")
	case f.format != "" && f.format != string(reconcile.FormatCSV) && f.format != string(reconcile.FormatJSONL):
		return usagef("--format must be csv or jsonl, got %q", f.format)
	case !(f.rate > 0) || f.rate > 10000:
		return usagef("--rate must be more than 0 and at most 10000 requests per second, got %v", f.rate)
	case f.concurrency < 1 || f.concurrency > 256:
		return usagef("--concurrency must be 1..256, got %d", f.concurrency)
	case !isRegionCode(f.defaultRegion):
		return usagef("--default-region must be a two-letter ISO 3166 region code such as US, got %q", f.defaultRegion)
	case f.apply && f.signSeed == "":
		return usagef("--apply needs --sign-seed: corrections are signed with a key the policy pins for %s", reconcile.Source)
	case !f.apply && f.signSeed != "":
		return usagef("--sign-seed is only used with --apply")
	}
	if err := f.graph.validate(); err != nil {
		return err
	}
	if f.apply {
		if err := f.nats.validate(); err != nil {
			return err
		}
	}
	if _, err := (events.Decoder{DefaultRegion: f.defaultRegion}).Decode([]byte("{}")); events.CodeOf(err) == events.CodeInternal {
		return usagef("--default-region %q is not a region libphonenumber knows", f.defaultRegion)
	}
	return nil
}

func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f reconcileFlags
	fs := newFlagSet("reconcile", stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: authflow reconcile --desired FILE [--format csv|jsonl] [--graph-url URL --graph-token TOKEN]\n"+
			"                          [--apply --sign-seed FILE --nats-url URL] [--rate N] [--json]\n\n"+
			"Compares the desired state with Microsoft Graph and reports drift: a leaver with an enabled account or\n"+
			"with methods, an active user with a missing or different phone or email. --apply publishes the\n"+
			"corrective events through the pipeline.\n\nflags:\n")
		fs.PrintDefaults()
	}
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	var signer nkeys.KeyPair
	if f.apply {
		kp, err := readSeedFile(f.signSeed, false)
		if err != nil {
			return usagef("--sign-seed: %v", err)
		}
		defer kp.Wipe()
		signer = kp
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	graph, err := f.graph.client(nil, log.With("component", "graph"), nil)
	if err != nil {
		return err
	}
	sweep := reconcileSweep{
		desired: f.desired, format: f.format, region: f.defaultRegion,
		cfg: reconcile.Config{Graph: graph, Rate: f.rate, Concurrency: f.concurrency, Logger: log,
			Progress: newProgress(stderr).update},
	}
	if f.apply {
		nc, err := f.nats.connect(ctx, "authflow-reconcile", nil)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		sweep.publish, sweep.signer = jsPublisher{js}, signer
	}
	out, err := sweep.run(ctx, time.Now())
	if err != nil {
		return err
	}
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		out.print(stdout)
	}
	if len(out.Errors) > 0 || out.Applied != nil && len(out.Applied.Failed) > 0 {
		return &exitError{code: exitFailed, err: errors.New("")}
	}
	return nil
}

// reconcileSweep is one reconciliation run, for the command and for the
// worker's schedule.
type reconcileSweep struct {
	desired, format, region string
	cfg                     reconcile.Config
	publish                 reconcile.Publisher // nil: report only
	signer                  nkeys.KeyPair
}

// reconcileOutput is the report the command prints (--json: as is).
type reconcileOutput struct {
	Desired            string                 `json:"desired"`
	Format             string                 `json:"format"`
	Day                string                 `json:"day"`
	Rows               int                    `json:"rows"` // rows read, bad ones included
	Checked            int                    `json:"checked"`
	BadRows            []reconcile.BadRow     `json:"badRows"`
	IgnoredColumns     []string               `json:"ignoredColumns"`
	Unknown            []reconcile.UserError  `json:"unknownUsers"`
	Errors             []reconcile.UserError  `json:"errors"`
	Drift              []reconcile.Finding    `json:"drift"`
	Corrections        int                    `json:"corrections"`
	GraphRequests      int                    `json:"graphRequests"`
	RegistrationReport bool                   `json:"registrationReport"`
	Applied            *reconcile.Applied     `json:"applied,omitempty"`
	DurationMs         int64                  `json:"durationMs"`
	corrections        []reconcile.Correction // for the table
}

// run reads the desired file, compares it with Graph and, with a
// publisher, applies the corrections. A file that cannot be read is a
// usage error.
func (s *reconcileSweep) run(ctx context.Context, now time.Time) (*reconcileOutput, error) {
	start := time.Now()
	format := reconcile.FormatOf(s.desired)
	if s.format != "" {
		format = reconcile.Format(s.format)
	}
	file, err := os.Open(s.desired)
	if err != nil {
		return nil, usagef("--desired: %v", err)
	}
	d, err := reconcile.Read(file, format, s.region)
	file.Close()
	if err != nil {
		return nil, usagef("--desired %s: %v", s.desired, err)
	}
	r, err := reconcile.New(s.cfg)
	if err != nil {
		return nil, err
	}
	rep, err := r.Run(ctx, d.Rows)
	if err != nil {
		return nil, err
	}
	out := &reconcileOutput{
		Desired: s.desired, Format: string(format), Day: reconcile.Day(now),
		Rows: len(d.Rows) + len(d.Bad), Checked: rep.Checked,
		BadRows: nonNil(d.Bad), IgnoredColumns: nonNil(d.Ignored), Unknown: rep.Unknown, Errors: rep.Errors,
		Drift: rep.Drift, Corrections: len(rep.Corrections), GraphRequests: rep.Requests,
		RegistrationReport: rep.ReportUsed, corrections: rep.Corrections,
	}
	if s.publish != nil && len(rep.Corrections) > 0 {
		a, err := reconcile.Apply(ctx, rep.Corrections, s.publish, events.Decoder{DefaultRegion: s.region}, s.signer, now)
		if err != nil {
			return nil, err
		}
		out.Applied = &a
	} else if s.publish != nil {
		out.Applied = &reconcile.Applied{Failed: []reconcile.UserError{}}
	}
	out.DurationMs = time.Since(start).Milliseconds()
	return out, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// print writes the readable report.
func (o *reconcileOutput) print(w io.Writer) {
	fmt.Fprintf(w, "%s: %s, %d checked against Graph", o.Desired, plural(o.Rows, "row", "rows"), o.Checked)
	if n := len(o.BadRows); n > 0 {
		fmt.Fprintf(w, ", %d bad", n)
	}
	if n := len(o.Unknown); n > 0 {
		fmt.Fprintf(w, ", %d not in the directory", n)
	}
	if n := len(o.Errors); n > 0 {
		fmt.Fprintf(w, ", %d not checked", n)
	}
	fmt.Fprintf(w, " (%d Graph requests, %s)\n", o.GraphRequests, (time.Duration(o.DurationMs) * time.Millisecond).String())
	if len(o.Drift) == 0 {
		fmt.Fprintln(w, "no drift")
	} else {
		fmt.Fprintf(w, "%s of drift, %s:\n", plural(len(o.Drift), "finding", "findings"),
			plural(o.Corrections, "correction", "corrections"))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "LINE\tUSER\tKIND\tFIELD\tCURRENT\tDESIRED\tCORRECTION")
		for _, d := range o.Drift {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Line, d.User, d.Kind, orDash(string(d.Field)), d.Current, d.Desired, shortType(d.Correction))
		}
		tw.Flush()
	}
	section := func(title string, rows []reconcile.UserError) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(w, "%s:\n", title)
		for _, r := range rows {
			fmt.Fprintf(w, "  line %d: %s: %s\n", r.Line, r.User, r.Error)
		}
	}
	if len(o.BadRows) > 0 {
		fmt.Fprintln(w, "bad rows (skipped):")
		for _, b := range o.BadRows {
			fmt.Fprintf(w, "  line %d: %s\n", b.Line, b.Error)
		}
	}
	if len(o.IgnoredColumns) > 0 {
		fmt.Fprintf(w, "ignored columns: %s\n", strings.Join(o.IgnoredColumns, ", "))
	}
	section("not in the directory", o.Unknown)
	section("not checked", o.Errors)
	if a := o.Applied; a != nil {
		fmt.Fprintf(w, "applied: %s published as %s, %d already published today, %d failed\n",
			plural(a.Published, "correction", "corrections"), reconcile.Source, a.Duplicates, len(a.Failed))
		section("not published", a.Failed)
	}
}

// shortType is an event type without the authflow. prefix and version.
func shortType(t string) string {
	t = strings.TrimPrefix(t, "authflow.")
	if i := strings.LastIndex(t, ".v"); i > 0 {
		t = t[:i]
	}
	return t
}

// jsPublisher publishes corrections as `authflow send` publishes events:
// on the subject key derived from the event subject, deduplicated by the
// stream on source and id.
type jsPublisher struct{ js jetstream.JetStream }

func (p jsPublisher) Publish(ctx context.Context, m reconcile.Message) (bool, error) {
	key, err := userKey(m.User)
	if err != nil {
		return false, fmt.Errorf("subject: %w", err)
	}
	msg := nats.NewMsg(worker.EventSubject(key))
	msg.Data = m.Event
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Header.Set(events.HeaderSignature, m.Signature)
	msg.Header.Set(events.HeaderSigner, m.Signer)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(events.EventKey(reconcile.Source, m.ID)))
	if err != nil {
		return false, fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	return ack.Duplicate, nil
}

// progress shows how far a run is on stderr: a bar on a terminal, a plain
// line every tenth otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	start    time.Time
	lastTen  int
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, terminal: isTerminal(w), start: time.Now(), lastTen: -1}
}

func (p *progress) update(done, total int) {
	if total == 0 {
		return
	}
	pct := done * 100 / total
	rate := float64(done) / max(time.Since(p.start).Seconds(), 0.001)
	if p.terminal {
		const width = 30
		n := done * width / total
		fmt.Fprintf(p.w, "\r[%s%s] %3d%% %d/%d users %.0f/s", strings.Repeat("#", n), strings.Repeat("-", width-n), pct, done, total, rate)
		if done == total {
			fmt.Fprintln(p.w)
		}
		return
	}
	if ten := pct / 10; ten != p.lastTen {
		p.lastTen = ten
		fmt.Fprintf(p.w, "reconcile: %d/%d users (%d%%), %.0f/s\n", done, total, pct, rate)
	}
}

// isTerminal reports whether w is a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
