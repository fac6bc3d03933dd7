package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"
)

// betaDefaultMethod is the one Graph beta feature there is: read and move
// users' default MFA method through beta signInPreferences.
const betaDefaultMethod = "default-method"

// graphBeta is --graph-beta: the Graph beta features to use, given once
// each or comma-separated (AUTHFLOW_GRAPH_BETA=default-method). Beta APIs
// can change without notice, so none is used unless named here.
type graphBeta []string

func (b *graphBeta) String() string { return strings.Join(*b, ",") }

func (b *graphBeta) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			return fmt.Errorf("empty beta feature (known: %s)", betaDefaultMethod)
		case f != betaDefaultMethod:
			return fmt.Errorf("unknown Graph beta feature %q (known: %s)", f, betaDefaultMethod)
		case !slices.Contains(*b, f):
			*b = append(*b, f)
		}
	}
	return nil
}

func (b graphBeta) has(f string) bool { return slices.Contains(b, f) }

func (b *graphBeta) register(fs *flag.FlagSet) {
	fs.Var(b, "graph-beta", "Graph beta `FEATURES` to use, comma-separated; the only one is default-method (read and move users' default MFA method through beta signInPreferences). Default: none, Graph v1.0 only")
}
