package limiter

import (
	"fmt"
	"runtime"
	"strings"
	"time"
)

// Mode is what a decision becomes when Redis cannot make it (an error, no
// answer in time, breaker open). In every mode a key Redis was denying stays
// denied until its RetryAfter (the deny cache).
type Mode uint8

const (
	// ModeOpen allows the request, except for keys the Limiter has state
	// for (Redis decided them recently, or they owe Redis what an earlier
	// fallback admitted): those get this instance's share, as in ModeLocal.
	ModeOpen Mode = iota
	// ModeClosed denies the request with an error wrapping ErrUnavailable.
	ModeClosed
	// ModeLocal decides with an in-process bucket per key enforcing the
	// limit divided by the number of live instances (learned from a Redis
	// heartbeat set), starting from what Redis last said of the key. It is
	// the default: it never refuses a tenant all traffic and never admits
	// more than the instances' shares add up to.
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

// ParseMode reads "open", "closed" or "local".
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
	lateAnswer       time.Duration
	mode             Mode
	shadow           bool
	observer         Observer
	flushMax         int
	flushDelay       time.Duration
	flushers         int
	flushing         bool
	denyCache        bool
	breakerFailures  int
	breakerCooldown  time.Duration
	instanceID       string
	heartbeat        time.Duration
	localMaxKeys     int
	janitorInterval  time.Duration
	closeHeartbeatTO time.Duration
	allotHold        time.Duration
}

func defaultConfig() config {
	return config{
		prefix:           "rl:",
		deadline:         5 * time.Millisecond,
		lateAnswer:       250 * time.Millisecond,
		mode:             ModeLocal,
		observer:         NopObserver{},
		flushMax:         128,
		flushDelay:       0,
		flushers:         min(max(runtime.GOMAXPROCS(0), 2), 8),
		flushing:         true,
		denyCache:        true,
		breakerFailures:  5,
		breakerCooldown:  500 * time.Millisecond,
		heartbeat:        time.Second,
		localMaxKeys:     100_000,
		janitorInterval:  time.Second,
		closeHeartbeatTO: 100 * time.Millisecond,
	}
}

// Option configures a Limiter. An option given a value it cannot use makes
// New return an error wrapping ErrInvalidOption.
type Option func(*config) error

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOption, fmt.Sprintf(format, args...))
}

// WithPrefix sets the prefix of every Redis key (default "rl:"). It must not
// contain '{' or '}': the library places its own hash tag after it.
func WithPrefix(p string) Option {
	return func(c *config) error {
		if strings.ContainsAny(p, "{}") {
			return invalid("prefix %q must not contain '{' or '}'", p)
		}
		c.prefix = p
		return nil
	}
}

// WithDeadline is how long after its command is sent a decision expects
// Redis's answer (default 5ms). Past it the answer is late: while Redis is
// healthy (the breaker closed and nothing failed since its last answer) the
// decision waits on for it up to the late-answer bound (WithLateAnswers);
// once Redis has failed, the deadline is final and the decision follows
// the Mode.
func WithDeadline(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return invalid("deadline %s must be positive", d)
		}
		c.deadline = d
		return nil
	}
}

// WithLateAnswers bounds how long a decision waits for a late answer from a
// healthy Redis, counted from when its command was sent (default 250ms,
// never less than the deadline). A
// sent command still unanswered then is a failure for the breaker and the
// decision follows the Mode. A decision that waited this long for a flusher
// to send it falls back unsent.
func WithLateAnswers(bound time.Duration) Option {
	return func(c *config) error {
		if bound <= 0 {
			return invalid("late-answer bound %s must be positive", bound)
		}
		c.lateAnswer = bound
		return nil
	}
}

// WithMode sets what happens when Redis cannot decide (default ModeLocal).
func WithMode(m Mode) Option {
	return func(c *config) error {
		if m > ModeLocal {
			return invalid("unknown mode %d", m)
		}
		c.mode = m
		return nil
	}
}

// WithShadow decides and reports as usual but never denies: a request that
// would be denied is allowed and observed as OutcomeShadowDenied. Use it to
// roll out a new policy.
func WithShadow(on bool) Option { return func(c *config) error { c.shadow = on; return nil } }

// WithObserver receives decisions, backend errors, breaker and fallback
// changes (for metrics). Its methods must be fast and safe for concurrent use.
func WithObserver(o Observer) Option {
	return func(c *config) error {
		if o == nil {
			return invalid("nil observer (use NopObserver)")
		}
		c.observer = o
		return nil
	}
}

// WithFlush tunes the flushes: at most maxDecisions decisions per flush,
// one round trip to Redis (default 128); a flusher that found fewer waits at
// most maxDelay for more (default 0); at most flushers flushes are in
// flight at once (default GOMAXPROCS, 2 to 8: fewer, larger flushes cost
// Redis less per decision; more hide a longer round trip). It has no effect
// with WithFlushing(false).
func WithFlush(maxDecisions int, maxDelay time.Duration, flushers int) Option {
	return func(c *config) error {
		switch {
		case maxDecisions < 1:
			return invalid("flush size %d must be at least 1", maxDecisions)
		case maxDelay < 0:
			return invalid("flush delay %s must not be negative", maxDelay)
		case flushers < 1:
			return invalid("flushers %d must be at least 1", flushers)
		}
		c.flushMax, c.flushDelay, c.flushers = maxDecisions, maxDelay, flushers
		return nil
	}
}

// WithFlushing(false) makes every decision its own EVALSHA from the
// calling goroutine, without flushers (the deadline still holds). Default
// true.
func WithFlushing(on bool) Option { return func(c *config) error { c.flushing = on; return nil } }

// WithAllotment lets a key decided often be given units ahead by Redis,
// held for at most hold and spent by its next Allow calls without a round
// trip (default off; see allot.go for how they are sized). A key never gets
// more than its limit in total; a unit may be used up to hold after Redis
// counted it, and units left when their hold ends are dropped. It needs
// flushing (the default).
func WithAllotment(hold time.Duration) Option {
	return func(c *config) error {
		if hold <= 0 {
			return invalid("allotment hold %s must be positive", hold)
		}
		c.allotHold = hold
		return nil
	}
}

// WithDenyCache(false) disables the local cache that answers a key known to
// be over its limit until its RetryAfter without asking Redis. Default true.
func WithDenyCache(on bool) Option { return func(c *config) error { c.denyCache = on; return nil } }

// WithBreaker opens the circuit after failures consecutive backend failures;
// after cooldown one probe goes to Redis, and its success closes the circuit
// (default 5 and 500ms).
func WithBreaker(failures int, cooldown time.Duration) Option {
	return func(c *config) error {
		switch {
		case failures < 1:
			return invalid("breaker failures %d must be at least 1", failures)
		case cooldown <= 0:
			return invalid("breaker cooldown %s must be positive", cooldown)
		}
		c.breakerFailures, c.breakerCooldown = failures, cooldown
		return nil
	}
}

// WithInstance names this process in the heartbeat set ("" keeps the
// default, a random id) and sets the heartbeat interval (default 1s; an
// instance silent for three intervals is no longer counted). ModeClosed
// sends none.
func WithInstance(id string, interval time.Duration) Option {
	return func(c *config) error {
		if interval <= 0 {
			return invalid("heartbeat interval %s must be positive", interval)
		}
		if id != "" {
			c.instanceID = id
		}
		c.heartbeat = interval
		return nil
	}
}
