package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// defaultNATSURL is where a local server (authflow dev, nats-server) listens.
const defaultNATSURL = "nats://127.0.0.1:4222"

// natsFlags are the connection flags every subcommand that talks to NATS
// shares, in the forms the NATS tools use: a comma-separated list of URLs, a
// credentials (JWT) file or an nkey seed file, and TLS files.
type natsFlags struct {
	urls        string
	creds       string
	nkey        string
	tlsCert     string
	tlsKey      string
	tlsCA       string
	inboxPrefix string
	timeout     time.Duration
}

func (f *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.urls, "nats-url", defaultNATSURL, "NATS server `URL`s, comma-separated (nats://, tls://, ws://, wss://)")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS user credentials `FILE` (JWT + nkey seed, as made by nsc)")
	fs.StringVar(&f.nkey, "nats-nkey", "", "NATS nkey user seed `FILE` (instead of --nats-creds)")
	fs.StringVar(&f.tlsCert, "nats-tls-cert", "", "client certificate `FILE` (PEM) for NATS mutual TLS; needs --nats-tls-key")
	fs.StringVar(&f.tlsKey, "nats-tls-key", "", "client key `FILE` (PEM) for --nats-tls-cert")
	fs.StringVar(&f.tlsCA, "nats-tls-ca", "", "CA certificate `FILE` (PEM) that signs the NATS servers' certificates")
	fs.StringVar(&f.inboxPrefix, "nats-inbox-prefix", "", "reply inbox `PREFIX` (default _INBOX); one per client lets NATS permissions keep replies private")
	fs.DurationVar(&f.timeout, "nats-timeout", 10*time.Second, "how long to keep trying to reach NATS at start (with a growing pause between attempts) before failing")
}

// serverURLs validates --nats-url and returns the URLs, a scheme added where
// none was given (as the NATS tools do).
func (f *natsFlags) serverURLs() ([]string, error) {
	var out []string
	for _, raw := range strings.Split(f.urls, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		if !strings.Contains(raw, "://") {
			raw = "nats://" + raw
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, usagef("invalid --nats-url %q: %v", redactURL(raw), errors.Unwrap(err))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, usagef("invalid --nats-url %q: scheme must be nats, tls, ws or wss", redactURL(raw))
		}
		if u.Hostname() == "" {
			return nil, usagef("invalid --nats-url %q: no host", redactURL(raw))
		}
		out = append(out, raw)
	}
	if len(out) == 0 {
		return nil, usagef("--nats-url is required")
	}
	return out, nil
}

// validate checks the flags without connecting: files exist and are
// readable, exclusive flags are not combined.
func (f *natsFlags) validate() error {
	if _, err := f.serverURLs(); err != nil {
		return err
	}
	if f.creds != "" && f.nkey != "" {
		return usagef("--nats-creds and --nats-nkey are mutually exclusive")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usagef("--nats-tls-cert and --nats-tls-key must be given together")
	}
	for _, file := range []struct{ flag, path string }{
		{"nats-creds", f.creds}, {"nats-nkey", f.nkey},
		{"nats-tls-cert", f.tlsCert}, {"nats-tls-key", f.tlsKey}, {"nats-tls-ca", f.tlsCA},
	} {
		if file.path == "" {
			continue
		}
		if err := readable(file.path); err != nil {
			return usagef("--%s: %v", file.flag, err)
		}
	}
	if err := f.checkFiles(); err != nil {
		return err
	}
	if p := f.inboxPrefix; p != "" && (strings.ContainsAny(p, "*> \t\r\n") || strings.HasSuffix(p, ".") || strings.HasPrefix(p, ".")) {
		return usagef("invalid --nats-inbox-prefix %q: one or more subject tokens without wildcards", p)
	}
	if f.timeout <= 0 {
		return usagef("--nats-timeout must be positive")
	}
	return nil
}

// checkFiles parses the credential and TLS files, so that a bad file is
// reported with its flag rather than as a failure to connect.
func (f *natsFlags) checkFiles() error {
	if f.creds != "" {
		b, err := os.ReadFile(f.creds)
		if err != nil {
			return usagef("--nats-creds: %v", err)
		}
		defer clear(b)
		if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
			return usagef("--nats-creds: %s holds no user JWT: %v", f.creds, err)
		}
		kp, err := nkeys.ParseDecoratedUserNKey(b)
		if err != nil {
			return usagef("--nats-creds: %s holds no user nkey seed: %v", f.creds, err)
		}
		kp.Wipe()
	}
	if f.nkey != "" {
		kp, err := readSeedFile(f.nkey, false)
		if err != nil {
			return usagef("--nats-nkey: %v", err)
		}
		pub, _ := kp.PublicKey()
		kp.Wipe()
		if !nkeys.IsValidPublicUserKey(pub) {
			return usagef("--nats-nkey: %s is not a user seed (SU...)", f.nkey)
		}
	}
	if f.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey); err != nil {
			return usagef("--nats-tls-cert/--nats-tls-key: %v", err)
		}
	}
	if f.tlsCA != "" {
		b, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return usagef("--nats-tls-ca: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return usagef("--nats-tls-ca: %s holds no PEM certificate", f.tlsCA)
		}
	}
	return nil
}

// readable checks that path is a regular file we can open.
func readable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	return fh.Close()
}

// options turns the flags into nats.go options. name identifies the client
// to the server (it shows in the server's connection list).
func (f *natsFlags) options(name string, log *slog.Logger) ([]nats.Option, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
	}
	if log != nil {
		opts = append(opts,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn("NATS disconnected", "err", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				log.Info("NATS reconnected", "server", redactURL(nc.ConnectedUrl()))
			}),
			nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
				subject := ""
				if sub != nil {
					subject = sub.Subject
				}
				log.Warn("NATS error", "subject", subject, "err", err)
			}),
		)
	}
	switch {
	case f.creds != "":
		opts = append(opts, nats.UserCredentials(f.creds))
	case f.nkey != "":
		o, err := nats.NkeyOptionFromSeed(f.nkey)
		if err != nil {
			return nil, usagef("--nats-nkey: %v", err)
		}
		opts = append(opts, o)
	}
	if f.tlsCert != "" {
		opts = append(opts, nats.ClientCert(f.tlsCert, f.tlsKey))
	}
	if f.tlsCA != "" {
		opts = append(opts, nats.RootCAs(f.tlsCA))
	}
	if f.inboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(f.inboxPrefix))
	}
	return opts, nil
}

// connect validates the flags and connects. A server that does not answer
// yet is tried again, with a growing pause, until --nats-timeout has passed
// since the first attempt: servers that start with this process (a compose
// file, a rollout) are waited for, and a process that cannot reach NATS
// fails rather than only looking alive. A refused credential fails at once.
func (f *natsFlags) connect(ctx context.Context, name string, log *slog.Logger) (*nats.Conn, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	urls, _ := f.serverURLs()
	opts, err := f.options(name, log)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(f.timeout)
	pause := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		// One attempt dials each server once; none may outlast the window.
		dialTimeout := min(time.Until(deadline), maxDialTimeout)
		nc, err := dialNATS(ctx, urls, append(opts, nats.Timeout(max(dialTimeout, time.Millisecond))))
		switch {
		case err == nil:
			return nc, nil
		case errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked):
			return nil, fmt.Errorf("connect to NATS at %s: %w (check --nats-creds, --nats-nkey or the user and password in --nats-url)", redactURLs(urls), err)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("connect to NATS: %w", ctx.Err())
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("connect to NATS at %s (--nats-url): no server answered within --nats-timeout %s (%d attempts): %w", redactURLs(urls), f.timeout, attempt, err)
		}
		if log != nil {
			log.Warn("NATS not reachable yet; trying again", "nats", redactURLs(urls), "attempt", attempt, "err", err, "retry_in", min(pause, left).String())
		}
		t := time.NewTimer(min(pause, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("connect to NATS: %w", ctx.Err())
		}
		pause = min(2*pause, maxConnectPause)
	}
}

// Bounds of the attempts of connect.
const (
	maxDialTimeout  = 5 * time.Second
	maxConnectPause = 2 * time.Second
)

// dialNATS makes one attempt at connecting, abandoned when ctx ends.
func dialNATS(ctx context.Context, urls []string, opts []nats.Option) (*nats.Conn, error) {
	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(strings.Join(urls, ","), opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		return r.nc, r.err
	case <-ctx.Done():
		// Close whatever the dial produces once it returns.
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// redactURL hides the password or token in a URL's user info, so URLs can be
// printed and logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(raw, "@") {
			return "(unparsable URL)"
		}
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else {
		u.User = url.User("xxxxx") // a token
	}
	return u.String()
}

func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = redactURL(u)
	}
	return strings.Join(out, ",")
}
