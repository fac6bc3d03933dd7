package main

import (
	"errors"
	"net"
	"os"
)

// checkListen validates a HOST:PORT listen flag; every listen flag of every
// subcommand goes through it. An empty host would mean every interface: it
// must be asked for explicitly (0.0.0.0 or [::]).
func checkListen(flagName, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("invalid --%s %q: want HOST:PORT such as 127.0.0.1:9090", flagName, addr)
	}
	if host == "" {
		return usagef("invalid --%s %q: give a host (127.0.0.1, the pod IP, or 0.0.0.0 to listen on every interface)", flagName, addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return usagef("invalid --%s %q: bad port", flagName, addr)
	}
	return nil
}

// listen binds the address of a listen flag. A port that is taken is a
// configuration error, reported with the flag:
// "--nats-listen 127.0.0.1:4222: address already in use".
func listen(flagName, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("--%s %s: %v", flagName, addr, listenCause(err))
	}
	return ln, nil
}

// listenCause strips "listen tcp ADDR: bind:" from a listen error.
func listenCause(err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
