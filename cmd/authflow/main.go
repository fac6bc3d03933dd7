// Command authflow automates Microsoft Entra ID authentication methods from HR and
// helpdesk events carried by NATS JetStream.
//
// One binary, a few subcommands; run "authflow help" for the list and
// "authflow CMD --help" for the flags of one. Every flag has an environment
// variable twin: --nats-url is AUTHFLOW_NATS_URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. run parses args itself (see newFlagSet) so that
// each subcommand owns its flags.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is filled by the files of this package, one file per subcommand.
func commands() map[string]command {
	cmds := map[string]command{
		"worker":   {"run the worker: consume events, apply them to Microsoft Graph, publish results", runWorker},
		"dev":      {"local demo: embedded JetStream + Graph emulator + worker + demo events", runDev},
		"send":     {"build, validate, sign and publish an event (--wait: print its result)", runSend},
		"ingress":  {"HTTP ingress: CloudEvents and webhooks in, results webhooks out", runIngress},
		"results":  {"print stored results (--follow: and new ones), found by event id, source, status or user", runResults},
		"audit":    {"export results and notifications together, in time order and secret-free, for a SIEM (jsonl or csv)", runAudit},
		"dlq":      {"list, show or replay dead letters", runDLQ},
		"keys":     {"make a signing key (new-signing) or a sealing key (new-sealing)", runKeys},
		"open":     {"open the sealed secrets of a result with the recipient's seed", runOpen},
		"enrol":    {"enrolment station: register a passkey on behalf of a user (options, ceremony, register)", runEnrol},
		"check":    {"pre-flight checks: NATS, streams, ledger, Graph token and permissions", runCheck},
		"emulator": {"serve the Microsoft Graph emulator over HTTP", runEmulator},
		"bench":    {"measure throughput, latency, throttling and memory on this machine", runBench},
		"version":  {"print the version, the VCS revision and the Go version of this binary", runVersion},
	}
	cmds["scheduled"] = command{"list the future-dated events waiting for their effectiveAt (scheduled list)", runScheduled}
	cmds["reconcile"] = command{"compare an HR export with Graph, report drift (--apply: publish the corrections)", runReconcile}
	maps.Copy(cmds, approvalCommands())
	return cmds
}

// exitError carries a specific exit status out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		usage(stdout, cmds)
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		if near := nearestCommand(cmds, args[0]); near != "" {
			fmt.Fprintf(stderr, "authflow: unknown command %q: did you mean %s? ('authflow help' lists the commands)\n", args[0], near)
		} else {
			fmt.Fprintf(stderr, "authflow: unknown command %q; 'authflow help' lists the commands\n", args[0])
		}
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	var help *helpRequest
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		help.print(stdout)
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			printError(stderr, args[0], ee.err)
		}
		return ee.code
	}
	printError(stderr, args[0], err)
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// printError prints err on w, each of its lines prefixed with the command.
// A message that starts with the command itself ("dlq: ...", "dlq show:
// ...") gets the prefix once: "authflow dlq show: ...".
func printError(w io.Writer, cmd string, err error) {
	msg := err.Error()
	if msg == "" {
		return
	}
	prefix := "authflow " + cmd + ": "
	if rest, ok := strings.CutPrefix(msg, cmd+": "); ok {
		msg = rest
	} else if rest, ok := strings.CutPrefix(msg, cmd+" "); ok {
		if word, tail, ok := strings.Cut(rest, ": "); ok && !strings.ContainsAny(word, " \n") {
			prefix, msg = "authflow "+cmd+" "+word+": ", tail
		}
	}
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(w, "%s%s\n", prefix, line)
	}
}

// nearestCommand returns the command closest to name in edit distance,
// when it is close enough to be what was meant.
func nearestCommand(cmds map[string]command, name string) string {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names) // ties go to the first
	best, bestDist := "", len(name)/3+2
	for _, n := range names {
		if d := editDistance(name, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: authflow COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'authflow COMMAND --help' for the flags of one command;")
	fmt.Fprintln(w, "every flag --some-name can also be set as AUTHFLOW_SOME_NAME.")
}

// usageError is bad configuration: exit status 2 and a message naming the flag.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }
