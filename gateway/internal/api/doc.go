// Package api is the gateway's HTTP API: POST /v1/events and POST /v1/logs
// (OTLP/HTTP, its bodies and answers the otlp package's) run authenticate ->
// room (broker connected, backlog under its limit, a free in-flight slot) ->
// decode -> rate limit (the RateLimiter hook; before decode when it counts
// requests) -> publish -> 202. It owns the errors' answers (toAPIError: never
// a 500 for client input), the in-flight bound, the decoders' body.Budget and
// the publish that awaits each request's PubAck (coalesce.go). It answers 202
// only once JetStream acknowledged, and must not decide rate limits itself.
package api
