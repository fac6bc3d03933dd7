package graphclient

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authflow/authflow/graphclient/graphclienttest"
)

const qrODataType = "#microsoft.graph.qrCodePinAuthenticationMethod"

func TestContractQRCodePin(t *testing.T) {
	srv, c := contract(t)
	ctx := testCtx(t)
	start := time.Now().UTC().Truncate(time.Second)

	_, err := c.QRCodePinMethod(ctx, kimID)
	mustKind(t, err, ErrNotFound)

	q, err := c.CreateQRCodePin(ctx, kimID, QRCodePinRequest{Start: start, LifetimeDays: 30})
	if err != nil {
		t.Fatalf("CreateQRCodePin: %v", err)
	}
	if q.Method.Kind != KindQRCodePin || q.Method.ID == "" || len(q.PIN) != 8 || len(q.Image.RawContent) == 0 || len(q.Image.BinaryValue) == 0 {
		t.Fatalf("created: kind %s id %q pin %d digits image %d bytes", q.Method.Kind, q.Method.ID, len(q.PIN), len(q.Image.RawContent))
	}
	if !q.Method.QRCodeStart.Equal(start) || !q.Method.QRCodeExpiry.Equal(start.Add(30*24*time.Hour)) {
		t.Fatalf("window: %s .. %s", q.Method.QRCodeStart, q.Method.QRCodeExpiry)
	}
	for _, s := range []string{q.String(), fmt.Sprintf("%#v", q), fmt.Sprint(slog.AnyValue(q).Resolve())} {
		if strings.Contains(s, q.PIN) {
			t.Fatalf("redaction leaks the PIN: %s", s)
		}
	}

	// GET and the mixed list see it, without secrets.
	m, err := c.QRCodePinMethod(ctx, kimID)
	if err != nil || m.ID != q.Method.ID || !m.QRCodeExpiry.Equal(q.Method.QRCodeExpiry) {
		t.Fatalf("QRCodePinMethod = %+v, %v", m, err)
	}
	ms, err := c.Methods(ctx, kimID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range ms {
		found = found || m.Kind == KindQRCodePin && m.ID == q.Method.ID
	}
	if !found {
		t.Fatalf("Methods lacks the QR method: %+v", ms)
	}

	// One per user.
	_, err = c.CreateQRCodePin(ctx, kimID, QRCodePinRequest{})
	mustKind(t, err, ErrConflict)

	// DeleteMethod with the kind deletes it as DeleteQRCodePin does.
	if err := c.DeleteMethod(ctx, kimID, KindQRCodePin, q.Method.ID); err != nil {
		t.Fatalf("DeleteMethod: %v", err)
	}
	if _, ms := state(t, srv, kimID); hasMethod(ms, qrODataType, "") {
		t.Fatal("QR method not deleted")
	}
	mustKind(t, c.DeleteQRCodePin(ctx, kimID), ErrMethodNotFound)

	// A custom PIN is sent and comes back; the default lifetime is 365 days.
	q2, err := c.CreateQRCodePin(ctx, kimID, QRCodePinRequest{PIN: "0123456789"})
	if err != nil || q2.PIN != "0123456789" {
		t.Fatalf("custom PIN: %v", err)
	}
	if d := q2.Method.QRCodeExpiry.Sub(q2.Method.QRCodeStart); d != DefaultQRCodeLifetimeDays*24*time.Hour {
		t.Fatalf("default lifetime %s", d)
	}
	if err := c.DeleteQRCodePin(ctx, kimID); err != nil {
		t.Fatalf("DeleteQRCodePin: %v", err)
	}
	_, err = c.QRCodePinMethod(ctx, nobody)
	mustKind(t, err, ErrUserNotFound)
}

func TestContractQRCodePinMFARequired(t *testing.T) {
	srv, c := contract(t, func(o *graphclienttest.Options) { o.MFARequired = true })
	_ = srv
	_, err := c.CreateQRCodePin(testCtx(t), kimID, QRCodePinRequest{})
	mustKind(t, err, ErrMFARequired)
}

func TestValidateQRCodePinRequest(t *testing.T) {
	tests := []struct {
		name string
		req  QRCodePinRequest
		ok   bool
	}{
		{"defaults", QRCodePinRequest{}, true},
		{"one day", QRCodePinRequest{LifetimeDays: 1}, true},
		{"maximum", QRCodePinRequest{LifetimeDays: 395}, true},
		{"above maximum", QRCodePinRequest{LifetimeDays: 396}, false},
		{"negative", QRCodePinRequest{LifetimeDays: -1}, false},
		{"PIN of 8", QRCodePinRequest{PIN: "01234567"}, true},
		{"PIN of 20", QRCodePinRequest{PIN: "01234567890123456789"}, true},
		{"PIN of 7", QRCodePinRequest{PIN: "0123456"}, false},
		{"PIN of 21", QRCodePinRequest{PIN: "012345678901234567890"}, false},
		{"PIN with a letter", QRCodePinRequest{PIN: "0123456a"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateQRCodePinRequest(tt.req)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %t", err, tt.ok)
			}
			if err != nil && (!errors.Is(err, ErrInvalidInput) || tt.req.PIN != "" && strings.Contains(err.Error(), tt.req.PIN)) {
				t.Fatalf("err = %v: want ErrInvalidInput without the PIN", err)
			}
		})
	}
	// Invalid input never reaches the wire.
	f := newFakeGraph(t)
	c := newTestClient(t, f.URL)
	_, err := c.CreateQRCodePin(testCtx(t), kimID, QRCodePinRequest{LifetimeDays: 400})
	mustKind(t, err, ErrInvalidInput)
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func FuzzValidateQRCodePinRequest(f *testing.F) {
	f.Add(0, "")
	f.Add(395, "01234567")
	f.Add(396, "0123456a")
	f.Fuzz(func(t *testing.T, days int, pin string) {
		err := ValidateQRCodePinRequest(QRCodePinRequest{LifetimeDays: days, PIN: pin})
		if err != nil && pin != "" && len(pin) >= 4 && strings.Contains(err.Error(), pin) {
			t.Fatalf("error repeats the PIN: %v", err)
		}
		if err == nil && (days < 0 || days > MaxQRCodeLifetimeDays || pin != "" && (len(pin) < 8 || len(pin) > 20)) {
			t.Fatalf("accepted days %d pin of %d", days, len(pin))
		}
	})
}
