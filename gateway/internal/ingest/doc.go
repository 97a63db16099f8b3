// Package ingest is the gateway's HTTP API: POST /v1/events runs
// authenticate -> admit -> decode -> publish -> 202, and every refusal is
// answered with the contract's status code and JSON error body. It owns the
// mapping from errors to status codes (one function, never 500 for client
// input) and must answer 202 only after JetStream acknowledged the message.
package ingest
