package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// newFlagSet returns the flag set of one subcommand. Parse errors are
// reported by parseFlags in one line; --help is printed on stdout by run.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("authflow "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s [flags]\n\nflags:\n", fs.Name())
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, then fills every flag that was not given on the
// command line from its AUTHFLOW_ environment twin. A bad value in the
// environment is reported with the variable's name. --help returns a
// *helpRequest (which is flag.ErrHelp) for run to print.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard) // the flag package would print the whole usage with each error
	err := fs.Parse(args)
	fs.SetOutput(out)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &helpRequest{fs}
		}
		return flagError(fs, err)
	}
	if fs.NArg() > 0 && fs.Lookup("args-allowed") == nil {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = usagef("invalid value %q for %s (--%s): %v", v, env, f.Name, e)
			}
		}
	})
	return err
}

// envName maps a flag name to its environment twin: nats-url -> AUTHFLOW_NATS_URL.
func envName(flagName string) string {
	return "AUTHFLOW_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// helpRequest is --help: run prints the usage of fs on stdout.
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return flag.ErrHelp.Error() }
func (h *helpRequest) Unwrap() error { return flag.ErrHelp }

// print writes the usage of the flag set to w, with flags written as the
// docs write them (--name).
func (h *helpRequest) print(w io.Writer) {
	var b bytes.Buffer
	out := h.fs.Output()
	h.fs.SetOutput(&b)
	h.fs.Usage()
	h.fs.SetOutput(out)
	io.WriteString(w, longFlags(b.String()))
	fmt.Fprintln(w, "\nevery flag --some-name can also be set as AUTHFLOW_SOME_NAME; the command line wins.")
}

// longFlags rewrites the flag lines of flag.PrintDefaults ("  -name") with
// two dashes ("  --name"). Every subcommand's usage goes through it, also
// those that call PrintDefaults themselves.
func longFlags(usage string) string {
	lines := strings.SplitAfter(usage, "\n")
	for i, l := range lines {
		if len(l) > 3 && strings.HasPrefix(l, "  -") && l[3] != '-' && l[3] != ' ' {
			lines[i] = "  --" + l[3:]
		}
	}
	return strings.Join(lines, "")
}

// flagError turns an error of flag.FlagSet.Parse into one line that writes
// flags with two dashes, suggests the nearest flag for an unknown one, and
// points at --help.
func flagError(fs *flag.FlagSet, err error) error {
	cmd := fs.Name()
	if f := strings.Fields(cmd); len(f) > 2 {
		cmd = f[0] + " " + f[1] // "authflow keys new-signing|new-sealing"
	}
	hint := "'" + cmd + " --help' lists the flags"
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimLeft(name, "-")
		if near := nearestFlag(fs, name); near != "" {
			return usagef("unknown flag --%s: did you mean --%s? (%s)", name, near, hint)
		}
		return usagef("unknown flag --%s (%s)", name, hint)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return usagef("--%s needs a value (%s)", strings.TrimLeft(name, "-"), hint)
	}
	msg = strings.Replace(msg, " for flag -", " for --", 1)
	if strings.HasPrefix(msg, "invalid boolean value ") {
		msg = strings.Replace(msg, " for -", " for --", 1)
	}
	return usagef("%s (%s)", msg, hint)
}

// nearestFlag returns the flag of fs closest to name in edit distance,
// when it is close enough to be what was meant.
func nearestFlag(fs *flag.FlagSet, name string) string {
	best, bestDist := "", len(name)/3+2
	fs.VisitAll(func(f *flag.Flag) { // in name order: ties go to the first
		if d := editDistance(name, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
