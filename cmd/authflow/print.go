package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/authflow/authflow/events"
)

// ANSI colours, used only when the output is a terminal.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
)

// useColor reports whether w is a terminal that should get colour: a
// character device, and NO_COLOR (https://no-color.org) unset.
func useColor(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// resultPrinter writes results in the readable form: a line per event and
// an indented line per operation. It never prints a secret: sealed secrets
// are named, not opened.
type resultPrinter struct {
	w     io.Writer
	color bool
}

func newResultPrinter(w io.Writer) *resultPrinter {
	return &resultPrinter{w: w, color: useColor(w)}
}

func (p *resultPrinter) paint(code, s string) string {
	if !p.color || code == "" {
		return s
	}
	return code + s + ansiReset
}

// print writes one result.
func (p *resultPrinter) print(r *events.Result) {
	fmt.Fprint(p.w, p.format(r))
}

// format renders one result, ending in a newline.
func (p *resultPrinter) format(r *events.Result) string {
	d := r.Data
	var b strings.Builder
	mark, colour := "✘", ansiRed
	switch d.Status {
	case events.StatusSucceeded:
		mark, colour = "✔", ansiGreen
	case events.StatusPendingApproval, events.StatusScheduled:
		mark, colour = "…", ansiYellow
	case events.StatusCancelled:
		mark, colour = "–", ansiYellow
	}
	user := d.User.Ref
	if user == "" {
		user = r.Subject
	}
	if user == "" {
		user = "(subject not read)"
	}
	typ := d.Event.Type
	if typ == "" {
		typ = "(unknown type)"
	}
	var facts []string
	if d.DryRun {
		facts = append(facts, p.paint(ansiYellow, "dry run"))
	}
	facts = append(facts, plural(len(d.Operations), "op", "ops"))
	facts = append(facts, fmt.Sprintf("%d ms", durationMs(d)))
	if d.Attempts > 1 {
		facts = append(facts, fmt.Sprintf("%d attempts", d.Attempts))
	}
	fmt.Fprintf(&b, "%s %s  %s  %s  (%s)",
		p.paint(colour, mark), p.paint(ansiBold+colour, fmt.Sprintf("%-9s", d.Status)),
		typ, p.paint(ansiCyan, user), strings.Join(facts, ", "))
	if d.Error != nil {
		fmt.Fprintf(&b, "  %s", p.paint(colour, errorText(d.Error)))
	}
	if a := d.Approval; a != nil {
		switch a.Decision {
		case "":
			fmt.Fprintf(&b, "  %s", p.paint(colour, fmt.Sprintf("waits for approval (rule %s): authflow approve %s", a.Rule, a.EventKey)))
		case events.DecisionGranted:
			fmt.Fprintf(&b, "  %s", p.paint(ansiDim, "approved by "+shortKey(a.Approver)))
		}
	}
	b.WriteByte('\n')
	for _, op := range d.Operations {
		p.formatOp(&b, op, d.DryRun)
	}
	return b.String()
}

func (p *resultPrinter) formatOp(b *strings.Builder, op events.OpResult, dry bool) {
	outcome := string(op.Outcome)
	if dry {
		switch op.Outcome {
		case events.OutcomeCreated, events.OutcomeUpdated, events.OutcomeDeleted:
			outcome = "would " + strings.TrimSuffix(outcome, "d")
		}
	}
	what := op.MethodKind
	if what == "" {
		what = string(op.Op)
	}
	colour := ""
	switch op.Outcome {
	case events.OutcomeFailed:
		colour = ansiRed
	case events.OutcomeUnchanged, events.OutcomeSkipped:
		colour = ansiDim
	}
	line := fmt.Sprintf("    %-12s %s", outcome, what)
	if op.Detail != "" {
		line += "  " + op.Detail
	}
	fmt.Fprint(b, p.paint(colour, line))
	if op.Secret != nil {
		fmt.Fprintf(b, "  %s", p.paint(ansiYellow, fmt.Sprintf("[%s sealed to %s: authflow open]", op.Secret.Kind, shortKey(op.Secret.Recipient))))
	}
	if op.Error != nil {
		fmt.Fprintf(b, "  %s", p.paint(ansiRed, errorText(op.Error)))
	}
	b.WriteByte('\n')
	for _, m := range op.Methods {
		fmt.Fprintf(b, "%s\n", p.paint(ansiDim, "        "+methodLine(m)))
	}
}

// methodLine describes one method of an inventory.
func methodLine(m events.MethodSummary) string {
	parts := []string{m.Kind}
	if m.DisplayName != "" {
		parts = append(parts, fmt.Sprintf("%q", m.DisplayName))
	}
	if m.Detail != "" {
		parts = append(parts, m.Detail)
	}
	if m.ID != "" {
		parts = append(parts, "id "+m.ID)
	}
	return strings.Join(parts, " ")
}

// errorText renders an error as "code: message", without repeating a code
// the message already starts with.
func errorText(e *events.ErrorInfo) string {
	switch {
	case e.Message == "":
		return string(e.Code)
	case strings.HasPrefix(e.Message, string(e.Code)+": "):
		return e.Message
	}
	return string(e.Code) + ": " + e.Message
}

func durationMs(d events.ResultData) int64 {
	if d.DurationMs > 0 {
		return d.DurationMs
	}
	if !d.FinishedAt.IsZero() && !d.ReceivedAt.IsZero() {
		return d.FinishedAt.Sub(d.ReceivedAt).Milliseconds()
	}
	return 0
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// shortKey abbreviates a public key for display.
func shortKey(k string) string {
	if len(k) <= 12 {
		return k
	}
	return k[:8] + "…" + k[len(k)-4:]
}

// formatTime renders a time for tables: UTC, second precision.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
