package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// restartNATS stops the env's server and starts a new one on the same port
// and store, as a NATS restart in production would; clients reconnect.
func (e *env) restartNATS(dir string, down time.Duration) {
	e.t.Helper()
	port := e.ns.Addr().(interface{ String() string }).String()
	opts := &server.Options{ServerName: "test", Host: "127.0.0.1", JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true}
	fmt.Sscanf(port[strings.LastIndexByte(port, ':')+1:], "%d", &opts.Port)
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	time.Sleep(down)
	s, err := server.NewServer(opts)
	if err != nil {
		e.t.Fatalf("restart nats: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		e.t.Fatal("restarted nats server not ready")
	}
	e.t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	e.ns = s
}

// TestNATSRestartFencing restarts the NATS server while two workers have
// TAP and phone events in flight against a slow Graph, so that the server
// hands in-flight events to the other worker while the first still works
// on them. Every event must still take effect once and in order: one
// result each, each user ends with exactly the TAP whose sealed value its
// last TAP result delivered, and with the phone number of its last event.
func TestNATSRestartFencing(t *testing.T) {
	dir := t.TempDir()
	e := newEnvDir(t, dir)
	if err := e.graph.SetFaults(graphclienttest.Faults{LatencyMs: 120, JitterMs: 60}); err != nil {
		t.Fatal(err)
	}
	e.startWorker(func(c *worker.Config) { c.Instance = "w1" })
	e.startWorker(func(c *worker.Config) { c.Instance = "w2" })

	const users = 8
	type plan struct {
		id, upn   string
		evs       []string
		lastTAP   string
		lastPhone string
	}
	ps := make([]*plan, users)
	for u := range ps {
		p := &plan{id: uid(700 + u), upn: fmt.Sprintf("fence%d@contoso.example", u)}
		e.seed(p.id, p.upn, mobile)
		ps[u] = p
	}
	key := func(p *plan) string { return "fence" + p.id[len(p.id)-4:] }
	for round := 0; round < 2; round++ {
		for _, p := range ps {
			id := e.send(key(p), events.TypeTAPIssue, p.upn, map[string]any{"lifetimeInMinutes": 60, "usableOnce": true, "sealTo": e.sealTo})
			p.evs, p.lastTAP = append(p.evs, id), id
			for i := 0; i < 2; i++ {
				p.lastPhone = fmt.Sprintf("+1 42555%02d%03d", round*10+i, 700+len(p.evs))
				p.evs = append(p.evs, e.send(key(p), events.TypePhoneSet, p.upn, map[string]any{"phoneType": "office", "phoneNumber": p.lastPhone}))
			}
		}
	}
	total := users * len(ps[0].evs)
	// Restart NATS once some events are done and others are in flight.
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := e.streamInfo(worker.ResultsStream)
		if err == nil && info.State.Msgs >= uint64(total/4) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("too slow before the restart")
		}
		time.Sleep(5 * time.Millisecond)
	}
	restart := time.Now()
	e.restartNATS(dir, 300*time.Millisecond)
	res := e.results(total, 90*time.Second)
	t.Logf("all %d results %.1fs after the NATS restart", total, time.Since(restart).Seconds())

	seqOf := map[string]int{}
	for i, m := range streamMessages(t, e.js, worker.ResultsStream) {
		r, err := events.DecodeResult(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		seqOf[r.Data.Event.ID] = i
	}
	for _, p := range ps {
		for i, id := range p.evs {
			if r := res[id]; r.Data.Status != events.StatusSucceeded {
				t.Errorf("%s event %d: %s %+v", p.upn, i, r.Data.Status, r.Data.Error)
			}
			if i > 0 && seqOf[id] < seqOf[p.evs[i-1]] {
				t.Errorf("%s: result of event %d came before event %d's", p.upn, i, i-1)
			}
		}
		u := e.user(p.id)
		if n := countKind(u, "temporaryAccessPass"); n != 1 {
			t.Errorf("%s: %d TAPs, want 1", p.upn, n)
		}
		var delivered string
		for _, o := range res[p.lastTAP].Data.Operations {
			if o.Secret != nil {
				delivered = o.MethodID
			}
		}
		if delivered == "" || !strings.Contains(string(mustJSON(t, u.Methods)), delivered) {
			t.Errorf("%s: the TAP whose value was delivered (%s) is not the one in Graph", p.upn, delivered)
		}
		e.openSecret(t, res[p.lastTAP], events.SecretTAP)
		if got := phones(u)["office"]; got != p.lastPhone {
			t.Errorf("%s: office phone %s, want the last event's %s", p.upn, got, p.lastPhone)
		}
	}
	e.noSecretsLeaked(res)
	logs := e.logs.String()
	t.Logf("deliveries handed back while another attempt held the lease: %d; attempts that stopped having lost it: %d",
		strings.Count(logs, `"outcome":"busy"`), strings.Count(logs, "no longer owns the event"))
}

// BenchmarkNATSRestartDrain measures how long the TAP events in flight when
// the NATS server restarts take to finish: 500 tap.issue events for 500
// users over 64 partitions and two workers (so 64 are in flight at a
// time; the partition design bounds it), emulator latency 50 ms, AckWait
// 2 s. It reports drain_s, from the 100th result (when NATS restarts) to
// the last; "baseline" is the same run without the restart, so the
// difference is what the restart costs. Run:
// go test -run '^$' -bench NATSRestartDrain -benchtime 1x ./worker/
func BenchmarkNATSRestartDrain(b *testing.B) {
	b.Run("restart", func(b *testing.B) { benchDrain(b, true) })
	b.Run("baseline", func(b *testing.B) { benchDrain(b, false) })
}

func benchDrain(b *testing.B, restartNATS bool) {
	for range b.N {
		dir := b.TempDir()
		e := newEnvDir(b, dir)
		if err := e.graph.SetFaults(graphclienttest.Faults{LatencyMs: 50}); err != nil {
			b.Fatal(err)
		}
		big := func(c *worker.Config) { c.Partitions, c.Concurrency = 64, 64 }
		e.startWorker(big, func(c *worker.Config) { c.Instance = "w1" })
		e.startWorker(big, func(c *worker.Config) { c.Instance = "w2" })
		const n = 500
		for i := range n {
			id, upn := uid(5000+i), fmt.Sprintf("drain%d@contoso.example", i)
			e.seed(id, upn)
			e.send(fmt.Sprintf("d%d", i), events.TypeTAPIssue, upn, map[string]any{"lifetimeInMinutes": 60, "sealTo": e.sealTo})
		}
		for {
			info, err := e.streamInfo(worker.ResultsStream)
			if err == nil && info.State.Msgs >= 100 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		restart := time.Now()
		if restartNATS {
			e.restartNATS(dir, 200*time.Millisecond)
		}
		res := e.results(n, 3*time.Minute)
		drain := time.Since(restart)
		for id, r := range res {
			if r.Data.Status != events.StatusSucceeded {
				b.Fatalf("%s: %s %+v", id, r.Data.Status, r.Data.Error)
			}
		}
		b.ReportMetric(drain.Seconds(), "drain_s")
	}
}
