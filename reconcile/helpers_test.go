package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/graphclient"
	"github.com/authflow/authflow/graphclient/graphclienttest"
)

// scenario is a tenant in the emulator and a desired file that differs
// from it in known places.
type scenario struct {
	csv  string
	want []string // "user|kind", sorted
	rows int
}

// Drift per kind in the scenario; the rest of the users agree.
var scenarioKinds = []string{KindLeaverEnabled, KindLeaverMethods, KindPhoneMissing, KindPhoneDiffers, KindEmailMissing, KindEmailDiffers}

func userID(i int) string  { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
func userUPN(i int) string { return fmt.Sprintf("user%05d@contoso.example", i) }
func mobile(i int) string  { return fmt.Sprintf("+1 425%07d", 2000000+i) }
func email(i int) string   { return fmt.Sprintf("user%05d@home.example", i) }

func phoneJSON(typ, number string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"@odata.type":"#microsoft.graph.phoneAuthenticationMethod","phoneNumber":%q,"phoneType":%q}`, number, typ))
}

func emailJSON(addr string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"@odata.type":"#microsoft.graph.emailAuthenticationMethod","emailAddress":%q}`, addr))
}

// newScenario seeds n users: a tenth are leavers, the rest active with a
// mobile and an email; perKind users of each drift kind differ from the
// desired file. Every seventh row names its user by object id, the others
// by UPN.
func newScenario(t testing.TB, emu *graphclienttest.Server, n, perKind int) scenario {
	t.Helper()
	var b strings.Builder
	b.WriteString("email,status,user,mobile,department\n") // any column order; department is ignored
	sc := scenario{rows: n}
	leavers := n / 10
	for i := range n {
		u := graphclienttest.User{ID: userID(i), UserPrincipalName: userUPN(i)}
		written := userUPN(i)
		if i%7 == 0 {
			written = strings.ToUpper(userID(i))
		}
		kind := ""
		enabled := true
		if i < leavers {
			enabled = false
			switch {
			case i < perKind:
				kind, enabled = KindLeaverEnabled, true
			case i < 2*perKind:
				kind = KindLeaverMethods
				u.Methods = []json.RawMessage{phoneJSON("mobile", mobile(i)),
					json.RawMessage(`{"@odata.type":"#microsoft.graph.microsoftAuthenticatorAuthenticationMethod","displayName":"iPhone"}`)}
			}
			// HR keeps the leaver's phone: it is no wish.
			fmt.Fprintf(&b, ",left,%s,%s,Sales\n", written, mobile(i))
		} else {
			j := (i - leavers) / perKind // which drift kind, while j < 4
			have := []json.RawMessage{phoneJSON("mobile", mobile(i)), emailJSON(email(i))}
			switch j {
			case 0:
				kind, have = KindPhoneMissing, have[1:]
			case 1:
				kind, have[0] = KindPhoneDiffers, phoneJSON("mobile", mobile(i+500000))
			case 2:
				kind, have = KindEmailMissing, have[:1]
			case 3:
				kind, have[1] = KindEmailDiffers, emailJSON("old."+email(i))
			}
			u.Methods = have
			// The desired mobile in national form: the file is read in region US.
			national := strings.TrimPrefix(mobile(i), "+1 ")
			fmt.Fprintf(&b, "%s,Active,%s,(%s) %s-%s,Sales\n", strings.ToUpper(email(i)), written, national[:3], national[3:6], national[6:])
		}
		u.AccountEnabled = &enabled
		if err := emu.PutUser(u); err != nil {
			t.Fatal(err)
		}
		if kind != "" {
			sc.want = append(sc.want, written+"|"+kind)
		}
	}
	sc.csv = b.String()
	slices.Sort(sc.want)
	return sc
}

// found lists a report's drift as "user|kind", sorted.
func found(rep *Report) []string {
	var out []string
	for _, f := range rep.Drift {
		out = append(out, f.User+"|"+f.Kind)
	}
	slices.Sort(out)
	return out
}

// newClient is a Graph client for the emulator.
func newClient(t testing.TB, emu *graphclienttest.Server) *graphclient.Client {
	t.Helper()
	c, err := graphclient.New(graphclient.Config{BaseURL: emu.GraphURL, Token: emu.Token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run reads the desired CSV and reconciles it against g.
func run(t testing.TB, g Graph, csv string, cfg Config) (*Desired, *Report) {
	t.Helper()
	d, err := Read(strings.NewReader(csv), FormatCSV, "US")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Graph = g
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := r.Run(ctx, d.Rows)
	if err != nil {
		t.Fatal(err)
	}
	return d, rep
}
