package limiter

import "time"

// Outcome is how a decision ended. The set is small and fixed, so it can be
// a metric label.
type Outcome string

// Outcomes.
const (
	OutcomeAllowed      Outcome = "allowed"
	OutcomeDenied       Outcome = "denied"
	OutcomeShadowDenied Outcome = "shadow_denied" // would be denied; shadow mode allowed it
	OutcomeError        Outcome = "error"         // ModeClosed: no decision, ErrUnavailable
)

// Source is who made a decision.
type Source string

// Sources.
const (
	SourceRedis     Source = "redis"
	SourceDenyCache Source = "deny_cache"
	SourceFallback  Source = "fallback"
	SourceLocal     Source = "local"     // answered without Redis: cost over capacity
	SourceAllotment Source = "allotment" // from units Redis granted ahead (WithAllotment)
)

// Decision describes one Allow, AllowAll or Acquire call for an Observer.
type Decision struct {
	Algorithm Algorithm
	Outcome   Outcome
	Source    Source
	Latency   time.Duration
}

// BreakerState is the circuit breaker's state.
type BreakerState uint8

// Breaker states.
const (
	BreakerClosed BreakerState = iota
	BreakerOpen
	BreakerHalfOpen
)

// String returns closed, open or half_open.
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half_open"
	}
	return "unknown"
}

// Observer receives what a Limiter does, to feed metrics. The library does
// not depend on any metrics package: a caller adapts these calls to its own
// registry. Methods are called synchronously on the decision path (the
// breaker ones while the breaker holds its lock): they must be fast, safe
// for concurrent use, and must not call back into the Limiter. Embed
// NopObserver to implement only some of them.
type Observer interface {
	// ObserveDecision is called once per Allow, AllowAll or Acquire.
	ObserveDecision(Decision)
	// ObserveBackendError is called for every failed Redis call (an error,
	// or a command left unanswered: see WithLateAnswers); op is "decide",
	// "acquire", "release", "heartbeat" or "repay" (telling Redis what
	// fallbacks admitted).
	ObserveBackendError(op string, err error)
	// ObserveBreaker is called when the breaker changes state.
	ObserveBreaker(BreakerState)
	// ObserveFallback is called when fallback decisions start (breaker
	// leaves closed) and stop (breaker closes again).
	ObserveFallback(active bool)
}

// NopObserver ignores everything.
type NopObserver struct{}

// ObserveDecision does nothing.
func (NopObserver) ObserveDecision(Decision) {}

// ObserveBackendError does nothing.
func (NopObserver) ObserveBackendError(string, error) {}

// ObserveBreaker does nothing.
func (NopObserver) ObserveBreaker(BreakerState) {}

// ObserveFallback does nothing.
func (NopObserver) ObserveFallback(bool) {}
