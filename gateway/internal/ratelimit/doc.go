// Package ratelimit is the gateway's per-tenant rate limiting: it implements
// api.Limiter on top of the limiter library. It owns the gateway's rate
// limit settings (SLUICE_RATE_LIMIT, SLUICE_RATE_LIMIT_COST,
// SLUICE_LIMITER_ON_ERROR, SLUICE_LIMITER_DEADLINE, SLUICE_REDIS_URL and its
// single-server, cluster and sentinel forms), the choice of each tenant's
// policy (the key's own, else the default), the RateLimit-Policy and
// RateLimit headers of each answer, and the limiter's Prometheus metrics. It
// must not write HTTP answers (the ingest handler maps its Decision to 429
// or 503), must not implement limiting algorithms (the limiter library does),
// and must never put a tenant id or key in a metric label.
package ratelimit
