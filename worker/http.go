package worker

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics from g, /healthz (the process is alive) and
// /readyz (consuming, NATS connected, streams present, and graphReady — a
// Graph token can be obtained — when it is not nil).
func (w *Worker) Handler(g prometheus.Gatherer, graphReady func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := w.readiness(ctx, graphReady); err != nil {
			http.Error(rw, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	return mux
}

func (w *Worker) readiness(ctx context.Context, graphReady func(context.Context) error) error {
	if !w.cfg.NATS.IsConnected() {
		return fmt.Errorf("NATS not connected")
	}
	if !w.Ready() {
		return fmt.Errorf("not consuming")
	}
	for _, s := range []string{EventsStream, ResultsStream, DLQStream} {
		if _, err := w.js.Stream(ctx, s); err != nil {
			return fmt.Errorf("stream %s: %w", s, err)
		}
	}
	if graphReady != nil {
		if err := graphReady(ctx); err != nil {
			return fmt.Errorf("graph token: %w", err)
		}
	}
	return nil
}
