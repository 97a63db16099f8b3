package body

// Limits bound what one request may carry, and what all requests being
// decoded may hold. A zero field takes its default.
type Limits struct {
	MaxBodyBytes    int64 // on the wire
	MaxDecodedBytes int64 // after decompression
	// MaxInflightBytes bounds the memory all decodings in flight hold
	// beyond their fixed part (FixedBytesPerRequest). A body that would
	// pass it is refused with ErrBusy.
	MaxInflightBytes int64
	MaxEvents        int
	// MaxDepth bounds the nesting of objects and arrays, counted from the
	// body's root: the {"events":[...]} wrapper itself takes two levels.
	MaxDepth int
}

// Defaults of Limits.
const (
	DefaultMaxBodyBytes     = 1 << 20
	DefaultMaxDecodedBytes  = 4 << 20
	DefaultMaxInflightBytes = 256 << 20
	DefaultMaxEvents        = 10000
	DefaultMaxDepth         = 64
)

// FixedBytesPerRequest is what one decoding may hold outside the budget,
// and what its decoder keeps pooled between requests: the JSON path's
// input window, output buffer of 64 KiB, gzip reader and small zstd
// decoder, rounded up (the OTLP path keeps less).
const FixedBytesPerRequest = 384 << 10

// WithDefaults returns l with each zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if l.MaxInflightBytes <= 0 {
		l.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}
