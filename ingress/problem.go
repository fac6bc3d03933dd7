package ingress

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/authflow/authflow/events"
)

// Codes of refusals that are the ingress's own, beside the decoder's
// (events.Code: invalid_event, payload_too_large, unknown_type,
// bad_signature, policy_denied, replayed).
const (
	codeUnauthenticated      = "unauthenticated"        // 401: no source's credentials
	codeForbidden            = "forbidden"              // 403: authenticated, not allowed
	codeUnsupportedMediaType = "unsupported_media_type" // 415
	codeRateLimited          = "rate_limited"           // 429
	codeUnavailable          = "unavailable"            // 503: JetStream did not acknowledge
	codeNotFound             = "not_found"              // 404: no such route
	codeMethodNotAllowed     = "method_not_allowed"     // 405
)

// problem is an RFC 9457 problem detail. Type stays about:blank, so the
// title is the status's; code and field carry the specifics, with the
// same codes and JSON paths as the worker's results.
type problem struct {
	status     int
	code       string
	field      string
	detail     string
	line, col  int
	retryAfter int // seconds; 0 for none
}

// problemJSON is the wire form.
type problemJSON struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
	Field  string `json:"field,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

func (p *problem) wire() problemJSON {
	return problemJSON{
		Type: "about:blank", Title: http.StatusText(p.status), Status: p.status,
		Detail: p.detail, Code: p.code, Field: p.field, Line: p.line, Column: p.col,
	}
}

func writeProblem(w http.ResponseWriter, p *problem) {
	if p.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.retryAfter))
	}
	writeJSON(w, "application/problem+json", p.status, p.wire())
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decodeProblem maps a decoder error to a problem with the decoder's code
// and JSON path: 413 for payload_too_large, 400 for the rest.
func decodeProblem(err error) *problem {
	var e *events.Error
	if !errors.As(err, &e) {
		return &problem{status: http.StatusBadRequest, code: string(events.CodeInvalidEvent), detail: err.Error()}
	}
	status := http.StatusBadRequest
	switch e.Code {
	case events.CodePayloadTooLarge:
		status = http.StatusRequestEntityTooLarge
	case events.CodeInternal:
		status = http.StatusInternalServerError
	}
	return &problem{status: status, code: string(e.Code), field: e.Field, detail: e.Message, line: e.Line, col: e.Column}
}

func invalidProblem(field, detail string) *problem {
	return &problem{status: http.StatusBadRequest, code: string(events.CodeInvalidEvent), field: field, detail: detail}
}

func tooLarge(limit int) *problem {
	return &problem{status: http.StatusRequestEntityTooLarge, code: string(events.CodePayloadTooLarge),
		detail: "the body is larger than " + strconv.Itoa(limit) + " bytes"}
}
