// Package ingress is authflow's HTTP front door: it takes CloudEvents over
// HTTP (structured, binary and batched content modes) and senders' own
// webhooks (mapped to events by CEL expressions), authenticates each
// request as exactly one configured source (Standard Webhooks, HMAC,
// bearer tokens, basic auth, mTLS), validates the event with the worker's
// decoder, signs it with the ingress's own nkeys key for that source and
// publishes it to JetStream, answering 202 only after the PubAck. It also
// delivers results back to each source's results webhook.
//
// The trust model, the configuration and the wire contract are in
// docs/ingress.md.
package ingress
