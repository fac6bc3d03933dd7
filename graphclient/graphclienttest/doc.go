// Package graphclienttest is an in-memory Microsoft Graph v1.0 for tests and
// local runs: the user authentication-methods API (every method type,
// /methods, resetPassword and its long-running operations) and the user
// endpoints the worker needs (GET/PATCH /users/{id}, the UPN $filter,
// revokeSignInSessions, memberOf), passkey registration on behalf of users
// (creationOptions, POST fido2Methods), and of Graph beta exactly GET and
// PATCH /beta/users/{id}/authentication/signInPreferences.
//
// It follows the real service wherever a client can observe it: status
// codes, JSON shapes with @odata.context and @odata.type, fixed method ids,
// request-id and client-request-id headers, gzip request bodies, and the
// Graph error envelope (always with error.message, which msgraph-sdk-go
// needs). Where the documentation is silent it answers as docs/emulator.md
// says, for example the default-method rule and the TAP policy checks.
//
// An admin API under /_emulator/ seeds users, injects faults (latency,
// errors, a token-bucket throttle with honest Retry-After, lost replies),
// and reports per-route statistics and an ordered request log.
//
// Use New for an http.Handler, or NewServer in tests:
//
//	srv := graphclienttest.NewServer(t)
//	_ = srv.PutUser(graphclienttest.User{ID: id, UserPrincipalName: "kim@contoso.com"})
//	// point the client at srv.GraphURL with bearer token srv.Token
//
// The package imports the standard library and internal/passkey (which
// reads attestation objects with fxamacker/cbor); never msgraph-sdk-go.
package graphclienttest
