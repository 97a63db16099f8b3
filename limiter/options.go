package limiter

import (
	"fmt"
	"runtime"
	"time"
)

// Mode is what a decision becomes when Redis cannot make it (error, deadline
// passed, breaker open).
type Mode uint8

const (
	// ModeOpen allows the request and counts it as a fallback decision.
	ModeOpen Mode = iota
	// ModeClosed denies the request with an error wrapping ErrUnavailable.
	ModeClosed
	// ModeLocal decides with an in-process bucket enforcing the limit divided
	// by the number of live instances (learned from a Redis heartbeat set).
	ModeLocal
)

// String returns open, closed or local.
func (m Mode) String() string {
	switch m {
	case ModeOpen:
		return "open"
	case ModeClosed:
		return "closed"
	case ModeLocal:
		return "local"
	}
	return "mode(?)"
}

// ParseMode reads "open", "closed" or "local" (SLUICE_LIMITER_ON_ERROR).
// Errors wrap ErrInvalidMode.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "open":
		return ModeOpen, nil
	case "closed":
		return ModeClosed, nil
	case "local":
		return ModeLocal, nil
	}
	return 0, fmt.Errorf("%w %q: want open, closed or local", ErrInvalidMode, s)
}

type config struct {
	prefix           string
	deadline         time.Duration
	mode             Mode
	shadow           bool
	observer         Observer
	maxBatch         int
	maxDelay         time.Duration
	flushers         int
	coalesce         bool
	denyCache        bool
	breakerFailures  int
	breakerCooldown  time.Duration
	instanceID       string
	heartbeat        time.Duration
	localMaxKeys     int
	janitorInterval  time.Duration
	closeHeartbeatTO time.Duration
}

func defaultConfig() config {
	return config{
		prefix:           "rl:",
		deadline:         5 * time.Millisecond,
		mode:             ModeOpen,
		observer:         NopObserver{},
		maxBatch:         128,
		maxDelay:         0,
		flushers:         min(max(runtime.GOMAXPROCS(0), 2), 8),
		coalesce:         true,
		denyCache:        true,
		breakerFailures:  5,
		breakerCooldown:  500 * time.Millisecond,
		heartbeat:        time.Second,
		localMaxKeys:     100_000,
		janitorInterval:  time.Second,
		closeHeartbeatTO: 100 * time.Millisecond,
	}
}

// Option configures a Limiter.
type Option func(*config)

// WithPrefix sets the prefix of every Redis key (default "rl:"). It must not
// contain '{' or '}': the library places its own hash tag after it.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithDeadline bounds how long one decision waits for Redis (default 5ms).
// When it passes, the decision follows the Mode.
func WithDeadline(d time.Duration) Option { return func(c *config) { c.deadline = d } }

// WithMode sets what happens when Redis cannot decide (default ModeOpen).
func WithMode(m Mode) Option { return func(c *config) { c.mode = m } }

// WithShadow decides and reports as usual but never denies: a request that
// would be denied is allowed and observed as OutcomeShadowDenied. Use it to
// roll out a new policy.
func WithShadow(on bool) Option { return func(c *config) { c.shadow = on } }

// WithObserver receives decisions, backend errors, breaker and fallback
// changes (for metrics). Its methods must be fast and safe for concurrent use.
func WithObserver(o Observer) Option { return func(c *config) { c.observer = o } }

// WithBatching tunes coalescing: at most maxBatch decisions per round trip,
// and a flusher that found fewer waits at most maxDelay for more (default
// 128 and 0: take whatever queued up while the previous batch was in
// flight). flushers is how many batches may be in flight at once (default
// GOMAXPROCS, at least 2 and at most 8: fewer, larger batches cost Redis
// less per decision; more hide a longer round trip).
func WithBatching(maxBatch int, maxDelay time.Duration, flushers int) Option {
	return func(c *config) {
		c.maxBatch, c.maxDelay, c.flushers = maxBatch, maxDelay, flushers
	}
}

// WithCoalescing(false) makes every decision its own EVALSHA from the
// calling goroutine (the deadline still holds). Default true.
func WithCoalescing(on bool) Option { return func(c *config) { c.coalesce = on } }

// WithDenyCache(false) disables the local cache that answers a key known to
// be over its limit until its RetryAfter without asking Redis. Default true.
func WithDenyCache(on bool) Option { return func(c *config) { c.denyCache = on } }

// WithBreaker opens the circuit after failures consecutive backend failures;
// after cooldown one probe goes to Redis, and its success closes the circuit
// (default 5 and 500ms).
func WithBreaker(failures int, cooldown time.Duration) Option {
	return func(c *config) { c.breakerFailures, c.breakerCooldown = failures, cooldown }
}

// WithInstance names this process in the heartbeat set (default random) and
// sets the heartbeat interval (default 1s; an instance silent for three
// intervals is no longer counted). Only ModeLocal sends heartbeats.
func WithInstance(id string, interval time.Duration) Option {
	return func(c *config) {
		if id != "" {
			c.instanceID = id
		}
		if interval > 0 {
			c.heartbeat = interval
		}
	}
}
