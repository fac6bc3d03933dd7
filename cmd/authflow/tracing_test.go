package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestDevExportsTraces runs the demo with OTEL_EXPORTER_OTLP_ENDPOINT set
// to an OTLP/HTTP receiver on 127.0.0.1: every demo event arrives as an
// authflow.event span of service authflow-dev, with Graph request spans,
// and no span names a demo user.
func TestDevExportsTraces(t *testing.T) {
	var (
		mu    sync.Mutex
		spans = map[string]int{}
		svc   = map[string]bool{}
		vals  []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil || r.URL.Path != "/v1/traces" {
			t.Errorf("export %s: %v", r.URL.Path, err)
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					svc[kv.Value.GetStringValue()] = true
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans[s.Name]++
					for _, kv := range s.Attributes {
						vals = append(vals, kv.Value.String())
					}
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer recv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")

	code, stdout, stderr := runCLI(t, "dev", "--nats-listen", "127.0.0.1:0", "--graph-listen", "127.0.0.1:0", "--ingress-listen", "127.0.0.1:0",
		"--metrics-listen", "127.0.0.1:0", "--exit-after-demo", "--log-level", "info")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "tracing on") {
		t.Errorf("no start-up line says tracing is on:\n%s", stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if !svc["authflow-dev"] || len(svc) != 1 {
		t.Errorf("services %v, want authflow-dev", svc)
	}
	if spans["authflow.event"] < 7 || spans["graph resolve user"] == 0 || spans["graph create tap"] == 0 || spans["authflow.publish result"] < 7 {
		t.Errorf("spans exported on exit: %v; want an authflow.event and a result publish per demo event, and Graph requests", spans)
	}
	for _, u := range demoUsers() {
		for _, v := range vals {
			if strings.Contains(v, u.upn) || strings.Contains(v, u.id) {
				t.Errorf("a span attribute names demo user %s: %s", u.upn, v)
			}
		}
	}
}

// TestTracingVariableErrors: an OTEL_ variable authflow cannot honour stops
// the worker with exit status 2, naming the variable.
func TestTracingVariableErrors(t *testing.T) {
	policy := writeFile(t, "p.yaml", "version: 1\nsources:\n  hr/workday:\n    types: [\"*\"]\n")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	code, _, stderr := runCLI(t, "worker", "--policy", policy, "--graph-token", "t", "--metrics-listen", "127.0.0.1:0",
		"--nats-url", "nats://127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, "authflow worker: tracing: OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
