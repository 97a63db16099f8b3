// Package limiter is a distributed rate limiter backed by Redis (go-redis/v9).
//
// It owns the limiting algorithms (each one atomic Lua script timed by Redis
// TIME), the coalescing of concurrent decisions into pipelines, and the
// behaviour when Redis is slow or unreachable. It must not know about HTTP,
// tenants or Sluice's configuration: callers pass a key, a Limit and a cost.
package limiter
