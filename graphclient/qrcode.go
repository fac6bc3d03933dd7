package graphclient

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// Standard QR code lifetime limits of Graph v1.0 (the tenant policy's
// standardQRCodeLifetimeInDays may be narrower).
const (
	MinQRCodeLifetimeDays     = 1
	MaxQRCodeLifetimeDays     = 395
	DefaultQRCodeLifetimeDays = 365
)

// QR code PIN length limits: the tenant policy's pinLength lies within them.
const (
	minQRPinLen = 8
	maxQRPinLen = 20
)

// QRCodePinRequest asks for a QR code + PIN method.
type QRCodePinRequest struct {
	// Start is when the standard QR code becomes usable; zero means now.
	Start time.Time
	// LifetimeDays is the standard QR code's lifetime, 1..395; 0 means 365.
	LifetimeDays int
	// PIN is a custom temporary PIN of 8..20 digits; empty lets Graph
	// generate one of the policy's length. Either way the user must change
	// it at the first sign-in.
	PIN string
}

// QRImage is the standard QR code's image as Graph returns it once.
// RawContent carries the QR code's private key: it is as secret as the PIN.
type QRImage struct {
	BinaryValue          []byte
	RawContent           []byte
	Version              int
	ErrorCorrectionLevel string
}

// QRCodePin is a newly created QR code + PIN method.
//
// PIN and Image are secrets that Graph returns only in the create response
// (the QR code's private key is not even stored by the service): seal them
// at once. String, GoString and LogValue redact them.
type QRCodePin struct {
	Method Method
	PIN    string
	Image  QRImage
}

// String describes the method without its secrets.
func (q QRCodePin) String() string {
	return fmt.Sprintf("QRCodePin{id:%s start:%s expiry:%s pin:[REDACTED] image:[REDACTED]}",
		q.Method.ID, q.Method.QRCodeStart.Format(time.RFC3339), q.Method.QRCodeExpiry.Format(time.RFC3339))
}

// GoString is String, so that %#v redacts the secrets too.
func (q QRCodePin) GoString() string { return q.String() }

// LogValue keeps the secrets out of slog output.
func (q QRCodePin) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", q.Method.ID),
		slog.Time("start", q.Method.QRCodeStart),
		slog.Time("expiry", q.Method.QRCodeExpiry),
		slog.String("pin", "[REDACTED]"),
		slog.String("image", "[REDACTED]"),
	)
}

// ValidateQRCodePinRequest checks a request against Graph's limits.
func ValidateQRCodePinRequest(req QRCodePinRequest) error {
	if req.LifetimeDays != 0 && (req.LifetimeDays < MinQRCodeLifetimeDays || req.LifetimeDays > MaxQRCodeLifetimeDays) {
		return invalidf("QR code lifetime must be %d..%d days (or 0 for %d)", MinQRCodeLifetimeDays, MaxQRCodeLifetimeDays, DefaultQRCodeLifetimeDays)
	}
	if req.PIN != "" {
		ok := len(req.PIN) >= minQRPinLen && len(req.PIN) <= maxQRPinLen
		for i := 0; ok && i < len(req.PIN); i++ {
			ok = req.PIN[i] >= '0' && req.PIN[i] <= '9'
		}
		if !ok {
			// Never repeat the PIN.
			return invalidf("QR code PIN must be %d..%d digits", minQRPinLen, maxQRPinLen)
		}
	}
	return nil
}

// qrURL is the single-valued navigation; msgraph-sdk-go v1.103.0 has the
// models but no request builder for it.
const qrURL = "{+baseurl}/users/{user%2Did}/authentication/qrCodePinMethod"

// sendQR sends one request to /qrCodePinMethod through the SDK's request
// adapter (so the middleware, token and error mapping are those of every
// other call). body, when set, is sent as JSON; res receives the answer.
func (c *Client) sendQR(ctx context.Context, method abs.HttpMethod, userID string, body *models.QrCodePinAuthenticationMethod, res *models.QrCodePinAuthenticationMethodable) error {
	ri := abs.NewRequestInformationWithMethodAndUrlTemplateAndPathParameters(method, qrURL,
		map[string]string{"baseurl": c.base.String(), "user%2Did": userID})
	ri.Headers.TryAdd("Accept", "application/json")
	if body != nil {
		if err := ri.SetContentFromParsable(ctx, c.adapter, "application/json", body); err != nil {
			return err
		}
	}
	errs := abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}
	if res == nil {
		return c.adapter.SendNoContent(ctx, ri, errs)
	}
	v, err := c.adapter.Send(ctx, ri, models.CreateQrCodePinAuthenticationMethodFromDiscriminatorValue, errs)
	if err != nil {
		return err
	}
	if m, ok := v.(models.QrCodePinAuthenticationMethodable); ok {
		*res = m
	}
	return nil
}

// CreateQRCodePin creates the user's QR code + PIN method (PUT
// /qrCodePinMethod). A user has at most one: Graph refuses a second while
// the first is active (ErrConflict), so delete it first. The PIN and the QR
// image are in the result and nowhere else.
//
// If Graph created the method but its response lacks the PIN or the image,
// CreateQRCodePin returns the Method (so the caller can delete the orphan)
// with an error classed transient.
func (c *Client) CreateQRCodePin(ctx context.Context, userID string, req QRCodePinRequest) (QRCodePin, error) {
	const op = "create qr code pin"
	if err := checkIDs(op, userID); err != nil {
		return QRCodePin{}, err
	}
	if err := ValidateQRCodePinRequest(req); err != nil {
		return QRCodePin{}, fmt.Errorf("%s: %w", op, err)
	}
	start := req.Start.UTC()
	if req.Start.IsZero() {
		start = c.now().UTC()
	}
	days := req.LifetimeDays
	if days == 0 {
		days = DefaultQRCodeLifetimeDays
	}
	expire := start.Add(time.Duration(days) * 24 * time.Hour)
	qr := models.NewQrCode()
	qr.SetStartDateTime(&start)
	qr.SetExpireDateTime(&expire)
	pin := models.NewQrPin()
	if req.PIN != "" {
		code := req.PIN
		pin.SetCode(&code)
	}
	body := models.NewQrCodePinAuthenticationMethod()
	body.SetStandardQRCode(qr)
	body.SetPin(pin)
	var res models.QrCodePinAuthenticationMethodable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		return c.sendQR(ctx, abs.PUT, userID, body, &res)
	})
	if err != nil {
		return QRCodePin{}, err
	}
	if res == nil {
		return QRCodePin{}, invalidResponse(op, resp, "created without a body: the PIN and QR code are lost", ErrTransient)
	}
	out := QRCodePin{Method: toMethod(res)}
	if p := res.GetPin(); p != nil {
		out.PIN = str(p.GetCode())
	}
	if q := res.GetStandardQRCode(); q != nil && q.GetImage() != nil {
		im := q.GetImage()
		out.Image = QRImage{BinaryValue: im.GetBinaryValue(), RawContent: im.GetRawContent()}
		if v := im.GetVersion(); v != nil {
			out.Image.Version = int(*v)
		}
		if l := im.GetErrorCorrectionLevel(); l != nil {
			out.Image.ErrorCorrectionLevel = l.String()
		}
	}
	if out.PIN == "" || len(out.Image.RawContent) == 0 {
		return QRCodePin{Method: out.Method}, invalidResponse(op, resp, "created without the PIN or the QR code image", ErrTransient)
	}
	return out, nil
}

// QRCodePinMethod reads the user's QR code + PIN method (GET
// /qrCodePinMethod; never with the PIN or the image). A user without one
// gives ErrNotFound.
func (c *Client) QRCodePinMethod(ctx context.Context, userID string) (Method, error) {
	const op = "get qr code pin"
	if err := checkIDs(op, userID); err != nil {
		return Method{}, err
	}
	var res models.QrCodePinAuthenticationMethodable
	resp, err := c.call(ctx, op, func(ctx context.Context) error {
		return c.sendQR(ctx, abs.GET, userID, nil, &res)
	})
	if err != nil {
		return Method{}, err
	}
	if res == nil {
		return Method{}, invalidResponse(op, resp, "empty body", ErrTransient)
	}
	return toMethod(res), nil
}

// DeleteQRCodePin deletes the user's QR code + PIN method.
func (c *Client) DeleteQRCodePin(ctx context.Context, userID string) error {
	const op = "delete qr code pin"
	if err := checkIDs(op, userID); err != nil {
		return err
	}
	_, err := c.call(ctx, op, func(ctx context.Context) error { return c.sendQR(ctx, abs.DELETE, userID, nil, nil) })
	return err
}
