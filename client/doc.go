// Package client is the Go SDK for sending events to a Sluice gateway. It
// owns the request shape, compression, the Idempotency-Key that makes its
// retries safe, the retry policy (429 and 503 honour Retry-After; other
// 4xx are permanent), and the Batcher, which gathers events added one by
// one into batches within a bounded buffer. It must not hold more events
// than a Batcher's buffer, and never retries outside the duplicate window.
package client
