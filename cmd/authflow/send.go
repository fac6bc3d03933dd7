package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// Exit statuses of `authflow send --wait` besides 0 (succeeded) and 2
// (usage or an invalid event).
const (
	exitFailed  = 1 // the result is failed or rejected
	exitTimeout = 3 // no result within --timeout
)

// defaultSource is the CloudEvents source of events sent from the CLI.
const defaultSource = "authflow-cli"

type sendFlags struct {
	nats          natsFlags
	subject       string
	data          string
	dataFile      string
	source        string
	id            string
	key           string
	signSeed      string
	dryRun        bool
	wait          bool
	timeout       time.Duration
	jsonOut       bool
	defaultRegion string
}

func (f *sendFlags) register(fs *flag.FlagSet) {
	f.nats.register(fs)
	fs.StringVar(&f.subject, "subject", "", "the user: object id (GUID) or user principal name; required")
	fs.StringVar(&f.data, "data", "", "the event's data as a JSON object (default {})")
	fs.StringVar(&f.dataFile, "data-file", "", "read the data JSON object from `FILE` (- for stdin) instead of --data")
	fs.StringVar(&f.source, "source", defaultSource, "CloudEvents source: who sends the event (the policy decides per source)")
	fs.StringVar(&f.id, "id", "", "CloudEvents id; source+id is the idempotency key (default a new UUID)")
	fs.StringVar(&f.key, "key", "", "user key: the subject token of authflow.events.<key> (default derived from --subject; see docs/cli.md)")
	fs.StringVar(&f.signSeed, "sign-seed", "", "sign the event with the nkeys seed in `FILE` (authflow keys new-signing)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "set data.dryRun: the worker plans and reports, and writes nothing")
	fs.BoolVar(&f.wait, "wait", false, "wait for the event's result and print it; the exit status tells the outcome")
	fs.DurationVar(&f.timeout, "timeout", 60*time.Second, "how long to wait for the publish acknowledgement and, with --wait, the result")
	fs.BoolVar(&f.jsonOut, "json", false, "print the result (with --wait) as JSON")
	fs.StringVar(&f.defaultRegion, "default-region", "US", "ISO 3166 `REGION` for national phone numbers in the local validation (use the worker's)")
}

// leadingArg splits off a positional argument given before the flags
// (`authflow send TYPE --subject ...`).
func leadingArg(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	typ, args := leadingArg(args)
	var f sendFlags
	fs := newFlagSet("send", stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: authflow send TYPE --subject USER [--data JSON] [--wait] [flags]\n\nTYPE is one of:\n  %s\n\nflags:\n",
			strings.Join(events.Types(), "\n  "))
		fs.PrintDefaults()
	}
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if typ == "" {
		return usagef("the event TYPE is required: authflow send TYPE --subject USER ... (authflow send --help lists the types)")
	}
	if f.subject == "" {
		return usagef("--subject is required: the user's object id or user principal name")
	}
	if err := f.nats.validate(); err != nil {
		return err
	}
	if f.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if !isRegionCode(f.defaultRegion) {
		return usagef("--default-region must be a two-letter ISO 3166 region code such as US, got %q", f.defaultRegion)
	}
	data, err := f.readData()
	if err != nil {
		return err
	}
	var signer nkeys.KeyPair
	if f.signSeed != "" {
		kp, err := readSeedFile(f.signSeed, false)
		if err != nil {
			return usagef("--sign-seed: %v", err)
		}
		signer = kp
	}
	id := f.id
	if id == "" {
		id = newUUID()
	}
	raw, err := buildEvent(typ, f.subject, f.source, id, data, f.dryRun, time.Now())
	if err != nil {
		return err
	}
	// Validate exactly as the worker will, before anything leaves.
	if _, err := (events.Decoder{DefaultRegion: f.defaultRegion}).Decode(raw); err != nil {
		if events.CodeOf(err) == events.CodeInternal {
			return usagef("--default-region %q: %v", f.defaultRegion, err)
		}
		return usagef("invalid event: %v", err)
	}
	key := f.key
	if key == "" {
		if key, err = userKey(f.subject); err != nil {
			return usagef("--subject: %v", err)
		}
	} else if !worker.ValidKey(key) {
		return usagef("invalid --key %q: one NATS subject token (printable ASCII without . * > or spaces)", key)
	}
	msg := nats.NewMsg(worker.EventSubject(key))
	msg.Data = raw
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	if signer != nil {
		sig, pub, err := events.Sign(raw, signer)
		if err != nil {
			return fmt.Errorf("sign event: %w", err)
		}
		msg.Header.Set(events.HeaderSignature, sig)
		msg.Header.Set(events.HeaderSigner, pub)
	}

	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	nc, err := f.nats.connect(ctx, "authflow-send", nil)
	if err != nil {
		return err
	}
	defer nc.Close()

	// Subscribe before publishing so that a fast result is not missed.
	var results chan *nats.Msg
	if f.wait {
		results = make(chan *nats.Msg, 64)
		sub, err := nc.ChanSubscribe(worker.ResultSubject(key), results)
		if err != nil {
			return fmt.Errorf("subscribe to results: %w", err)
		}
		defer sub.Unsubscribe()
		if err := nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("subscribe to results: %w", err)
		}
	}

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(events.EventKey(f.source, id)))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &exitError{exitTimeout, fmt.Errorf("publish %s: no acknowledgement within --timeout %s (is the worker's stream %s there?)", msg.Subject, f.timeout, worker.EventsStream)}
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("publish %s: %w (no stream captures it: has a worker created %s?)", msg.Subject, err, worker.EventsStream)
		}
		return fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	note := ""
	if ack.Duplicate {
		note = " (duplicate: the stream already had this source and id, so it kept the first copy)"
	}
	fmt.Fprintf(stderr, "published %s id=%s to %s (stream %s seq %d)%s\n", typ, id, msg.Subject, ack.Stream, ack.Sequence, note)
	if !f.wait {
		return nil
	}

	// An event parked for approval first gets an interim result: say so
	// and keep waiting for the final one.
	onPending := func(r *events.Result) {
		fmt.Fprintf(stderr, "waiting for approval: authflow approve %s --seed FILE (rule %s, %s)\n",
			r.Data.Approval.EventKey, r.Data.Approval.Rule, expiresIn(r.Data.Approval.ExpiresAt, time.Now()))
	}
	res, body, err := awaitNoting(ctx, js, results, key, f.source, id, ack.Duplicate, onPending)
	if errors.Is(err, context.DeadlineExceeded) {
		// Say why from the event's ledger entry; a result the worker
		// stored but this subscription missed is printed from there.
		res, body, err = explainNoResult(ctx, js, f.source, id, f.subject, f.timeout, time.Now())
		if err != nil {
			return &exitError{exitTimeout, err}
		}
	}
	if err != nil {
		return err
	}
	if f.jsonOut {
		fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(body))
	} else {
		newResultPrinter(stdout).print(res)
	}
	if res.Data.Status != events.StatusSucceeded {
		return &exitError{code: exitFailed, err: errors.New("")}
	}
	return nil
}

// readData returns the data object from --data or --data-file.
func (f *sendFlags) readData() ([]byte, error) {
	switch {
	case f.data != "" && f.dataFile != "":
		return nil, usagef("--data and --data-file are mutually exclusive")
	case f.dataFile == "-":
		b, err := io.ReadAll(io.LimitReader(os.Stdin, events.DefaultMaxBytes+1))
		if err != nil {
			return nil, usagef("--data-file -: %v", err)
		}
		return b, nil
	case f.dataFile != "":
		fi, err := os.Stat(f.dataFile)
		if err != nil {
			return nil, usagef("--data-file: %v", err)
		}
		if fi.Size() > events.DefaultMaxBytes {
			return nil, usagef("--data-file: %s is larger than an event may be (%d bytes)", f.dataFile, events.DefaultMaxBytes)
		}
		b, err := os.ReadFile(f.dataFile)
		if err != nil {
			return nil, usagef("--data-file: %v", err)
		}
		return b, nil
	case f.data != "":
		return []byte(f.data), nil
	}
	return []byte("{}"), nil
}

// buildEvent returns the CloudEvents JSON of an event. data must be a JSON
// object; it is embedded token for token (only insignificant white space
// is dropped, so the strict decoder still sees duplicate keys and the like),
// with "dryRun": true added in front for --dry-run.
func buildEvent(typ, subject, source, id string, data []byte, dryRun bool, now time.Time) ([]byte, error) {
	data = bytes.TrimSpace(data)
	if !json.Valid(data) {
		return nil, usagef("--data is not valid JSON")
	}
	if len(data) == 0 || data[0] != '{' {
		return nil, usagef("--data must be a JSON object such as {\"mobilePhone\":\"+1 4255550100\"}")
	}
	if dryRun {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(data, &top); err != nil {
			return nil, usagef("--data: %v", err)
		}
		if _, ok := top["dryRun"]; ok {
			return nil, usagef("--dry-run and a dryRun field in --data: give one of them")
		}
		rest := bytes.TrimSpace(data[1:])
		if len(rest) > 0 && rest[0] != '}' {
			data = append([]byte(`{"dryRun":true,`), rest...)
		} else {
			data = []byte(`{"dryRun":true}`)
		}
	}
	return events.MarshalEvent(id, source, typ, subject, now, data)
}

// userKey derives the subject token of a user's events from the event
// subject: an object id as is (lower case); a UPN as "upn-" and 32 hex
// digits of the SHA-256 of the lower-cased UPN, since a UPN's dots cannot
// be in one token and the key must not depend on letter case. The same user
// must always get the same key, so a publisher must use one form (object
// id or UPN) per user.
func userKey(subject string) (string, error) {
	u, err := events.ParseUser(subject)
	if err != nil {
		return "", err
	}
	if u.ObjectID != "" {
		return u.ObjectID, nil
	}
	h := sha256.Sum256([]byte(strings.ToLower(u.UPN)))
	return "upn-" + hex.EncodeToString(h[:16]), nil
}

// awaitResult waits for the result of the event source/id on the live
// subscription results, past a pending_approval result (an event parked
// for approval): see awaitNoting.
func awaitResult(ctx context.Context, js jetstream.JetStream, results <-chan *nats.Msg, key, source, id string, duplicate bool) (*events.Result, []byte, error) {
	return awaitNoting(ctx, js, results, key, source, id, duplicate, nil)
}

// awaitNoting waits for the result of the event source/id on the live
// subscription results; a pending_approval result goes to onPending, when
// set, and the wait goes on for the final one. When the publish was a
// duplicate the result may already be stored, so it also looks in the
// results stream (which needs JetStream API permissions; without them it
// keeps waiting live).
func awaitNoting(ctx context.Context, js jetstream.JetStream, results <-chan *nats.Msg, key, source, id string, duplicate bool,
	onPending func(*events.Result)) (*events.Result, []byte, error) {
	if duplicate {
		if res, body, ok := storedResult(ctx, js, key, source, id); ok {
			if res.Data.Status != events.StatusPendingApproval {
				return res, body, nil
			}
			if onPending != nil {
				onPending(res)
			}
		}
	}
	for {
		select {
		case m := <-results:
			res, ok := matchResult(m.Data, source, id)
			if ok && res.Data.Status == events.StatusPendingApproval {
				if onPending != nil && res.Data.Approval != nil {
					onPending(res)
				}
				continue
			}
			if ok {
				return res, m.Data, nil
			}
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// matchResult decodes body and reports whether it is the result of the
// event source/id.
func matchResult(body []byte, source, id string) (*events.Result, bool) {
	res, err := events.DecodeResult(body)
	if err != nil {
		return nil, false
	}
	return res, res.Data.Event.Source == source && res.Data.Event.ID == id
}

// storedResult looks for the event's result among the stored results of
// its key; it reads them in order and keeps the last match.
func storedResult(ctx context.Context, js jetstream.JetStream, key, source, id string) (*events.Result, []byte, bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, worker.ResultsStream)
	if err != nil {
		return nil, nil, false
	}
	subject := worker.ResultSubject(key)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil || info.State.Subjects[subject] == 0 {
		return nil, nil, false
	}
	want := info.State.Subjects[subject]
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, nil, false
	}
	var (
		found *events.Result
		body  []byte
	)
	for n := uint64(0); n < want; n++ {
		m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			break
		}
		if res, ok := matchResult(m.Data(), source, id); ok {
			found, body = res, m.Data()
		}
	}
	return found, body, found != nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string { return uuid.NewString() }
