package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

type devFlags struct {
	natsListen    string
	graphListen   string
	metricsListen string
	ingressListen string
	data          string
	token         string
	noDemo        bool
	exitAfterDemo bool
	demoTimeout   time.Duration
	logLevel      string
	metricsSet    bool // --metrics-listen given explicitly
	beta          graphBeta
}

func (f *devFlags) validate() error {
	for _, l := range []struct{ name, addr string }{
		{"nats-listen", f.natsListen}, {"graph-listen", f.graphListen}, {"metrics-listen", f.metricsListen}, {"ingress-listen", f.ingressListen},
	} {
		if err := checkListen(l.name, l.addr); err != nil {
			return err
		}
	}
	switch {
	case f.token == "" || strings.ContainsAny(f.token, " \t\r\n"):
		return usagef("--graph-token must be a non-empty token without spaces")
	case f.noDemo && f.exitAfterDemo:
		return usagef("--no-demo and --exit-after-demo contradict each other")
	case f.demoTimeout <= 0:
		return usagef("--demo-timeout must be positive")
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		return err
	}
	return nil
}

// runDev runs everything in one process for local use: an embedded
// JetStream server, the Graph emulator with demo users, the worker with an
// allow-all policy, and a demo whose results it prints as they arrive.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f devFlags
	fset := newFlagSet("dev", stderr)
	fset.StringVar(&f.natsListen, "nats-listen", "127.0.0.1:4222", "`HOST:PORT` of the embedded NATS server (port 0: any free port)")
	fset.StringVar(&f.graphListen, "graph-listen", "127.0.0.1:8080", "`HOST:PORT` of the Graph emulator (port 0: any free port)")
	fset.StringVar(&f.metricsListen, "metrics-listen", "127.0.0.1:9090", "`HOST:PORT` of /metrics, /healthz and /readyz (a free port is taken when the default is busy)")
	fset.StringVar(&f.ingressListen, "ingress-listen", "127.0.0.1:8090", "`HOST:PORT` of the HTTP ingress (authflow ingress with the development config; port 0: any free port)")
	fset.StringVar(&f.data, "data", "", "keep JetStream's data in `DIR` (default: a temporary directory, removed at exit)")
	fset.StringVar(&f.token, "graph-token", "dev-token", "the bearer token the emulator accepts")
	fset.BoolVar(&f.noDemo, "no-demo", false, "seed the demo users but publish no demo events")
	fset.BoolVar(&f.exitAfterDemo, "exit-after-demo", false, "exit once every demo event has its result: 0 when all are as expected (a smoke test)")
	fset.DurationVar(&f.demoTimeout, "demo-timeout", demoTimeout, "with --exit-after-demo: fail when a result is still missing after this long")
	fset.StringVar(&f.logLevel, "log-level", "warn", "level of the logs on stderr: debug, info, warn or error")
	f.beta.register(fset)
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	fset.Visit(func(fl *flag.Flag) { f.metricsSet = f.metricsSet || fl.Name == "metrics-listen" })
	if err := f.validate(); err != nil {
		return err
	}
	level, _ := parseLevel(f.logLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	p := newResultPrinter(stdout)

	// Bind every port before anything runs: a port that another process
	// (another authflow dev, say) holds fails the start, naming its flag,
	// rather than leaving this one talking to the other's servers.
	var natsHold net.Listener
	if _, port, _ := net.SplitHostPort(f.natsListen); port != "0" {
		ln, err := listen("nats-listen", f.natsListen)
		if err != nil {
			return err
		}
		defer ln.Close()
		natsHold = ln
	}
	graphLn, err := listen("graph-listen", f.graphListen)
	if err != nil {
		return err
	}
	defer graphLn.Close() // in case of an early return; serveHTTP closes it otherwise
	metricsLn, err := listen("metrics-listen", f.metricsListen)
	if err != nil && !f.metricsSet {
		// The default port is often Prometheus' own: take any free one.
		metricsLn, err = listen("metrics-listen", "127.0.0.1:0")
	}
	if err != nil {
		return err
	}
	defer metricsLn.Close() // in case the worker fails to start; Serve closes it otherwise
	ingressLn, err := listen("ingress-listen", f.ingressListen)
	if err != nil {
		return err
	}
	defer ingressLn.Close()

	dataDir := f.data
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "authflow-dev-")
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	} else if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return usagef("--data: %v", err)
	}

	// The embedded JetStream server: one node, every write synced. It
	// binds its port itself: hand the port over at the last moment.
	if natsHold != nil {
		natsHold.Close()
	}
	ns, err := startNATS(f.natsListen, filepath.Join(dataDir, "jetstream"), log)
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()

	// The Graph emulator.
	emu, err := graphclienttest.New(graphclienttest.Options{Token: f.token, Logger: log.With("component", "emulator")})
	if err != nil {
		return fmt.Errorf("graph emulator: %w", err)
	}
	if err := seedDemoUsers(emu); err != nil {
		return err
	}
	graphURL := "http://" + graphLn.Addr().String()
	stopGraph := serveHTTP(graphLn, emu, log)
	defer stopGraph()

	// The worker, with metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := worker.NewMetrics(reg)
	tp, stopTracing, err := startTracing(ctx, "authflow-dev", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	graph, err := graphclient.New(graphclient.Config{
		BaseURL: graphURL + "/v1.0", Token: f.token, Observe: metrics.ObserveGraph, Logger: log.With("component", "graph"),
		TracerProvider: tp,
	})
	if err != nil {
		return fmt.Errorf("graph client: %w", err)
	}
	natsURL := ns.ClientURL()
	nc, err := nats.Connect(natsURL, nats.Name("authflow-dev"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to the embedded NATS server: %w", err)
	}
	defer nc.Close()
	// The worker's seal key lives in the data directory, so that a
	// recipient can pin its public key across restarts with the same --data.
	sealKey, err := loadOrCreateCurveKey(filepath.Join(dataDir, "seal.seed"))
	if err != nil {
		return fmt.Errorf("seal key: %w", err)
	}
	defer sealKey.Wipe()
	sealPub, _ := sealKey.PublicKey()
	// The development approver, trusted by the development policy: an MFA
	// reset of a role holder waits for it (docs/cli.md, authflow approve).
	approverSeed := filepath.Join(dataDir, approverSeedFile)
	approverKey, err := loadOrCreateApproverKey(approverSeed)
	if err != nil {
		return fmt.Errorf("approver key: %w", err)
	}
	approverPub, _ := approverKey.PublicKey()
	approverKey.Wipe() // dev needs only its public key
	policy, err := events.DevPolicyWith(approverPub)
	if err != nil {
		return fmt.Errorf("development policy: %w", err)
	}
	w, err := worker.New(ctx, worker.Config{
		SealKey:         sealKey,
		NATS:            nc,
		Graph:           graph,
		Policy:          policy,
		Decoder:         events.Decoder{DefaultRegion: "US"},
		Instance:        "dev",
		Replicas:        1,
		ShutdownTimeout: 5 * time.Second,
		Logger:          log.With("component", "worker"),
		Metrics:         metrics,
		TracerProvider:  tp,
		// The emulator serves the beta default-method API too.
		BetaDefaultMethod: f.beta.has(betaDefaultMethod),
	})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	stopMetrics := serveHTTP(metricsLn, w.Handler(reg, graph.CheckToken), log)
	defer stopMetrics()

	// The demo's TAP recipient: a curve key whose seed opens the TAP.
	seedPath := filepath.Join(dataDir, "demo-recipient.seed")
	recipient, err := loadOrCreateCurveKey(seedPath)
	if err != nil {
		return fmt.Errorf("demo recipient key: %w", err)
	}
	defer recipient.Wipe()
	sealTo, _ := recipient.PublicKey()

	// Subscribe to every result before anything is published.
	results := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(worker.ResultsSubjectPrefix+">", results)
	if err != nil {
		return fmt.Errorf("subscribe to results: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe to results: %w", err)
	}

	workCtx, stopWork := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- w.Run(workCtx) }()
	// stopWorker stops the worker and waits for it, once; every return
	// path goes through it before the servers it uses are shut down.
	var (
		stopped bool
		runErr  error
	)
	stopWorker := func() error {
		if !stopped {
			stopped = true
			stopWork()
			runErr = <-runDone
		}
		return runErr
	}
	defer stopWorker()

	ing, err := startDevIngress(ctx, ingressLn, nc, reg, log)
	if err != nil {
		return err
	}
	defer ing.Stop()

	metricsURL := "http://" + metricsLn.Addr().String()
	exe, _ := os.Executable()
	cli := cliCommand(exe, exec.LookPath)
	printDevBanner(p, natsURL, graphURL, f.token, metricsURL, dataDir, f.data == "", seedPath, sealPub, approverSeed, approverPub)
	for _, line := range ing.Banner {
		fmt.Fprintln(p.w, line)
	}

	tracker := newDemoTracker()
	seen := map[string]bool{} // result ids printed
	if !f.noDemo {
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		demo := demoEvents(sealTo)
		fmt.Fprintf(stdout, "\npublishing the demo: %d events (joined, moved, device lost, MFA reset, left, an invalid event, a dry run)\n\n", len(demo))
		for _, ev := range demo {
			id := newUUID()
			if err := publishDemo(ctx, js, ev, id); err != nil {
				return err
			}
			tracker.expect(ev.source, id, ev)
		}
	}

	var deadline <-chan time.Time
	if f.exitAfterDemo {
		t := time.NewTimer(f.demoTimeout)
		defer t.Stop()
		deadline = t.C
	}
	announced := f.noDemo
	if announced {
		printNextSteps(p, cli, natsURL, graphURL, metricsURL, seedPath, sealTo, sealPub, approverSeed)
	}
	for {
		select {
		case m := <-results:
			res, err := events.DecodeResult(m.Data)
			if err != nil {
				log.Warn("undecodable result", "subject", m.Subject, "err", err)
				continue
			}
			// A result can be published twice (its Nats-Msg-Id makes the
			// stream keep one; a plain subscription sees both), e.g. when the
			// interactive lane ran an event and its partition then reached it.
			if seen[res.ID] {
				continue
			}
			seen[res.ID] = true
			p.print(res)
			tracker.observe(res)
			if !announced && tracker.complete() {
				announced = true
				fmt.Fprintln(stdout)
				if len(tracker.wrong) == 0 {
					fmt.Fprintln(stdout, p.paint(ansiGreen, fmt.Sprintf("demo: %d/%d results as expected", tracker.total, tracker.total)))
				} else {
					fmt.Fprintln(stdout, p.paint(ansiRed, fmt.Sprintf("demo: %d of %d results NOT as expected: %s", len(tracker.wrong), tracker.total, strings.Join(tracker.wrong, "; "))))
				}
				if f.exitAfterDemo {
					if err := stopWorker(); err != nil {
						return err
					}
					if len(tracker.wrong) > 0 {
						return &exitError{exitFailed, fmt.Errorf("demo: %d result(s) not as expected", len(tracker.wrong))}
					}
					return nil
				}
				printNextSteps(p, cli, natsURL, graphURL, metricsURL, seedPath, sealTo, sealPub, approverSeed)
			}
		case <-deadline:
			_ = stopWorker()
			return &exitError{exitFailed, fmt.Errorf("demo: no result after %s for: %s", f.demoTimeout, strings.Join(tracker.missing(), ", "))}
		case err := <-runDone:
			stopped = true
			if ctx.Err() != nil { // interrupted: the worker saw it first
				fmt.Fprintln(stdout, "\nstopped")
				return interrupted(log, err)
			}
			if err == nil {
				err = errors.New("worker stopped")
			}
			return fmt.Errorf("worker: %w", err)
		case <-ctx.Done():
			fmt.Fprintln(stdout, "\nstopping")
			return interrupted(log, stopWorker())
		}
	}
}

// interrupted is what dev returns when it was asked to stop (Ctrl-C,
// SIGTERM): success, whatever the worker's last error was, since the
// interrupt may land in the middle of its start.
func interrupted(log *slog.Logger, err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("worker stopped with an error", "err", err)
	}
	return nil
}

// startNATS starts the embedded JetStream server on listen (HOST:PORT,
// port 0 = any) with its store in dir.
func startNATS(listen, dir string, log *slog.Logger) (*server.Server, error) {
	host, portStr, _ := net.SplitHostPort(listen)
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, usagef("invalid --nats-listen %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(devNATSOptions(host, port, dir))
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	ns.SetLogger(natsLogger{log.With("component", "nats-server")}, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, usagef("--nats-listen %s: the embedded NATS server did not start (is the port taken?)", listen)
	}
	return ns, nil
}

// devNATSOptions configures the embedded server of authflow dev.
func devNATSOptions(host string, port int, dir string) *server.Options {
	return &server.Options{
		ServerName: "authflow-dev",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: true, // every write reaches the disk before it is acknowledged
		// The largest message the events stream stores: a message the
		// server takes is one the stream takes (see worker.MaxMessageBytes).
		MaxPayload: worker.MaxMessageBytes,
		NoSigs:     true,
		NoLog:      true,
	}
}

// natsLogger sends the embedded server's log to slog.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

// serveHTTP serves h on ln until the returned stop is called.
func serveHTTP(ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("http server", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}

// publishDemo publishes one demo event, as `authflow send` would (the
// invalid one is not validated first, on purpose).
func publishDemo(ctx context.Context, js jetstream.JetStream, ev demoEvent, id string) error {
	raw, err := buildEvent(ev.typ, ev.subject, ev.source, id, []byte(ev.data), ev.dryRun, time.Now())
	if err != nil {
		return fmt.Errorf("demo event %s: %w", ev.name, err)
	}
	key, err := userKey(ev.subject)
	if err != nil {
		return fmt.Errorf("demo event %s: %w", ev.name, err)
	}
	msg := nats.NewMsg(worker.EventSubject(key))
	msg.Data = raw
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, msg, jetstream.WithMsgID(events.EventKey(ev.source, id))); err != nil {
		return fmt.Errorf("publish demo event %s: %w", ev.name, err)
	}
	return nil
}

func printDevBanner(p *resultPrinter, natsURL, graphURL, token, metricsURL, dataDir string, tempData bool, seedPath, sealPub, approverSeed, approverPub string) {
	w := p.w
	fmt.Fprintln(w, p.paint(ansiBold+ansiYellow, "authflow dev: FOR LOCAL USE ONLY. INSECURE: the policy accepts every source and every event type without signatures,"))
	fmt.Fprintln(w, p.paint(ansiBold+ansiYellow, "NATS has no authentication, and Graph is an in-memory emulator. Never point it at a real tenant."))
	fmt.Fprintln(w)
	where := dataDir
	if tempData {
		where += " (temporary; --data DIR keeps it)"
	}
	fmt.Fprintf(w, "  NATS (JetStream):     %s   data in %s\n", natsURL, where)
	fmt.Fprintf(w, "  Graph emulator:       %s/v1.0   token: %s\n", graphURL, token)
	fmt.Fprintf(w, "  emulator admin API:   %s/_emulator/   (users, faults, stats, requests, config)\n", graphURL)
	fmt.Fprintf(w, "  metrics and health:   %s/metrics   %s/healthz   %s/readyz\n", metricsURL, metricsURL, metricsURL)
	fmt.Fprintf(w, "  TAP recipient seed:   %s   (open --seed)\n", seedPath)
	fmt.Fprintf(w, "  worker seal key:      %s   (the sender of sealed secrets: open --expect-sender; seed in %s)\n", sealPub, filepath.Join(dataDir, "seal.seed"))
	fmt.Fprintf(w, "  approver seed:        %s   (the development approver %s: approve --seed)\n", approverSeed, approverPub)
	fmt.Fprintln(w, "  demo users:")
	for _, u := range demoUsers() {
		fmt.Fprintf(w, "    %-33s %s  %s\n", u.upn, u.id, u.story)
	}
}

func printNextSteps(p *resultPrinter, cli, natsURL, graphURL, metricsURL, seedPath, sealTo, sealPub, approverSeed string) {
	w := p.w
	seed := shellQuote(seedPath)
	fmt.Fprintf(w, "\nstill running; results of new events are printed here. Send more events from another terminal:\n")
	fmt.Fprintf(w, "  %s send %s --nats-url %s --subject adele.vance@contoso.example \\\n", cli, events.TypePhoneSet, natsURL)
	fmt.Fprintf(w, "      --data '{\"phoneType\":\"office\",\"phoneNumber\":\"+1 425 555 0199\"}' --wait\n")
	fmt.Fprintf(w, "  %s send %s --nats-url %s --subject lee.gu@contoso.example --wait\n", cli, events.TypeMethodsInventory, natsURL)
	fmt.Fprintf(w, "  %s send %s --nats-url %s --subject nestor.wilke@contoso.example \\\n", cli, events.TypeTAPIssue, natsURL)
	fmt.Fprintf(w, "      --data '{\"lifetimeInMinutes\":60,\"sealTo\":\"%s\"}' --wait\n", sealTo)
	fmt.Fprintf(w, "open a TAP sealed to the demo key (the one command that prints a secret):\n")
	fmt.Fprintf(w, "  %s results --nats-url %s --subject adele.vance@contoso.example --json | %s open --seed %s --expect-sender %s\n", cli, natsURL, cli, seed, sealPub)
	fmt.Fprintf(w, "look around:\n")
	fmt.Fprintf(w, "  metrics:        %s/metrics\n", metricsURL)
	fmt.Fprintf(w, "  a user:         curl %s/_emulator/users/%s\n", graphURL, demoUsers()[0].id)
	fmt.Fprintf(w, "  dead letters:   %s dlq list --nats-url %s\n", cli, natsURL)
	printApprovalSteps(p, cli, natsURL, approverSeed)
	fmt.Fprintln(w, "stop with Ctrl-C.")
}

// cliCommand is how the printed commands run this binary, so that they
// work when pasted: "go run ./cmd/authflow" when it is a temporary binary
// of go run (make run), "authflow" when that is this binary on PATH, and
// otherwise its path (bin/authflow of make build, say).
func cliCommand(exe string, lookPath func(string) (string, error)) string {
	if exe == "" || isGoBuildTemp(exe) {
		return "go run ./cmd/authflow"
	}
	if p, err := lookPath("authflow"); err == nil {
		a, errA := os.Stat(p)
		b, errB := os.Stat(exe)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "authflow"
		}
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, exe); err == nil && filepath.IsLocal(rel) {
			exe = "." + string(filepath.Separator) + rel
		}
	}
	return shellQuote(exe)
}

// isGoBuildTemp reports whether path is in a directory of the go command
// (go-build...: its temporary work directories and its cache).
func isGoBuildTemp(path string) bool {
	for _, part := range strings.Split(filepath.ToSlash(path), "/") {
		if strings.HasPrefix(part, "go-build") {
			return true
		}
	}
	return false
}

// shellQuote quotes s for a POSIX shell when it needs quotes.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@,+=-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
