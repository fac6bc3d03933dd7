package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
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
		hint = "a recipient: put the public key in data.tap.sealTo or data.sealTo and open results with authflow open --seed; " +
			"a worker's seal key: give the file to every replica (authflow worker --seal-key-file) and the public key to recipients (authflow open --expect-sender)"
	case "":
		return usagef("name what to make: new-signing or new-sealing")
	default:
		return usagef("unknown key kind %q: want new-signing or new-sealing", sub)
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
	return parseSeed(path, b, curve)
}

// parseSeed finds the seed in the contents b of the file path.
func parseSeed(path string, b []byte, curve bool) (nkeys.KeyPair, error) {
	kp, err := events.ParseSeed(b, curve)
	if err != nil {
		return nil, fmt.Errorf("%s %w", path, err)
	}
	return kp, nil
}

// maxSeedFile bounds what readPrivateCurveSeed reads: a seed is 58 bytes.
const maxSeedFile = 64 << 10

// readPrivateCurveSeed reads a curve seed that must stay private, such as
// the worker's seal key: whoever reads it can seal secrets as the worker.
// The file must not be readable by others than its owner, with one
// exception: a file owned by root may be readable by its group (0440),
// since only root chose that group; that is how Kubernetes mounts a Secret
// for a pod with an fsGroup (PostgreSQL applies the same rule to its key).
func readPrivateCurveSeed(path string) (nkeys.KeyPair, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat() // of the file opened, not of whatever path names by now
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	perm := fi.Mode().Perm()
	uid, known := fileOwner(fi)
	rootGroupRead := known && uid == 0 && perm&0o070 == 0o040
	if perm&0o007 != 0 || (perm&0o070 != 0 && !rootGroupRead) {
		return nil, fmt.Errorf("%s is readable by group or others (mode %04o): whoever reads it can seal secrets as this worker; chmod 600 %s (a root-owned file, such as a Kubernetes Secret mounted with an fsGroup, may be 0440)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxSeedFile))
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return parseSeed(path, b, true)
}

// loadOrCreateCurveKey reads the private curve seed at path, or creates one
// there (mode 0600) when the file does not exist yet.
func loadOrCreateCurveKey(path string) (nkeys.KeyPair, error) {
	kp, err := readPrivateCurveSeed(path)
	if err == nil {
		return kp, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	kp, err = nkeys.CreateCurveKeys()
	if err != nil {
		return nil, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	line := append(make([]byte, 0, len(seed)+1), seed...)
	defer clear(line)
	if err := writeSecretFile(path, append(line, '\n')); err != nil {
		return nil, err
	}
	return kp, nil
}
