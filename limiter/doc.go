// Package limiter is a distributed rate limiter backed by Redis (go-redis/v9).
// It owns the algorithms (GCRA, sliding and fixed windows, concurrency
// leases; each an atomic Lua script), the flushing of decisions to Redis in
// few round trips, and what a decision becomes when Redis is slow or away
// (deadline, breaker, open/closed/local and shadow modes). It must not know
// tenants, net/http or Sluice's configuration: callers pass a key, a Limit
// and a cost, and observe through an Observer.
package limiter
