package client

import (
	"errors"
	"fmt"
	"time"
)

// Batcher defaults, well under the gateway's default limits: 10,000 events
// (SLUICE_MAX_EVENTS), 1 MiB on the wire (SLUICE_MAX_BODY_BYTES, which an
// uncompressed body must pass too) and 4 MiB decoded
// (SLUICE_MAX_DECODED_BYTES).
const (
	DefaultBatchEvents = 1000
	DefaultBatchBytes  = 512 << 10
	DefaultBatchAge    = time.Second
	DefaultBufferBytes = 16 << 20
	DefaultMaxInFlight = 2
)

// Errors of Batcher.Add, checked with errors.Is.
var (
	// ErrBufferFull: the events held (in the open batch, waiting and being
	// sent) would pass WithBufferBytes. Add does not block; the caller
	// decides whether to wait and add again, or to drop the event.
	ErrBufferFull = errors.New("sluice: batcher buffer full")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("sluice: batcher closed")
	// ErrEventTooLarge: the event alone makes a body over WithBatchBytes.
	ErrEventTooLarge = errors.New("sluice: event larger than a batch")
	// ErrNotObject: the event does not encode to a JSON object, which the
	// gateway would refuse (and with it the whole batch).
	ErrNotObject = errors.New("sluice: event is not a JSON object")
)

// BatchResult is the outcome of one batch: the gateway's answer when it
// was accepted (BatchID names it for its receipt), Err otherwise.
type BatchResult struct {
	Result
	Events         int    // events in the batch
	IdempotencyKey string // sent with every attempt of the batch
	Err            error  // nil when accepted; a refusal is an *APIError
}

// BatchOption configures a Batcher.
type BatchOption func(*batchConfig)

type batchConfig struct {
	events      int
	bytes       int
	age         time.Duration
	bufferBytes int
	inFlight    int
	results     func(BatchResult)
}

// WithBatchEvents sends a batch when it holds n events (default 1000; the
// gateway takes SLUICE_MAX_EVENTS, 10,000 by default).
func WithBatchEvents(n int) BatchOption { return func(c *batchConfig) { c.events = n } }

// WithBatchBytes sends a batch before its body, {"events":[...]} before
// compression, would pass n bytes (default 512 KiB). Keep it under the
// gateway's SLUICE_MAX_DECODED_BYTES (4 MiB) and, without gzip, under its
// SLUICE_MAX_BODY_BYTES (1 MiB).
func WithBatchBytes(n int) BatchOption { return func(c *batchConfig) { c.bytes = n } }

// WithBatchAge sends a batch at the latest d after its first event was
// added (default 1s).
func WithBatchAge(d time.Duration) BatchOption { return func(c *batchConfig) { c.age = d } }

// WithBufferBytes bounds the encoded events the batcher holds, in the open
// batch, in batches waiting to be sent and in those being sent (default
// 16 MiB; at least WithBatchBytes). Add returns ErrBufferFull past it.
func WithBufferBytes(n int) BatchOption { return func(c *batchConfig) { c.bufferBytes = n } }

// WithMaxInFlight bounds the batches being sent at once (default 2).
// Batches are sent in the order they were closed, but with more than one
// in flight they may be accepted out of order.
func WithMaxInFlight(n int) BatchOption { return func(c *batchConfig) { c.inFlight = n } }

// WithResults calls f with the outcome of every batch, once its sending
// ended, from the goroutine that sent it (so up to WithMaxInFlight at
// once). A slow f slows sending, and a full buffer then refuses Add: f
// must not call Flush or Close. Without it, Flush and Close still report
// how many batches failed.
func WithResults(f func(BatchResult)) BatchOption { return func(c *batchConfig) { c.results = f } }

func newBatchConfig(opts []BatchOption) (batchConfig, error) {
	c := batchConfig{
		events:      DefaultBatchEvents,
		bytes:       DefaultBatchBytes,
		age:         DefaultBatchAge,
		bufferBytes: DefaultBufferBytes,
		inFlight:    DefaultMaxInFlight,
	}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.events < 1:
		return c, fmt.Errorf("sluice: WithBatchEvents(%d): must be at least 1", c.events)
	case c.bytes < minBatchBytes:
		return c, fmt.Errorf("sluice: WithBatchBytes(%d): must be at least %d", c.bytes, minBatchBytes)
	case c.age <= 0:
		return c, fmt.Errorf("sluice: WithBatchAge(%s): must be positive", c.age)
	case c.bufferBytes < c.bytes:
		return c, fmt.Errorf("sluice: WithBufferBytes(%d): must be at least the batch size (%d)", c.bufferBytes, c.bytes)
	case c.inFlight < 1:
		return c, fmt.Errorf("sluice: WithMaxInFlight(%d): must be at least 1", c.inFlight)
	}
	return c, nil
}

// minBatchBytes holds the wrapper and a small event.
const minBatchBytes = 64
