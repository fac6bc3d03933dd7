package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// workerFlags is the configuration of `authflow worker`.
type workerFlags struct {
	nats   natsFlags
	graph  graphFlags
	beta   graphBeta
	notify notifyFlags

	policy          string
	partitions      int
	concurrency     int
	inflight        int
	graphMax        int
	replicas        int
	ledgerTTL       time.Duration
	maxAttempts     int
	ackWait         time.Duration
	attemptTimeout  time.Duration
	retryBudget     time.Duration
	redelivery      time.Duration
	shutdownTimeout time.Duration
	passwordMode    string
	defaultRegion   string
	logLevel        string
	metricsListen   string
	instance        string
	sealKeyFile     string
	reconcile       reconcileLoopFlags // reconcile_loop.go
}

func (f *workerFlags) register(fsName string, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet(fsName, stderr)
	f.nats.register(fs)
	f.graph.register(fs)
	f.beta.register(fs)
	f.notify.register(fs)
	fs.StringVar(&f.policy, "policy", "", "policy `FILE` (YAML): sources, types, signatures, protected users; required")
	fs.IntVar(&f.partitions, "partitions", worker.DefaultPartitions, "partitions of the events stream (one consumer each; the server allows 1000 per stream); change only on a drained stream")
	fs.IntVar(&f.concurrency, "concurrency", worker.DefaultConcurrency, "events processed at once by this process")
	fs.IntVar(&f.graphMax, "graph-max-concurrency", 0, "ceiling of the adaptive limit on Graph requests in flight, 1..1024 (0: --concurrency; the limit halves on 429/503 and grows back)")
	fs.IntVar(&f.inflight, "partition-inflight", 0, "events of one partition in flight at once, 1..1000 (0: twice the partitions' share of --concurrency, at least 1); the same on every replica")
	fs.IntVar(&f.replicas, "stream-replicas", 3, "replicas of the streams and the ledger; 3 needs a cluster of 3 JetStream servers")
	fs.DurationVar(&f.ledgerTTL, "ledger-ttl", worker.DefaultLedgerTTL, "how long the ledger remembers an event (at least the events stream's 2-minute duplicate window and the policy's maximum event age)")
	fs.IntVar(&f.maxAttempts, "max-attempts", worker.DefaultMaxAttempts, "deliveries of an event before it fails with retries_exhausted")
	fs.DurationVar(&f.ackWait, "ack-wait", worker.DefaultAckWait, "consumers' ack deadline (the worker extends it while it works)")
	fs.DurationVar(&f.attemptTimeout, "attempt-timeout", worker.DefaultAttemptTimeout, "bound on one attempt at one event")
	fs.DurationVar(&f.retryBudget, "retry-budget", worker.DefaultRetryBudget, "in-process retries of one Graph operation before the event is handed back to JetStream (shorter than --attempt-timeout)")
	fs.DurationVar(&f.redelivery, "redelivery-delay", worker.DefaultRedeliveryDelay, "first delay of an event handed back after its retries; doubles per delivery up to 5m")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", worker.DefaultShutdownTimeout, "how long a shutdown waits for events in flight")
	fs.StringVar(&f.passwordMode, "password-mode", string(worker.PasswordPatch), "password reset API: patch (application permissions) or resetPassword (delegated)")
	fs.StringVar(&f.defaultRegion, "default-region", "US", "ISO 3166 `REGION` national phone numbers are read in")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.metricsListen, "metrics-listen", "127.0.0.1:9090", "`HOST:PORT` of /metrics, /healthz and /readyz")
	fs.StringVar(&f.sealKeyFile, "seal-key-file", "", "the worker's curve seed `FILE` (authflow keys new-sealing; mode 0600): secrets are sealed from its public key, which recipients pin; the same file on every replica (default: a new key per process)")
	f.reconcile.register(fs)
	host, _ := os.Hostname()
	fs.StringVar(&f.instance, "instance", host, "this replica's `ID` in logs and the ledger")
	return fs
}

// validate checks everything that can be checked without a network.
func (f *workerFlags) validate() error {
	if err := f.nats.validate(); err != nil {
		return err
	}
	if err := f.graph.validate(); err != nil {
		return err
	}
	if err := f.notify.validate(); err != nil {
		return err
	}
	switch {
	case f.graphMax < 0 || f.graphMax > 1024:
		return usagef("--graph-max-concurrency must be 0..1024, got %d", f.graphMax)
	case f.policy == "":
		return usagef("--policy is required: the worker never runs without a policy (see docs/events.md; authflow dev uses an allow-all one)")
	case !isRegionCode(f.defaultRegion):
		return usagef("--default-region must be a two-letter ISO 3166 region code such as US, got %q", f.defaultRegion)
	case f.instance == "" || len(f.instance) > 128 || strings.ContainsFunc(f.instance, isControlOrSpace):
		return usagef("--instance must be 1..128 printable characters without spaces, got %q", f.instance)
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		return err
	}
	if err := checkListen("metrics-listen", f.metricsListen); err != nil {
		return err
	}
	if err := f.reconcile.validate(); err != nil {
		return err
	}
	// The decoder refuses a region libphonenumber does not know: find out now.
	if _, err := (events.Decoder{DefaultRegion: f.defaultRegion}).Decode([]byte("{}")); events.CodeOf(err) == events.CodeInternal {
		return usagef("--default-region %q is not a region libphonenumber knows", f.defaultRegion)
	}
	return nil
}

// config is the worker.Config the flags describe, without its connections.
func (f *workerFlags) config(policy *events.Policy) worker.Config {
	return worker.Config{
		Policy:            policy,
		Decoder:           events.Decoder{DefaultRegion: f.defaultRegion},
		Instance:          f.instance,
		Partitions:        f.partitions,
		Concurrency:       f.concurrency,
		PartitionInflight: f.inflight,
		Replicas:          f.replicas,
		LedgerTTL:         f.ledgerTTL,
		AckWait:           f.ackWait,
		MaxAttempts:       f.maxAttempts,
		AttemptTimeout:    f.attemptTimeout,
		RetryBudget:       f.retryBudget,
		RedeliveryDelay:   f.redelivery,
		ShutdownTimeout:   f.shutdownTimeout,
		PasswordMode:      worker.PasswordMode(f.passwordMode),
		BetaDefaultMethod: f.beta.has(betaDefaultMethod),
	}
}

// configFlags names the flag that sets each worker.Config field.
// worker.Config.Validate is the one place the ranges live; its errors name
// fields, and the CLI reports them by flag.
var configFlags = []struct{ field, flag string }{
	{"Partitions", "partitions"},
	{"Concurrency", "concurrency"},
	{"PartitionInflight", "partition-inflight"},
	{"Replicas", "stream-replicas"},
	{"LedgerTTL", "ledger-ttl"},
	{"AckWait", "ack-wait"},
	{"MaxAttempts", "max-attempts"},
	{"AttemptTimeout", "attempt-timeout"},
	{"RetryBudget", "retry-budget"},
	{"RedeliveryDelay", "redelivery-delay"},
	{"ShutdownTimeout", "shutdown-timeout"},
	{"PasswordMode", "password-mode"},
}

// checkConfig validates cfg, built from the flags of fs, with
// worker.Config.Validate and names the flag of each field at fault, one
// line each: "--ledger-ttl must be 2m0s..8760h0m0s, got 1m0s".
func checkConfig(fs *flag.FlagSet, cfg worker.Config) error {
	var lines []string
	// worker.Config reads a zero as "the default"; given on the command
	// line it is a mistake, and Validate would never see it.
	for _, c := range configFlags {
		fl := fs.Lookup(c.flag)
		if fl == nil || c.flag == "partition-inflight" {
			continue // not a flag of fs; or 0 is its documented "automatic"
		}
		switch fl.Value.String() {
		case "":
			lines = append(lines, fmt.Sprintf("--%s must not be empty (leave it out for the default, %s)", c.flag, fl.DefValue))
		case "0", "0s":
			lines = append(lines, fmt.Sprintf("--%s must not be 0 (leave it out for the default, %s)", c.flag, fl.DefValue))
		}
	}
	if len(lines) == 0 {
		lines = configErrorLines(fs, cfg.Validate())
	}
	if len(lines) == 0 {
		return nil
	}
	return usagef("%s", strings.Join(lines, "\n"))
}

// configErrorLines turns the errors of worker.Config.Validate into lines
// that name flags instead of Config fields.
func configErrorLines(fs *flag.FlagSet, err error) []string {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	toFlags := func(s string) string {
		for _, c := range configFlags {
			if fs.Lookup(c.flag) != nil {
				s = strings.ReplaceAll(s, c.field, "--"+c.flag)
			}
		}
		return s
	}
	lines := make([]string, 0, len(errs))
	for _, e := range errs {
		var fe *worker.FieldError
		if errors.As(e, &fe) {
			lines = append(lines, toFlags(fe.Field)+" "+toFlags(fe.Msg))
		} else {
			lines = append(lines, e.Error())
		}
	}
	return lines
}

func isControlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

// isRegionCode reports whether s has the form of an ISO 3166 alpha-2 code.
func isRegionCode(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// parseLevel reads --log-level.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("--log-level must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f workerFlags
	fs := f.register("worker", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	level, _ := parseLevel(f.logLevel)
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	policy, err := events.LoadPolicy(f.policy)
	if err != nil {
		return usagef("--policy: %v", err)
	}
	cfg := f.config(policy)
	if err := checkConfig(fs, cfg); err != nil {
		return err
	}
	if f.sealKeyFile != "" {
		kp, err := readPrivateCurveSeed(f.sealKeyFile)
		if err != nil {
			return usagef("--seal-key-file: %v", err)
		}
		defer kp.Wipe()
		cfg.SealKey = kp
	}

	// Listen before connecting anywhere: a taken or bad address is a
	// configuration error, and /healthz answers while NATS is reached.
	ln, err := listen("metrics-listen", f.metricsListen)
	if err != nil {
		return err
	}
	defer ln.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := worker.NewMetrics(reg)

	tp, stopTracing, err := startTracing(ctx, "authflow-worker", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	// Every event in flight makes one Graph request at a time: the client
	// may have as many in flight as the worker has events.
	f.graph.maxConcurrency = cmp.Or(f.graphMax, f.concurrency)
	graph, err := f.graph.client(metrics.ObserveGraph, log.With("component", "graph"), tp)
	if err != nil {
		return err
	}
	nc, err := f.nats.connect(ctx, "authflow-worker/"+f.instance, log.With("component", "nats"))
	if err != nil {
		return err
	}
	defer nc.Close()

	cfg.NATS, cfg.Graph, cfg.Logger, cfg.Metrics = nc, graph, log, metrics
	cfg.TracerProvider = tp
	w, err := worker.New(ctx, cfg)
	if err != nil {
		return explainTopologyError(err, f.replicas)
	}

	srv := &http.Server{
		Handler:           w.Handler(reg, graph.CheckToken),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if f.sealKeyFile == "" {
		log.Warn("no --seal-key-file: secrets are sealed from a key made for this process alone, so recipients cannot pin the sender (authflow open --expect-sender) and every replica and restart has another; see docs/cli.md",
			"seal_key", w.SealPublicKey())
	}
	bi, _ := debug.ReadBuildInfo()
	build := buildVersion(worker.Version, bi)
	log.Info("authflow worker starting", "version", build.Version, "revision", build.Revision, "go", build.GoVersion,
		"nats", redactURLs(mustURLs(&f.nats)), "graph", f.graph.describe(), "graph_beta", f.beta.String(), "policy", f.policy,
		"metrics", "http://"+ln.Addr().String()+"/metrics", "partitions", f.partitions,
		"concurrency", f.concurrency, "partition_inflight", f.inflight, "replicas", f.replicas, "seal_key", w.SealPublicKey())

	waitNotify, err := f.notify.start(ctx, nc, graph, f.replicas, reg, log.With("component", "notify"))
	if err != nil {
		return err
	}
	stopReconcile, err := startReconcileLoop(ctx, &f.reconcile, nc, graph, f.replicas, f.instance, f.defaultRegion, log)
	if err != nil {
		return err
	}
	runErr := w.Run(ctx)
	stopReconcile()
	waitNotify()

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("metrics server", "err", err)
	}
	if err := nc.Drain(); err != nil {
		log.Warn("NATS drain", "err", err)
	}
	if runErr != nil {
		return runErr
	}
	return nil
}

func mustURLs(f *natsFlags) []string {
	u, _ := f.serverURLs()
	return u
}

// explainTopologyError adds the flag to blame when the streams cannot be
// created with the replicas asked for (a single server cannot hold R3).
func explainTopologyError(err error, replicas int) error {
	var apiErr *jetstream.APIError
	msg := err.Error()
	if replicas > 1 && (errors.As(err, &apiErr) && (apiErr.ErrorCode == 10074 || apiErr.ErrorCode == 10023) ||
		strings.Contains(msg, "replicas") || strings.Contains(msg, "insufficient resources")) {
		return usagef("%v (--stream-replicas %d needs a JetStream cluster of at least %d servers; use --stream-replicas 1 on a single server)", err, replicas, replicas)
	}
	return err
}
