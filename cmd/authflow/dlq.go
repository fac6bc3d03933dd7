package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// runDLQ inspects and replays dead letters: events the worker could not
// decode, or that failed for good (retries exhausted, Graph refused).
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := leadingArg(args)
	var seqArg string
	if sub == "show" || sub == "replay" {
		seqArg, args = leadingArg(args)
	}
	var nf natsFlags
	fs := newFlagSet("dlq", stderr)
	nf.register(fs)
	limit := fs.Int("limit", 100, "dlq list: show at most the last `N` dead letters (0 = all)")
	by := fs.String("by", defaultOperator(), "dlq replay: who re-drives the event, recorded in the ledger and the new result (`NAME`)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: authflow dlq list [--limit N] | show SEQ | replay SEQ [flags]\n\n"+
			"  list         sequence, time, reason, attempts and subject of each dead letter\n"+
			"  show SEQ     one dead letter: its headers and the original bytes\n"+
			"  replay SEQ   re-drive a failed event once its cause is fixed: record the re-drive in the\n"+
			"               ledger and publish the original bytes and headers (signature intact) again;\n"+
			"               a new result follows, marked as a re-drive. Rejected events cannot be re-driven.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var seq uint64
	switch sub {
	case "list":
		if *limit < 0 {
			return usagef("--limit must not be negative")
		}
	case "show", "replay":
		n, err := strconv.ParseUint(seqArg, 10, 64)
		if err != nil || n == 0 {
			return usagef("dlq %s: SEQ must be a stream sequence number (see authflow dlq list), got %q", sub, seqArg)
		}
		seq = n
	case "":
		return usagef("dlq: name an action: list, show SEQ or replay SEQ")
	default:
		return usagef("dlq: unknown action %q: want list, show or replay", sub)
	}
	if err := nf.validate(); err != nil {
		return err
	}
	nc, err := nf.connect(ctx, "authflow-dlq", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	switch sub {
	case "list":
		return dlqList(ctx, js, *limit, stdout)
	case "show":
		return dlqShow(ctx, js, seq, stdout)
	}
	return dlqReplay(ctx, js, seq, *by, stdout, stderr)
}

func dlqList(ctx context.Context, js jetstream.JetStream, limit int, stdout io.Writer) error {
	s, err := js.Stream(ctx, worker.DLQStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", worker.DLQStream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", worker.DLQStream, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tREASON\tATTEMPTS\tSUBJECT\tEVENT")
	cfg := jetstream.OrderedConsumerConfig{}
	if limit > 0 && info.State.Msgs > uint64(limit) && info.State.LastSeq >= uint64(limit) {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = info.State.LastSeq - uint64(limit) + 1
	}
	err = readStream(ctx, js, worker.DLQStream, cfg, false, func(m jetstream.Msg) {
		md, _ := m.Metadata()
		var seq uint64
		var t string
		if md != nil {
			seq, t = md.Sequence.Stream, formatTime(md.Timestamp)
		}
		h := m.Headers()
		src, id, typ := events.PeekIdentity(m.Data())
		ev := "(unreadable)"
		if id != "" {
			ev = strings.TrimSpace(typ + " " + src + " " + id)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", seq, t, orDash(h.Get(worker.HeaderDLQReason)),
			orDash(h.Get(worker.HeaderDLQAttempts)), originalSubject(m.Subject()), ev)
	})
	if err != nil {
		return err
	}
	return tw.Flush()
}

func dlqShow(ctx context.Context, js jetstream.JetStream, seq uint64, stdout io.Writer) error {
	m, err := getDeadLetter(ctx, js, seq)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seq:     %d\ntime:    %s\nsubject: %s (replays to %s)\n\n", m.Sequence, formatTime(m.Time), m.Subject, originalSubject(m.Subject))
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range m.Header.Values(k) {
			fmt.Fprintf(stdout, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintf(stdout, "\n%s\n", m.Data)
	return nil
}

// dlqReplay publishes a dead letter's original bytes and headers to the
// subject the event was first published to. The worker treats it as a
// redelivery of the same event: when the ledger already holds a result for
// its source and id, that result is published again and nothing else
// happens; only an event that never got a result (an undecodable one, or
// one whose ledger entry expired) is processed anew.
func dlqReplay(ctx context.Context, js jetstream.JetStream, seq uint64, by string, stdout, stderr io.Writer) error {
	info, err := worker.Redrive(ctx, js, seq, by)
	if err != nil {
		return err
	}
	if info.Again {
		fmt.Fprintf(stdout, "dead letter %d: re-drive %d of %s %s was recorded before; published it again to %s\n", seq, info.Count, info.Source, info.ID, info.Subject)
	} else {
		fmt.Fprintf(stdout, "dead letter %d: re-drive %d of %s %s recorded by %s; published to %s\n", seq, info.Count, info.Source, info.ID, by, info.Subject)
	}
	fmt.Fprintln(stderr, "note: a worker runs it as a new attempt; its result has \"redrive\" set and the id <event key>:redrive-N (authflow results --follow)")
	return nil
}

// defaultOperator names the person running the CLI: user@host.
func defaultOperator() string {
	user := cmp.Or(os.Getenv("USER"), os.Getenv("USERNAME"), "operator")
	host, _ := os.Hostname()
	if host == "" {
		return user
	}
	return user + "@" + host
}

func getDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, worker.DLQStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", worker.DLQStream, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, &exitError{exitFailed, fmt.Errorf("no dead letter with sequence %d (see authflow dlq list)", seq)}
		}
		return nil, fmt.Errorf("get dead letter %d: %w", seq, err)
	}
	return m, nil
}

// originalSubject maps a dead letter's subject to the event subject it
// replays to: authflow.dlq.<key> -> authflow.events.<key>.
func originalSubject(dlqSubject string) string {
	if key, ok := strings.CutPrefix(dlqSubject, worker.DLQSubjectPrefix); ok {
		return worker.EventSubject(key)
	}
	return dlqSubject
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
