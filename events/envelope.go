package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// MarshalEvent returns the CloudEvents JSON of one event, for Go publishers:
// the envelope attributes, and data as given (not re-encoded beyond
// compaction, so what the publisher wrote is what is signed and decoded).
// It does not validate; run the bytes through a Decoder for that.
func MarshalEvent(id, source, typ, subject string, t time.Time, data json.RawMessage) ([]byte, error) {
	envelope := struct {
		SpecVersion     string          `json:"specversion"`
		ID              string          `json:"id"`
		Source          string          `json:"source"`
		Type            string          `json:"type"`
		Subject         string          `json:"subject"`
		Time            string          `json:"time"`
		DataContentType string          `json:"datacontenttype"`
		Data            json.RawMessage `json:"data"`
	}{SpecVersion, id, source, typ, subject, t.UTC().Format(time.RFC3339Nano), ContentTypeJSON, data}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(envelope); err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}
