package limiter

import "errors"

// Sentinel errors. Check them with errors.Is: the library wraps them with
// what it was doing.
var (
	// ErrInvalidLimit reports a Limit that cannot be enforced (zero rate,
	// zero period, unknown algorithm, negative burst).
	ErrInvalidLimit = errors.New("limiter: invalid limit")
	// ErrInvalidPolicy reports a policy string that ParsePolicy cannot read.
	ErrInvalidPolicy = errors.New("limiter: invalid policy")
	// ErrInvalidMode reports a mode ParseMode cannot read.
	ErrInvalidMode = errors.New("limiter: invalid mode")
	// ErrInvalidOption reports an Option given a value it cannot use; New
	// returns it.
	ErrInvalidOption = errors.New("limiter: invalid option")
	// ErrInvalidCost reports a cost below 1.
	ErrInvalidCost = errors.New("limiter: invalid cost")
	// ErrUnavailable is returned in ModeClosed when Redis cannot answer within
	// the deadline or the circuit breaker is open. Callers map it to 503.
	ErrUnavailable = errors.New("limiter: backend unavailable")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("limiter: closed")
)
