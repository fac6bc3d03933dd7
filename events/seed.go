package events

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"

	"github.com/nats-io/nkeys"
)

// ParseSeed reads an nkeys seed from the contents of a seed file: a bare
// seed, or the seed line of a decorated file such as `authflow keys`
// writes (comments and blank lines are skipped). curve says which kind is
// wanted: a curve (xkey, "SX...") seed for sealing, else a signing
// (ed25519) seed. Errors never quote the seed.
func ParseSeed(b []byte, curve bool) (nkeys.KeyPair, error) {
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
		return nil, errors.New("holds no nkeys seed (a line starting with S)")
	}
	isCurve := bytes.HasPrefix(seed, []byte("SX"))
	switch {
	case curve && !isCurve:
		return nil, errors.New("holds a signing seed; a curve (sealing) seed starts with SX (authflow keys new-sealing)")
	case !curve && isCurve:
		return nil, errors.New("holds a curve (sealing) seed; a signing seed starts with SU (authflow keys new-signing)")
	}
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, fmt.Errorf("not an nkeys seed: %w", err)
	}
	return kp, nil
}
