// Package identtest reads the identifier corpus (internal/ident/testdata/
// corpus.txt) that the tests of ident, events and graphclient share, so that
// the validators of both packages are held to one list of verdicts.
package identtest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Case is one line of the corpus.
type Case struct {
	Kind  string // "upn" or "phone"
	OK    bool   // the expected verdict
	Value string
	Line  int
}

func (c Case) String() string {
	return fmt.Sprintf("corpus line %d: %s %q", c.Line, c.Kind, c.Value)
}

// Load reads the corpus at file (a path relative to the calling test's
// package directory, e.g. "../internal/ident/testdata/corpus.txt") and
// fails t on a malformed line.
func Load(t testing.TB, file string) []Case {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("open corpus: %v", err)
	}
	defer f.Close()
	var cases []Case
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, rest, ok1 := strings.Cut(line, " ")
		verdict, value, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || (kind != "upn" && kind != "phone") || (verdict != "ok" && verdict != "bad") {
			t.Fatalf("%s:%d: want KIND VERDICT VALUE (upn|phone, ok|bad), got %q", file, n, line)
		}
		if strings.HasPrefix(value, `"`) {
			if value, err = strconv.Unquote(value); err != nil {
				t.Fatalf("%s:%d: bad quoted value: %v", file, n, err)
			}
		}
		cases = append(cases, Case{Kind: kind, OK: verdict == "ok", Value: value, Line: n})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read corpus: %v", err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", file)
	}
	return cases
}
