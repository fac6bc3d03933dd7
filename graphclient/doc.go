// Package graphclient is a typed client for the Microsoft Graph v1.0
// user authentication-methods API (plus the few user operations the
// joiner/mover/leaver flows need), built on msgraph-sdk-go.
//
// It is the only package of authflow that imports msgraph-sdk-go; its API
// carries no SDK types.
//
// # Operations
//
// A [Client] is made with [New] from a [Config]: the Graph base URL, and
// either a static bearer token (the emulator in graphclienttest) or an
// azcore.TokenCredential ([NewCredentialFromEnv] picks one from azidentity's
// environment variables). Every method takes a context first and validates
// its ids before anything goes into a request path: user ids must be object
// ids (GUIDs), method ids must use Graph's opaque id charset, and UPNs are
// only ever sent OData-quoted inside a $filter ([Client.ResolveUser]).
// Invalid input fails with [ErrInvalidInput] and no request is made.
//
// # Errors
//
// Each failure is classified once, into an [*APIError] that matches the
// class sentinels with errors.Is: [ErrTransient] (network errors, 408, 429,
// 500, 502, 503, 504), [ErrNotFound] (and its refinements [ErrUserNotFound]
// and [ErrMethodNotFound]), [ErrConflict] (400, 409, 422: a rule of the
// service said no), [ErrPermission] (401, 403), [ErrMFARequired] (a 401 or
// 403 claims challenge for multifactor authentication; not ErrPermission)
// and [ErrPermanent] (every class that is not transient). [RetryAfter] returns the server's
// Retry-After. Error strings never carry tokens, secrets or URL queries.
//
// # Retries and throttling
//
// The client sends each call exactly once: msgraph-sdk-go's own retry
// handler is left out of the middleware chain. Callers wrap a logical
// operation in a [RetryPolicy] (exponential backoff with jitter, Retry-After
// as a floor, a time budget) and put a client-request-id in the context with
// [WithRequestID] so that all attempts of the operation carry the same id;
// [WithTraceParent] adds the W3C traceparent of the event to every request.
// A [Throttle], shared by every call of a Client (or of several Clients),
// holds new requests back while the service has asked for a pause and
// adapts the number of requests in flight (AIMD) to what the service
// accepts.
package graphclient
