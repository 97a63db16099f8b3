// Package limiter is a distributed rate limiter backed by Redis (go-redis/v9).
//
// It owns the limiting algorithms (GCRA token bucket, sliding and fixed
// windows, concurrency leases; each one atomic Lua script timed by Redis
// TIME), the coalescing of concurrent decisions into few round trips, the
// local deny cache, and what a decision becomes when Redis is slow or
// unreachable (deadline, circuit breaker, open/closed/local mode, shadow
// mode). It formats the values of the IETF RateLimit headers but never
// touches net/http, and it must not know about tenants or Sluice's
// configuration: callers pass a key, a Limit and a cost, and register an
// Observer to feed their own metrics.
package limiter
