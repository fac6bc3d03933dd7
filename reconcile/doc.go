// Package reconcile finds drift between a desired state (an HR export, one
// row per person) and Microsoft Graph, and builds the events that correct
// it.
//
// Events get lost upstream: an HR integration down for a day, a ticket
// closed by hand. Reconciliation catches what they missed: a leaver whose
// account is enabled or who still has methods, an active user whose phone
// or email is missing or different. Read parses the file; a Reconciler
// compares it with Graph at a bounded request rate, preferring the
// tenant-wide registration report to per-user reads; Apply publishes the
// corrections (employee.left, phone.set, email.set) as source
// authflow/reconcile, signed, with ids derived from the run date, the user
// and the correction, so that a second run on the same day is a no-op.
//
// The package reads Graph and builds events; it writes nothing. The
// corrections go through the normal pipeline: policy, signatures, order and
// results apply as for any event.
package reconcile
