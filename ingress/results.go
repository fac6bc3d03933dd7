package ingress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
)

// DLQReasonResultsWebhook is the Authflow-Dlq-Reason of a result that its
// results webhook did not take. The dead letter holds the result, not an
// event: it is for an operator to read, not to replay as an event.
const DLQReasonResultsWebhook = "results_webhook_failed"

// resultsAckWait is how long the server waits for a result's ack before
// handing it out again; a delivery in progress renews it.
const resultsAckWait = time.Minute

// ResultsConsumerName is the durable consumer on AUTHFLOW_RESULTS that
// feeds a source's results webhook. Source names may hold characters a
// consumer name may not, so it is named by a hash of the source.
func ResultsConsumerName(source string) string {
	h := sha256.Sum256([]byte(source))
	return "authflow-ingress-results-" + hex.EncodeToString(h[:8])
}

// RunResults delivers results to every results webhook in the
// configuration until ctx ends: per source, a durable consumer on
// AUTHFLOW_RESULTS, the source's results picked by their
// Authflow-Event-Source header, one at a time and in order, each retried
// with backoff for a bounded time and then parked in the DLQ.
func (s *Server) RunResults(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, name := range s.sourceNames {
		src := s.cfg.Sources[name]
		if src.Results == nil {
			continue
		}
		wg.Go(func() { s.deliverLoop(ctx, src) })
	}
	wg.Wait()
	return nil
}

func (s *Server) deliverLoop(ctx context.Context, src *Source) {
	retry := backoff.NewExponentialBackOff()
	retry.MaxInterval, retry.MaxElapsedTime = 30*time.Second, 0
	name := ResultsConsumerName(src.Name)
	for ctx.Err() == nil {
		cons, err := s.js.CreateOrUpdateConsumer(ctx, ResultsStream, jetstream.ConsumerConfig{
			Durable:     name,
			Description: "authflow ingress: results webhook of source " + src.Name,
			// Results subjects are per user, not per source: the
			// source is in a header, so this consumer reads them all
			// and acks the other sources' at once.
			FilterSubject: ResultsSubjectPrefix + ">",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       resultsAckWait,
			MaxAckPending: 1, // in order, one at a time
			MaxDeliver:    -1,
			// From when the webhook is first configured; older results
			// are not replayed to a new receiver.
			DeliverPolicy: jetstream.DeliverNewPolicy,
		})
		if err != nil {
			d := retry.NextBackOff()
			s.log.Warn("results webhook: create consumer", "source", src.Name, "consumer", name, "err", err, "retry_in", d)
			if sleepCtx(ctx, d) != nil {
				return
			}
			continue
		}
		retry.Reset()
		s.consume(ctx, src, cons)
	}
}

// consume handles results until ctx ends or the consumer goes away.
func (s *Server) consume(ctx context.Context, src *Source, cons jetstream.Consumer) {
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		switch {
		case err == nil:
			s.handleResult(ctx, src, msg)
		case errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages):
		case errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound):
			return
		default:
			if sleepCtx(ctx, time.Second) != nil {
				return
			}
		}
	}
}

func (s *Server) handleResult(ctx context.Context, src *Source, msg jetstream.Msg) {
	body := msg.Data()
	res, decErr := events.DecodeResult(body)
	owner := msg.Headers().Get(HeaderEventSource)
	if owner == "" && decErr == nil {
		// Results of undecodable events carry no header; their data
		// still names the source when it could be read.
		owner = res.Data.Event.Source
	}
	if !src.owns(owner) {
		_ = msg.Ack()
		return
	}
	if decErr != nil {
		s.park(ctx, src, msg, "the result does not decode: "+decErr.Error(), 0)
		return
	}
	attempts, err := s.deliver(ctx, src, msg, res.ID, body)
	switch {
	case err == nil:
		s.metrics.delivered.WithLabelValues(src.Name, "delivered").Inc()
		if err := msg.Ack(); err != nil {
			s.log.Warn("results webhook: ack", "source", src.Name, "err", err)
		}
	case ctx.Err() != nil:
		_ = msg.Nak() // stopping: let the next run deliver it
	default:
		s.park(ctx, src, msg, err.Error(), attempts)
	}
}

// permanentError is a receiver's answer that a retry will not change.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// deliver POSTs one result until the receiver takes it, it refuses it for
// good, or the retry budget is spent.
func (s *Server) deliver(ctx context.Context, src *Source, msg jetstream.Msg, id string, body []byte) (int, error) {
	wh := src.Results
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = wh.InitialInterval, wh.MaxInterval, wh.MaxElapsed
	b.RandomizationFactor, b.Multiplier = 0.5, 2
	b.Reset()
	for attempts := 1; ; attempts++ {
		retryAfter, err := s.post(ctx, wh, id, body)
		if err == nil {
			return attempts, nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return attempts, fmt.Errorf("%w (attempt %d; not retried)", err, attempts)
		}
		if ctx.Err() != nil {
			return attempts, ctx.Err()
		}
		d := b.NextBackOff()
		if d == backoff.Stop {
			return attempts, fmt.Errorf("%w (gave up after %d attempts over %s)", err, attempts, b.GetElapsedTime().Round(time.Second))
		}
		d = max(d, retryAfter)
		s.log.Info("results webhook: retrying", "source", src.Name, "result", id, "attempt", attempts, "err", err, "retry_in", d)
		if err := waitInProgress(ctx, msg, d); err != nil {
			return attempts, err
		}
	}
}

// waitInProgress waits d, telling the server now and then that the
// message is still being worked on so it is not handed out again.
func waitInProgress(ctx context.Context, msg jetstream.Msg, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(resultsAckWait / 3)
	defer tick.Stop()
	for {
		select {
		case <-t.C:
			return nil
		case <-tick.C:
			_ = msg.InProgress()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// post makes one attempt. It returns the receiver's Retry-After, if any.
func (s *Server) post(ctx context.Context, wh *ResultsWebhook, id string, body []byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, wh.Timeout)
	defer cancel()
	where := describeURL(wh.URL)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL, bytes.NewReader(body))
	if err != nil {
		return 0, &permanentError{fmt.Errorf("POST %s: %w", where, err)}
	}
	now := s.now()
	req.Header.Set("Content-Type", MediaTypeCloudEvents)
	req.Header.Set("User-Agent", "authflow-ingress")
	req.Header.Set(HeaderWebhookID, id)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderWebhookSignature, SignWebhook(wh.Secrets, id, now, body))
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the whole URL
		}
		return 0, fmt.Errorf("POST %s: %w", where, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	code := resp.StatusCode
	err = fmt.Errorf("POST %s: %s", where, resp.Status)
	switch {
	case code >= 200 && code < 300:
		return 0, nil
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return retryAfter(resp.Header.Get("Retry-After"), now), err
	}
	// 3xx (redirects are not followed), 410 Gone and the other 4xx: the
	// receiver's configuration must change first.
	return 0, &permanentError{err}
}

// retryAfter reads a Retry-After header (seconds or an HTTP date), capped
// at an hour.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Hour)
}

// describeURL names a receiver in logs and dead letters without its query
// (which may carry a token).
func describeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(the results URL)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// park copies a result its webhook did not take to the DLQ, with the
// reason, and acks it. If the DLQ does not acknowledge, the result is
// handed out again later rather than lost.
func (s *Server) park(ctx context.Context, src *Source, msg jetstream.Msg, reason string, attempts int) {
	key := strings.TrimPrefix(msg.Subject(), ResultsSubjectPrefix)
	m := nats.NewMsg(DLQSubjectPrefix + key)
	m.Data = msg.Data()
	for k, vs := range msg.Headers() {
		for _, v := range vs {
			m.Header.Add(k, v)
		}
	}
	m.Header.Del(nats.MsgIdHdr)
	m.Header.Set(HeaderDLQReason, DLQReasonResultsWebhook)
	m.Header.Set(HeaderDLQMessage, truncateRunes(reason, 512))
	m.Header.Set(HeaderDLQAttempts, strconv.Itoa(attempts))
	m.Header.Set(HeaderDLQSubject, msg.Subject())
	msgID := ResultsConsumerName(src.Name) + ":" + key
	if md, err := msg.Metadata(); err == nil {
		seq := strconv.FormatUint(md.Sequence.Stream, 10)
		m.Header.Set(HeaderDLQSequence, seq)
		msgID = ResultsConsumerName(src.Name) + ":" + seq
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.js.PublishMsg(pctx, m, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(DLQStream)); err != nil {
		s.log.Warn("results webhook: dead letter not stored; will retry", "source", src.Name, "err", err)
		_ = msg.NakWithDelay(30 * time.Second)
		return
	}
	s.metrics.delivered.WithLabelValues(src.Name, "dead_lettered").Inc()
	s.log.Warn("results webhook: result parked in the DLQ", "source", src.Name, "subject", m.Subject, "reason", reason)
	if err := msg.Ack(); err != nil {
		s.log.Warn("results webhook: ack", "source", src.Name, "err", err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
