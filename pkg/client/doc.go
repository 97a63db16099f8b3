// Package client is the Go SDK for sending events to a Sluice gateway. It
// owns the request shape, compression, the Idempotency-Key that makes its
// retries safe, and the retry policy (429 and 503 honour Retry-After; other
// 4xx are permanent). It must not buffer events beyond one call.
package client
