package graphclienttest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func (e *env) setFaults(f Faults) {
	e.t.Helper()
	if err := e.srv.SetFaults(f); err != nil {
		e.t.Fatalf("set faults: %v", err)
	}
}

func TestFaultErrorRate(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	// Seeded: the statuses drawn, and so the assertions below, are the same
	// on every run.
	e.setFaults(Faults{ErrorRate: 1, ErrorStatuses: []int{429, 500, 503, 504}, RetryAfterSeconds: 7, Seed: 1})
	seen := map[int]int{}
	for range 40 {
		r := e.graph("POST", emailsPath, `{"emailAddress":"kim@fabrikam.com"}`)
		seen[r.status]++
		switch r.status {
		case 429:
			r.want(t, 429, "TooManyRequests")
			in := r.body["error"].(map[string]any)["innerError"].(map[string]any)
			if in["code"] != "429" || in["status"] != "429" {
				t.Fatalf("429 innerError: %s", r.raw)
			}
			fallthrough
		case 503:
			if r.header.Get("Retry-After") != "7" {
				t.Fatalf("%d without Retry-After 7: %v", r.status, r.header)
			}
		case 500, 504:
			if r.header.Get("Retry-After") != "" {
				t.Fatalf("%d with Retry-After", r.status)
			}
		default:
			t.Fatalf("status %d is not one of the configured statuses", r.status)
		}
	}
	if len(seen) != 4 {
		t.Fatalf("40 seeded draws gave only %v", seen)
	}
	if got := e.methodsOf(userA, "emailAuthenticationMethod"); len(got) != 0 {
		t.Fatal("an injected error must not apply the write")
	}
	s := e.srv.Stats()
	if s.Total != 40 || s.Throttled != seen[429] || s.Requests["POST "+kindTable[kindEmail].listRoute]["500"] != seen[500] {
		t.Fatalf("stats %+v, seen %v", s, seen)
	}
	// The admin API is never faulted.
	if r := e.admin("GET", "/users/"+userA, ""); r.status != 200 {
		t.Fatalf("admin under faults: %d", r.status)
	}
	e.setFaults(Faults{})
	e.graph("POST", emailsPath, `{"emailAddress":"kim@fabrikam.com"}`).want(t, 201, "")
}

func TestThrottleBudget(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	e.setFaults(Faults{ThrottleRPS: 2}) // burst 2, then one token every 500 ms
	get := func(crid string) response {
		return e.graph("GET", "/users/{u}/authentication/methods", "", withHeader("client-request-id", crid))
	}
	get("a").want(t, 200, "")
	get("b").want(t, 200, "")
	r := get("c")
	r.want(t, 429, "TooManyRequests")
	if r.header.Get("Retry-After") != "1" {
		t.Fatalf("Retry-After = %q, want 1 (0.5 s rounded up)", r.header.Get("Retry-After"))
	}
	// Honest: after the Retry-After a token is there.
	e.clock.Advance(time.Second)
	get("c").want(t, 200, "")

	e.setFaults(Faults{ThrottleRPS: 0.2}) // one token every 5 s
	get("d").want(t, 200, "")
	r = get("e")
	if r.status != 429 || r.header.Get("Retry-After") != "5" {
		t.Fatalf("got %d Retry-After %q, want 429 5", r.status, r.header.Get("Retry-After"))
	}
	e.clock.Advance(2 * time.Second)
	if r = get("f"); r.status != 429 || r.header.Get("Retry-After") != "3" {
		t.Fatalf("got %d Retry-After %q, want 429 3", r.status, r.header.Get("Retry-After"))
	}
	e.clock.Advance(3 * time.Second)
	get("f").want(t, 200, "")

	s := e.srv.Stats()
	if s.Throttled != 3 || s.Requests["GET "+routeMethods]["429"] != 3 || s.Requests["GET "+routeMethods]["200"] != 5 {
		t.Fatalf("stats: %+v", s)
	}
	if s.RetryAfterViolations != 0 {
		t.Fatalf("no client came back early, yet %d violations", s.RetryAfterViolations)
	}
}

func TestRetryAfterViolations(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	e.setFaults(Faults{ThrottleRPS: 0.2})
	get := func(crid string) response {
		return e.graph("GET", "/users/{u}/authentication/methods", "", withHeader("client-request-id", crid))
	}
	get("x").want(t, 200, "")
	get("x").want(t, 429, "TooManyRequests") // Retry-After 5 from now
	e.clock.Advance(time.Second)
	get("x") // early: a violation
	get("y") // another call: not a violation, but it arrives during the throttle window
	e.clock.Advance(4 * time.Second)
	get("x").want(t, 200, "") // on time
	s := e.srv.Stats()
	if s.RetryAfterViolations != 1 {
		t.Fatalf("retryAfterViolations = %d, want 1", s.RetryAfterViolations)
	}
	if s.RequestsDuringThrottle != 2 {
		t.Fatalf("requestsDuringThrottle = %d, want 2", s.RequestsDuringThrottle)
	}
	// Injected 503s with Retry-After count too.
	e.setFaults(Faults{ErrorRate: 1, ErrorStatuses: []int{503}, RetryAfterSeconds: 2})
	get("z").want(t, 503, "serviceNotAvailable")
	get("z")
	e.clock.Advance(2 * time.Second)
	get("z")
	if s := e.srv.Stats(); s.RetryAfterViolations != 2 {
		t.Fatalf("retryAfterViolations = %d, want 2", s.RetryAfterViolations)
	}
	// The admin view and reset.
	var st Stats
	if err := json.Unmarshal(e.admin("GET", "/stats", "").raw, &st); err != nil || st.RetryAfterViolations != 2 || st.Total != 8 {
		t.Fatalf("GET /_emulator/stats: %+v %v", st, err)
	}
	e.admin("DELETE", "/stats", "")
	if s := e.srv.Stats(); s.Total != 0 || s.RetryAfterViolations != 0 || len(s.Requests) != 0 {
		t.Fatalf("after reset: %+v", s)
	}
}

func TestLostReplies(t *testing.T) {
	t.Run("drop", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		e.setFaults(Faults{LostReplyRate: 1})
		req, _ := http.NewRequest("POST", e.srv.GraphURL+"/users/"+userA+"/authentication/phoneMethods",
			strings.NewReader(`{"phoneNumber":"+1 2065555556","phoneType":"mobile"}`))
		req.Header.Set("Authorization", "Bearer "+e.srv.Token)
		res, err := e.client.Do(req)
		if err == nil {
			res.Body.Close()
			t.Fatalf("lost reply: got status %d, want a transport error", res.StatusCode)
		}
		if got := e.methodsOf(userA, "phoneAuthenticationMethod"); len(got) != 1 {
			t.Fatal("the write must be applied although the reply was lost")
		}
		// Reads are never lost.
		e.graph("GET", phonesPath, "").want(t, 200, "")
		s := e.srv.Stats()
		if s.LostReplies != 1 || s.Requests["POST "+kindTable[kindPhone].listRoute]["0"] != 1 {
			t.Fatalf("stats: %+v", s)
		}
		log := e.srv.Requests()
		if !log[0].Lost || log[0].Status != 0 {
			t.Fatalf("log: %+v", log[0])
		}
	})
	t.Run("504", func(t *testing.T) {
		e := newEnv(t)
		e.seedBasic()
		e.setFaults(Faults{LostReplyRate: 1, LostReplyMode: "504"})
		e.graph("POST", emailsPath, `{"emailAddress":"kim@fabrikam.com"}`).want(t, 504, "gatewayTimeout")
		if got := e.methodsOf(userA, "emailAuthenticationMethod"); len(got) != 1 {
			t.Fatal("the write must be applied although the reply was a 504")
		}
		// A retry by the client now meets the applied state.
		e.setFaults(Faults{})
		e.graph("POST", emailsPath, `{"emailAddress":"kim@fabrikam.com"}`).want(t, 400, "badRequest")
		if s := e.srv.Stats(); s.LostReplies != 1 {
			t.Fatalf("stats: %+v", s)
		}
	})
}

func TestLatency(t *testing.T) {
	e := newEnv(t)
	e.seedBasic()
	e.setFaults(Faults{LatencyMs: 150})
	// Concurrent requests wait in parallel: the state lock is not held while sleeping.
	start := time.Now()
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() { e.graph("GET", "/users/{u}/authentication/methods", "") })
	}
	wg.Wait()
	if el := time.Since(start); el < 150*time.Millisecond || el > 800*time.Millisecond {
		t.Fatalf("6 parallel requests with 150 ms latency took %v", el)
	}
	// A client that gives up is not kept waiting.
	e.setFaults(Faults{LatencyMs: 10_000})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.GraphURL+"/users/"+userA+"/authentication/methods", nil)
	req.Header.Set("Authorization", "Bearer "+e.srv.Token)
	res, err := e.client.Do(req)
	if err == nil {
		res.Body.Close()
		t.Fatal("want a timeout")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.Stats().Requests["GET "+routeMethods]["499"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned request was not recorded: %+v", e.srv.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFaultSeed: with a seed, the same requests in the same order meet the
// same faults, and SetFaults restarts the draws; each kind of draw has its
// own sequence, so reads between writes do not change which writes lose
// their reply.
func TestFaultSeed(t *testing.T) {
	// outcomes sends n writes (an idempotent PATCH, 204 unless faulted),
	// each after reads GETs, and returns the writes' statuses.
	outcomes := func(e *env, n, reads int) []int {
		e.t.Helper()
		var got []int
		for range n {
			for range reads {
				e.graph("GET", "/users/{u}/authentication/methods", "")
			}
			got = append(got, e.graph("PATCH", "/users/{u}", `{"accountEnabled":true}`).status)
		}
		return got
	}
	faults := Faults{ErrorRate: 0.3, ErrorStatuses: []int{500, 503, 504}, LostReplyRate: 0.3, LostReplyMode: "504", Seed: 42}
	e1, e2 := newEnv(t), newEnv(t)
	e1.seedBasic()
	e2.seedBasic()
	e1.setFaults(faults)
	e2.setFaults(faults)
	a, b := outcomes(e1, 40, 0), outcomes(e2, 40, 0)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 42 on two emulators:\n%v\n%v", a, b)
	}
	counts := map[int]int{}
	for _, s := range a {
		counts[s]++
	}
	if counts[204] == 0 || counts[500]+counts[503] == 0 || counts[504] == 0 {
		t.Fatalf("seed 42 gave %v: want successes, injected errors and lost replies, or the test proves nothing", counts)
	}
	if st := e1.srv.Stats(); st.LostReplies == 0 || st.LostReplies > counts[504] {
		t.Fatalf("lostReplies %d for %d 504s", st.LostReplies, counts[504])
	}
	e1.setFaults(faults) // restarts the sequences
	if again := outcomes(e1, 40, 0); !slices.Equal(a, again) {
		t.Fatalf("seed 42 after SetFaults again:\n%v\n%v", a, again)
	}
	other := faults
	other.Seed = 43
	e1.setFaults(other)
	if c := outcomes(e1, 40, 0); slices.Equal(a, c) {
		t.Fatalf("seeds 42 and 43 gave the same 40 outcomes: %v", c)
	}

	// Lost replies only: reads between the writes change nothing.
	lostOnly := Faults{LostReplyRate: 0.5, LostReplyMode: "504", Seed: 7}
	e1.setFaults(lostOnly)
	e2.setFaults(lostOnly)
	plain, mixed := outcomes(e1, 30, 0), outcomes(e2, 30, 2)
	if !slices.Equal(plain, mixed) {
		t.Fatalf("reads between writes changed the lost replies:\n%v\n%v", plain, mixed)
	}
	if !slices.Contains(plain, 504) || !slices.Contains(plain, 204) {
		t.Fatalf("seed 7 at rate 0.5 gave %v: the test proves nothing", plain)
	}

	// Jitter: the same delays after the same seed.
	delays := func() []time.Duration {
		e1.setFaults(Faults{JitterMs: 1000, Seed: 5})
		var ds []time.Duration
		for range 20 {
			_, d := e1.srv.arrive(&call{})
			ds = append(ds, d)
		}
		return ds
	}
	d1, d2 := delays(), delays()
	if !slices.Equal(d1, d2) || slices.Min(d1) == slices.Max(d1) || slices.Max(d1) > time.Second {
		t.Fatalf("seeded jitter: %v then %v", d1, d2)
	}
}

func TestAdminFaults(t *testing.T) {
	e := newEnv(t)
	r := e.admin("PUT", "/faults", `{"latencyMs":5,"errorRate":0.5,"throttleRps":100,"lostReplyRate":0.1,"seed":42}`)
	if r.status != 200 {
		t.Fatalf("PUT faults: %d %s", r.status, r.raw)
	}
	var f Faults
	if err := json.Unmarshal(e.admin("GET", "/faults", "").raw, &f); err != nil {
		t.Fatal(err)
	}
	if f.LatencyMs != 5 || f.ErrorRate != 0.5 || f.ThrottleRPS != 100 || f.LostReplyMode != "drop" || len(f.ErrorStatuses) != 4 || f.Seed != 42 {
		t.Fatalf("faults: %+v", f)
	}
	bad := []string{
		`{"errorRate":1.5}`, `{"errorRate":-0.1}`, `{"lostReplyRate":2}`, `{"lostReplyMode":"explode"}`,
		`{"errorStatuses":[200]}`, `{"latencyMs":-1}`, `{"throttleRps":-1}`, `{"retryAfterSeconds":-1}`,
		`{"latencyMs":"slow"}`, `{"errorRate":`, `{"seed":-1}`, `{"seed":1.5}`, `{"seed":"42"}`,
	}
	for _, b := range bad {
		if r := e.admin("PUT", "/faults", b); r.status != 400 || r.code() != "badRequest" {
			t.Errorf("PUT faults %s: %d %s", b, r.status, r.raw)
		}
	}
	if got := e.srv.Faults(); got.ErrorRate != 0.5 {
		t.Fatalf("a refused PUT changed the faults: %+v", got)
	}
}

// bucketStep is one take at an offset from the start.
type bucketStep struct {
	at         time.Duration
	ok         bool
	retryAfter int
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	burst10 := make([]bucketStep, 10)
	for i := range burst10 {
		burst10[i] = bucketStep{0, true, 0}
	}
	tests := []struct {
		name  string
		rate  float64
		steps []bucketStep
	}{
		{"unlimited", 0, []bucketStep{{0, true, 0}, {0, true, 0}, {0, true, 0}}},
		{"10 rps: burst of 10, then 100 ms per token", 10,
			append(burst10, bucketStep{0, false, 1}, bucketStep{100 * time.Millisecond, true, 0}, bucketStep{100 * time.Millisecond, false, 1})},
		{"one per 30 s", 1.0 / 30, []bucketStep{{0, true, 0}, {0, false, 30}, {29500 * time.Millisecond, false, 1}, {30 * time.Second, true, 0}}},
		{"idle time refills at most the burst", 2, []bucketStep{{0, true, 0}, {0, true, 0}, {time.Hour, true, 0}, {time.Hour, true, 0}, {time.Hour, false, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTokenBucket(tt.rate, t0)
			for i, s := range tt.steps {
				ok, ra := b.take(t0.Add(s.at))
				if ok != s.ok || ra != s.retryAfter {
					t.Fatalf("step %d: got %v %d, want %v %d", i, ok, ra, s.ok, s.retryAfter)
				}
			}
		})
	}
}

func TestConcurrentClients(t *testing.T) {
	e := newEnv(t)
	ids := []string{userA, userB}
	for i, id := range ids {
		e.putUser(id, "u"+itoa(i)+"@contoso.com", "")
	}
	const workers, perWorker = 8, 30
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			id := ids[w%len(ids)]
			for i := range perWorker {
				switch i % 3 {
				case 0:
					e.graph("POST", "/users/"+id+"/authentication/temporaryAccessPassMethods", `{}`)
				case 1:
					e.graph("GET", "/users/"+id+"/authentication/methods", "")
				case 2:
					e.graph("PATCH", "/users/"+id, `{"accountEnabled":true}`)
				}
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if n := len(e.methodsOf(id, "temporaryAccessPassAuthenticationMethod")); n != 1 {
			t.Fatalf("user %s has %d TAPs, want exactly 1", id, n)
		}
	}
	s := e.srv.Stats()
	if s.Total != workers*perWorker || s.Requests["POST "+kindTable[kindTAP].listRoute]["201"] != workers*perWorker/3 {
		t.Fatalf("stats: %+v", s)
	}
	log := e.srv.Requests()
	if len(log) != workers*perWorker {
		t.Fatalf("log has %d entries", len(log))
	}
	for i, r := range log {
		if r.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d", i, r.Seq)
		}
	}
}
