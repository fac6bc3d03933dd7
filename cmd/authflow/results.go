package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := nf.validate(); err != nil {
		return err
	}
	if *since < 0 {
		return usagef("--since must not be negative")
	}
	filter := worker.ResultsSubjectPrefix + ">"
	var sendKey string // --subject: the result subject authflow send's key for it gives
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
		sendKey = worker.ResultSubject(k)
	case *key != "":
		if !worker.ValidKey(*key) {
			return usagef("invalid --key %q", *key)
		}
		filter = worker.ResultSubject(*key)
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
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
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
		// Under send's key for the name (also an undecodable event's
		// result), or naming the user by it.
		if *subject != "" && m.Subject() != sendKey && !res.Data.User.Names(*subject) {
			return
		}
		if *jsonOut {
			fmt.Fprintf(stdout, "%s\n", m.Data())
			return
		}
		p.print(res)
	})
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
