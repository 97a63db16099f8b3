// Package limiter is a distributed rate limiter on Redis (go-redis/v9): the
// algorithms (GCRA, sliding and fixed windows, concurrency leases; each an
// atomic Lua script), the flushing of decisions in few round trips, and what a
// decision becomes when Redis is slow or away (deadline, breaker, open, closed,
// local and shadow modes). It must not know tenants, net/http or Sluice's
// settings: callers pass a key, a Limit and a cost, and watch an Observer.
package limiter
