package graphclienttest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// QR code + PIN limits of Graph v1.0 (docs/emulator.md).
const (
	qrMaxLifetimeDays     = 395
	qrDefaultLifetimeDays = 365
	qrMinPIN, qrMaxPIN    = 8, 20
	// qrPINLength is the tenant policy's pinLength (Graph's default, the
	// NIST minimum): the length of a PIN Graph generates.
	qrPINLength = 8
)

// qrSecret is what Graph returns only in the PUT answer: the PIN and the
// QR code image (which carries the QR code's private key).
type qrSecret struct {
	pin           string
	binary, rawQR []byte
}

// appendQR writes the navigation properties of a QR code PIN method. With
// sec nil (every GET) the PIN code and the image are null.
func appendQR(o *obj, m *method, sec *qrSecret) {
	o.key("standardQRCode")
	q := startObj(o.b)
	q.str("@odata.type", "#microsoft.graph.qrCode")
	q.str("id", m.qrID)
	q.time("startDateTime", m.qrStart)
	q.time("expireDateTime", m.qrExpire)
	q.time("createdDateTime", m.created)
	q.null("lastUsedDateTime")
	if sec == nil {
		q.null("image")
	} else {
		q.key("image")
		im := startObj(q.b)
		im.str("@odata.type", "#microsoft.graph.qrCodeImageDetails")
		im.str("binaryValue", base64.StdEncoding.EncodeToString(sec.binary))
		im.integer("version", 1)
		im.str("errorCorrectionLevel", "l")
		im.str("rawContent", base64.StdEncoding.EncodeToString(sec.rawQR))
		q.b = im.end()
	}
	o.b = q.end()
	o.null("temporaryQRCode")
	o.key("pin")
	p := startObj(o.b)
	p.str("@odata.type", "#microsoft.graph.qrPin")
	p.str("id", m.pinID)
	if sec == nil {
		p.null("code")
	} else {
		p.str("code", sec.pin)
	}
	p.boolean("forceChangePinNextSignIn", m.pinForce)
	p.time("createdDateTime", m.created)
	p.time("updatedDateTime", m.created)
	o.b = p.end()
}

// qrBody is the PUT body (and the admin seed's QR fields).
type qrBody struct {
	ODataType      *string `json:"@odata.type"`
	StandardQRCode *struct {
		ID             *string `json:"id"` // read-only: kept only from the admin seed
		StartDateTime  *string `json:"startDateTime"`
		ExpireDateTime *string `json:"expireDateTime"`
	} `json:"standardQRCode"`
	Pin *struct {
		ID          *string `json:"id"` // read-only: kept only from the admin seed
		Code        *string `json:"code"`
		ForceChange *bool   `json:"forceChangePinNextSignIn"`
	} `json:"pin"`
}

// qrLifetime validates the standard QR code's window: both ends given,
// expiry after the start, at most 395 days apart.
func qrLifetime(b qrBody) (start, expire time.Time, err error) {
	q := b.StandardQRCode
	if q == nil || q.StartDateTime == nil || q.ExpireDateTime == nil {
		return start, expire, errors.New("standardQRCode with startDateTime and expireDateTime is required")
	}
	if start, err = parseDateTime(*q.StartDateTime); err != nil {
		return start, expire, fmt.Errorf("standardQRCode.startDateTime: %w", err)
	}
	if expire, err = parseDateTime(*q.ExpireDateTime); err != nil {
		return start, expire, fmt.Errorf("standardQRCode.expireDateTime: %w", err)
	}
	switch {
	case !expire.After(start):
		return start, expire, errors.New("standardQRCode.expireDateTime must be after its startDateTime")
	case expire.Sub(start) > qrMaxLifetimeDays*24*time.Hour:
		return start, expire, fmt.Errorf("the standard QR code lifetime must not exceed %d days", qrMaxLifetimeDays)
	}
	return start, expire, nil
}

// seedQR reads the admin seed of a QR code PIN method; the window
// defaults to 365 days from its creation.
func (m *method) seedQR(raw json.RawMessage) error {
	var b qrBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return err
	}
	m.qrID, m.pinID, m.pinForce = newGUID(), newGUID(), true
	if b.Pin != nil {
		if b.Pin.ID != nil && validMethodID(*b.Pin.ID) {
			m.pinID = *b.Pin.ID
		}
		if b.Pin.ForceChange != nil {
			m.pinForce = *b.Pin.ForceChange
		}
	}
	if b.StandardQRCode == nil {
		m.qrStart, m.qrExpire = m.created, m.created.Add(qrDefaultLifetimeDays*24*time.Hour)
		return nil
	}
	start, expire, err := qrLifetime(b)
	if err != nil {
		return err
	}
	m.qrStart, m.qrExpire = start, expire
	if id := b.StandardQRCode.ID; id != nil && validMethodID(*id) {
		m.qrID = *id
	}
	return nil
}

func countKind(ms []*method, k kind) int {
	n := 0
	for _, m := range ms {
		if m.kind == k {
			n++
		}
	}
	return n
}

// qrCodePin serves PUT, GET and DELETE /authentication/qrCodePinMethod.
func (e *Emulator) qrCodePin(c *call, u *user) reply {
	cur := u.first(kindQRCodePin)
	switch c.r.Method {
	case http.MethodGet:
		if cur == nil {
			return qrNotFound()
		}
		return jsonReply(http.StatusOK, e.view(c).appendMethod(nil, cur, authContext(c, "qrCodePinMethod/$entity"), "", false))
	case http.MethodDelete:
		if cur == nil {
			return qrNotFound()
		}
		return e.deleteMethod(u, cur)
	}
	var b qrBody
	if err := decodeJSON(c.body, &b); err != nil {
		return badJSON(err)
	}
	if rep, ok := checkODataType(b.ODataType, kindQRCodePin); !ok {
		return rep
	}
	start, expire, err := qrLifetime(b)
	if err != nil {
		return errReply(http.StatusBadRequest, "badRequest", err.Error()+".")
	}
	if !expire.After(c.now) {
		return errReply(http.StatusBadRequest, "badRequest", "standardQRCode.expireDateTime must be in the future.")
	}
	pin := ""
	if b.Pin != nil && b.Pin.Code != nil {
		pin = *b.Pin.Code
		if len(pin) < qrMinPIN || len(pin) > qrMaxPIN || !allDigits(pin) {
			return errReplyf(http.StatusBadRequest, "badRequest", "pin.code must be %d to %d digits.", qrMinPIN, qrMaxPIN)
		}
	}
	if cur != nil {
		// One method per user: a new one only once the old one is deleted
		// or its standard QR code has expired (then it is replaced).
		if c.now.Before(cur.qrExpire) {
			return errReply(http.StatusBadRequest, "badRequest", msgQRExists)
		}
		u.remove(cur)
	}
	if pin == "" {
		pin = randomString("0123456789", qrPINLength)
	}
	m := &method{kind: kindQRCodePin, id: newGUID(), created: c.now, qrID: newGUID(), pinID: newGUID(),
		qrStart: start, qrExpire: expire, pinForce: true}
	sec := &qrSecret{pin: pin, binary: make([]byte, 48), rawQR: make([]byte, 64)}
	_, _ = rand.Read(sec.binary) // never fails (crypto/rand, Go 1.24+)
	_, _ = rand.Read(sec.rawQR)
	u.add(m)
	o := startObj(nil)
	o.str("@odata.context", authContext(c, "qrCodePinMethod/$entity"))
	o.str("@odata.type", kindQRCodePin.info().odataType)
	o.str("id", m.id)
	o.time("createdDateTime", m.created)
	appendQR(&o, m, sec)
	return jsonReply(http.StatusCreated, o.end())
}

const msgQRExists = "The user already has an active QR code PIN authentication method; delete it before creating a new one."

func qrNotFound() reply {
	return errReply(http.StatusNotFound, "itemNotFound", "The user has no QR code PIN authentication method.")
}
