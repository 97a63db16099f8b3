package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-ingest/sluice/gateway/internal/api"
	"github.com/sluice-ingest/sluice/gateway/internal/auth"
	"github.com/sluice-ingest/sluice/limiter"
)

// Prefix is the prefix of every Redis key the gateway's limiter writes.
const Prefix = "sluice:rl:"

// The headers' canonical keys, as http.Header.Set would write them (without
// canonicalizing, which allocates, for every answer).
var (
	headerPolicy    = textproto.CanonicalMIMEHeaderKey("RateLimit-Policy")
	headerRateLimit = textproto.CanonicalMIMEHeaderKey("RateLimit")
)

// Names of the policies in the RateLimit-Policy and RateLimit headers.
const (
	nameTenant  = "tenant"  // the key's own policy
	nameDefault = "default" // SLUICE_RATE_LIMIT
)

// Limiter limits each tenant to its key's policy, or the default policy,
// with one limiter key per tenant. It implements api.RateLimiter.
type Limiter struct {
	s   Settings
	rdb redis.UniversalClient // nil when off
	lim *limiter.Limiter      // nil when off
	// policies caches parsed policy texts; they come from the keys file, so
	// there are few.
	policies sync.Map // string -> limiter.Limit
}

// New builds the Limiter the settings describe and registers the limiter
// metrics on reg. Unless limiting is off it creates the Redis client (which
// dials lazily: a Redis that is down at start is the Mode's business) and
// the limiter; opts are passed to limiter.New after the settings' own.
// Close releases both.
func New(s Settings, reg prometheus.Registerer, log *slog.Logger, opts ...limiter.Option) (*Limiter, error) {
	a := &Limiter{s: s}
	if s.Off {
		log.Info("rate limiting is off (SLUICE_RATE_LIMIT=off)")
		return a, nil
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	rc, _ := parseRedisURL(s.RedisURL) // checked
	a.rdb = rc.client()
	base := []limiter.Option{
		limiter.WithPrefix(Prefix),
		limiter.WithMode(s.Mode),
		limiter.WithDeadline(s.Deadline),
		limiter.WithShadow(s.Shadow),
		limiter.WithObserver(newObserver(reg)),
	}
	if s.Allot > 0 {
		base = append(base, limiter.WithAllotment(s.Allot))
	}
	lim, err := limiter.New(a.rdb, append(base, opts...)...)
	if err != nil {
		_ = a.rdb.Close()
		return nil, fmt.Errorf("rate limiter: %w", err)
	}
	a.lim = lim
	if s.Allot > 0 {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_gateway_limiter_allotment_dropped_total",
			Help: "Rate limit units Redis granted ahead (SLUICE_LIMITER_ALLOT) that were never spent: their hold ended first. They count against the tenant's policy as if admitted.",
		}, func() float64 { return float64(lim.AllotmentDropped()) }))
	}
	def := "none (only keys with a policy are limited)"
	if !s.Default.IsZero() {
		def = s.Default.String()
	}
	log.Info("rate limiting", "default", def, "cost", a.costName(), "on_error", s.Mode.String(),
		"deadline", s.Deadline, "allot", s.Allot, "redis", redactURL(s.RedisURL))
	return a, nil
}

// WeighsEvents reports whether a request costs its event count, so that the
// handler must decode the body before asking (api.Config.RateLimitBeforeBody
// is its negation).
func (a *Limiter) WeighsEvents() bool { return a.s.PerEvent }

func (a *Limiter) costName() string {
	if a.s.PerEvent {
		return "events"
	}
	return "requests"
}

// Decide decides whether the key's tenant may send a request of events
// events now. A tenant without a policy (its key's or the default) is
// admitted without headers; otherwise the answer carries RateLimit-Policy
// and RateLimit (the latter left out for a decision made without Redis in
// ModeOpen, which knows nothing of the remaining quota). An error means no
// decision: ModeClosed without Redis (ErrUnavailable), or ctx ended.
func (a *Limiter) Decide(ctx context.Context, key auth.Key, events int) (api.Decision, error) {
	if a.lim == nil {
		return api.Decision{Allowed: true}, nil
	}
	lim, name, err := a.policy(key)
	if err != nil {
		return api.Decision{}, err
	}
	if lim.IsZero() {
		return api.Decision{Allowed: true}, nil
	}
	cost := 1
	if a.s.PerEvent {
		cost = max(events, 1)
	}
	res, err := a.lim.Allow(ctx, key.Tenant, lim, cost)
	hv := limiter.Headers(name, res)
	h := make(http.Header, 2)
	vals := [...]string{hv.Policy, hv.RateLimit} // one allocation for both
	h[headerPolicy] = vals[0:1:1]
	if !res.Fallback || a.s.Mode != limiter.ModeOpen {
		h[headerRateLimit] = vals[1:2:2]
	}
	if err != nil {
		return api.Decision{Header: h}, fmt.Errorf("rate limit tenant %s: %w", key.Tenant, err)
	}
	adm := api.Decision{Allowed: res.Allowed, RetryAfter: res.RetryAfter, Header: h}
	if adm.RetryAfter < 0 {
		// The cost is over the burst: no wait admits this request. Say the
		// period, like the limiter's Retry-After value.
		adm.RetryAfter = res.Limit.Period
	}
	return adm, nil
}

// policy returns the limit for key and its header name: the key's own
// policy, else the default (zero when there is none).
func (a *Limiter) policy(key auth.Key) (limiter.Limit, string, error) {
	if key.Policy == "" {
		return a.s.Default, nameDefault, nil
	}
	if l, ok := a.policies.Load(key.Policy); ok {
		return l.(limiter.Limit), nameTenant, nil
	}
	l, err := limiter.ParsePolicy(key.Policy)
	if err != nil {
		return limiter.Limit{}, "", fmt.Errorf("policy of tenant %s: %w", key.Tenant, err)
	}
	a.policies.Store(key.Policy, l)
	return l, nameTenant, nil
}

// Close stops the limiter and closes the Redis client.
func (a *Limiter) Close() error {
	if a.lim == nil {
		return nil
	}
	_ = a.lim.Close() // never fails
	if err := a.rdb.Close(); err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// redactURL is the URL with its password, if any, written "xxxxx", and so
// is the value of every query option whose name holds "password" (such as
// sentinel_password). The userinfo is taken up to the last '@', so a
// password with an unescaped '/' or '?' is hidden too (and, should an
// option's value hold an '@', more than the password: this is for logs).
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "(not a URL)"
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		if user, _, hasPassword := strings.Cut(rest[:at], ":"); hasPassword {
			rest = user + ":xxxxx" + rest[at:]
		}
	}
	rest, query, hasQuery := strings.Cut(rest, "?")
	if !hasQuery {
		return scheme + "://" + rest
	}
	opts := strings.Split(query, "&")
	for i, o := range opts {
		if name, _, ok := strings.Cut(o, "="); ok && strings.Contains(strings.ToLower(name), "password") {
			opts[i] = name + "=xxxxx"
		}
	}
	return scheme + "://" + rest + "?" + strings.Join(opts, "&")
}
