package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
)

// The ingress against publishing to NATS directly, on the same embedded
// JetStream server (127.0.0.1, file store):
//
//   - direct: what `authflow send --sign-seed` does per event on its own
//     NATS connection: validate with the decoder, sign, publish with
//     Nats-Msg-Id and wait for the PubAck.
//   - ingress: POST the unsigned event over HTTPS (TLS 1.3 on loopback,
//     keep-alive) with a bearer token; the ingress authenticates,
//     validates, signs, publishes and answers 202 after the PubAck.
//
// BenchmarkIngressThroughput reports events/s with 16 clients at once;
// BenchmarkIngressLatency one client alternating between the two paths,
// event by event, so both see the same machine, and reports each path's
// p50 and p99 and the p99 the ingress adds (added-p99-ms).
//
//	go test ./ingress/ -run '^$' -bench BenchmarkIngress -benchtime 5s -count 3
//
// docs/benchmarks.md records the figures.

// benchClients is the number of concurrent clients of the throughput runs.
const benchClients = 16

// benchRig is an ingress harness with a second NATS connection for the
// direct publisher and a key to sign with.
type benchRig struct {
	h      *harness
	js     jetstream.JetStream // the direct publisher's own connection
	signer nkeys.KeyPair
	next   atomic.Int64 // event ids
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	h := newHarness(b, testConfig(), nil)
	// The command's default log level: request lines (debug) are dropped.
	h.srv.log = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 2 * benchClients
	nc, err := nats.Connect(h.ns.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		b.Fatal(err)
	}
	return &benchRig{h: h, js: js, signer: kp}
}

// event makes a fresh event of source for one of 1000 users.
func (r *benchRig) event(source string) ([]byte, error) {
	n := r.next.Add(1)
	return events.MarshalEvent("bench-"+strconv.FormatInt(n, 10), source, events.TypeMethodsInventory,
		fmt.Sprintf("user%03d@contoso.example", n%1000), time.Now(), json.RawMessage(`{}`))
}

// direct publishes one event as a NATS sender does.
func (r *benchRig) direct(ctx context.Context) error {
	raw, err := r.event("hr/direct")
	if err != nil {
		return err
	}
	ev, err := events.Decoder{DefaultRegion: "US"}.Decode(raw)
	if err != nil {
		return err
	}
	sig, signer, err := events.Sign(raw, r.signer)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(EventsSubjectPrefix + UserKey(ev.User))
	msg.Data = raw
	msg.Header.Set("Content-Type", MediaTypeCloudEvents)
	msg.Header.Set(events.HeaderSignature, sig)
	msg.Header.Set(events.HeaderSigner, signer)
	_, err = r.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.Key()), jetstream.WithExpectStream(EventsStream))
	return err
}

// viaIngress posts one event to the ingress and requires its 202.
func (r *benchRig) viaIngress(ctx context.Context) error {
	raw, err := r.event("hr/bearer")
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.h.http.URL+"/v1/events", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tokenHR)
	req.Header.Set("Content-Type", MediaTypeCloudEvents)
	resp, err := r.h.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("ingress: status %d, want 202", resp.StatusCode)
	}
	return nil
}

// quantile is the q-quantile of sorted durations, in milliseconds.
func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := max(0, min(len(sorted)-1, int(float64(len(sorted))*q+0.5)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

func BenchmarkIngressThroughput(b *testing.B) {
	for _, path := range []string{"direct", "ingress"} {
		b.Run("path="+path, func(b *testing.B) {
			r := newBenchRig(b)
			ctx := context.Background()
			op := r.direct
			if path == "ingress" {
				op = r.viaIngress
			}
			// Connections and TLS sessions up before the clock.
			if err := op(ctx); err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			var lat []time.Duration
			var failed atomic.Value
			b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if err := op(ctx); err != nil {
						failed.CompareAndSwap(nil, err) // b.Fatal belongs to the benchmark's goroutine
						break
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(quantile(lat, 0.50), "p50-ms")
			b.ReportMetric(quantile(lat, 0.99), "p99-ms")
		})
	}
}

func BenchmarkIngressLatency(b *testing.B) {
	r := newBenchRig(b)
	ctx := context.Background()
	if err := errors.Join(r.direct(ctx), r.viaIngress(ctx)); err != nil {
		b.Fatal(err)
	}
	direct := make([]time.Duration, 0, b.N)
	ingress := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := r.direct(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := r.viaIngress(ctx); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		direct = append(direct, t1.Sub(t0))
		ingress = append(ingress, t2.Sub(t1))
	}
	b.StopTimer()
	slices.Sort(direct)
	slices.Sort(ingress)
	b.ReportMetric(quantile(direct, 0.50), "direct-p50-ms")
	b.ReportMetric(quantile(direct, 0.99), "direct-p99-ms")
	b.ReportMetric(quantile(ingress, 0.50), "ingress-p50-ms")
	b.ReportMetric(quantile(ingress, 0.99), "ingress-p99-ms")
	b.ReportMetric(quantile(ingress, 0.99)-quantile(direct, 0.99), "added-p99-ms")
}

// TestQuantile: the bench's percentiles are the nearest-rank ones.
func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct{ q, want float64 }{{0.5, 50}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := quantile(d, tc.q); got != tc.want {
			t.Errorf("quantile(1..100 ms, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantile(nil, 0.99); got != 0 {
		t.Errorf("quantile(nil) = %v", got)
	}
}
