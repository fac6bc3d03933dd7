package worker

import (
	"context"
	"fmt"

	"github.com/authflow/authflow/events"
	"github.com/authflow/authflow/notify"
)

// notifyUser publishes the notification of an event that changed a user
// (NIST SP 800-63B-4: every bind, unbind and recovery is notified through a
// channel of its own), after its result and before its ack, under an id
// derived from the result's, so that a crash between the two publishes only
// makes the republish path (a redelivery answered from the ledger) send it
// again, and the stream drops the copy. Delivery by email is the notify
// package's consumer, off this path: a mail outage never delays an event.
func (d *delivery) notifyUser(ctx context.Context, res *events.Result) error {
	if d.ev == nil || res == nil {
		return nil
	}
	n, ok := events.NewNotification(d.ev, res, d.w.cfg.Policy.Notify(d.ev.Source, d.ev.Type))
	if !ok {
		return nil
	}
	m, id, err := notify.NewMsg(d.key, n)
	if err != nil {
		// A notification we cannot encode is a defect; the event's result
		// stands, so do not hold the event for it.
		d.w.log.Error("notification not built; the event's result stands", "event_id", d.ev.ID, "err", err)
		return nil
	}
	if err := d.w.publish(ctx, "notification", m, id); err != nil {
		return err
	}
	if err := d.w.crashPoint(HookAfterNotificationPublish); err != nil {
		return fmt.Errorf("%w: %w", errCrash, err)
	}
	return nil
}
