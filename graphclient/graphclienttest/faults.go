package graphclienttest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Faults is the fault injection applied to Graph requests (never to the
// admin API). The zero value injects nothing.
type Faults struct {
	// LatencyMs delays every Graph request (the request context is honoured).
	LatencyMs int `json:"latencyMs"`
	// JitterMs adds a uniform random 0..JitterMs to the delay.
	JitterMs int `json:"jitterMs"`
	// ErrorRate (0..1) is the share of requests answered with a status drawn
	// from ErrorStatuses instead of being served.
	ErrorRate float64 `json:"errorRate"`
	// ErrorStatuses are the statuses drawn (400..599). Defaults to 429, 500, 503, 504.
	ErrorStatuses []int `json:"errorStatuses"`
	// RetryAfterSeconds is the Retry-After sent with injected 429 and 503
	// answers (0 sends "Retry-After: 0").
	RetryAfterSeconds int `json:"retryAfterSeconds"`
	// ThrottleRPS is a token-bucket budget over Graph requests per second
	// (burst: one second's worth, at least 1); beyond it, 429 with an honest
	// Retry-After. 0 means unlimited.
	ThrottleRPS float64 `json:"throttleRps"`
	// LostReplyRate (0..1) is the share of writes (POST, PATCH, DELETE) that
	// are applied and whose reply is then lost.
	LostReplyRate float64 `json:"lostReplyRate"`
	// LostReplyMode is "drop" (close the connection; the default) or "504".
	LostReplyMode string `json:"lostReplyMode"`
	// Seed, when not 0, makes the random draws (jitter, injected errors and
	// their statuses, lost replies) repeatable: the same seed and the same
	// requests in the same order give the same faults. Each kind of draw
	// has its own sequence, so the n-th write that reaches the handler gets
	// the n-th lost-reply draw whatever reads came between. 0 draws from a
	// random seed. SetFaults restarts the sequences.
	Seed uint64 `json:"seed"`
}

const (
	lostDrop = "drop"
	lost504  = "504"
)

func (f Faults) normalize() (Faults, error) {
	switch {
	case f.LatencyMs < 0 || f.LatencyMs > 600_000:
		return f, errors.New("latencyMs must be within 0..600000")
	case f.JitterMs < 0 || f.JitterMs > 600_000:
		return f, errors.New("jitterMs must be within 0..600000")
	case !(f.ErrorRate >= 0 && f.ErrorRate <= 1):
		return f, errors.New("errorRate must be within 0..1")
	case !(f.LostReplyRate >= 0 && f.LostReplyRate <= 1):
		return f, errors.New("lostReplyRate must be within 0..1")
	case f.RetryAfterSeconds < 0 || f.RetryAfterSeconds > 86400:
		return f, errors.New("retryAfterSeconds must be within 0..86400")
	case !(f.ThrottleRPS >= 0) || math.IsInf(f.ThrottleRPS, 0) || f.ThrottleRPS > 1e9:
		return f, errors.New("throttleRps must be within 0..1e9")
	}
	switch f.LostReplyMode {
	case "":
		f.LostReplyMode = lostDrop
	case lostDrop, lost504:
	default:
		return f, fmt.Errorf("lostReplyMode %q: want %q or %q", f.LostReplyMode, lostDrop, lost504)
	}
	if len(f.ErrorStatuses) == 0 {
		f.ErrorStatuses = []int{429, 500, 503, 504}
	} else {
		f.ErrorStatuses = append([]int(nil), f.ErrorStatuses...)
	}
	for _, s := range f.ErrorStatuses {
		if s < 400 || s > 599 {
			return f, fmt.Errorf("errorStatuses: %d is not an error status (400..599)", s)
		}
	}
	return f, nil
}

// faultDraws are the random draws of the fault injection, one PCG stream
// per kind of draw, guarded by the emulator's mutex.
type faultDraws struct {
	jitter *rand.Rand // per request, when jitterMs > 0
	errors *rand.Rand // per request past the throttle bucket, when errorRate > 0
	lost   *rand.Rand // per write that reaches the handler, when lostReplyRate > 0
}

func newFaultDraws(seed uint64) faultDraws {
	if seed == 0 {
		seed = rand.Uint64() // unseeded: math/rand/v2's own random source
	}
	return faultDraws{
		jitter: rand.New(rand.NewPCG(seed, 1)),
		errors: rand.New(rand.NewPCG(seed, 2)),
		lost:   rand.New(rand.NewPCG(seed, 3)),
	}
}

// tokenBucket is the throttle budget. A refused request takes no token, so
// the Retry-After it is given is honest: after that many seconds a token is
// there (unless another client took it first).
type tokenBucket struct {
	rate   float64 // tokens per second; 0 = unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, now time.Time) tokenBucket {
	b := tokenBucket{rate: rate, burst: max(1, rate), last: now}
	b.tokens = b.burst
	return b
}

// take spends a token, or returns the whole seconds (>= 1, rounded up) until
// one is available.
func (b *tokenBucket) take(now time.Time) (ok bool, retryAfter int) {
	if b.rate <= 0 {
		return true, 0
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := (1 - b.tokens) / b.rate
	return false, max(1, int(math.Ceil(wait-1e-9)))
}

// Stats are the Graph request counters (GET /_emulator/stats).
type Stats struct {
	// Requests counts answers by "<METHOD> <route template>" and status
	// ("0" is a dropped reply, "499" a client that left during injected latency).
	Requests map[string]map[string]int `json:"requests"`
	// Throttled counts 429 answers, from the budget or injected.
	Throttled int `json:"throttled"`
	// RetryAfterViolations counts requests that came back, under the same
	// client-request-id, before the Retry-After they were given had elapsed.
	RetryAfterViolations int `json:"retryAfterViolations"`
	// RequestsDuringThrottle counts requests from anyone that arrived while a
	// throttle window (a 429's Retry-After) was open. Informative.
	RequestsDuringThrottle int `json:"requestsDuringThrottle"`
	// LostReplies counts writes applied whose reply was dropped or replaced by 504.
	LostReplies int `json:"lostReplies"`
	// Total counts every Graph request.
	Total int `json:"total"`
}

type statKey struct {
	method string
	route  string
	status int
}

type counters struct {
	byKey                                       map[statKey]int
	throttled, violations, duringThrottle, lost int
	total                                       int
}

func newCounters() counters { return counters{byKey: map[statKey]int{}} }

func (c *counters) snapshot() Stats {
	s := Stats{
		Requests:               map[string]map[string]int{},
		Throttled:              c.throttled,
		RetryAfterViolations:   c.violations,
		RequestsDuringThrottle: c.duringThrottle,
		LostReplies:            c.lost,
		Total:                  c.total,
	}
	for k, n := range c.byKey {
		name := k.method + " " + k.route
		m := s.Requests[name]
		if m == nil {
			m = map[string]int{}
			s.Requests[name] = m
		}
		m[strconv.Itoa(k.status)] += n
	}
	return s
}

// statMethod keeps the counter keys bounded whatever methods clients invent.
func statMethod(m string) string {
	switch m {
	case "GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS":
		return m
	}
	return "OTHER"
}

// Request is one entry of the request log.
type Request struct {
	// Seq numbers the entries from 1, in the order the emulator decided them
	// (for writes: the order they were applied).
	Seq int64 `json:"seq"`
	// Time is the emulator clock when the answer was decided.
	Time time.Time `json:"time"`
	// Method is the HTTP method.
	Method string `json:"method"`
	// Route is the route template, as in Stats.
	Route string `json:"route"`
	// Path is the request path.
	Path string `json:"path"`
	// UserID is the user's object id when known, else the user segment of the path.
	UserID string `json:"userId"`
	// Status is the status the client saw (0: reply dropped).
	Status int `json:"status"`
	// ClientRequestID is the client-request-id header, if any.
	ClientRequestID string `json:"clientRequestId"`
	// TraceParent is the W3C traceparent header as sent (printable ASCII,
	// at most 200 bytes; not checked further), if any.
	TraceParent string `json:"traceParent,omitempty"`
	// Lost is true when the write was applied but its reply was lost.
	Lost bool `json:"lost,omitempty"`
}

// maxLogEntries bounds the request log.
const maxLogEntries = 100_000

// requestLog is a ring buffer of the last max entries.
type requestLog struct {
	buf   []Request
	start int // index of the oldest entry once the buffer is full
	max   int
	seq   int64
}

func newRequestLog(capacity int) requestLog {
	return requestLog{buf: make([]Request, 0, min(capacity, 1024)), max: capacity}
}

func (l *requestLog) add(r Request) {
	l.seq++
	r.Seq = l.seq
	if len(l.buf) < l.max {
		l.buf = append(l.buf, r)
		return
	}
	l.buf[l.start] = r
	l.start = (l.start + 1) % len(l.buf)
}

func (l *requestLog) reset() {
	l.buf = l.buf[:0]
	l.start, l.seq = 0, 0
}

// entries returns entries with Seq > since, for userID when set, at most
// limit (0: all), oldest first.
func (l *requestLog) entries(since int64, userID string, limit int) []Request {
	out := []Request{}
	for i := range len(l.buf) {
		r := l.buf[(l.start+i)%len(l.buf)]
		if r.Seq <= since || userID != "" && !strings.EqualFold(r.UserID, userID) {
			continue
		}
		out = append(out, r)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}
