package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

func runResults(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var nf natsFlags
	fs := newFlagSet("results", stderr)
	nf.register(fs)
	follow := fs.Bool("follow", false, "keep printing new results as they arrive (until interrupted)")
	since := fs.Duration("since", 0, "only results stored in the last `DURATION` (e.g. 1h; default all)")
	jsonOut := fs.Bool("json", false, "print each result as one line of JSON (for authflow open, jq)")
	subject := fs.String("subject", "", "only the results of this user, by object id or UPN, whichever name the events used")
	key := fs.String("key", "", "only the results of this user key (authflow.results.<key>)")
	id := &checkedValue{check: checkMatchValue}
	source := &checkedValue{check: checkMatchValue}
	status := &checkedValue{check: func(v string) error {
		if !events.Status(v).Valid() {
			return fmt.Errorf("must be %s", strings.Join(resultStatuses, ", "))
		}
		return nil
	}}
	fs.Var(id, "id", "only the results of the event with this `ID`: its CloudEvents id (data.event.id), or the result's id (the event key, which also finds its interim, re-driven and rejected results)")
	fs.Var(source, "source", "only the results of events from this `SOURCE` (data.event.source, exactly)")
	fs.Var(status, "status", "only the results with this `STATUS`: "+strings.Join(resultStatuses, ", "))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	filter := resultFilter{id: id.v, source: source.v, status: events.Status(status.v), subject: *subject}
	if err := nf.validate(); err != nil {
		return err
	}
	if *since < 0 {
		return usagef("--since must not be negative")
	}
	streamFilter := worker.ResultsSubjectPrefix + ">"
	switch {
	case *subject != "" && *key != "":
		return usagef("--subject and --key are mutually exclusive")
	case *subject != "":
		// Every result: a user's events may have been keyed by either name.
		// Results name the user as sent and, once resolved, by object id and
		// UPN (events.UserInfo.Names).
		k, err := userKey(*subject)
		if err != nil {
			return usagef("--subject: %v", err)
		}
		filter.sendKey = worker.ResultSubject(k)
	case *key != "":
		if !worker.ValidKey(*key) {
			return usagef("invalid --key %q", *key)
		}
		streamFilter = worker.ResultSubject(*key)
	}

	nc, err := nf.connect(ctx, "authflow-results", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{streamFilter}}
	if *since > 0 {
		start := time.Now().Add(-*since)
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &start
	}
	p := newResultPrinter(stdout)
	return readStream(ctx, js, worker.ResultsStream, cfg, *follow, func(m jetstream.Msg) {
		res, err := events.DecodeResult(m.Data())
		if err != nil {
			fmt.Fprintf(stderr, "undecodable result on %s: %v\n", m.Subject(), err)
			return
		}
		if !filter.match(m.Subject(), res) {
			return
		}
		if *jsonOut {
			fmt.Fprintf(stdout, "%s\n", m.Data())
			return
		}
		p.print(res)
	})
}

// resultStatuses are the statuses --status names; events.Status.Valid
// decides.
var resultStatuses = []string{string(events.StatusSucceeded), string(events.StatusFailed), string(events.StatusRejected), string(events.StatusScheduled), string(events.StatusCancelled), string(events.StatusPendingApproval)}

// resultFilter selects results; every field that is set must match.
type resultFilter struct {
	id, source string
	status     events.Status
	// subject is --subject; sendKey the result subject of the key
	// authflow send derives for it.
	subject, sendKey string
}

func (f resultFilter) match(streamSubject string, res *events.Result) bool {
	d := res.Data
	if f.id != "" && d.Event.ID != f.id && res.ID != f.id && !strings.HasPrefix(res.ID, f.id+":") {
		return false
	}
	if f.source != "" && d.Event.Source != f.source {
		return false
	}
	if f.status != "" && d.Status != f.status {
		return false
	}
	// Under send's key for the name (also an undecodable event's result),
	// or naming the user by it: ref, objectId or upn.
	if f.subject != "" && streamSubject != f.sendKey && !d.User.Names(f.subject) {
		return false
	}
	return true
}

// checkedValue is a string flag whose value check runs as it is set, so
// that a bad value in the environment is reported with its variable.
type checkedValue struct {
	v     string
	check func(string) error
}

func (c *checkedValue) String() string {
	if c == nil {
		return ""
	}
	return c.v
}

func (c *checkedValue) Set(v string) error {
	if err := c.check(v); err != nil {
		return err
	}
	c.v = v
	return nil
}

// checkMatchValue refuses a value no stored id or source can equal:
// surrounding spaces or control characters (a pasted line break).
func checkMatchValue(v string) error {
	if strings.TrimSpace(v) != v {
		return errors.New("leading or trailing space")
	}
	if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return errors.New("a control character")
	}
	return nil
}

// readStream calls fn for each message of stream that cfg selects, in
// order. Without follow it returns once it has caught up with the stream;
// with follow it waits for new messages until ctx is done.
func readStream(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, follow bool, fn func(jetstream.Msg)) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	if !follow {
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
		if info.State.Msgs == 0 || (cfg.OptStartTime != nil && info.State.LastTime.Before(*cfg.OptStartTime)) {
			return nil
		}
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	if !follow {
		for {
			m, err := c.Next(jetstream.FetchMaxWait(3 * time.Second))
			if err != nil {
				if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
					return nil // nothing (more) matches
				}
				return fmt.Errorf("read %s: %w", stream, err)
			}
			fn(m)
			if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
				return nil
			}
			if ctx.Err() != nil {
				return nil
			}
		}
	}
	it, err := c.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", stream, err)
		}
		fn(m)
	}
}
