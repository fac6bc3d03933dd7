package limits

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authflow/authflow/events"
)

func startNATS(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "limits-test", Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// client is one replica's connection and limiter.
func client(t testing.TB, s *server.Server, cfg Config) (*Limiter, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxWindow == 0 {
		cfg.MaxWindow = 24 * time.Hour
	}
	l, err := Open(testCtx(t), js, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, js
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rule(name, per string, max int, window time.Duration) events.LimitRule {
	return events.LimitRule{Name: name, Per: per, Max: max, Window: window}
}

const userID = "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9c"

// TestTakeExactUnderConcurrency is the test: two replicas, 50
// concurrent MFA resets for one user, a limit of 2 per 24 h: exactly 2 are
// allowed, whatever the interleaving, and the counter holds exactly them.
func TestTakeExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := startNATS(t)
	reg := prometheus.NewRegistry()
	r := rule("mfa-resets-per-user", events.LimitPerUser, 2, 24*time.Hour)
	metrics := NewMetrics(reg, []events.LimitRule{r})
	a, _ := client(t, s, Config{Metrics: metrics})
	b, _ := client(t, s, Config{Metrics: metrics})
	check := []events.LimitCheck{{Rule: r, Scope: userID}}
	ctx := testCtx(t)
	var allowed, refused atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := l.Take(ctx, events.EventKey("helpdesk/servicenow", "reset-"+strconv.Itoa(i)), check)
			switch {
			case err != nil:
				t.Errorf("Take: %v", err)
			case d.Allowed:
				allowed.Add(1)
			default:
				refused.Add(1)
				if d.Refused.Rule.Name != r.Name || d.Count != 2 || events.CodeOf(d.Err()) != events.CodeRateLimited {
					t.Errorf("refusal %+v, err %v", d, d.Err())
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if allowed.Load() != 2 || refused.Load() != 48 {
		t.Fatalf("allowed %d, refused %d; want exactly 2 and 48", allowed.Load(), refused.Load())
	}
	if n, err := a.Count(ctx, check[0]); err != nil || n != 2 {
		t.Errorf("Count = %d, %v; want 2", n, err)
	}
	if got := testutil.ToFloat64(metrics.refused.WithLabelValues(r.Name)); got != 48 {
		t.Errorf("authflow_rate_limited_total{rule=%q} = %v, want 48", r.Name, got)
	}
}

// TestTakeIdempotent: a redelivered event is counted once and keeps its
// answer; another user has a counter of its own.
func TestTakeIdempotent(t *testing.T) {
	t.Parallel()
	s := startNATS(t)
	l, _ := client(t, s, Config{})
	ctx := testCtx(t)
	r := rule("taps", events.LimitPerUser, 1, time.Hour)
	check := []events.LimitCheck{{Rule: r, Scope: userID}}
	first := events.EventKey("hd", "1")
	for range 3 {
		if d, err := l.Take(ctx, first, check); err != nil || !d.Allowed {
			t.Fatalf("redelivery of the counted event: %+v, %v", d, err)
		}
	}
	if d, _ := l.Take(ctx, events.EventKey("hd", "2"), check); d.Allowed {
		t.Fatal("a second event passed a limit of 1")
	}
	if d, _ := l.Take(ctx, events.EventKey("hd", "2"), check); d.Allowed {
		t.Fatal("a refused event passed on redelivery")
	}
	other := []events.LimitCheck{{Rule: r, Scope: "0a1b2c3d-0000-4000-8000-00000000000a"}}
	if d, _ := l.Take(ctx, events.EventKey("hd", "3"), other); !d.Allowed {
		t.Fatal("another user shares the counter")
	}
	if n, _ := l.Count(ctx, check[0]); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
}

// TestTakeAllOrNothing: when a later rule refuses, the event is taken out
// of the earlier counters, so a refused event uses up nobody's budget.
func TestTakeAllOrNothing(t *testing.T) {
	t.Parallel()
	s := startNATS(t)
	l, _ := client(t, s, Config{})
	ctx := testCtx(t)
	perUser := events.LimitCheck{Rule: rule("per-user", events.LimitPerUser, 5, time.Hour), Scope: userID}
	perAgent := events.LimitCheck{Rule: rule("per-agent", events.LimitPerRequester, 1, time.Hour), Scope: "agent.smith@contoso.com"}
	checks := []events.LimitCheck{perUser, perAgent}
	if d, err := l.Take(ctx, events.EventKey("hd", "1"), checks); err != nil || !d.Allowed {
		t.Fatalf("first: %+v %v", d, err)
	}
	d, err := l.Take(ctx, events.EventKey("hd", "2"), checks)
	if err != nil || d.Allowed || d.Refused.Rule.Name != "per-agent" {
		t.Fatalf("second: %+v %v; want refused by per-agent", d, err)
	}
	if n, _ := l.Count(ctx, perUser); n != 1 {
		t.Errorf("per-user counter holds %d events, want 1 (the refused one taken out)", n)
	}
	if err := l.Release(ctx, events.EventKey("hd", "1"), checks); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.Count(ctx, perAgent); n != 0 {
		t.Errorf("after Release: %d", n)
	}
	if err := l.Release(ctx, events.EventKey("hd", "never"), checks); err != nil {
		t.Errorf("releasing an event never counted: %v", err)
	}
}

// TestSlidingWindow: an event leaves the count exactly one window after it
// was counted.
func TestSlidingWindow(t *testing.T) {
	t.Parallel()
	s := startNATS(t)
	var mu sync.Mutex
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	l, _ := client(t, s, Config{Now: clock})
	ctx := testCtx(t)
	check := []events.LimitCheck{{Rule: rule("resets", events.LimitPerUser, 2, 24*time.Hour), Scope: userID}}
	take := func(id string) bool {
		t.Helper()
		d, err := l.Take(ctx, events.EventKey("hd", id), check)
		if err != nil {
			t.Fatal(err)
		}
		return d.Allowed
	}
	steps := []struct {
		after time.Duration
		id    string
		want  bool
	}{
		{0, "a", true},
		{6 * time.Hour, "b", true},
		{6 * time.Hour, "c", false},              // 12 h: a and b in the window
		{12*time.Hour - time.Second, "d", false}, // 23:59:59 after a
		{time.Second, "e", true},                 // 24 h after a: a has left
		{time.Hour, "f", false},                  // b and e
	}
	for _, st := range steps {
		advance(st.after)
		if got := take(st.id); got != st.want {
			t.Errorf("at %s, event %s allowed = %v, want %v", clock().Format(time.DateTime), st.id, got, st.want)
		}
	}
}

// TestCounterStorage: counters expire a window after their last write
// (per-key TTL on this server) and hold digests, never the scope itself.
func TestCounterStorage(t *testing.T) {
	t.Parallel()
	s := startNATS(t)
	l, js := client(t, s, Config{})
	ctx := testCtx(t)
	if !l.msgTTL {
		t.Fatal("the bucket does not take per-key TTLs on nats-server 2.11+")
	}
	check := events.LimitCheck{Rule: rule("agent", events.LimitPerRequester, 3, 90*time.Minute), Scope: "agent.smith@contoso.com"}
	for i := range 2 { // a create, then an update
		if _, err := l.Take(ctx, events.EventKey("hd", fmt.Sprint(i)), []events.LimitCheck{check}); err != nil {
			t.Fatal(err)
		}
		stream, err := js.Stream(ctx, "KV_"+Bucket)
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetLastMsgForSubject(ctx, "$KV."+Bucket+"."+counterKey(check))
		if err != nil {
			t.Fatal(err)
		}
		if ttl := m.Header.Get("Nats-TTL"); ttl != "1h30m0s" && ttl != "5400s" && ttl != "5400" {
			t.Errorf("write %d: Nats-TTL %q, want the rule's window", i, ttl)
		}
		if len(m.Data) == 0 || strings.Contains(string(m.Data), "smith") || strings.Contains(m.Subject, "smith") {
			t.Errorf("counter shows its scope: %s %s", m.Subject, m.Data)
		}
	}
	// A counter nobody can read is replaced rather than refusing forever.
	if _, err := l.kv.Put(ctx, counterKey(check), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if d, err := l.Take(ctx, events.EventKey("hd", "x"), []events.LimitCheck{check}); err != nil || !d.Allowed {
		t.Errorf("after a corrupt counter: %+v %v", d, err)
	}
}

func TestOpenBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := Open(context.Background(), nil, Config{}); err == nil {
		t.Error("Open accepted a zero MaxWindow")
	}
	if _, err := (&Limiter{}).Take(context.Background(), "", nil); err == nil {
		t.Error("Take accepted an empty event key")
	}
}

var _ events.ApprovalCounter = (*Limiter)(nil)

// TestAdmitBulkApproval: the bulk approval rules of a policy count with
// Admit, shared by replicas: of 20 leavers sent at once through two
// replicas, with a rule of "more than 5 within 10 minutes", exactly 5 run
// and 15 wait; a waiting event is not counted, a counted one stays counted
// on redelivery, and nothing shows as a rate-limit refusal.
func TestAdmitBulkApproval(t *testing.T) {
	t.Parallel()
	s := startNATS(t)
	approver, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	apub, _ := approver.PublicKey()
	p, err := events.ParsePolicy([]byte(`version: 1
sources:
  hr/workday:
    types: [authflow.employee.left.v1]
approvers: [` + apub + `]
approvals:
  - name: mass-leavers
    types: [authflow.employee.left.v1]
    bulk: {max: 5, window: 10m}
`))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, nil)
	var replicas [2]*Limiter
	for i := range replicas {
		replicas[i], _ = client(t, s, Config{MaxWindow: p.MaxBulkWindow(), Metrics: metrics})
	}
	ctx := testCtx(t)
	leaver := func(i int) *events.Event {
		raw := fmt.Sprintf(`{"specversion":"1.0","id":"left-%d","source":"hr/workday","type":"authflow.employee.left.v1","subject":"user%d@contoso.com","time":%q,"data":{}}`,
			i, i, time.Now().UTC().Format(time.RFC3339))
		ev, err := events.Decoder{}.Decode([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	var (
		wg      sync.WaitGroup
		waiting atomic.Int32
		mu      sync.Mutex
		ran     []int
	)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok, err := p.ApprovalRule(ctx, leaver(i), events.Target{}, replicas[i%2])
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				if r.Name != "mass-leavers" {
					t.Errorf("rule %q", r.Name)
				}
				waiting.Add(1)
				return
			}
			mu.Lock()
			ran = append(ran, i)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ran) != 5 || waiting.Load() != 15 {
		t.Fatalf("%d ran, %d wait; want 5 and 15", len(ran), waiting.Load())
	}
	// A counted event delivered again still runs; a waiting one still waits.
	if _, ok, _ := p.ApprovalRule(ctx, leaver(ran[0]), events.Target{}, replicas[1]); ok {
		t.Error("a counted event waits on redelivery")
	}
	other := -1 // an event that waits
	for i := range 20 {
		if !slices.Contains(ran, i) {
			other = i
			break
		}
	}
	if _, ok, _ := p.ApprovalRule(ctx, leaver(other), events.Target{}, replicas[0]); !ok {
		t.Error("a waiting event runs on redelivery")
	}
	if got := testutil.ToFloat64(metrics.refused.WithLabelValues("approval.mass-leavers")); got != 0 {
		t.Errorf("authflow_rate_limited_total counted %v bulk approvals", got)
	}
	if _, err := replicas[0].Admit(ctx, "", events.LimitCheck{}); err == nil {
		t.Error("Admit took an empty key")
	}
}
