package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/worker"
)

// workerRun is a worker wired as `authflow worker` wires it: its own NATS
// connection, a Graph client with default settings observed by the
// worker's metrics on a registry with the Go and process collectors, and a
// JSON logger at info level (writing to io.Discard: the formatting is
// paid, the I/O is not).
type workerRun struct {
	w      *worker.Worker
	nc     *nats.Conn
	graph  *graphclient.Client
	cancel context.CancelFunc
	done   chan error
}

type workerSpec struct {
	natsURL     string
	graphURL    string
	token       string
	concurrency int
	partitions  int
}

// startWorker creates the worker (worker.New: topology and all) and starts
// Run. It returns once Run has been started, not once it is ready.
func startWorker(ctx context.Context, s workerSpec) (*workerRun, error) {
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := worker.NewMetrics(reg)
	// As authflow worker does: as many Graph requests in flight as events.
	maxL := min(s.concurrency, graphclient.MaxThrottleLimit)
	throttle, err := graphclient.NewThrottle(graphclient.ThrottleConfig{MaxLimit: maxL, InitialLimit: min(maxL, graphclient.DefaultThrottleMaxLimit)})
	if err != nil {
		return nil, fmt.Errorf("bench graph throttle: %w", err)
	}
	graph, err := graphclient.New(graphclient.Config{
		BaseURL: s.graphURL, Token: s.token, Observe: metrics.ObserveGraph, Logger: log.With("component", "graph"),
		Throttle: throttle,
	})
	if err != nil {
		return nil, fmt.Errorf("bench graph client: %w", err)
	}
	nc, err := nats.Connect(s.natsURL, nats.Name("authflow-bench-worker"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("bench worker connect: %w", err)
	}
	w, err := worker.New(ctx, worker.Config{
		NATS:            nc,
		Graph:           graph,
		Policy:          events.DevPolicy(),
		Decoder:         events.Decoder{DefaultRegion: "US"},
		Instance:        "bench",
		Partitions:      s.partitions,
		Concurrency:     s.concurrency,
		Replicas:        1,
		ShutdownTimeout: 10 * time.Second,
		Logger:          log,
		Metrics:         metrics,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench worker: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	r := &workerRun{w: w, nc: nc, graph: graph, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(runCtx) }()
	return r, nil
}

// waitReady polls Ready until it holds or ctx ends. Run flips it as soon as
// every partition is being pulled, so a millisecond poll costs nothing.
func (r *workerRun) waitReady(ctx context.Context) error {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for !r.w.Ready() {
		select {
		case err := <-r.done:
			r.done <- err
			return fmt.Errorf("bench worker stopped before it was ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("bench worker not ready: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// stop cancels Run, waits for it (it finishes the events in flight) and
// closes the connection.
func (r *workerRun) stop() error {
	r.cancel()
	err := <-r.done
	r.nc.Close()
	if err != nil {
		return fmt.Errorf("bench worker: %w", err)
	}
	return nil
}

// runScript is what a script does: for one change after another, resolve
// the user, list the methods and patch the phone, through the same Graph
// client as the worker, with no queue, ledger or result. It runs events
// first, first+1, ... until the deadline or max events, and returns how
// many it did.
func runScript(ctx context.Context, graphURL, token string, users, first, max int, deadline time.Time) (int, error) {
	graph, err := graphclient.New(graphclient.Config{BaseURL: graphURL, Token: token})
	if err != nil {
		return 0, fmt.Errorf("bench script graph client: %w", err)
	}
	done := 0
	for n := first; done < max && time.Now().Before(deadline); n++ {
		u := n % users
		want := phoneNumber(u, 1-(n/users)%2)
		user, err := graph.ResolveUser(ctx, userID(u))
		if err != nil {
			return done, fmt.Errorf("bench script: %w", err)
		}
		ms, err := graph.Methods(ctx, user.ID)
		if err != nil {
			return done, fmt.Errorf("bench script: %w", err)
		}
		found := false
		for _, m := range ms {
			if m.Kind != graphclient.KindPhone || m.PhoneType != graphclient.PhoneType(phoneType) {
				continue
			}
			found = true
			if m.PhoneNumber != want {
				if err := graph.UpdatePhone(ctx, user.ID, m.ID, want); err != nil {
					return done, fmt.Errorf("bench script: %w", err)
				}
			}
			break
		}
		if !found {
			return done, fmt.Errorf("bench script: user %s has no %s phone", user.ID, phoneType)
		}
		done++
	}
	return done, nil
}
