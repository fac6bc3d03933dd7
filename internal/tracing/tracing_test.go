package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnvOff(t *testing.T) {
	const ep = "http://127.0.0.1:4318"
	for name, vars := range map[string]map[string]string{
		"nothing set":    {},
		"sdk disabled":   {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": ep},
		"exporter none":  {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ep},
		"only a sampler": {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_SERVICE_NAME": "x"},
	} {
		t.Run(name, func(t *testing.T) {
			tp, shutdown, err := FromEnv(t.Context(), env(vars), "authflow-worker", "v0")
			if err != nil || tp != nil {
				t.Fatalf("FromEnv = %v, %v; want no provider", tp, err)
			}
			if err := shutdown(t.Context()); err != nil {
				t.Errorf("shutdown of nothing: %v", err)
			}
		})
	}
}

func TestFromEnvErrors(t *testing.T) {
	const ep = "http://127.0.0.1:4318"
	for _, c := range []struct {
		vars map[string]string
		want string // the variable the error must name
	}{
		{map[string]string{"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "ftp://collector"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": ep, "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
	} {
		t.Run(c.want, func(t *testing.T) {
			tp, _, err := FromEnv(t.Context(), env(c.vars), "authflow-worker", "v0")
			if err == nil || tp != nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("FromEnv(%v) = %v, %v; want an error naming %s", c.vars, tp, err, c.want)
			}
		})
	}
}

// TestFromEnvExports: with OTEL_EXPORTER_OTLP_ENDPOINT set, a span reaches
// an OTLP/HTTP receiver at /v1/traces on shutdown, under the default
// service name unless OTEL_SERVICE_NAME says otherwise.
func TestFromEnvExports(t *testing.T) {
	var (
		mu   sync.Mutex
		reqs []*collectortrace.ExportTraceServiceRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
			t.Errorf("export: %s %s %s (%d bytes)", r.Method, r.URL.Path, r.Header.Get("Content-Type"), len(body))
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		reqs = append(reqs, &req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)

	for _, c := range []struct{ serviceEnv, want string }{{"", "authflow-worker"}, {"hr-automation", "hr-automation"}} {
		t.Setenv("OTEL_SERVICE_NAME", c.serviceEnv)
		mu.Lock()
		reqs = nil
		mu.Unlock()
		tp, shutdown, err := FromEnv(context.Background(), os.Getenv, "authflow-worker", "v1.2.3")
		if err != nil || tp == nil {
			t.Fatalf("FromEnv = %v, %v", tp, err)
		}
		_, span := tp.Tracer("test").Start(context.Background(), "hello")
		span.End()
		if err := shutdown(context.Background()); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		mu.Lock()
		var names, services []string
		for _, r := range reqs {
			for _, rs := range r.ResourceSpans {
				for _, kv := range rs.Resource.Attributes {
					if kv.Key == "service.name" {
						services = append(services, kv.Value.GetStringValue())
					}
				}
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						names = append(names, s.Name)
					}
				}
			}
		}
		mu.Unlock()
		if len(names) != 1 || names[0] != "hello" || len(services) != 1 || services[0] != c.want {
			t.Errorf("OTEL_SERVICE_NAME=%q: exported spans %v of services %v, want [hello] of [%s]", c.serviceEnv, names, services, c.want)
		}
	}
}
