// Package api is the HTTP layer of greenpoints: one gin engine with the
// middleware every request passes through, the operational routes, and the
// /v1 group that feature handlers join.
//
// It exists so that a feature handler is only a handler: decode with
// BindJSON, call the domain, and either write the result or hand any error
// to WriteError. Everything cross-cutting is decided here once:
//
//   - Errors: domain packages return *apperr.Error; WriteError (problem.go)
//     is the one place that maps codes to HTTP statuses and writes RFC 9457
//     application/problem+json with a stable reason. Other errors are bugs:
//     the client sees "internal error", the log the full error, and the
//     request id ties the two together.
//   - Input: BindJSON accepts only application/json, exactly one JSON value,
//     no unknown members, and runs the `validate` tags, including the
//     greenpoints rules uscc, mcc, fen and points. Field errors carry JSON
//     paths such as "items[2].points" so partners can fix the right item.
//   - Limits: request bodies are capped (Config.MaxBodyBytes, 1 MiB by
//     default); a larger declared body is refused before a handler runs.
//   - Observability: every response carries X-Request-Id; one JSON access
//     log line and Prometheus metrics per request, labelled with the route
//     template, never the raw path, and never with headers or bodies, which
//     carry credentials and webhook signatures.
//
// The OpenAPI document (openapi.yaml) is embedded and served at
// /openapi.yaml. Tests fail when a route is served but not documented, or
// documented but not served, and when a response does not match its schema,
// so a handler added to V1 must be added to openapi.yaml in the same change.
package api
