package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMain lets this test binary stand in for the authflow binary when the
// bench starts it as its drain child (the bench runs os.Executable() with
// benchChildEnv set); otherwise it runs the tests.
func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// benchSummaryRE is the contract of the last line of `authflow bench`.
var benchSummaryRE = regexp.MustCompile(`^bench: overhead_ratio=\d+\.\d+ concurrency_efficiency=\d+\.\d+ speedup_vs_sequential=\d+\.\d+ throttle_utilisation=\d+\.\d+ retry_after_violations=\d+ p99_ms=\d+ rss_mb=\d+ interactive_p99_ms=\d+ drain_vs_limit=\d+\.\d+$`)

// TestBenchQuick is the smoke run of `make test`: the bench runs every
// scenario, the backlog one in a child process, and ends with the summary.
// It checks that the bench works, not how fast authflow is.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("a ten-second bench run")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"bench", "--quick", "--tmp-dir", t.TempDir(), "--log-level", "warn"}, &stdout, &stderr)
	t.Logf("bench --quick took %s", time.Since(start).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := strings.TrimRight(stdout.String(), "\n")
	lines := strings.Split(out, "\n")
	if last := lines[len(lines)-1]; !benchSummaryRE.MatchString(last) {
		t.Fatalf("last line %q does not match %s\nstdout:\n%s", last, benchSummaryRE, out)
	}
	for _, want := range []string{"| # | scenario | figure | value | target |", "peak **RSS** (worker process)", "bare loop events/s", "**interactive_p99**", "**drain_vs_limit**"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(stdout.String()+stderr.String(), "AUTHFLOW_BENCH_CHILD_TOKEN=") {
		t.Error("the child's token leaked into the output")
	}
}

func TestBenchBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"tiny duration", []string{"--duration", "1ms"}, "Duration"},
		{"partitions beyond the server's consumer limit", []string{"--partitions", "1001"}, "Partitions"},
		{"no concurrency", []string{"--concurrency", "0", "--quick"}, "--concurrency"},
		{"zero duration", []string{"--duration", "0s"}, "--duration"},
		{"negative budget", []string{"--budget", "-5"}, "--budget"},
		{"budget beyond the range", []string{"--budget", "1e9"}, "Budget"},
		{"no interactive backlog", []string{"--backlog-interactive", "0"}, "--backlog-interactive"},
		{"interactive backlog too small", []string{"--backlog-interactive", "10"}, "InteractiveBacklog"},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level"},
		{"child without its servers", []string{"--drain-child"}, "--drain-child"},
		{"positional argument", []string{"now"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"bench"}, tt.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and a message naming %s", code, stderr.String(), tt.want)
			}
		})
	}
}
