package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// approvalCommands are the subcommands of four-eyes approval.
func approvalCommands() map[string]command {
	return map[string]command{
		"approve":   {"approve an event that waits for four-eyes approval (signed with the approver's seed)", runApprove},
		"deny":      {"deny an event that waits for four-eyes approval, with a reason", runDeny},
		"approvals": {"list the events that wait for four-eyes approval (approvals list)", runApprovals},
	}
}

// defaultApprovalSince is how far back approve, deny and approvals list
// look for events that wait: the longest timeout an approval rule may
// have, so no event that can still be decided is missed.
const defaultApprovalSince = events.MaxApprovalTimeout

// approvalKey is the user-key token an approval of the parked event
// eventKey is published under (authflow.events.approval-<eventKey>): a key
// of its own, so that it never waits behind the event it decides, which
// holds the order of its user's key.
func approvalKey(eventKey string) string { return "approval-" + eventKey }

// decisionFlags are the flags of approve and deny.
type decisionFlags struct {
	nats    natsFlags
	seed    string
	reason  string
	source  string
	since   time.Duration
	wait    bool
	timeout time.Duration
	jsonOut bool
}

func runApprove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runDecision(ctx, true, args, stdout, stderr)
}

func runDeny(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runDecision(ctx, false, args, stdout, stderr)
}

// runDecision is authflow approve (grant) and authflow deny: it finds the
// event that waits under KEY, shows what it is, and publishes the
// approver's signed decision.
func runDecision(ctx context.Context, grant bool, args []string, stdout, stderr io.Writer) error {
	name, typ := "deny", events.TypeApprovalDeny
	if grant {
		name, typ = "approve", events.TypeApprovalGrant
	}
	keyArg, args := leadingArg(args)
	var f decisionFlags
	fs := newFlagSet(name, stderr)
	fs.Usage = func() {
		reason := ""
		if !grant {
			reason = " --reason TEXT"
		}
		fmt.Fprintf(fs.Output(), "usage: authflow %s KEY --seed FILE%s [flags]\n\n"+
			"KEY is the key of an event that waits for approval: the id of its pending result\n"+
			"(authflow approvals list shows them). The decision is signed with the approver's seed.\n\nflags:\n", name, reason)
		fs.PrintDefaults()
	}
	f.nats.register(fs)
	fs.StringVar(&f.seed, "seed", "", "the approver's signing seed `FILE` (authflow keys new-signing); its public key must be in the policy's approvers; required")
	if !grant {
		fs.StringVar(&f.reason, "reason", "", "why the event is denied, for the requester and the audit trail (printable text, at most 128 characters); required")
	}
	fs.StringVar(&f.source, "source", defaultSource, "CloudEvents source of the decision")
	fs.DurationVar(&f.since, "since", defaultApprovalSince, "look for the waiting event among the results of the last `DURATION`")
	fs.BoolVar(&f.wait, "wait", false, "wait for the decision's own result and print it; the exit status tells whether it was accepted")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "how long to wait for the publish acknowledgement and, with --wait, the result")
	fs.BoolVar(&f.jsonOut, "json", false, "print the result (with --wait) as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if keyArg == "" {
		return usagef("the event KEY is required: authflow %s KEY --seed FILE (authflow approvals list shows the keys)", name)
	}
	key, err := events.ParseApprovalKey(keyArg)
	if err != nil {
		return usagef("KEY %q is not an event key: want the 64 hex digits of the pending result's id (authflow approvals list shows them)", keyArg)
	}
	if f.seed == "" {
		return usagef("--seed is required: the approver's signing seed file (authflow keys new-signing)")
	}
	if !grant {
		f.reason = strings.TrimSpace(f.reason)
		if f.reason == "" {
			return usagef("--reason is required: why the event is denied")
		}
	}
	if err := f.nats.validate(); err != nil {
		return err
	}
	switch {
	case f.since <= 0:
		return usagef("--since must be positive")
	case f.timeout <= 0:
		return usagef("--timeout must be positive")
	}
	kp, err := readSeedFile(f.seed, false)
	if err != nil {
		return usagef("--seed: %v", err)
	}
	defer kp.Wipe()
	approver, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(approver) {
		return usagef("--seed: not the seed of a user key (U...); an approver signs with a seed from authflow keys new-signing")
	}
	// The data is checked by the decoder below; the envelope's subject is
	// filled in once the waiting event is found.
	data := map[string]string{"eventKey": key}
	if !grant {
		data["reason"] = f.reason
	}
	body, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := buildDecision(typ, "a@b.example", f.source, newUUID(), body, time.Now()); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, f.timeout+f.nats.timeout)
	defer cancel()
	nc, err := f.nats.connect(ctx, "authflow-"+name, nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	pa, err := lookupPending(ctx, js, key, f.since)
	if err != nil {
		return err
	}
	res := pa.Result
	if pv := res.Data.Provenance; pv != nil && pv.Signer == approver {
		return &exitError{exitFailed, fmt.Errorf("self-approval: your key %s signed this request; another approver must decide it (nothing sent)", approver)}
	}
	subject := res.Subject
	if subject == "" {
		subject = res.Data.User.Ref
	}
	verb := "denying"
	if grant {
		verb = "approving"
	}
	fmt.Fprintf(stderr, "%s %s\n", verb, describePending(pa, time.Now()))

	id := newUUID()
	raw, err := buildDecision(typ, subject, f.source, id, body, time.Now())
	if err != nil {
		return err
	}
	sig, signer, err := events.Sign(raw, kp)
	if err != nil {
		return fmt.Errorf("sign the decision: %w", err)
	}
	msg := nats.NewMsg(worker.EventSubject(approvalKey(key)))
	msg.Data = raw
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	msg.Header.Set(events.HeaderSignature, sig)
	msg.Header.Set(events.HeaderSigner, signer)

	var results chan *nats.Msg
	if f.wait {
		results = make(chan *nats.Msg, 16)
		sub, err := nc.ChanSubscribe(worker.ResultSubject(approvalKey(key)), results)
		if err != nil {
			return fmt.Errorf("subscribe to results: %w", err)
		}
		defer sub.Unsubscribe()
		if err := nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("subscribe to results: %w", err)
		}
	}
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(events.EventKey(f.source, id)))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &exitError{exitTimeout, fmt.Errorf("publish %s: no acknowledgement within --timeout %s (is the worker's stream %s there?)", msg.Subject, f.timeout, worker.EventsStream)}
		}
		return fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	fmt.Fprintf(stderr, "published %s id=%s signed by %s to %s (stream %s seq %d)\n", typ, id, signer, msg.Subject, ack.Stream, ack.Sequence)
	if !f.wait {
		return nil
	}
	out, body2, err := awaitResult(ctx, js, results, approvalKey(key), f.source, id, false)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &exitError{exitTimeout, fmt.Errorf("no result within --timeout %s (is a worker running?)", f.timeout)}
		}
		return err
	}
	if f.jsonOut {
		fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(body2)))
	} else {
		newResultPrinter(stdout).print(out)
	}
	if out.Data.Status != events.StatusSucceeded {
		return &exitError{code: exitFailed, err: errors.New("")}
	}
	return nil
}

// buildDecision builds a grant or deny and checks it with the worker's
// decoder; a bad --reason is a usage error naming the flag.
func buildDecision(typ, subject, source, id string, data []byte, now time.Time) ([]byte, error) {
	raw, err := events.MarshalEvent(id, source, typ, subject, now, data)
	if err != nil {
		return nil, usagef("invalid decision: %v", err)
	}
	if _, err := (events.Decoder{}).Decode(raw); err != nil {
		var e *events.Error
		switch {
		case errors.As(err, &e) && e.Field == "data.reason":
			return nil, usagef("--reason: %s", e.Message)
		case errors.As(err, &e) && e.Field == "source":
			return nil, usagef("--source: %s", e.Message)
		}
		return nil, usagef("invalid decision: %v", err)
	}
	return raw, nil
}

// pendingApproval is an event that waits for approval: its key and its
// pending result.
type pendingApproval struct {
	Key    string
	Result *events.Result
	Body   []byte // the result as stored
}

// pendingApprovals lists the events that wait for approval, oldest first:
// every pending_approval result stored within since that has no final
// result (the same id without ":pending_approval") after it. The worker's ledger
// holds the same state; this is the one function to change for the CLI to
// ask the ledger instead.
func pendingApprovals(ctx context.Context, js jetstream.JetStream, since time.Duration) ([]pendingApproval, error) {
	start := time.Now().Add(-since)
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{worker.ResultsSubjectPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	}
	var order []string
	waiting := map[string]pendingApproval{}
	err := readStream(ctx, js, worker.ResultsStream, cfg, false, func(m jetstream.Msg) {
		res, err := events.DecodeResult(m.Data())
		if err != nil {
			return // authflow results reports these
		}
		if res.Data.Status == events.StatusPendingApproval && res.Data.Approval != nil {
			k := res.Data.Approval.EventKey
			if _, ok := waiting[k]; !ok {
				order = append(order, k)
			}
			waiting[k] = pendingApproval{Key: k, Result: res, Body: m.Data()}
			return
		}
		delete(waiting, res.ID) // the final result of an accepted event has the key as its id
	})
	if err != nil {
		return nil, err
	}
	out := make([]pendingApproval, 0, len(waiting))
	for _, k := range order {
		if pa, ok := waiting[k]; ok {
			out = append(out, pa)
		}
	}
	return out, nil
}

// lookupPending finds the event that waits under key.
func lookupPending(ctx context.Context, js jetstream.JetStream, key string, since time.Duration) (pendingApproval, error) {
	all, err := pendingApprovals(ctx, js, since)
	if err != nil {
		return pendingApproval{}, err
	}
	if i := slices.IndexFunc(all, func(pa pendingApproval) bool { return pa.Key == key }); i >= 0 {
		return all[i], nil
	}
	return pendingApproval{}, &exitError{exitFailed, fmt.Errorf("no event waits for approval under key %s among the results of the last %s (decided already, timed out, or not parked; authflow approvals list shows what waits)", key, since)}
}

// describePending renders a waiting event in one line: what, for whom,
// from whom, under which rule, and for how long still.
func describePending(pa pendingApproval, now time.Time) string {
	d := pa.Result.Data
	user := d.User.Ref
	if d.User.UPN != "" && !strings.EqualFold(d.User.UPN, user) {
		user += " (" + d.User.UPN + ")"
	}
	var by []string
	if pv := d.Provenance; pv != nil {
		if pv.TicketID != "" {
			by = append(by, "ticket "+pv.TicketID)
		}
		if pv.VerifiedBy != "" {
			by = append(by, "verified by "+pv.VerifiedBy)
		}
		if pv.Signer != "" {
			by = append(by, "signed by "+pv.Signer)
		}
	}
	s := fmt.Sprintf("%s for %s from %s", d.Event.Type, user, d.Event.Source)
	if len(by) > 0 {
		s += " (" + strings.Join(by, ", ") + ")"
	}
	return s + fmt.Sprintf(", rule %s, %s", d.Approval.Rule, expiresIn(d.Approval.ExpiresAt, now))
}

// expiresIn renders how long an event still waits.
func expiresIn(at, now time.Time) string {
	if !now.Before(at) {
		return "timed out at " + at.UTC().Format(time.RFC3339) + " (its result is due)"
	}
	return "times out in " + roughly(at.Sub(now))
}

// roughly renders a duration for people: to the minute from a minute up
// ("59m", "1h0m"), else to the second.
func roughly(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// runApprovals is authflow approvals list.
func runApprovals(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := leadingArg(args)
	var nf natsFlags
	fs := newFlagSet("approvals list", stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: authflow approvals list [flags]\n\n"+
			"lists the events that wait for four-eyes approval, oldest first, with the KEY that\n"+
			"authflow approve and authflow deny take.\n\nflags:")
		fs.PrintDefaults()
	}
	nf.register(fs)
	since := fs.Duration("since", defaultApprovalSince, "look among the results of the last `DURATION`")
	jsonOut := fs.Bool("json", false, "print each pending result as one line of JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch sub {
	case "list":
	case "":
		return usagef("name what to do: authflow approvals list")
	default:
		return usagef("unknown approvals command %q: want list", sub)
	}
	if err := nf.validate(); err != nil {
		return err
	}
	if *since <= 0 {
		return usagef("--since must be positive")
	}
	nc, err := nf.connect(ctx, "authflow-approvals", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	all, err := pendingApprovals(ctx, js, *since)
	if err != nil {
		return err
	}
	if *jsonOut {
		for _, pa := range all {
			fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(pa.Body)))
		}
		return nil
	}
	if len(all) == 0 {
		fmt.Fprintf(stdout, "no event waits for approval (results of the last %s)\n", *since)
		return nil
	}
	printPending(stdout, all, time.Now())
	return nil
}

// printPending writes the waiting events as a table.
func printPending(w io.Writer, all []pendingApproval, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tTYPE\tUSER\tSOURCE\tREQUESTED BY\tRULE\tWAITING\tTIMES OUT")
	for _, pa := range all {
		d := pa.Result.Data
		by := "-"
		if pv := d.Provenance; pv != nil {
			switch {
			case pv.VerifiedBy != "" && pv.TicketID != "":
				by = pv.VerifiedBy + " (" + pv.TicketID + ")"
			case pv.VerifiedBy != "":
				by = pv.VerifiedBy
			case pv.Signer != "":
				by = pv.Signer
			}
		}
		user := d.User.Ref
		if user == "" {
			user = pa.Result.Subject
		}
		received := d.ReceivedAt
		if received.IsZero() {
			received = pa.Result.Time
		}
		timesOut := "in " + roughly(d.Approval.ExpiresAt.Sub(now))
		if !now.Before(d.Approval.ExpiresAt) {
			timesOut = "overdue"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", pa.Key, strings.TrimPrefix(d.Event.Type, "authflow."), user, d.Event.Source, by,
			d.Approval.Rule, roughly(now.Sub(received)), timesOut)
	}
	tw.Flush()
}
