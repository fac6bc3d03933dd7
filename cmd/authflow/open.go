package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
)

// maxOpenInput bounds what open reads: results are small, and results
// --json output of a busy stream should be filtered first.
const maxOpenInput = 64 << 20

// runOpen decrypts the sealed secrets of one or more results with the
// recipient's curve seed. It is the one command that prints a secret, on
// purpose, to the person it was sealed for.
func runOpen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("open", stderr)
	seedFile := fs.String("seed", "", "the recipient's curve seed `FILE` (authflow keys new-sealing); required")
	resultFile := fs.String("result", "-", "result JSON `FILE`: one result, or several (e.g. authflow results --json); - for stdin")
	var senders senderKeys
	fs.Var(&senders, "expect-sender", "open only secrets sealed by this worker seal `KEY` (X...); give it twice during a key rotation")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *seedFile == "" {
		return usagef("--seed is required: the curve seed file whose public key the secret was sealed to")
	}
	kp, err := readSeedFile(*seedFile, true)
	if err != nil {
		return usagef("--seed: %v", err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}

	var in io.Reader = os.Stdin
	name := "stdin"
	if *resultFile != "-" {
		fh, err := os.Open(*resultFile)
		if err != nil {
			return usagef("--result: %v", err)
		}
		defer fh.Close()
		in, name = fh, *resultFile
	}
	dec := json.NewDecoder(io.LimitReader(in, maxOpenInput))
	var opened, others, refused, results int
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return usagef("read results from %s: %v", name, err)
		}
		results++
		res, err := events.DecodeResult(raw)
		if err != nil {
			return usagef("result %d from %s: %v", results, name, err)
		}
		user := res.Data.User.Ref
		if user == "" {
			user = res.Subject
		}
		for _, op := range res.Data.Operations {
			s := op.Secret
			if s == nil {
				continue
			}
			if s.Recipient != pub {
				others++
				continue
			}
			if len(senders) > 0 && !slices.Contains(senders, s.Sender) {
				// Opening proves who sealed it; only a known sender proves it came from our worker.
				refused++
				fmt.Fprintf(stderr, "refused: %s for %s (event %s %s) was sealed by %s, not by --expect-sender %s: do not use it\n",
					s.Kind, user, res.Data.Event.Source, res.Data.Event.ID, s.Sender, senders.String())
				continue
			}
			secret, err := events.Open(s, kp)
			if err != nil {
				return fmt.Errorf("open %s of event %s %s: %w", s.Kind, res.Data.Event.Source, res.Data.Event.ID, err)
			}
			fmt.Fprintf(stdout, "%s for %s (event %s %s): %s\n", s.Kind, user, res.Data.Event.Source, res.Data.Event.ID, secret)
			clear(secret)
			opened++
		}
	}
	if results == 0 {
		return usagef("no result in %s", name)
	}
	if others > 0 {
		fmt.Fprintf(stderr, "%d sealed secret(s) are for another recipient than %s\n", others, shortKey(pub))
	}
	if refused > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d sealed secret(s) refused: sealed by another key than --expect-sender", refused)}
	}
	if opened == 0 {
		return &exitError{exitFailed, fmt.Errorf("no secret sealed to %s in %d result(s)", pub, results)}
	}
	return nil
}

// senderKeys is --expect-sender: curve public keys, given once each or
// comma-separated (AUTHFLOW_EXPECT_SENDER=X1,X2).
type senderKeys []string

func (k *senderKeys) String() string { return strings.Join(*k, ",") }

func (k *senderKeys) Set(v string) error {
	for _, key := range strings.Split(v, ",") {
		key = strings.TrimSpace(key)
		if !nkeys.IsValidPublicCurveKey(key) {
			return fmt.Errorf("%q is not a curve public key (X..., the worker's seal key)", key)
		}
		*k = append(*k, key)
	}
	return nil
}
