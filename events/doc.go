// Package events is authflow's contract with its publishers: the CloudEvents
// envelope and one Go type per event type, strict decoding and validation,
// the plan (the ordered desired-state operations) each event asks for, the
// result published for every event, the policy that decides who may ask for
// what, per-message signatures, and sealing of the secrets Graph returns once.
//
// Of authflow's own code the package imports only internal/ident (the one
// UPN and phone-number rule it shares with graphclient), and no NATS or
// Graph SDK code, so publishers written in Go can use it to build, validate
// and sign events.
// docs/events.md is the reference for publishers in every language; the JSON
// Schemas it describes are embedded here (see SchemaFS).
//
// # Decoding
//
// [Decoder.Decode] accepts one event as raw bytes and returns an [*Event] or
// an [*Error] carrying one [Code] from a closed list. It is strict: the
// payload size is capped, JSON must be valid UTF-8 with no duplicate object
// keys at any depth, every field must be known and well typed, the subject
// must be an object id or a user principal name, and phone numbers are
// normalised to Graph's "+{cc} {number}" form.
//
// # Processing order
//
// A worker handles one message in this order: [Decoder.Decode] (or
// [PeekIdentity] for a rejected result when decoding fails),
// [Policy.CheckAuth], [Policy.CheckFreshness], resolve the user,
// [Policy.CheckTarget], [Plan], execute, then publish a [Result]. Secrets
// that Graph returns once are sealed with [Seal] at once.
package events
