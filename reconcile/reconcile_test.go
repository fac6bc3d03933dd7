package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// TestDriftOfEachKind: 2,000 users, 1% drift of each kind; the report names
// exactly those users with their kind, values masked, and reads per user
// only what the scans cannot answer.
func TestDriftOfEachKind(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	sc := newScenario(t, emu, 2000, 20)
	d, rep := run(t, newClient(t, emu), sc.csv, Config{Concurrency: 8})
	if len(d.Bad) != 0 || !slices.Equal(d.Ignored, []string{"department"}) {
		t.Fatalf("bad rows %v, ignored %v", d.Bad, d.Ignored)
	}
	if got := found(rep); !slices.Equal(got, sc.want) {
		t.Fatalf("drift: %d findings, want %d\nmissing: %v\nextra: %v", len(got), len(sc.want), minus(sc.want, got), minus(got, sc.want))
	}
	if rep.Checked != 2000 || len(rep.Unknown) != 0 || len(rep.Errors) != 0 || !rep.ReportUsed {
		t.Fatalf("checked %d, unknown %v, errors %v, report used %v", rep.Checked, rep.Unknown, rep.Errors, rep.ReportUsed)
	}
	for _, f := range rep.Drift {
		for _, v := range []string{f.Current, f.Desired} {
			if strings.Contains(v, "+1 425") && !strings.Contains(v, "*") || strings.Contains(v, "user0") {
				t.Errorf("%s: value %q is not masked", f.Kind, v)
			}
		}
		if f.Kind == KindPhoneDiffers && (f.Field != FieldMobile || !strings.HasPrefix(f.Current, "+1 ******")) {
			t.Errorf("finding %+v", f)
		}
	}
	// Leavers with an enabled account are in the report with no methods:
	// no per-user read. Disabled leavers are not in the report (as in
	// Graph) and actives have registered phones: one read each.
	perUser := 2000 - 20
	if pages := 1 + 2000/100 + 1; rep.Requests > perUser+pages+10 || rep.Requests < perUser {
		t.Errorf("%d Graph requests, want %d per-user reads and about %d pages", rep.Requests, perUser, pages)
	}
	// One correction per finding, but a leaver's two findings share one.
	var left, set int
	for _, c := range rep.Corrections {
		switch c.Type {
		case events.TypeEmployeeLeft:
			left++
		case events.TypePhoneSet, events.TypeEmailSet:
			set++
		}
	}
	if left != 40 || set != 80 {
		t.Errorf("%d employee.left and %d set corrections, want 40 and 80", left, set)
	}
}

// TestMalformedRows: a 100-row file with 5 malformed rows reports the 5 by
// line and reconciles the other 95.
func TestMalformedRows(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	sc := newScenario(t, emu, 100, 1)
	lines := strings.Split(strings.TrimSuffix(sc.csv, "\n"), "\n")
	bad := map[int]string{ // line number (header = 1) -> replacement
		5:  "x,active,user00003@contoso.example,not-a-phone,Sales",
		17: "x,retired,user00015@contoso.example,,Sales",
		40: "x,active,,,Sales",
		61: `x,active,"user00059@contoso.example,,Sales`,
		99: "x,active,user00097@contoso.example",
	}
	var skipped []string
	for n, text := range bad {
		skipped = append(skipped, lines[n-1])
		lines[n-1] = text
	}
	csv := strings.Join(lines, "\n") + "\n"
	d, rep := run(t, newClient(t, emu), csv, Config{})
	var gotLines []int
	for _, b := range d.Bad {
		gotLines = append(gotLines, b.Line)
		if b.Error == "" {
			t.Errorf("line %d: no reason", b.Line)
		}
	}
	if !slices.Equal(gotLines, []int{5, 17, 40, 61, 99}) {
		t.Fatalf("bad rows %+v", d.Bad)
	}
	if len(d.Rows) != 95 || rep.Checked != 95 {
		t.Fatalf("%d rows, %d checked; want 95", len(d.Rows), rep.Checked)
	}
	// The drift of the skipped rows is not reported; the rest is.
	var want []string
	for _, w := range sc.want {
		user, _, _ := strings.Cut(w, "|")
		if !slices.ContainsFunc(skipped, func(l string) bool { return strings.Contains(l, ","+user+",") }) {
			want = append(want, w)
		}
	}
	if got := found(rep); !slices.Equal(got, want) || len(want) == 0 {
		t.Fatalf("drift %v, want %v", got, want)
	}
}

// TestGraphFaults: throttling (429 with Retry-After) and 503s slow a run
// down but change nothing in its report; the client never comes back
// before a Retry-After.
func TestGraphFaults(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	sc := newScenario(t, emu, 300, 3)
	_, clean := run(t, newClient(t, emu), sc.csv, Config{Concurrency: 8})
	cleanTotal := emu.Stats().Total

	emu.ResetStats()
	// With this seed, the first 300 requests (a sweep makes 301) meet two 429s and two 503s,
	// each with Retry-After: 1, whatever the order the goroutines send them in.
	if err := emu.SetFaults(graphclienttest.Faults{ErrorRate: 0.015, ErrorStatuses: []int{429, 503},
		RetryAfterSeconds: 1, Seed: 18}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, faulty := run(t, newClient(t, emu), sc.csv, Config{Concurrency: 8})
	elapsed := time.Since(start)
	st := emu.Stats()
	if got, want := found(faulty), found(clean); !slices.Equal(got, want) || !slices.Equal(got, sc.want) {
		t.Fatalf("with faults: %v\nwithout: %v", got, want)
	}
	if faulty.Checked != clean.Checked || len(faulty.Errors) != 0 {
		t.Fatalf("checked %d (want %d), errors %v", faulty.Checked, clean.Checked, faulty.Errors)
	}
	unavailable := 0
	for _, byStatus := range st.Requests {
		unavailable += byStatus["503"]
	}
	if st.Throttled == 0 || unavailable == 0 || st.RetryAfterViolations != 0 || st.Total <= cleanTotal {
		t.Fatalf("throttled %d, 503 %d, violations %d, requests %d (clean %d)", st.Throttled, unavailable, st.RetryAfterViolations, st.Total, cleanTotal)
	}
	if elapsed < time.Second {
		t.Errorf("took %s: a 1 s Retry-After was not waited for", elapsed)
	}
	t.Logf("%d requests (%d clean), %d throttled, %d 503, %s", st.Total, cleanTotal, st.Throttled, unavailable, elapsed)
}

// noReport is the emulator's Graph without the registration report, as
// for an application without AuditLog.Read.All.
type noReport struct{ Graph }

func (noReport) RegistrationDetailsPage(context.Context, string) ([]graphclient.RegistrationDetails, string, error) {
	return nil, "", fmt.Errorf("list registration details: %w", graphclient.ErrPermission)
}

// TestWithoutReport: when the report does not answer, every user's
// methods are read instead, with the same findings.
func TestWithoutReport(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	sc := newScenario(t, emu, 200, 2)
	_, rep := run(t, noReport{newClient(t, emu)}, sc.csv, Config{Retry: &graphclient.RetryPolicy{MaxAttempts: 1}})
	if got := found(rep); !slices.Equal(got, sc.want) || rep.ReportUsed {
		t.Fatalf("drift %v (report used %v), want %v", got, rep.ReportUsed, sc.want)
	}
	if rep.Requests != 1+1+200 { // a page of users, the refused report, every user's methods
		t.Errorf("%d requests, want 202", rep.Requests)
	}
}

// TestUnknownAndDuplicateUsers: a user not in the directory is reported,
// not corrected; one user written as UPN and as object id is compared once.
func TestUnknownAndDuplicateUsers(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	newScenario(t, emu, 20, 1)
	csv := "user,status\nnobody@contoso.example,left\n" + userUPN(0) + ",left\n" + userID(0) + ",left\n"
	_, rep := run(t, newClient(t, emu), csv, Config{})
	if len(rep.Unknown) != 1 || rep.Unknown[0].Line != 2 || rep.Unknown[0].User != "nobody@contoso.example" {
		t.Errorf("unknown %+v", rep.Unknown)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Line != 4 || !strings.Contains(rep.Errors[0].Error, "line 3") {
		t.Errorf("errors %+v", rep.Errors)
	}
	if got := found(rep); !slices.Equal(got, []string{userUPN(0) + "|" + KindLeaverEnabled}) {
		t.Errorf("drift %v", got)
	}
}

// TestScanFailure: a scan that keeps failing fails the run with the page
// and the cause; nothing is reported as drift.
func TestScanFailure(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	newScenario(t, emu, 10, 1)
	if err := emu.SetFaults(graphclienttest.Faults{ErrorRate: 1, ErrorStatuses: []int{500}}); err != nil {
		t.Fatal(err)
	}
	d, err := Read(strings.NewReader("user\n"+userUPN(1)+"\n"), FormatCSV, "US")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Graph: newClient(t, emu), Retry: &graphclient.RetryPolicy{MaxAttempts: 2, Initial: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(context.Background(), d.Rows)
	if err == nil || !strings.Contains(err.Error(), "read users, page 1") || !errors.Is(err, graphclient.ErrTransient) {
		t.Fatalf("err %v", err)
	}
	if len(rep.Drift) != 0 {
		t.Fatalf("drift %v", rep.Drift)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no graph", Config{}, "Config.Graph is required"},
		{"negative rate", Config{Graph: noReport{}, Rate: -1}, "Config.Rate"},
		{"concurrency", Config{Graph: noReport{}, Concurrency: 1000}, "Config.Concurrency"},
		{"retry", Config{Graph: noReport{}, Retry: &graphclient.RetryPolicy{MaxAttempts: -1}}, "Config.Retry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestRateBoundsRequests: with Rate, requests are spaced at that rate.
func TestRateBoundsRequests(t *testing.T) {
	emu := graphclienttest.NewServer(t)
	sc := newScenario(t, emu, 60, 1)
	start := time.Now()
	_, rep := run(t, newClient(t, emu), sc.csv, Config{Rate: 100, Concurrency: 8})
	elapsed := time.Since(start)
	// n requests at 100/s with a burst of one take at least (n-1)/100 s.
	if min := time.Duration(rep.Requests-1) * 10 * time.Millisecond; elapsed < min {
		t.Fatalf("%d requests in %s, faster than 100/s", rep.Requests, elapsed)
	}
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
