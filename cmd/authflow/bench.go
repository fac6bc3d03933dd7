package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/authflow/authflow/internal/bench"
)

// Environment of a drain child (see bench.RunDrainChild). The token of the
// emulator goes there rather than on the command line; benchChildEnv lets
// a test binary recognise that it was started as a child (see TestMain).
const (
	benchChildEnv      = "AUTHFLOW_BENCH_CHILD"
	benchChildTokenEnv = "AUTHFLOW_BENCH_CHILD_TOKEN"
)

type benchFlags struct {
	duration     time.Duration
	events       int
	backlog      int
	drainTimeout time.Duration
	latency      time.Duration
	budget       float64
	concurrency  int
	partitions   int
	users        int
	interactive  int
	sync         bool
	quick        bool
	dir          string
	cpuProfile   string
	childProfile string
	logLevel     string

	drainChild    bool
	childNATSURL  string
	childGraphURL string
}

// runBench measures throughput, latency, throttling and memory on this
// machine (see internal/bench and docs/benchmarks.md) and prints a
// Markdown table, then the one-line summary.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f benchFlags
	fs := newFlagSet("bench", stderr)
	fs.DurationVar(&f.duration, "duration", bench.DefaultDuration, "length of each timed measurement (there are six, plus the backlog drain and the interactive scenario)")
	fs.IntVar(&f.events, "events", bench.DefaultEvents, "events drained by the zero-latency throughput measurements (each cut at --duration)")
	fs.IntVar(&f.backlog, "backlog", bench.DefaultBacklog, "events of the backlog whose drain gives the peak RSS")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 0, "bound on the backlog drain (default 4 × --duration)")
	fs.DurationVar(&f.latency, "latency", bench.DefaultLatency, "emulated Graph latency of the concurrency, throttling and latency scenarios")
	fs.Float64Var(&f.budget, "budget", bench.DefaultBudget, "the emulator's Graph request budget in the throttling scenario, requests/s")
	fs.IntVar(&f.concurrency, "concurrency", bench.DefaultConcurrency, "the worker's concurrency (and the bare loop's)")
	fs.IntVar(&f.partitions, "partitions", bench.DefaultPartitions, "the worker's partitions")
	fs.IntVar(&f.users, "users", bench.DefaultUsers, "users seeded in the emulator; events rotate over them")
	fs.IntVar(&f.interactive, "backlog-interactive", bench.DefaultInteractiveBacklog, "bulk events queued before the interactive scenario, whose helpdesk events arrive while they drain")
	fs.BoolVar(&f.sync, "sync", false, "sync every JetStream write to disk (SyncAlways, as authflow dev does); default: the server's 2-minute sync")
	fs.BoolVar(&f.quick, "quick", false, "a smoke run of about ten seconds (defaults scaled down; explicit flags still apply)")
	fs.StringVar(&f.dir, "tmp-dir", "", "`DIR` for the temporary JetStream stores (default the system's)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process to `FILE`")
	fs.StringVar(&f.childProfile, "child-cpuprofile", "", "write a CPU profile of the backlog-draining worker process to `FILE`")
	fs.StringVar(&f.logLevel, "log-level", "info", "level of the progress lines on stderr: debug, info, warn or error")
	fs.BoolVar(&f.drainChild, "drain-child", false, "internal: run as the backlog scenario's worker process")
	fs.StringVar(&f.childNATSURL, "child-nats-url", "", "internal: with --drain-child, the bench's NATS URL")
	fs.StringVar(&f.childGraphURL, "child-graph-url", "", "internal: with --drain-child, the emulator's Graph URL")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	level, err := parseLevel(f.logLevel)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if f.drainChild {
		cc := bench.ChildConfig{NATSURL: f.childNATSURL, GraphURL: f.childGraphURL, Token: os.Getenv(benchChildTokenEnv),
			Concurrency: f.concurrency, Partitions: f.partitions}
		if err := cc.Validate(); err != nil {
			return usagef("--drain-child: %v", err)
		}
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
		return bench.RunDrainChild(ctx, cc, os.Stdin, stdout)
	}

	// Zero means "the default" in bench.Config: refuse it when given.
	for _, fl := range []struct {
		name string
		ok   bool
	}{
		{"duration", f.duration > 0}, {"events", f.events > 0}, {"backlog", f.backlog > 0},
		{"drain-timeout", f.drainTimeout > 0}, {"latency", f.latency > 0}, {"budget", f.budget > 0},
		{"concurrency", f.concurrency > 0}, {"partitions", f.partitions > 0}, {"users", f.users > 0},
		{"backlog-interactive", f.interactive > 0},
	} {
		if set[fl.name] && !fl.ok {
			return usagef("--%s must be positive", fl.name)
		}
	}
	cfg := bench.Config{}
	if f.quick {
		cfg = bench.QuickConfig()
	}
	// Explicit flags win over --quick; without --quick every flag applies.
	apply := func(name string, fn func()) {
		if !f.quick || set[name] {
			fn()
		}
	}
	apply("duration", func() { cfg.Duration = f.duration })
	apply("events", func() { cfg.Events = f.events })
	apply("backlog", func() { cfg.Backlog = f.backlog })
	apply("drain-timeout", func() { cfg.DrainTimeout = f.drainTimeout })
	apply("latency", func() { cfg.Latency = f.latency })
	apply("budget", func() { cfg.Budget = f.budget })
	apply("concurrency", func() { cfg.Concurrency = f.concurrency })
	apply("partitions", func() { cfg.Partitions = f.partitions })
	apply("users", func() { cfg.Users = f.users })
	apply("backlog-interactive", func() { cfg.InteractiveBacklog = f.interactive })
	cfg.Sync, cfg.Dir, cfg.Logger = f.sync, f.dir, log
	if err := cfg.Validate(); err != nil {
		return usagef("invalid settings: %v (authflow bench --help lists the flags)", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find this executable for the drain child: %w", err)
	}
	cfg.ChildCommand = func(ctx context.Context, cc bench.ChildConfig) (*exec.Cmd, error) {
		args := []string{"bench", "--drain-child", "--child-nats-url", cc.NATSURL, "--child-graph-url", cc.GraphURL,
			"--concurrency", strconv.Itoa(cc.Concurrency), "--partitions", strconv.Itoa(cc.Partitions), "--log-level", f.logLevel}
		if f.childProfile != "" {
			args = append(args, "--cpuprofile", f.childProfile)
		}
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Env = append(os.Environ(), benchChildEnv+"=1", benchChildTokenEnv+"="+cc.Token)
		cmd.WaitDelay = 5 * time.Second
		return cmd, nil
	}

	stop, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	log.Info("authflow bench starting", "quick", f.quick, "sync", f.sync)
	r, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, r.Markdown())
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, r.Summary())
	return nil
}

// startCPUProfile profiles this process into file until stop; "" does
// nothing.
func startCPUProfile(file string) (stop func(), err error) {
	if file == "" {
		return func() {}, nil
	}
	pf, err := os.Create(file)
	if err != nil {
		return nil, usagef("--cpuprofile: %v", err)
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		pf.Close()
	}, nil
}
