package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/reconcile"
)

// Scheduled reconciliation inside `authflow worker`: every replica runs the
// loop, and a lease in a KV bucket lets one of them run each sweep. The
// record also keeps when the last sweep started, so a sweep is due once per
// --reconcile-every across replicas and restarts.

// ReconcileBucket is the KV bucket of the schedule's lease.
const ReconcileBucket = "AUTHFLOW_RECONCILE"

const (
	reconcileKey = "schedule"
	// reconcileLease is how long a sweep holds the schedule without
	// renewing it; the holder renews it every third of that.
	reconcileLease = time.Minute
	// minReconcileEvery bounds --reconcile-every from below: a sweep
	// reads the whole tenant.
	minReconcileEvery = time.Second
)

// reconcileLoopFlags are the worker's --reconcile-* flags.
type reconcileLoopFlags struct {
	every       time.Duration
	desired     string
	format      string
	rate        float64
	concurrency int
	signSeed    string
}

func (f *reconcileLoopFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.every, "reconcile-every", 0, "run a reconciliation sweep this often (e.g. 24h; one replica at a time); 0 = never")
	fs.StringVar(&f.desired, "reconcile-desired", "", "the desired state `FILE` of the scheduled sweeps (CSV or JSON Lines; read anew each time)")
	fs.StringVar(&f.format, "reconcile-format", "", "format of --reconcile-desired: csv or jsonl (default by file name)")
	fs.Float64Var(&f.rate, "reconcile-rate", defaultReconcileRate, "at most `N` Graph requests per second for a sweep, on top of the worker's shared throttle")
	fs.IntVar(&f.concurrency, "reconcile-concurrency", 4, "users a sweep reads from Graph at once (1..256)")
	fs.StringVar(&f.signSeed, "reconcile-sign-seed", "", "the nkeys seed `FILE` a sweep signs its corrections with (pinned for "+reconcile.Source+" in the policy)")
}

func (f *reconcileLoopFlags) validate() error {
	if f.every == 0 {
		for _, s := range []struct{ flag, val string }{{"reconcile-desired", f.desired}, {"reconcile-sign-seed", f.signSeed}, {"reconcile-format", f.format}} {
			if s.val != "" {
				return usagef("--%s needs --reconcile-every", s.flag)
			}
		}
		return nil
	}
	switch {
	case f.every < minReconcileEvery:
		return usagef("--reconcile-every must be 0 (off) or at least %s, got %s", minReconcileEvery, f.every)
	case f.desired == "":
		return usagef("--reconcile-every needs --reconcile-desired")
	case f.signSeed == "":
		return usagef("--reconcile-every needs --reconcile-sign-seed: corrections are signed")
	case f.format != "" && f.format != string(reconcile.FormatCSV) && f.format != string(reconcile.FormatJSONL):
		return usagef("--reconcile-format must be csv or jsonl, got %q", f.format)
	case !(f.rate > 0) || f.rate > 10000:
		return usagef("--reconcile-rate must be more than 0 and at most 10000 requests per second, got %v", f.rate)
	case f.concurrency < 1 || f.concurrency > 256:
		return usagef("--reconcile-concurrency must be 1..256, got %d", f.concurrency)
	}
	if err := readable(f.desired); err != nil {
		return usagef("--reconcile-desired: %v", err)
	}
	if _, err := readSeedFile(f.signSeed, false); err != nil {
		return usagef("--reconcile-sign-seed: %v", err)
	}
	return nil
}

// scheduleRecord is the value under reconcileKey.
type scheduleRecord struct {
	Owner      string    `json:"owner,omitempty"` // the replica running a sweep
	LeaseUntil time.Time `json:"leaseUntil"`      // zero or past: nobody is
	LastStart  time.Time `json:"lastStart"`       // the last sweep's start
}

// startReconcileLoop starts the schedule when --reconcile-every is set and
// returns a function that stops it and waits. The sweeps share the worker's
// Graph client, and so its throttle.
func startReconcileLoop(ctx context.Context, f *reconcileLoopFlags, nc *nats.Conn, graph *graphclient.Client,
	replicas int, instance, region string, log *slog.Logger) (stop func(), err error) {
	if f.every == 0 {
		return func() {}, nil
	}
	signer, err := readSeedFile(f.signSeed, false)
	if err != nil {
		return nil, usagef("--reconcile-sign-seed: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("reconcile schedule: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	kv, err := js.CreateOrUpdateKeyValue(cctx, jetstream.KeyValueConfig{Bucket: ReconcileBucket, History: 1, Replicas: replicas,
		Description: "authflow worker: the lease and last start of scheduled reconciliation sweeps"})
	cancel()
	if err != nil {
		return nil, fmt.Errorf("reconcile schedule: KV bucket %s: %w", ReconcileBucket, err)
	}
	l := &reconcileLoop{flags: *f, kv: kv, instance: instance, log: log.With("component", "reconcile"),
		sweep: reconcileSweep{desired: f.desired, format: f.format, region: region, publish: jsPublisher{js}, signer: signer,
			cfg: reconcile.Config{Graph: graph, Rate: f.rate, Concurrency: f.concurrency}}}
	l.sweep.cfg.Logger = l.log
	lctx, stopLoop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { l.run(lctx) })
	return func() {
		stopLoop()
		wg.Wait()
		signer.Wipe()
	}, nil
}

type reconcileLoop struct {
	flags    reconcileLoopFlags
	kv       jetstream.KeyValue
	instance string
	sweep    reconcileSweep
	log      *slog.Logger
	now      func() time.Time
}

func (l *reconcileLoop) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// run checks whether a sweep is due, at once and then every tick, until
// ctx ends.
func (l *reconcileLoop) run(ctx context.Context) {
	tick := min(max(l.flags.every/4, 100*time.Millisecond), time.Minute)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.maybeSweep(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("reconciliation sweep", "err", err)
		}
		t.Reset(tick)
	}
}

// maybeSweep runs a sweep if one is due and nobody holds the lease.
func (l *reconcileLoop) maybeSweep(ctx context.Context) error {
	rec, rev, err := l.read(ctx)
	if err != nil {
		return err
	}
	now := l.clock()
	if now.Before(rec.LeaseUntil) || (!rec.LastStart.IsZero() && now.Before(rec.LastStart.Add(l.flags.every))) {
		return nil
	}
	mine := scheduleRecord{Owner: l.instance, LeaseUntil: now.Add(reconcileLease), LastStart: now}
	rev, err = l.write(ctx, mine, rev)
	if errors.Is(err, errLeaseTaken) {
		return nil // another replica won
	}
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	wg.Go(func() {
		t := time.NewTicker(reconcileLease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			mu.Lock()
			mine.LeaseUntil = l.clock().Add(reconcileLease)
			r, err := l.write(sctx, mine, rev)
			if err == nil {
				rev = r
			}
			mu.Unlock()
			if err != nil {
				// Another replica may take over: stop before it does.
				l.log.Warn("reconciliation sweep lost its lease; stopping", "err", err)
				cancel()
				return
			}
		}
	})
	l.log.Info("reconciliation sweep starting", "desired", l.flags.desired, "instance", l.instance)
	out, runErr := l.sweep.run(sctx, now)
	close(done)
	wg.Wait()
	if runErr == nil {
		l.logOutcome(out)
	}
	// Release the lease, keeping the start: the next sweep is due a period
	// after this one began.
	mine.LeaseUntil = time.Time{}
	if _, err := l.write(context.WithoutCancel(ctx), mine, rev); err != nil && runErr == nil {
		runErr = fmt.Errorf("release the lease: %w", err)
	}
	return runErr
}

var errLeaseTaken = errors.New("the reconciliation schedule changed under us")

func (l *reconcileLoop) read(ctx context.Context) (scheduleRecord, uint64, error) {
	var rec scheduleRecord
	e, err := l.kv.Get(ctx, reconcileKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return rec, 0, nil
	}
	if err != nil {
		return rec, 0, fmt.Errorf("read the schedule: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		// A record we cannot read is replaced, not obeyed forever.
		l.log.Warn("the reconciliation schedule record is unreadable; replacing it", "err", err)
		return scheduleRecord{}, e.Revision(), nil
	}
	return rec, e.Revision(), nil
}

// write stores rec if the record is still at rev (0: absent).
func (l *reconcileLoop) write(ctx context.Context, rec scheduleRecord, rev uint64) (uint64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if rev == 0 {
		rev, err = l.kv.Create(ctx, reconcileKey, b)
	} else {
		rev, err = l.kv.Update(ctx, reconcileKey, b, rev)
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return 0, errLeaseTaken
	}
	if err != nil {
		return 0, fmt.Errorf("write the schedule: %w", err)
	}
	return rev, nil
}

// maxLoggedFindings bounds the findings a sweep logs one by one.
const maxLoggedFindings = 100

func (l *reconcileLoop) logOutcome(out *reconcileOutput) {
	attrs := []any{"rows", out.Rows, "checked", out.Checked, "bad_rows", len(out.BadRows), "unknown_users", len(out.Unknown),
		"errors", len(out.Errors), "drift", len(out.Drift), "corrections", out.Corrections, "graph_requests", out.GraphRequests,
		"duration_ms", out.DurationMs}
	if a := out.Applied; a != nil {
		attrs = append(attrs, "published", a.Published, "duplicates", a.Duplicates, "publish_failed", len(a.Failed))
	}
	l.log.Info("reconciliation sweep done", attrs...)
	for i, d := range out.Drift {
		if i == maxLoggedFindings {
			l.log.Info("more drift not logged", "findings", len(out.Drift)-i)
			break
		}
		l.log.Info("drift", "line", d.Line, "user", d.User, "kind", d.Kind, "field", string(d.Field),
			"current", d.Current, "desired", d.Desired, "correction", d.Correction)
	}
	for _, b := range out.BadRows {
		l.log.Warn("bad row in the desired state", "line", b.Line, "error", b.Error)
	}
	for _, e := range out.Errors {
		l.log.Warn("user not checked", "line", e.Line, "user", e.User, "error", e.Error)
	}
}
