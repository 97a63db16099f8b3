package ratelimit

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluice-ingest/sluice/limiter"
	"github.com/sluice-ingest/sluice/pkg/config"
)

// Settings are the gateway's rate limit settings.
type Settings struct {
	// Off disables limiting: every request is admitted, Redis is never used,
	// and the keys file's policies are only checked.
	Off bool
	// Default is the policy of tenants whose key has none; the zero Limit
	// leaves them unlimited.
	Default limiter.Limit
	// PerEvent weighs a request by its event count instead of 1.
	PerEvent bool
	// Mode is what a decision becomes when Redis cannot make it.
	Mode limiter.Mode
	// Deadline is how soon after a decision is sent Redis should answer
	// (limiter.WithDeadline).
	Deadline time.Duration
	// Shadow decides and counts every request but never refuses one, for
	// rolling out a new policy while watching what it would do.
	Shadow bool
	// RedisURL is SLUICE_REDIS_URL (see parseRedisURL); Check checks it.
	RedisURL string
	// Allot is how long a tenant's units granted ahead by Redis may be held
	// (limiter.WithAllotment); 0 decides every request in Redis.
	Allot time.Duration
}

// DefaultDeadline is the default of SLUICE_LIMITER_DEADLINE.
const DefaultDeadline = 5 * time.Millisecond

// DefaultAllot is the default of SLUICE_LIMITER_ALLOT.
const DefaultAllot = 20 * time.Millisecond

// Declare adds the settings to cs.
func (s *Settings) Declare(cs *config.Set) {
	cs.Func("SLUICE_RATE_LIMIT", "", "policy of tenants whose key has none, e.g. 1000/s,burst=2000 or 60000/m; empty: only keys with a policy are limited; off: no limiting at all (Redis unused)", s.parsePolicy)
	cs.Func("SLUICE_RATE_LIMIT_COST", "requests", "what a policy counts: requests, or events (a request costs its event count and is limited after its body is decoded)", func(v string) error {
		switch v {
		case "requests", "events":
			s.PerEvent = v == "events"
			return nil
		}
		return fmt.Errorf("want requests or events")
	})
	cs.Func("SLUICE_LIMITER_ON_ERROR", "local", "when Redis cannot decide in time: local (each gateway enforces its share of the policy), open (admit tenants it knows nothing of; the others get their share as in local) or closed (503 limiter_unavailable)", func(v string) error {
		m, err := limiter.ParseMode(v)
		s.Mode = m
		return err
	})
	cs.Bool(&s.Shadow, "SLUICE_LIMITER_SHADOW", false, "decide and count (sluice_gateway_limiter_decisions_total) but never refuse: for trying a new policy")
	cs.Duration(&s.Deadline, "SLUICE_LIMITER_DEADLINE", DefaultDeadline, 100*time.Microsecond, "how soon after a decision is sent Redis should answer; a late answer from a healthy Redis is still awaited (up to 250ms), one from a Redis that just failed is not, and SLUICE_LIMITER_ON_ERROR decides")
	cs.Duration(&s.Allot, "SLUICE_LIMITER_ALLOT", DefaultAllot, 0, "how long a busy tenant's units granted ahead by Redis may be held and spent without a round trip (never more than the policy in total; a unit is used at most this long after Redis counted it); 0: Redis decides every request")
	cs.String(&s.RedisURL, "SLUICE_REDIS_URL", "redis://127.0.0.1:6379", "Redis for rate limits: redis:// or rediss:// (TLS); redis://h1:6379,h2:6379 or redis+cluster:// for a cluster; redis+sentinel://h1:26379,h2:26379/<master> for Sentinel")
}

// Check reports a SLUICE_REDIS_URL that cannot be used (unless limiting is
// off). It is not checked while parsing because the parser's error repeats
// the value, and the URL may hold a password: this error shows it redacted.
func (s Settings) Check() error {
	if s.Off {
		return nil
	}
	if _, err := parseRedisURL(s.RedisURL); err != nil {
		return fmt.Errorf("SLUICE_REDIS_URL %s: %w", redactURL(s.RedisURL), err)
	}
	return nil
}

func (s *Settings) parsePolicy(v string) error {
	s.Off, s.Default = false, limiter.Limit{}
	switch v = strings.TrimSpace(v); v {
	case "":
		return nil
	case "off":
		s.Off = true
		return nil
	}
	l, err := limiter.ParsePolicy(v)
	if err != nil {
		return fmt.Errorf("%w (or off)", err)
	}
	s.Default = l
	return nil
}

// ValidPolicy checks a keys file's policy text; pass it to auth.LoadKeysFile.
func ValidPolicy(policy string) error {
	_, err := limiter.ParsePolicy(policy)
	return err
}
