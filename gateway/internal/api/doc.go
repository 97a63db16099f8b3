// Package api is the gateway's HTTP API: POST /v1/events (and POST
// /v1/logs, OTLP/HTTP, whose bodies and answers the otlp package owns) runs
// authenticate -> room for the work (broker connected, workers' backlog
// under its limit, a free in-flight slot) -> decode -> rate limit (the
// RateLimiter hook, given the event count; before decoding when it counts
// requests) -> publish -> 202, and every refusal is answered with the
// contract's status code and JSON error body. It owns the mapping from
// errors to answers (toAPIError: every refusal is a *body.Error, never a
// 500 for client input), the bound on requests in flight, the body.Budget
// both decoders share, and the asynchronous publish that waits for the
// PubAck of the message holding each request's events (its own, or one
// coalescing concurrent requests of its tenant: coalesce.go). It must
// answer 202 only after JetStream acknowledged that message, and must not
// decide rate limits itself.
package api
