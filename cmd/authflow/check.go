package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/worker"
)

// checklist prints one line per check and remembers failures.
type checklist struct {
	w      io.Writer
	failed int
}

func (c *checklist) ok(format string, a ...any) {
	fmt.Fprintf(c.w, "[ok]   %s\n", fmt.Sprintf(format, a...))
}

func (c *checklist) fail(format string, a ...any) {
	c.failed++
	fmt.Fprintf(c.w, "[FAIL] %s\n", fmt.Sprintf(format, a...))
}

func (c *checklist) skip(format string, a ...any) {
	fmt.Fprintf(c.w, "[skip] %s\n", fmt.Sprintf(format, a...))
}

// runCheck is what an operator runs before going live: NATS reachable,
// the streams and the ledger present, a Graph token obtainable, and a read
// that proves the permissions.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		nf natsFlags
		gf graphFlags
	)
	fs := newFlagSet("check", stderr)
	nf.register(fs)
	gf.register(fs)
	policy := fs.String("policy", "", "also load and validate this policy `FILE`")
	probe := fs.String("probe-user", "", "read this user (object id or UPN) and their methods to prove Graph permissions")
	timeout := fs.Duration("timeout", 15*time.Second, "time allowed for each check")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := nf.validate(); err != nil {
		return err
	}
	if err := gf.validate(); err != nil {
		return err
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if *probe != "" {
		if _, err := events.ParseUser(*probe); err != nil {
			return usagef("--probe-user: %v", err)
		}
	}
	c := &checklist{w: stdout}
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, *timeout) }

	if *policy != "" {
		if p, err := events.LoadPolicy(*policy); err != nil {
			c.fail("policy: %v", err)
		} else {
			c.ok("policy %s is valid (events accepted up to %s old)", *policy, p.MaxAge())
		}
	}

	// NATS and JetStream.
	sctx, cancel := step()
	nc, err := nf.connect(sctx, "authflow-check", nil)
	cancel()
	if err != nil {
		c.fail("NATS: %v", err)
	} else {
		defer nc.Close()
		c.ok("NATS reachable at %s (server %s %s)", redactURL(nc.ConnectedUrl()), nc.ConnectedServerName(), nc.ConnectedServerVersion())
		checkJetStream(ctx, c, step, nc)
	}

	// Graph.
	sctx, cancel = step()
	defer cancel()
	graph, err := gf.client(nil, nil, nil)
	if err != nil {
		c.fail("Graph client: %v", err)
	} else if err := graph.CheckToken(sctx); err != nil {
		if gf.token == "" && !anyAzureCredentialVar() {
			c.fail("Graph token: no credential is configured, and the managed identity tried instead failed (%s). Set AZURE_TENANT_ID, AZURE_CLIENT_ID "+
				"and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH), or AZURE_FEDERATED_TOKEN_FILE with the two ids for workload identity; "+
				"--graph-token TOKEN for the emulator (docs/cli.md, Graph flags)", managedIdentityCause(err))
		} else {
			c.fail("Graph token for %s: %v", gf.url, err)
		}
	} else {
		c.ok("Graph token obtainable for %s", gf.describe())
		if *probe == "" {
			c.skip("Graph permissions: give --probe-user USER to read a user and their methods")
		} else {
			pctx, cancel := step()
			defer cancel()
			u, err := graph.ResolveUser(pctx, *probe)
			if err != nil {
				c.fail("Graph read user %s (needs User.Read.All): %v", *probe, err)
			} else if ms, err := graph.Methods(pctx, u.ID); err != nil {
				c.fail("Graph read methods of %s (needs UserAuthenticationMethod.Read.All or ReadWrite.All): %v", *probe, err)
			} else {
				c.ok("Graph permissions: read user %s (%s) and %d authentication method(s)", u.UserPrincipalName, u.ID, len(ms))
			}
		}
	}

	if c.failed > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d check(s) failed", c.failed)}
	}
	fmt.Fprintln(stdout, "all checks passed")
	return nil
}

func checkJetStream(ctx context.Context, c *checklist, step func() (context.Context, context.CancelFunc), nc *nats.Conn) {
	js, err := jetstream.New(nc)
	if err != nil {
		c.fail("JetStream: %v", err)
		return
	}
	sctx, cancel := step()
	defer cancel()
	if _, err := js.AccountInfo(sctx); err != nil {
		c.fail("JetStream enabled for this account: %v", err)
		return
	}
	c.ok("JetStream enabled for this account")
	for _, name := range []string{worker.EventsStream, worker.ResultsStream, worker.DLQStream, worker.PriorityStream} {
		s, err := js.Stream(sctx, name)
		if err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				c.fail("stream %s missing (a worker creates it at start)", name)
			} else {
				c.fail("stream %s: %v", name, err)
			}
			continue
		}
		info := s.CachedInfo()
		c.ok("stream %s: %d message(s), %d replica(s), %d consumer(s)", name, info.State.Msgs, info.Config.Replicas, info.State.Consumers)
	}
	kv, err := js.KeyValue(sctx, worker.LedgerBucket)
	if err != nil {
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			c.fail("KV bucket %s missing (a worker creates it at start)", worker.LedgerBucket)
		} else {
			c.fail("KV bucket %s: %v", worker.LedgerBucket, err)
		}
		return
	}
	st, err := kv.Status(sctx)
	if err != nil {
		c.fail("KV bucket %s: %v", worker.LedgerBucket, err)
		return
	}
	c.ok("KV bucket %s: %d entries, history %d, TTL %s", worker.LedgerBucket, st.Values(), st.History(), st.TTL())
}

// azureCredentialVars choose the Graph credential (see
// graphclient.NewCredentialFromEnv); without any, it is managed identity.
var azureCredentialVars = []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE"}

func anyAzureCredentialVar() bool {
	for _, v := range azureCredentialVars {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return false
}

var reResponseStatus = regexp.MustCompile(`RESPONSE (\d{3})`)

// managedIdentityCause says in a few words why the managed identity gave
// no token: azidentity's errors run over many lines.
func managedIdentityCause(err error) string {
	msg := err.Error()
	if m := reResponseStatus.FindStringSubmatch(msg); m != nil {
		return "its endpoint answered HTTP " + m[1]
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer from its endpoint within --timeout"
	}
	if len(msg) > 120 {
		msg = strings.ToValidUTF8(msg[:120], "") + "…"
	}
	return msg
}
