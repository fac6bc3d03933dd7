package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/nats-io/nkeys"
)

// runKeys makes the two kinds of keys authflow uses: ed25519 signing keys
// for publishers (the policy pins their public keys) and curve (xkey)
// sealing keys for the recipients of secrets.
func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args := leadingArg(args)
	fset := newFlagSet("keys new-signing|new-sealing", stderr)
	out := fset.String("out", "", "write the seed to `FILE` (mode 0600, never overwritten) instead of printing it")
	fset.Usage = func() {
		fmt.Fprintln(fset.Output(), "usage: authflow keys new-signing|new-sealing [--out FILE]\n\n"+
			"  new-signing  an nkeys user key pair (ed25519) to sign events: the seed for authflow send --sign-seed,\n"+
			"               the public key (U...) for the policy's sources.<source>.keys\n"+
			"  new-sealing  an nkeys curve key pair (xkey) to receive secrets: the public key (X...) for\n"+
			"               data.tap.sealTo / data.sealTo, the seed for authflow open --seed\n\nflags:")
		fset.PrintDefaults()
	}
	if err := parseFlags(fset, args); err != nil {
		return err
	}
	var (
		kp   nkeys.KeyPair
		err  error
		hint string
	)
	switch sub {
	case "new-signing":
		kp, err = nkeys.CreateUser()
		hint = "pin the public key in the policy (sources.<source>.keys); sign with authflow send --sign-seed"
	case "new-sealing":
		kp, err = nkeys.CreateCurveKeys()
		hint = "put the public key in data.tap.sealTo or data.sealTo; open results with authflow open --seed"
	case "":
		return usagef("keys: name what to make: new-signing or new-sealing")
	default:
		return usagef("keys: unknown %q: want new-signing or new-sealing", sub)
	}
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("public key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer clear(seed)
	if *out != "" {
		line := append(make([]byte, 0, len(seed)+1), seed...)
		defer clear(line)
		if err := writeSecretFile(*out, append(line, '\n')); err != nil {
			return usagef("--out: %v", err)
		}
		fmt.Fprintf(stdout, "public: %s\nseed:   written to %s (mode 0600)\n", pub, *out)
	} else {
		fmt.Fprintf(stdout, "public: %s\nseed:   %s\n", pub, seed)
	}
	fmt.Fprintf(stderr, "keep the seed secret; %s\n", hint)
	return nil
}

// writeSecretFile creates path with mode 0600; it never replaces a file.
func writeSecretFile(path string, data []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; refusing to overwrite a key", path)
		}
		return err
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		os.Remove(path)
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// readSeedFile reads an nkeys seed from a file: a bare seed, or the seed
// line of a decorated file (comments and blank lines are skipped). curve
// says which kind is wanted: a curve (xkey, "SX...") seed or a signing
// (ed25519) seed.
func readSeedFile(path string, curve bool) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	var seed []byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) > 2 && line[0] == 'S' && line[1] >= 'A' && line[1] <= 'Z' {
			seed = line
			break
		}
	}
	if seed == nil {
		return nil, fmt.Errorf("%s holds no nkeys seed (a line starting with S)", path)
	}
	isCurve := bytes.HasPrefix(seed, []byte("SX"))
	switch {
	case curve && !isCurve:
		return nil, fmt.Errorf("%s holds a signing seed; a curve (sealing) seed starts with SX (authflow keys new-sealing)", path)
	case !curve && isCurve:
		return nil, fmt.Errorf("%s holds a curve (sealing) seed; a signing seed starts with SU (authflow keys new-signing)", path)
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kp, nil
}
