package limiter

import (
	"sync"
	"sync/atomic"
	"time"
)

// breaker is a consecutive-failure circuit breaker. Closed: every call goes
// to Redis. After `failures` consecutive failures it opens: calls take the
// fallback at once. After `cooldown` one probe goes through (half-open); its
// success closes the circuit, its failure opens it again.
type breaker struct {
	failures int
	cooldown time.Duration
	onChange func(from, to BreakerState)

	state atomic.Uint32 // BreakerState; read lock-free on the hot path
	fails atomic.Int64  // consecutive failures

	mu       sync.Mutex
	openedAt time.Time
	probeAt  time.Time // zero: no probe in flight
}

func newBreaker(failures int, cooldown time.Duration, onChange func(from, to BreakerState)) *breaker {
	if failures < 1 {
		failures = 1
	}
	return &breaker{failures: failures, cooldown: cooldown, onChange: onChange}
}

func (b *breaker) State() BreakerState { return BreakerState(b.state.Load()) }

// allow reports whether a call may go to Redis now.
func (b *breaker) allow(now time.Time) bool {
	if b.State() == BreakerClosed {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.State() {
	case BreakerClosed:
		return true
	case BreakerOpen:
		if now.Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.setLocked(BreakerHalfOpen)
		b.probeAt = now
		return true
	default: // half-open: one probe at a time; a probe that never reported is replaced
		if !b.probeAt.IsZero() && now.Sub(b.probeAt) < b.cooldown {
			return false
		}
		b.probeAt = now
		return true
	}
}

// patient reports whether a decision may wait for a late answer: Redis is
// healthy (closed, and nothing failed since its last answer), or the
// decision is the half-open breaker's probe (only the probe goes to Redis
// then), whose late answer is what closes the breaker.
func (b *breaker) patient() bool {
	switch b.State() {
	case BreakerClosed:
		return b.fails.Load() == 0
	case BreakerHalfOpen:
		return true
	}
	return false
}

// retryAfter is how long until the breaker lets a probe through.
func (b *breaker) retryAfter(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := b.cooldown - now.Sub(b.openedAt); d > 0 {
		return d
	}
	return 0
}

func (b *breaker) success() {
	if b.State() == BreakerClosed && b.fails.Load() == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails.Store(0)
	b.probeAt = time.Time{}
	b.setLocked(BreakerClosed)
}

func (b *breaker) failure(now time.Time) {
	n := b.fails.Add(1)
	st := b.State()
	if st == BreakerClosed && n < int64(b.failures) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.State() {
	case BreakerClosed:
		if b.fails.Load() >= int64(b.failures) {
			b.openedAt = now
			b.setLocked(BreakerOpen)
		}
	case BreakerHalfOpen:
		b.openedAt = now
		b.probeAt = time.Time{}
		b.setLocked(BreakerOpen)
	}
}

func (b *breaker) setLocked(to BreakerState) {
	from := BreakerState(b.state.Swap(uint32(to)))
	if from != to && b.onChange != nil {
		b.onChange(from, to)
	}
}
