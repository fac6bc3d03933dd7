package events

import (
	"encoding/json"
	"testing"
	"time"
)

func TestMarshalEventDecodes(t *testing.T) {
	data := json.RawMessage(`{"phoneType":"mobile","phoneNumber":"+1 425-555-0100"}`)
	raw, err := MarshalEvent("id-1", "hr/test", TypePhoneSet, "adele@contoso.com", time.Now(), data)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Decoder{}.Decode(raw)
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if ev.ID != "id-1" || ev.Source != "hr/test" || ev.Type != TypePhoneSet || ev.User.UPN != "adele@contoso.com" {
		t.Errorf("decoded %+v", ev)
	}
	if p := ev.Payload.(*PhoneSet); p.PhoneNumber != "+1 4255550100" {
		t.Errorf("phone %q", p.PhoneNumber)
	}
	// Duplicate keys survive, so the decoder (not the encoder) refuses them.
	raw, err = MarshalEvent("id-2", "hr/test", TypePhoneSet, "adele@contoso.com", time.Now(),
		json.RawMessage(`{"phoneType":"mobile","phoneType":"office","phoneNumber":"+1 4255550100"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Decoder{}).Decode(raw); CodeOf(err) != CodeInvalidEvent {
		t.Errorf("duplicate key: %v", err)
	}
}
