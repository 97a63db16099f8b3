// Package stream owns the JetStream contract that the gateway and the worker
// share: stream, consumer and subject names, message headers, and the
// idempotent creation of the streams and the durable consumer. Operators see
// these names in `nats stream info`, so they must not change casually. It
// must not know how bodies are decoded or how objects are written.
package stream
