package ingress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/authflow/authflow/events"
)

// The CloudEvents HTTP protocol binding's content modes.
type contentMode int

const (
	modeStructured contentMode = iota // application/cloudevents+json: the body is the event
	modeBinary                        // ce-* headers are the attributes, the body is data
	modeBatch                         // application/cloudevents-batch+json: a JSON array of events
)

// Media types.
const (
	MediaTypeCloudEvents      = "application/cloudevents+json"
	MediaTypeCloudEventsBatch = "application/cloudevents-batch+json"
	mediaTypeJSON             = "application/json"
)

// modeOf chooses the content mode from Content-Type as the binding says:
// a cloudevents-batch prefix is batched, a cloudevents prefix structured,
// anything else binary. Only the JSON event format is supported, and in
// binary mode only JSON data.
func modeOf(contentType string) (contentMode, *problem) {
	if contentType == "" {
		return 0, unsupported("Content-Type is required: " + MediaTypeCloudEvents + ", " + MediaTypeCloudEventsBatch + ", or application/json with ce-* headers")
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, unsupported("Content-Type is not a media type")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return 0, unsupported("the only charset is utf-8")
	}
	switch {
	case mt == MediaTypeCloudEventsBatch:
		return modeBatch, nil
	case strings.HasPrefix(mt, "application/cloudevents-batch"):
		return 0, unsupported("the only batch format is " + MediaTypeCloudEventsBatch)
	case mt == MediaTypeCloudEvents:
		return modeStructured, nil
	case strings.HasPrefix(mt, "application/cloudevents"):
		return 0, unsupported("the only event format is " + MediaTypeCloudEvents)
	case mt == mediaTypeJSON || strings.HasSuffix(mt, "+json"):
		return modeBinary, nil
	}
	return 0, unsupported("binary mode carries JSON data only (Content-Type application/json)")
}

func unsupported(detail string) *problem {
	return &problem{status: http.StatusUnsupportedMediaType, code: codeUnsupportedMediaType, detail: detail}
}

// binaryEvent builds the structured JSON of a binary-mode event with the
// worker's own rules for the NATS binding (events.StructuredFromBinary):
// each ce-* header, unquoted and percent-decoded once, becomes an
// attribute; Content-Type (or ce-datacontenttype, which must agree)
// becomes datacontenttype; the body, one JSON value, becomes data byte for
// byte. The HTTP and NATS bindings encode headers alike, so one converter
// keeps an event that the ingress accepts one that the worker would read
// the same way off NATS. The result is what the ingress validates, signs
// and publishes.
func binaryEvent(h http.Header, body []byte) ([]byte, *problem) {
	if !events.IsBinary(h) {
		return nil, invalidProblem("specversion", "binary mode carries the event's attributes in ce-* headers (ce-specversion, ce-id, ce-source, ce-type, ce-subject, ce-time) and none is set; "+
			"send a whole event as "+MediaTypeCloudEvents)
	}
	raw, err := events.StructuredFromBinary(h, body)
	if err != nil {
		return nil, decodeProblem(err)
	}
	return raw, nil
}

// splitBatch returns the elements of a JSON batch, each as the exact bytes
// sent, so that the decoder (not encoding/json) judges each event.
func splitBatch(body []byte, maxEvents int) ([]json.RawMessage, *problem) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('[') {
		return nil, invalidProblem("", "a batch is a JSON array of events")
	}
	var out []json.RawMessage
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalidProblem(fmt.Sprintf("[%d]", len(out)), "the batch is not valid JSON: "+err.Error())
		}
		out = append(out, raw)
		if len(out) > maxEvents {
			return nil, invalidProblem("", fmt.Sprintf("a batch holds at most %d events", maxEvents))
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, invalidProblem("", "the batch is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalidProblem("", "text after the batch's closing ]")
	}
	return out, nil
}
