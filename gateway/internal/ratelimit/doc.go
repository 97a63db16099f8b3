// Package ratelimit is the gateway's per-tenant rate limiting: api.Limiter on
// the limiter library. It owns SLUICE_RATE_LIMIT, SLUICE_RATE_LIMIT_COST,
// SLUICE_LIMITER_ON_ERROR, SLUICE_LIMITER_DEADLINE and SLUICE_REDIS_URL, each
// tenant's policy (its key's, else the default), the RateLimit-Policy and
// RateLimit headers, and the limiter's metrics. It must not write HTTP answers
// (ingest maps its Decision to 429 or 503) or implement limiting algorithms,
// and must never put a tenant id or key in a metric label.
package ratelimit
