package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/authflow/authflow/internal/tracing"
	"github.com/authflow/authflow/worker"
)

// startTracing builds the tracer provider the OTEL_* variables describe
// (nil: tracing off). stop flushes what is buffered, within a few seconds.
// A variable authflow cannot honour is a usage error naming it.
func startTracing(ctx context.Context, service string, log *slog.Logger) (tp trace.TracerProvider, stop func(), err error) {
	bi, _ := debug.ReadBuildInfo()
	tp, shutdown, err := tracing.FromEnv(ctx, os.Getenv, service, buildVersion(worker.Version, bi).Version)
	if err != nil {
		return nil, func() {}, usagef("tracing: %v", err)
	}
	if tp == nil {
		return nil, func() {}, nil
	}
	// Export failures (collector down) are reported through the SDK's one
	// error handler; put them in the process's log instead of plain stderr.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	log.Info("tracing on: spans go by OTLP/HTTP", "service", service,
		"endpoint", redactURL(firstNonEmpty(os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://localhost:4318")))
	return tp, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			log.Warn("tracing: flushing spans failed", "err", err)
		}
	}, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
