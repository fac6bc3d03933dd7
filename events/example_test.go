package events_test

import (
	"fmt"

	"github.com/authflow/authflow/events"
)

func ExampleDecoder_Decode() {
	raw := []byte(`{
  "specversion": "1.0",
  "id": "9c3b7a1d-0e2f-4a5b-8c6d-7e8f9a0b1c2d",
  "source": "hr/workday",
  "type": "authflow.phone.set.v1",
  "subject": "alex.wilber@contoso.com",
  "time": "2027-02-10T08:00:00Z",
  "data": {"phoneType": "mobile", "phoneNumber": "(425) 555-0100"}
}`)
	ev, err := events.Decoder{DefaultRegion: "US"}.Decode(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	ops, _ := events.Plan(ev)
	for _, op := range ops {
		fmt.Println(op.Kind, op.Phone.Type, op.Phone.Number)
	}
	// Output: ensurePhone mobile +1 4255550100
}

func ExampleDecoder_Decode_rejected() {
	raw := []byte(`{"specversion":"1.0","id":"1","source":"hr/workday","type":"authflow.methods.inventory.v1",` +
		`"subject":"../admin@contoso.com","time":"2027-02-10T08:00:00Z","data":{}}`)
	_, err := events.Decoder{}.Decode(raw)
	fmt.Println(events.CodeOf(err))
	fmt.Println(err)
	// Output:
	// invalid_event
	// invalid_event: subject: user principal name has a character outside A-Z a-z 0-9 ' . - _ ! ^ ~ before the @
}
