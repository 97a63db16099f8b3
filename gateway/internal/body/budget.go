package body

import (
	"sync/atomic"
	"time"

	"github.com/sluice-ingest/sluice/client/apierror"
)

// Budget is what the gateway allows request bodies: the limits of each
// one, with the decoded limit in force, and the bytes that all decodings
// in flight hold beyond their fixed part. Every decoding (and every
// coalesced copy) charges it, so memory follows the settings, never the
// number or shape of the bodies. It is safe for concurrent use.
type Budget struct {
	lim Limits
	// maxDecoded is lim.MaxDecodedBytes, or less when the broker takes
	// smaller messages (CapDecodedBytes).
	maxDecoded atomic.Int64
	used       atomic.Int64
}

// ErrBusy refuses a body because the decodings in flight already hold
// Limits.MaxInflightBytes: the request is fine and can be sent again.
var ErrBusy = &Error{Code: apierror.Overloaded,
	Message:    "the gateway holds too many bytes of requests in flight; retry later",
	RetryAfter: time.Second}

// NewBudget returns a Budget of lim, defaults filled in.
func NewBudget(lim Limits) *Budget {
	b := &Budget{lim: lim.WithDefaults()}
	b.maxDecoded.Store(b.lim.MaxDecodedBytes)
	return b
}

// Limits are the limits in force: those configured, with the decoded
// limit capped by CapDecodedBytes.
func (b *Budget) Limits() Limits {
	l := b.lim
	l.MaxDecodedBytes = b.maxDecoded.Load()
	return l
}

// Configured are the limits as configured, defaults filled in.
func (b *Budget) Configured() Limits { return b.lim }

// MaxDecodedBytes is the decoded limit in force.
func (b *Budget) MaxDecodedBytes() int64 { return b.maxDecoded.Load() }

// CapDecodedBytes sets the decoded limit in force to n (the largest
// message the broker takes, less room for headers) when that is below the
// configured one, else back to the configured one.
func (b *Budget) CapDecodedBytes(n int64) {
	b.maxDecoded.Store(max(1, min(n, b.lim.MaxDecodedBytes)))
}

// Reserve charges n bytes to the bytes in flight, or returns ErrBusy when
// they are not there; Unreserve gives them back.
func (b *Budget) Reserve(n int64) error {
	if b.used.Add(n) > b.lim.MaxInflightBytes {
		b.used.Add(-n)
		return ErrBusy
	}
	return nil
}

// Unreserve gives back n bytes taken by Reserve.
func (b *Budget) Unreserve(n int64) { b.used.Add(-n) }

// Used is the bytes reserved now.
func (b *Budget) Used() int64 { return b.used.Load() }
