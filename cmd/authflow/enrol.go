package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/internal/passkey"
	"github.com/authflow/authflow/worker"
)

// authflow enrol is an enrolment station: it registers a passkey on behalf
// of a user in the two events of docs/events.md ("Passkey requests"). It
// asks for creation options sealed to its own curve key (or takes a result
// someone else asked for), opens them, performs the ceremony, and sends the
// credential. No maintained pure-Go CTAP2 library was available, so the
// ceremony is made by a software authenticator (internal/passkey) whose key
// lives in this process only: the flow is real, the passkey demonstrates
// it (docs/cli.md says so).

type enrolFlags struct {
	nats               natsFlags
	subject            string
	sealSeed           string
	signSeed           string
	source             string
	optionsResult      string
	displayName        string
	senders            senderKeys
	ticketID           string
	verificationMethod string
	verifiedBy         string
	timeout            time.Duration
	jsonOut            bool
}

func (f *enrolFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.subject, "subject", "", "the user: object id (GUID) or user principal name; required")
	fs.StringVar(&f.sealSeed, "seal-seed", "", "the station's curve seed `FILE` (authflow keys new-sealing): the options are sealed to its public key; required")
	fs.StringVar(&f.signSeed, "sign-seed", "", "sign both events with the nkeys seed in `FILE` (authflow keys new-signing); production policies require it")
	fs.StringVar(&f.source, "source", defaultSource, "CloudEvents source of the station's events (the policy decides per source)")
	fs.StringVar(&f.optionsResult, "options-result", "", "take the options from this result JSON `FILE` (of an authflow.passkey.options.v1 sealed to --seal-seed) instead of asking for them")
	fs.StringVar(&f.displayName, "display-name", "", "the passkey's display name (default: Graph's)")
	fs.StringVar(&f.ticketID, "ticket-id", "", "data.verification.ticketId of the options request (with --verification-method and --verified-by)")
	fs.StringVar(&f.verificationMethod, "verification-method", "", "data.verification.method: callback, manager, in-person or verified-id")
	fs.StringVar(&f.verifiedBy, "verified-by", "", "data.verification.verifiedBy: who verified the person")
	fs.DurationVar(&f.timeout, "timeout", 4*time.Minute, "bound on the whole enrolment; Graph's challenge lives 5 minutes")
	fs.BoolVar(&f.jsonOut, "json", false, "print the register event's result as JSON")
}

func (f *enrolFlags) validate() error {
	switch {
	case f.subject == "":
		return usagef("--subject is required: the user's object id or user principal name")
	case f.sealSeed == "":
		return usagef("--seal-seed is required: the station's curve seed (authflow keys new-sealing)")
	case f.timeout <= 0 || f.timeout > 5*time.Minute:
		return usagef("--timeout must be positive and at most 5m (Graph's challenge lifetime), got %s", f.timeout)
	case f.displayName != "" && (len([]rune(f.displayName)) > 256 || strings.ContainsFunc(f.displayName, isControlOrSpaceButSpace)):
		return usagef("--display-name must be at most 256 printable characters")
	}
	if _, err := events.ParseUser(f.subject); err != nil {
		return usagef("--subject: %v", err)
	}
	n := 0
	for _, s := range []string{f.ticketID, f.verificationMethod, f.verifiedBy} {
		if s != "" {
			n++
		}
	}
	if n != 0 && n != 3 {
		return usagef("--ticket-id, --verification-method and --verified-by go together: give all three or none")
	}
	if n == 3 && f.optionsResult != "" {
		return usagef("--options-result and --ticket-id: the verification belongs to the options request, which --options-result did not send")
	}
	return f.nats.validate()
}

func isControlOrSpaceButSpace(r rune) bool { return r != ' ' && isControlOrSpace(r) }

func runEnrol(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f enrolFlags
	fs := newFlagSet("enrol", stderr)
	f.nats.register(fs)
	f.register(fs)
	fs.Var(&f.senders, "expect-sender", "open only options sealed by this worker seal `KEY` (X...); give it twice during a key rotation")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	stationKey, err := readSeedFile(f.sealSeed, true)
	if err != nil {
		return usagef("--seal-seed: %v", err)
	}
	defer stationKey.Wipe()
	var signer nkeys.KeyPair
	if f.signSeed != "" {
		if signer, err = readSeedFile(f.signSeed, false); err != nil {
			return usagef("--sign-seed: %v", err)
		}
	}
	var optionsRes *events.Result
	if f.optionsResult != "" {
		b, err := os.ReadFile(f.optionsResult)
		if err != nil {
			return usagef("--options-result: %v", err)
		}
		if optionsRes, err = events.DecodeResult(b); err != nil {
			return usagef("--options-result: %v", err)
		}
	}
	key, err := userKey(f.subject)
	if err != nil {
		return usagef("--subject: %v", err)
	}

	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	nc, err := f.nats.connect(ctx, "authflow-enrol", nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	st := &station{nc: nc, key: key, source: f.source, subject: f.subject, signer: signer, stderr: stderr}
	if st.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sealTo, _ := stationKey.PublicKey()

	// 1. The options, sealed to this station.
	if optionsRes == nil {
		data := map[string]any{"sealTo": sealTo}
		if f.ticketID != "" {
			data["verification"] = map[string]string{"ticketId": f.ticketID, "method": f.verificationMethod, "verifiedBy": f.verifiedBy}
		}
		res, _, err := st.send(ctx, events.TypePasskeyOptions, data)
		if err != nil {
			return err
		}
		optionsRes = res
	}
	opts, err := openPasskeyOptions(optionsRes, stationKey, f.senders, f.subject, time.Now())
	if err != nil {
		return err
	}

	// 2. The ceremony.
	fmt.Fprintf(stderr, "registering a passkey for %s with the software authenticator (challenge valid until %s)\n",
		opts.UserPrincipalName, opts.ChallengeExpires.Format(time.RFC3339))
	cred, err := (&passkey.SoftAuthenticator{}).MakeCredential(opts.PublicKey, "")
	if err != nil {
		return &exitError{exitFailed, fmt.Errorf("passkey ceremony: %w", err)}
	}

	// 3. The credential, signed like the options request.
	reg := map[string]any{"publicKeyCredential": cred}
	if f.displayName != "" {
		reg["displayName"] = f.displayName
	}
	res, body, err := st.send(ctx, events.TypePasskeyRegister, reg)
	if err != nil {
		return err
	}
	if f.jsonOut {
		fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(body)))
	} else {
		newResultPrinter(stdout).print(res)
	}
	if res.Data.Status != events.StatusSucceeded {
		return &exitError{code: exitFailed, err: errors.New("")}
	}
	return nil
}

// station sends the enrolment's events and waits for their results.
type station struct {
	nc                   *nats.Conn
	js                   jetstream.JetStream
	key, source, subject string
	signer               nkeys.KeyPair
	stderr               io.Writer
}

// send publishes one event of typ with data and returns its result; a
// result other than succeeded is an exitError (status 1).
func (s *station) send(ctx context.Context, typ string, data any) (*events.Result, []byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s data: %w", typ, err)
	}
	id := newUUID()
	ev, err := buildEvent(typ, s.subject, s.source, id, raw, false, time.Now())
	if err != nil {
		return nil, nil, err
	}
	if _, err := (events.Decoder{}).Decode(ev); err != nil {
		return nil, nil, usagef("invalid %s event: %v", typ, err)
	}
	msg := nats.NewMsg(worker.EventSubject(s.key))
	msg.Data = ev
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	if s.signer != nil {
		sig, pub, err := events.Sign(ev, s.signer)
		if err != nil {
			return nil, nil, fmt.Errorf("sign event: %w", err)
		}
		msg.Header.Set(events.HeaderSignature, sig)
		msg.Header.Set(events.HeaderSigner, pub)
	}
	results := make(chan *nats.Msg, 64)
	sub, err := s.nc.ChanSubscribe(worker.ResultSubject(s.key), results)
	if err != nil {
		return nil, nil, fmt.Errorf("subscribe to results: %w", err)
	}
	defer sub.Unsubscribe()
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return nil, nil, fmt.Errorf("subscribe to results: %w", err)
	}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(events.EventKey(s.source, id)))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, nil, &exitError{exitTimeout, fmt.Errorf("publish %s: no acknowledgement within --timeout", typ)}
		}
		return nil, nil, fmt.Errorf("publish %s: %w", typ, err)
	}
	fmt.Fprintf(s.stderr, "published %s id=%s (stream %s seq %d)\n", typ, id, ack.Stream, ack.Sequence)
	res, body, err := awaitResult(ctx, s.js, results, s.key, s.source, id, ack.Duplicate)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, nil, &exitError{exitTimeout, fmt.Errorf("no result of %s within --timeout (is a worker running?)", typ)}
		}
		return nil, nil, err
	}
	if res.Data.Status != events.StatusSucceeded && typ == events.TypePasskeyOptions {
		newResultPrinter(s.stderr).print(res)
		return nil, nil, &exitError{exitFailed, fmt.Errorf("%s %s: no options", typ, res.Data.Status)}
	}
	return res, body, nil
}

// openPasskeyOptions finds the passkeyCreationOptions secret sealed to
// station in res, opens it (refusing senders other than expect, when
// given) and checks that it is for subject and still valid at now.
func openPasskeyOptions(res *events.Result, station nkeys.KeyPair, expect senderKeys, subject string, now time.Time) (events.PasskeyOptions, error) {
	pub, _ := station.PublicKey()
	var o events.PasskeyOptions
	for _, op := range res.Data.Operations {
		s := op.Secret
		if op.Op != events.OpPasskeyOptions || s == nil || s.Kind != events.SecretPasskeyOptions || s.Recipient != pub {
			continue
		}
		if len(expect) > 0 && !slices.Contains(expect, s.Sender) {
			return o, &exitError{exitFailed, fmt.Errorf("the options were sealed by %s, not by --expect-sender %s: refusing them", s.Sender, expect.String())}
		}
		plain, err := events.Open(s, station)
		if err != nil {
			return o, &exitError{exitFailed, fmt.Errorf("open the options: %w", err)}
		}
		err = json.Unmarshal(plain, &o)
		clear(plain)
		if err != nil {
			return o, &exitError{exitFailed, fmt.Errorf("the opened options are not passkey options: %w", err)}
		}
		u, _ := events.ParseUser(subject)
		if u.ObjectID != "" && !strings.EqualFold(o.UserID, u.ObjectID) || u.ObjectID == "" && !strings.EqualFold(o.UserPrincipalName, u.UPN) {
			return o, &exitError{exitFailed, fmt.Errorf("the options are for %s (%s), not for --subject %s", o.UserPrincipalName, o.UserID, subject)}
		}
		if !now.Before(o.ChallengeExpires) {
			return o, &exitError{exitFailed, fmt.Errorf("the options' challenge expired at %s: ask for new options", o.ChallengeExpires.Format(time.RFC3339))}
		}
		if err := passkey.CheckOptions(o.PublicKey); err != nil {
			return o, &exitError{exitFailed, err}
		}
		return o, nil
	}
	return o, &exitError{exitFailed, fmt.Errorf("result of %s %s has no passkey options sealed to %s", res.Data.Event.Source, res.Data.Event.ID, pub)}
}
