package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// bareConsumer is the durable the bare loop pulls from.
const bareConsumer = "bench-bare"

// bareLoop is the bare limit the worker is compared with: one pull
// consumer over the same events stream, concurrency goroutines, and per
// event exactly the worker's Graph requests with net/http and
// encoding/json — no SDK, no ledger, no policy, no per-user ordering — then
// a result published with a Nats-Msg-Id (waiting for its PubAck) and an
// ack. It is meant to be competent: a keep-alive pool sized for the
// concurrency, messages prefetched, no per-event allocations beyond JSON.
type bareLoop struct {
	js       jetstream.JetStream
	http     *http.Client
	graphURL string
	auth     string
	failures atomic.Int64
	lastErr  atomic.Value // error
}

// startBare starts the bare loop on its own connection; stop stops it and
// waits for the events in hand.
func startBare(ctx context.Context, e *env, concurrency int) (stop func() error, _ *bareLoop, err error) {
	nc, err := nats.Connect(e.ns.ClientURL(), nats.Name("authflow-bench-bare"))
	if err != nil {
		return nil, nil, fmt.Errorf("bare loop connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bare loop jetstream: %w", err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, worker.EventsStream, jetstream.ConsumerConfig{
		Durable:       bareConsumer,
		FilterSubject: worker.EventsSubjectPrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       worker.DefaultAckWait,
		MaxAckPending: 2 * concurrency,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bare loop consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * concurrency))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bare loop consume: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 2 * concurrency
	tr.MaxIdleConnsPerHost = 2 * concurrency
	b := &bareLoop{
		js:       js,
		http:     &http.Client{Transport: tr, Timeout: 60 * time.Second},
		graphURL: e.graphURL,
		auth:     "Bearer " + e.token,
	}

	work := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				if err := b.handle(ctx, m); err != nil {
					b.failures.Add(1)
					b.lastErr.Store(err)
					_ = m.Nak()
				}
			}
		}()
	}
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		defer close(work)
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
					return
				}
				time.Sleep(10 * time.Millisecond) // a missed heartbeat: the iterator recovers by itself
				continue
			}
			work <- m
		}
	}()
	stop = func() error {
		it.Stop()
		<-fed
		wg.Wait()
		tr.CloseIdleConnections()
		nc.Close()
		if n := b.failures.Load(); n > 0 {
			err, _ := b.lastErr.Load().(error)
			return fmt.Errorf("bare loop: %d events failed, last: %w", n, err)
		}
		return nil
	}
	return stop, b, nil
}

// bareEvent is the part of an event the bare loop reads.
type bareEvent struct {
	ID      string `json:"id"`
	Source  string `json:"source"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Data    struct {
		PhoneType   string `json:"phoneType"`
		PhoneNumber string `json:"phoneNumber"`
	} `json:"data"`
}

type bareUser struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
}

type bareMethods struct {
	Value []struct {
		ODataType   string `json:"@odata.type"`
		ID          string `json:"id"`
		PhoneNumber string `json:"phoneNumber"`
		PhoneType   string `json:"phoneType"`
	} `json:"value"`
}

// bareResult is a result with the fields the worker's has for a phone set.
type bareResult struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            struct {
		Event      events.EventRef   `json:"event"`
		User       events.UserInfo   `json:"user"`
		Status     events.Status     `json:"status"`
		Operations []events.OpResult `json:"operations"`
		Attempts   int               `json:"attempts"`
		ReceivedAt time.Time         `json:"receivedAt"`
		FinishedAt time.Time         `json:"finishedAt"`
		DurationMs int64             `json:"durationMs"`
	} `json:"data"`
}

func (b *bareLoop) handle(ctx context.Context, m jetstream.Msg) error {
	received := time.Now()
	var ev bareEvent
	if err := json.Unmarshal(m.Data(), &ev); err != nil {
		return fmt.Errorf("decode event: %w", err)
	}
	var u bareUser
	if err := b.do(ctx, http.MethodGet, "/users/"+url.PathEscape(ev.Subject)+"?$select=id,userPrincipalName,userType,accountEnabled", nil, &u); err != nil {
		return fmt.Errorf("resolve user: %w", err)
	}
	var ms bareMethods
	if err := b.do(ctx, http.MethodGet, "/users/"+url.PathEscape(u.ID)+"/authentication/methods", nil, &ms); err != nil {
		return fmt.Errorf("list methods: %w", err)
	}
	outcome := events.OutcomeUnchanged
	methodID := ""
	for _, pm := range ms.Value {
		if pm.ODataType != "#microsoft.graph.phoneAuthenticationMethod" || pm.PhoneType != ev.Data.PhoneType {
			continue
		}
		methodID = pm.ID
		if pm.PhoneNumber != ev.Data.PhoneNumber {
			body, err := json.Marshal(map[string]string{
				"@odata.type": "#microsoft.graph.phoneAuthenticationMethod",
				"phoneNumber": ev.Data.PhoneNumber,
			})
			if err != nil {
				return fmt.Errorf("encode phone: %w", err)
			}
			if err := b.do(ctx, http.MethodPatch, "/users/"+url.PathEscape(u.ID)+"/authentication/phoneMethods/"+url.PathEscape(pm.ID), body, nil); err != nil {
				return fmt.Errorf("update phone: %w", err)
			}
			outcome = events.OutcomeUpdated
		}
		break
	}
	if methodID == "" {
		return errors.New("the user has no phone of that type")
	}

	now := time.Now()
	key := events.EventKey(ev.Source, ev.ID)
	var res bareResult
	res.SpecVersion, res.ID, res.Source, res.Type, res.Subject = "1.0", key, events.ResultSource, events.TypeResult, ev.Subject
	res.Time, res.DataContentType = now, events.ContentTypeJSON
	res.Data.Event = events.EventRef{Source: ev.Source, ID: ev.ID, Type: ev.Type}
	res.Data.User = events.UserInfo{Ref: ev.Subject, ObjectID: u.ID}
	res.Data.Status = events.StatusSucceeded
	res.Data.Operations = []events.OpResult{{Op: events.OpEnsurePhone, MethodKind: "phone", MethodID: methodID, Outcome: outcome,
		Detail: ev.Data.PhoneType + " " + events.MaskPhone(ev.Data.PhoneNumber)}}
	res.Data.Attempts = 1
	res.Data.ReceivedAt, res.Data.FinishedAt = received, now
	res.Data.DurationMs = now.Sub(received).Milliseconds()
	body, err := json.Marshal(&res)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	subject := m.Subject()
	out := nats.NewMsg(worker.ResultsSubjectPrefix + subject[strings.LastIndexByte(subject, '.')+1:])
	out.Data = body
	out.Header.Set(worker.HeaderStatus, string(events.StatusSucceeded))
	out.Header.Set(worker.HeaderEventSource, ev.Source)
	out.Header.Set(worker.HeaderEventID, ev.ID)
	if _, err := b.js.PublishMsg(ctx, out, jetstream.WithMsgID("result:"+key)); err != nil {
		return fmt.Errorf("publish result: %w", err)
	}
	if err := m.Ack(); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// do sends one Graph request and decodes a JSON answer into out (nil:
// discard the body). Any status but 2xx is an error.
func (b *bareLoop) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.graphURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", b.auth)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	// Read to EOF so that the connection goes back to the pool.
	raw, err := io.ReadAll(resp.Body)
	if err != nil || out == nil {
		return err
	}
	return json.Unmarshal(raw, out)
}
