package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/nats-io/nkeys"

	"github.com/authflow/authflow/events"
)

// approverSeedFile is the name, in authflow dev's data directory, of the
// development approver's signing seed.
const approverSeedFile = "approver.seed"

// loadOrCreateApproverKey reads the development approver's signing seed at
// path, or creates one there (mode 0600) when the file does not exist
// yet, so that the same --data keeps the same approver.
func loadOrCreateApproverKey(path string) (nkeys.KeyPair, error) {
	kp, err := readPrivateSigningSeed(path)
	if err == nil {
		return kp, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	kp, err = nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	seed, err := kp.Seed() // the key pair's own bytes: not to be cleared while it is used
	if err != nil {
		return nil, err
	}
	line := append(make([]byte, 0, len(seed)+1), seed...)
	defer clear(line)
	if err := writeSecretFile(path, append(line, '\n')); err != nil {
		return nil, err
	}
	return kp, nil
}

// readPrivateSigningSeed reads a user signing seed that only its owner may
// read: whoever reads the approver's seed can approve as the approver.
func readPrivateSigningSeed(path string) (nkeys.KeyPair, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by group or others (mode %04o): whoever reads it can approve as this approver; chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxSeedFile))
	if err != nil {
		return nil, err
	}
	defer clear(b)
	kp, err := parseSeed(path, b, false)
	if err != nil {
		return nil, err
	}
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("%s holds no user seed (SU...)", path)
	}
	return kp, nil
}

// printApprovalSteps shows four-eyes approval on the demo administrator.
// The last command has a placeholder, KEY, for what approvals list shows.
func printApprovalSteps(p *resultPrinter, cli, natsURL, approverSeed string) {
	w := p.w
	fmt.Fprintf(w, "four-eyes approval: an MFA reset of %s (a Global Administrator) waits for the development approver:\n", demoAdminUPN)
	fmt.Fprintf(w, "  %s send %s --nats-url %s --subject %s \\\n", cli, events.TypeMFAReset, natsURL, demoAdminUPN)
	fmt.Fprintf(w, "      --data '{\"verification\":{\"ticketId\":\"INC-2001\",\"method\":\"callback\",\"verifiedBy\":\"helpdesk agent\"}}'\n")
	fmt.Fprintf(w, "  %s approvals list --nats-url %s\n", cli, natsURL)
	fmt.Fprintf(w, "  %s approve KEY --seed %s --nats-url %s   (KEY as listed; or: deny KEY --reason TEXT ...)\n", cli, shellQuote(approverSeed), natsURL)
}
