package worker_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/graphclient/graphclienttest"
	"github.com/authflow/authflow/worker"
)

// qrIDs returns the ids of the user's QR code + PIN methods in the emulator.
func qrIDs(u graphclienttest.User) []string {
	var out []string
	for _, m := range u.Methods {
		var v struct {
			Type string `json:"@odata.type"`
			ID   string `json:"id"`
		}
		_ = json.Unmarshal(m, &v)
		if v.Type == "#microsoft.graph.qrCodePinAuthenticationMethod" {
			out = append(out, v.ID)
		}
	}
	return out
}

// openQR opens the result's qrCodePin secret and checks what it holds.
func (e *env) openQR(t *testing.T, r *events.Result) (events.QRCodePinSecret, string) {
	t.Helper()
	var (
		sec events.QRCodePinSecret
		id  string
	)
	for _, o := range r.Data.Operations {
		if o.Secret != nil {
			id = o.MethodID
		}
	}
	plain := e.openSecret(t, r, events.SecretQRCodePin)
	if err := json.Unmarshal([]byte(plain), &sec); err != nil {
		t.Fatalf("sealed QR secret is not JSON: %v", err)
	}
	if len(sec.PIN) != 8 || strings.Trim(sec.PIN, "0123456789") != "" || len(sec.RawContent) == 0 {
		t.Fatalf("sealed QR secret: PIN of %d characters, raw content of %d bytes", len(sec.PIN), len(sec.RawContent))
	}
	e.secrets = append(e.secrets, sec.PIN)
	return sec, id
}

func TestQRCodePin(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	id, upn := uid(700), "frontline@contoso.example"
	e.seed(id, upn, mobile)
	data := map[string]any{"lifetimeInDays": 180, "sealTo": e.sealTo}

	// Issue: one method, its PIN and QR code delivered sealed.
	ev1 := e.send("qr", events.TypeQRCodeIssue, upn, data)
	r1 := e.results(1, 20*time.Second)[ev1]
	if r1.Data.Status != events.StatusSucceeded {
		t.Fatalf("issue: %s %+v", r1.Data.Status, r1.Data.Error)
	}
	_, first := e.openQR(t, r1)
	if got := qrIDs(e.user(id)); len(got) != 1 || got[0] != first {
		t.Fatalf("after issue: QR methods %v, delivered %s", got, first)
	}

	// Reissue: the old method is deleted, exactly one new one remains.
	ev2 := e.send("qr", events.TypeQRCodeIssue, upn, data)
	r2 := e.results(2, 20*time.Second)[ev2]
	if r2.Data.Status != events.StatusSucceeded {
		t.Fatalf("reissue: %s %+v", r2.Data.Status, r2.Data.Error)
	}
	_, second := e.openQR(t, r2)
	if got := qrIDs(e.user(id)); len(got) != 1 || got[0] != second || second == first {
		t.Fatalf("after reissue: QR methods %v, delivered %s, first %s", got, second, first)
	}
	if o := r2.Data.Operations[0]; o.Outcome != events.OutcomeDeleted || o.MethodID != first {
		t.Fatalf("reissue must report deleting %s first: %+v", first, r2.Data.Operations)
	}

	// Remove, then remove again (nothing left: unchanged).
	ev3 := e.send("qr", events.TypeQRCodeRemove, upn, map[string]any{})
	ev4 := e.send("qr", events.TypeQRCodeRemove, upn, map[string]any{})
	res := e.results(4, 20*time.Second)
	if o := res[ev3].Data.Operations; len(o) != 1 || o[0].Outcome != events.OutcomeDeleted || o[0].MethodID != second {
		t.Fatalf("remove: %+v", o)
	}
	if o := res[ev4].Data.Operations; len(o) != 1 || o[0].Outcome != events.OutcomeUnchanged {
		t.Fatalf("second remove: %+v", o)
	}
	if got := qrIDs(e.user(id)); len(got) != 0 {
		t.Fatalf("after remove: %v", got)
	}
	if n := countKind(e.user(id), "phone"); n != 1 {
		t.Fatalf("remove touched other methods: %v", kinds(e.user(id)))
	}
	res[ev1], res[ev2] = r1, r2
	e.noSecretsLeaked(res)
}

// TestQRCodePinJoinerAndLeaver: employee.joined creates the QR code + PIN
// method for a frontline worker; employee.left's removeAllMethods removes it.
func TestQRCodePinJoinerAndLeaver(t *testing.T) {
	e := newEnv(t)
	e.startWorker()
	id, upn := uid(701), "badge@contoso.example"
	e.seed(id, upn)
	ev1 := e.send("j", events.TypeEmployeeJoined, upn, map[string]any{"mobilePhone": "+1 4255550123",
		"qrCodePin": map[string]any{"sealTo": e.sealTo}})
	r1 := e.results(1, 20*time.Second)[ev1]
	if r1.Data.Status != events.StatusSucceeded {
		t.Fatalf("joined: %s %+v", r1.Data.Status, r1.Data.Error)
	}
	if _, qid := e.openQR(t, r1); len(qrIDs(e.user(id))) != 1 || qrIDs(e.user(id))[0] != qid {
		t.Fatalf("joined: QR methods %v, delivered %s", qrIDs(e.user(id)), qid)
	}
	ev2 := e.send("j", events.TypeEmployeeLeft, upn, map[string]any{})
	r2 := e.results(2, 20*time.Second)[ev2]
	if r2.Data.Status != events.StatusSucceeded {
		t.Fatalf("left: %s %+v", r2.Data.Status, r2.Data.Error)
	}
	if got := kinds(e.user(id)); len(got) != 1 || got[0] != "password" {
		t.Fatalf("after left: methods %v, want only the password", got)
	}
}

// TestQRCodePinCrashAfterGraphWrite crashes right after Graph created the
// method, before its sealed secrets were recorded: the next attempt deletes
// that orphan and creates it again, leaving exactly one method, the one
// whose PIN was delivered.
func TestQRCodePinCrashAfterGraphWrite(t *testing.T) {
	e := newEnv(t)
	id, upn := uid(702), "crashqr@contoso.example"
	e.seed(id, upn, mobile)
	var crashed atomic.Bool
	fired := make(chan struct{})
	var once sync.Once
	w1 := e.startWorker(func(c *worker.Config) {
		c.Hook = func(p string) error {
			if p == worker.HookAfterGraphWrite || crashed.Load() {
				crashed.Store(true)
				once.Do(func() { close(fired) })
				return errors.New("crash at " + p)
			}
			return nil
		}
	})
	evID := e.send("crash", events.TypeQRCodeIssue, upn, map[string]any{"sealTo": e.sealTo})
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("crash point never reached")
	}
	w1.kill()
	orphan := qrIDs(e.user(id))
	if len(orphan) != 1 {
		t.Fatalf("after the crash: QR methods %v, want the orphan", orphan)
	}
	e.startWorker()
	res := e.results(1, 20*time.Second)
	r := res[evID]
	if r.Data.Status != events.StatusSucceeded {
		t.Fatalf("status %s: %+v", r.Data.Status, r.Data.Error)
	}
	_, delivered := e.openQR(t, r)
	got := qrIDs(e.user(id))
	if len(got) != 1 || got[0] != delivered || delivered == orphan[0] {
		t.Fatalf("QR methods %v, delivered %s, orphan %s: want exactly the delivered one", got, delivered, orphan[0])
	}
	if o := r.Data.Operations[0]; o.Outcome != events.OutcomeDeleted || o.MethodID != orphan[0] || o.Detail != "orphan from an interrupted attempt" {
		t.Fatalf("the orphan's deletion must be reported: %+v", r.Data.Operations)
	}
	time.Sleep(300 * time.Millisecond)
	e.results(1, time.Second)
	e.noSecretsLeaked(res)
}
