package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// summaryRE is the contract of the summary line.
var summaryRE = regexp.MustCompile(`^bench: overhead_ratio=\d+\.\d{2} concurrency_efficiency=\d+\.\d{2} speedup_vs_sequential=\d+\.\d throttle_utilisation=\d+\.\d{2} retry_after_violations=\d+ p99_ms=\d+ rss_mb=\d+ interactive_p99_ms=\d+ drain_vs_limit=\d+\.\d{2}$`)

func TestSummary(t *testing.T) {
	r := &Report{
		Overhead:    Overhead{Ratio: 0.614},
		Concurrency: Concurrency{Efficiency: 0.956, Speedup: 30.94},
		Throttling:  Throttling{Utilisation: 0.9349, RetryAfterViolations: 2},
		Latency:     Latency{P99: 187600 * time.Microsecond},
		Memory:      Memory{PeakRSSMB: 63.6},
		Interactive: Interactive{Free: LatencyStats{P99: 1234400 * time.Microsecond}, DrainVsLimit: 0.9149},
	}
	got := r.Summary()
	want := "bench: overhead_ratio=0.61 concurrency_efficiency=0.96 speedup_vs_sequential=30.9 throttle_utilisation=0.93 retry_after_violations=2 p99_ms=188 rss_mb=64 interactive_p99_ms=1234 drain_vs_limit=0.91"
	if got != want {
		t.Fatalf("Summary()\n got %s\nwant %s", got, want)
	}
	if !summaryRE.MatchString(got) {
		t.Fatalf("Summary() %q does not match %s", got, summaryRE)
	}
	if got := (&Report{}).Summary(); !summaryRE.MatchString(got) {
		t.Fatalf("zero Summary() %q does not match %s", got, summaryRE)
	}
}

func TestMarkdownMarksTargets(t *testing.T) {
	r := &Report{
		Config:      Config{}.withDefaults(),
		Overhead:    Overhead{Ratio: 0.3, Rounds: 3},
		Concurrency: Concurrency{Efficiency: 0.95},
		Throttling:  Throttling{Utilisation: 0.95, Share429: 0.05},
		Latency:     Latency{P99: 300 * time.Millisecond, Bound: 200 * time.Millisecond},
		Memory:      Memory{PeakRSSMB: 60, Ready: 400 * time.Millisecond},
		Interactive: Interactive{Free: LatencyStats{Events: 3, P50: 600 * time.Millisecond, P99: 1500 * time.Millisecond},
			Queued: LatencyStats{Events: 2}, WithinBound: 1, PerEvent: 150 * time.Millisecond, Limit: 200, DrainVsLimit: 0.95},
	}
	md := r.Markdown()
	for _, want := range []string{
		"| 1 |  | **overhead_ratio** = worker / bare (median of 3 alternating turns) | 0.30 | ≥ 0.6 ❌ |",
		"| 2 |  | **concurrency_efficiency** = measured / theoretical | 0.95 | ≥ 0.9 ✅ |",
		"| 3 |  | share of requests answered 429 | 5.00% | ≤ 2% ❌ |",
		"| 4 |  | publish-to-result **p99** (max) | 300 ms (0 ms) | ≤ 200 ms ❌ |",
		"| 5 |  | start to ready | 400 ms | < 1 s ✅ |",
		"| nothing queued (3 events): p50 | 600 ms | ≤ 500 ms ❌ |",
		"| 6 |  | nothing queued: **interactive_p99** (max) | 1500 ms (0 ms) | ≤ 2000 ms ✅ |",
		"| 6 |  | bulk queued: within (k+1) × 150 ms + 2 s | 1 of 2 | all ❌ |",
		"| 6 |  | **drain_vs_limit** = bulk / scenario 2's theoretical 200.0 | 0.95 | ≥ 0.9 ✅ |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown() lacks %q:\n%s", want, md)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted on purpose
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 99, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"median of odd", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p0 is the min", ms(hundred...), 0, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Fatalf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Fatal("percentile reordered its input")
			}
		})
	}
}

func TestSteadyRate(t *testing.T) {
	start := time.Unix(1000, 0)
	// every ms one result, after a 1 s ramp-up
	even := func(n int) []time.Time {
		out := make([]time.Time, n)
		for i := range out {
			out[i] = start.Add(time.Second + time.Duration(i)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		name     string
		arrivals []time.Time
		expected int
		want     float64
	}{
		{"none", nil, 100, 0},
		{"full drain ignores the ramp-up", even(1000), 1000, 1000},
		{"cut short: the window ends at the last", even(600), 1000, 1000},
		{"too few for a window: count over time since start", even(5), 1000, 5 / 1.004},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := steadyRate(start, tt.arrivals, tt.expected)
			if d := got - tt.want; d > 0.01*tt.want+1e-9 || d < -0.01*tt.want-1e-9 {
				t.Fatalf("steadyRate = %.2f, want %.2f", got, tt.want)
			}
		})
	}
}

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"linux", "Name:\tauthflow\nVmPeak:\t  812345 kB\nVmHWM:\t   65432 kB\nVmRSS:\t   60000 kB\n", 65432, false},
		{"missing", "Name:\tauthflow\nVmRSS:\t   60000 kB\n", 0, true},
		{"no unit", "VmHWM:\t65432\n", 0, true},
		{"not a number", "VmHWM:\tlots kB\n", 0, true},
		{"negative", "VmHWM:\t-1 kB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVmHWM([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseVmHWM = %d, %v; want %d, error %t", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if n, err := peakRSSKB(); err == nil && n <= 0 {
		t.Fatalf("peakRSSKB() = %d on a system that has /proc", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"defaults", Config{}, ""},
		{"quick", QuickConfig(), ""},
		{"tiny duration", Config{Duration: time.Millisecond}, "Duration"},
		{"few events", Config{Events: 10}, "Events"},
		{"small backlog", Config{Backlog: 5}, "Backlog"},
		{"negative latency", Config{Latency: -time.Millisecond}, "Latency"},
		{"huge latency", Config{Latency: time.Minute}, "Latency"},
		{"fractional latency", Config{Latency: 1500 * time.Microsecond}, "Latency"},
		{"too many users to seed", Config{Users: 300_000}, "Users"},
		{"zero budget is the default", Config{Budget: 0}, ""},
		{"negative budget", Config{Budget: -1}, "Budget"},
		{"too many partitions for a default server", Config{Partitions: 1001}, "Partitions"},
		{"negative concurrency", Config{Concurrency: -3}, "Concurrency"},
		{"few users", Config{Users: 3}, "Users"},
		{"small interactive backlog", Config{InteractiveBacklog: 50}, "InteractiveBacklog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// TestEvents checks that the bench's events are valid phone.set events that
// each change the number the user has at that point of the sequence.
func TestEvents(t *testing.T) {
	const users = 7
	dec := events.Decoder{DefaultRegion: "US"}
	current := map[int]string{}
	keys := map[string]bool{}
	for u := range users {
		current[u] = phoneNumber(u, 0)
		if !guidRE.MatchString(userID(u)) || !worker.ValidKey(userID(u)) {
			t.Fatalf("userID(%d) = %q is not a valid key", u, userID(u))
		}
		keys[userID(u)] = true
	}
	if len(keys) != users {
		t.Fatalf("userID is not injective: %d keys for %d users", len(keys), users)
	}
	for n := range 3 * users {
		ev, err := newEvent("r", n, users, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.Decode(ev.raw)
		if err != nil {
			t.Fatalf("event %d does not decode: %v\n%s", n, err, ev.raw)
		}
		plan, err := events.Plan(got)
		if err != nil {
			t.Fatal(err)
		}
		u := n % users
		if len(plan) != 1 || plan[0].Kind != events.OpEnsurePhone || plan[0].Phone.Type != phoneType {
			t.Fatalf("event %d plans %v, want one ensurePhone of the mobile", n, plan)
		}
		if plan[0].Phone.Number == current[u] {
			t.Fatalf("event %d sets the number user %d already has: nothing would be written", n, u)
		}
		current[u] = plan[0].Phone.Number
		if got.User.ObjectID != userID(u) || ev.subject != worker.EventSubject(userID(u)) {
			t.Fatalf("event %d targets %q on %q, want user %d", n, got.User.ObjectID, ev.subject, u)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestWorkerAndBareLoopMakeTheSameRequests is the fairness check of the
// overhead figure: for the same events, the worker and the bare loop send
// the emulator exactly the same requests, and every event succeeds.
func TestWorkerAndBareLoopMakeTheSameRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("starts JetStream twice")
	}
	cfg := Config{Duration: 20 * time.Second, Concurrency: 4, Partitions: 8, Users: 40, Dir: t.TempDir(), Logger: testLogger(t)}.withDefaults()
	const n = 120 // three rounds over the users: every event still writes
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	requests := map[string]map[string]map[string]int{}
	for name, start := range map[string]consumerFunc{"worker": workerConsumer(cfg), "bare": bareConsumerFunc(cfg)} {
		e, err := newEnv(ctx, envConfig{parentDir: cfg.Dir, users: cfg.Users, partitions: cfg.Partitions, log: cfg.Logger})
		if err != nil {
			t.Fatal(err)
		}
		defer e.close()
		if err := e.publishBacklog(ctx, "f", 0, n); err != nil {
			t.Fatal(err)
		}
		tl, err := e.countResults(n, true)
		if err != nil {
			t.Fatal(err)
		}
		stop, err := start(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		reached := tl.wait(ctx, time.Now().Add(30*time.Second))
		if err := stop(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reached {
			t.Fatalf("%s: %d of %d results", name, tl.count(), n)
		}
		if err := tl.checkResults(name); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			ev, _ := newEvent("f", i, cfg.Users, time.Now())
			if _, ok := tl.arrivalOf(ev.id); !ok {
				t.Fatalf("%s: no result for event %s", name, ev.id)
			}
		}
		s := e.emu.Stats()
		if total, ok := graphRequests(s); total != 3*n || ok != 3*n {
			t.Fatalf("%s: %d requests (%d ok) for %d events, want 3 per event: %v", name, total, ok, n, s.Requests)
		}
		requests[name] = s.Requests
		// Every user ends with the number of the last round: rounds 0, 1
		// and 2 set variants 1, 0 and 1.
		for u := range cfg.Users {
			if got, want := mobileOf(t, e, u), phoneNumber(u, 1); got != want {
				t.Fatalf("%s: user %d has %q, want %q", name, u, got, want)
			}
		}
	}
	if !maps.EqualFunc(requests["worker"], requests["bare"], maps.Equal) {
		t.Fatalf("the bare loop's requests differ from the worker's:\nworker %v\nbare   %v", requests["worker"], requests["bare"])
	}
}

func TestScriptMakesThreeRequestsPerEvent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := newEnv(ctx, envConfig{users: 10, noNATS: true, log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	done, err := runScript(ctx, e.graphURL, e.token, 10, 0, 25, time.Now().Add(20*time.Second))
	if err != nil || done != 25 {
		t.Fatalf("runScript = %d, %v; want 25", done, err)
	}
	if total, ok := graphRequests(e.emu.Stats()); total != 75 || ok != 75 {
		t.Fatalf("%d requests (%d ok) for 25 events, want 75", total, ok)
	}
}

// TestDrainChild runs the child side in this process, with pipes.
func TestDrainChild(t *testing.T) {
	if testing.Short() {
		t.Skip("starts JetStream")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := newEnv(ctx, envConfig{parentDir: t.TempDir(), users: 20, partitions: 4, log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	const n = 50
	if err := e.publishBacklog(ctx, "c", 0, n); err != nil {
		t.Fatal(err)
	}
	tl, err := e.countResults(n, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.stop()

	stdinR, stdinW := io.Pipe()
	stdout := &tailBuffer{max: 1 << 20}
	done := make(chan error, 1)
	cc := ChildConfig{NATSURL: e.ns.ClientURL(), GraphURL: e.graphURL, Token: e.token, Concurrency: 4, Partitions: 4}
	go func() { done <- RunDrainChild(ctx, cc, stdinR, stdout) }()
	if !tl.wait(ctx, time.Now().Add(30*time.Second)) {
		t.Fatalf("%d of %d results", tl.count(), n)
	}
	stdinW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("child wrote %q, want two lines", stdout.String())
	}
	var ready, final childMessage
	if err := json.Unmarshal([]byte(lines[0]), &ready); err != nil || !ready.Ready {
		t.Fatalf("first line %q, want ready", lines[0])
	}
	if err := json.Unmarshal([]byte(lines[1]), &final); err != nil || final.PeakRSSKB <= 0 || final.Error != "" {
		t.Fatalf("last line %q, want the peak RSS", lines[1])
	}
	if err := RunDrainChild(ctx, ChildConfig{}, strings.NewReader(""), io.Discard); err == nil {
		t.Fatal("RunDrainChild accepted an empty config")
	}
}

// mobileOf returns the number of user u's mobile phone in the emulator.
func mobileOf(t *testing.T, e *env, u int) string {
	t.Helper()
	got, ok := e.emu.User(userID(u))
	if !ok {
		t.Fatalf("user %d is gone", u)
	}
	for _, raw := range got.Methods {
		var m struct{ PhoneNumber, PhoneType string }
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if m.PhoneType == phoneType {
			return m.PhoneNumber
		}
	}
	t.Fatalf("user %d has no mobile phone", u)
	return ""
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"0123", "4567", "89ab"} {
		if _, err := b.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.String(); got != "456789ab" {
		t.Fatalf("tail = %q, want the last 8 bytes", got)
	}
	var big bytes.Buffer
	big.WriteString(strings.Repeat("x", 100))
	b.Write(big.Bytes())
	if got := b.String(); got != strings.Repeat("x", 8) {
		t.Fatalf("tail = %q", got)
	}
}

func TestGraphRequests(t *testing.T) {
	s := graphclienttest.Stats{Requests: map[string]map[string]int{
		"GET /users/{id}":   {"200": 5, "429": 2},
		"PATCH /x/{id}":     {"204": 3, "0": 1},
		"DELETE /x/{id}/ok": {"404": 1},
	}}
	if total, ok := graphRequests(s); total != 12 || ok != 8 {
		t.Fatalf("graphRequests = %d, %d; want 12, 8", total, ok)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("median reordered %v", in)
		}
	}
}

// TestInteractiveEvents checks that the interactive scenario's events come
// from a source the bench worker's policy classes interactive, and write a
// number no bulk event sets.
func TestInteractiveEvents(t *testing.T) {
	if got := events.DevPolicy().Priority(interactiveSource); got != events.PriorityInteractive {
		t.Fatalf("the dev policy classes %q as %q, want interactive", interactiveSource, got)
	}
	if got := events.DevPolicy().Priority(eventSource); got != events.PriorityBulk {
		t.Fatalf("the dev policy classes %q as %q, want bulk", eventSource, got)
	}
	ev, err := phoneEvent(interactiveSource, "iq-0", 3, interactiveNumber(3), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decoder{DefaultRegion: "US"}.Decode(ev.raw)
	if err != nil {
		t.Fatalf("interactive event does not decode: %v\n%s", err, ev.raw)
	}
	if got.Source != interactiveSource || got.User.ObjectID != userID(3) {
		t.Fatalf("event from %q for %q, want %q for %q", got.Source, got.User.ObjectID, interactiveSource, userID(3))
	}
	if want := events.EventKey(interactiveSource, "iq-0"); ev.message().Header.Get("Nats-Msg-Id") != want {
		t.Fatalf("Nats-Msg-Id %q, want %q", ev.message().Header.Get("Nats-Msg-Id"), want)
	}
	plan, err := events.Plan(got)
	if err != nil {
		t.Fatal(err)
	}
	if n := plan[0].Phone.Number; n == phoneNumber(3, 0) || n == phoneNumber(3, 1) || n == interactiveNumber(4) {
		t.Fatalf("interactive number %q collides with a bulk or another user's number", n)
	}
}

func TestInteractiveFigures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	const users, n = 2, 6 // user 0: b-0, b-2, b-4; user 1: b-1, b-3, b-5
	arrivals := map[string]time.Time{
		"b-0": at(100), "b-1": at(200), "b-2": at(300), // before the first interactive event
		"b-3": at(700), "b-4": at(1200), "b-5": at(1300), // b-3 brought forward by iq-0; b-4, b-5 after
		"if-0": at(650), "iq-0": at(900), "if-1": at(1150),
	}
	sent := []interactiveSent{
		{id: "if-0", user: 2, at: at(500)},
		{id: "iq-0", user: 1, queued: true, at: at(600)},
		{id: "if-1", user: 3, at: at(1000)},
	}
	in, err := interactiveFigures(arrivals, sent, n, users, 150*time.Millisecond, 10)
	if err != nil {
		t.Fatal(err)
	}
	// iq-0 at 600 ms: user 1's b-3 (700) and b-5 (1300) came after it.
	if in.Free.Events != 2 || in.Free.P99 != 150*time.Millisecond || in.Free.P50 != 150*time.Millisecond {
		t.Errorf("free = %+v, want 2 events of 150 ms", in.Free)
	}
	if in.Queued.Events != 1 || in.Queued.P99 != 300*time.Millisecond || in.InheritedMax != 2 || in.InheritedMean != 2 || in.WithinBound != 1 {
		t.Errorf("queued = %+v, inherited mean %v max %d, within %d; want 1 event of 300 ms, k = 2, within", in.Queued, in.InheritedMean, in.InheritedMax, in.WithinBound)
	}
	// Window 500..1000 ms: only b-3 (700 ms) arrived in it: 2 events/s of a limit of 10.
	if in.Window != 500*time.Millisecond || in.BulkRate != 2 || in.DrainVsLimit != 0.2 {
		t.Errorf("window %s, bulk %v/s, drain_vs_limit %v; want 500ms, 2, 0.2", in.Window, in.BulkRate, in.DrainVsLimit)
	}
	if _, err := interactiveFigures(map[string]time.Time{}, sent, n, users, 150*time.Millisecond, 10); err == nil {
		t.Error("no error for an interactive event without a result")
	}
}
