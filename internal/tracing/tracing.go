// Package tracing builds the process's OpenTelemetry tracer provider from
// the standard OTEL_* environment variables: OTLP over HTTP when an OTLP
// endpoint is set, nothing otherwise.
package tracing

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// FromEnv returns the tracer provider that the OTEL_* variables read by
// getenv describe, and a shutdown that flushes it. It is nil (tracing off,
// at no cost) unless OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set or OTEL_TRACES_EXPORTER is
// otlp, and always when OTEL_SDK_DISABLED is true or OTEL_TRACES_EXPORTER
// is none. Spans go by OTLP over HTTP (http/protobuf) in batches; the
// exporter, batch and sampler variables (OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_BSP_*, OTEL_TRACES_SAMPLER, ...) work as the specification says;
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override service, the
// default service.name. A variable with a value authflow cannot honour is
// an error that names it.
func FromEnv(ctx context.Context, getenv func(string) string, service, version string) (trace.TracerProvider, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	if v := getenv("OTEL_SDK_DISABLED"); v != "" {
		disabled, err := strconv.ParseBool(v)
		if err != nil {
			return nil, off, fmt.Errorf("OTEL_SDK_DISABLED must be true or false, got %q", v)
		}
		if disabled {
			return nil, off, nil
		}
	}
	switch v := getenv("OTEL_TRACES_EXPORTER"); v {
	case "none":
		return nil, off, nil
	case "", "otlp":
		if v == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, off, nil
		}
	default:
		return nil, off, fmt.Errorf("OTEL_TRACES_EXPORTER must be otlp or none, got %q (authflow exports traces by OTLP only)", v)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := getenv(name); v != "" {
			if v != "http/protobuf" {
				return nil, off, fmt.Errorf("%s must be http/protobuf, got %q (authflow sends OTLP over HTTP: point it at the collector's HTTP port, 4318 by default)", name, v)
			}
			break // the signal's own variable wins
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := getenv(name); v != "" {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, off, fmt.Errorf("%s must be an http(s) URL such as http://otel-collector:4318, got %q", name, v)
			}
		}
	}
	if v := getenv("OTEL_TRACES_SAMPLER"); v != "" && !validSampler(v) {
		return nil, off, fmt.Errorf("OTEL_TRACES_SAMPLER must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, got %q", v)
	}

	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, off, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, off, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER, by default parent-based:
	// an event whose traceparent is not sampled records nothing.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp, tp.Shutdown, nil
}

func validSampler(v string) bool {
	switch strings.TrimSpace(v) {
	case "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio":
		return true
	}
	return false
}
