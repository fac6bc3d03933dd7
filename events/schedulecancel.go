package events

// ScheduleCancel (authflow.schedule.cancel.v1) cancels a future-dated event
// (data.effectiveAt) of the same source that is still waiting: the event
// ends with the final status cancelled and nothing is written.
type ScheduleCancel struct {
	// EventKey is the scheduled event's key, EventKey(source, id): the id of
	// its scheduled result without ":scheduled".
	EventKey string `json:"eventKey"`
	// Not a dry run nor a helpdesk request: unexported, so the decoder
	// refuses dryRun and verification as unknown fields.
	c Common
}

func (p *ScheduleCancel) common() *Common { return &p.c }

func (p *ScheduleCancel) validate(v *validator) {
	v.required("data.eventKey", p.EventKey)
	v.match("data.eventKey", p.EventKey, reEventKey, 64, "an event key: 64 lower-case hex digits (the id of the scheduled result, without :scheduled)")
}
