package limiter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Result is the outcome of one decision.
type Result struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Limit is the limit that was applied (with defaults filled in).
	Limit Limit
	// Remaining is how much cost could still be admitted right now.
	Remaining int
	// RetryAfter is how long until the same request could be allowed: 0 when
	// allowed, negative when it never can be (its cost exceeds the burst).
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to its full capacity.
	ResetAfter time.Duration
	// Fallback reports a decision made without Redis (ModeOpen or ModeLocal
	// while Redis is unreachable or the breaker is open).
	Fallback bool
}

// Request is one limit to check in AllowAll.
type Request struct {
	Key   string
	Limit Limit
	Cost  int
}

// Limiter decides requests against limits kept in Redis. It is safe for
// concurrent use; concurrent decisions go to Redis together, in few flushes.
// Call Close to stop its background goroutines.
type Limiter struct {
	rdb     redis.UniversalClient
	cluster bool
	cfg     config
	s       scripts
	br      *breaker
	deny    *denyCache
	local   *local
	allot   *allotments // nil without WithAllotment
	queue   chan *call
	// turn is held by the flusher collecting the next flush; inflight
	// counts flushes under way, and landed gets a token
	// when the last of them lands (see behind).
	turn     chan struct{}
	inflight atomic.Int32
	landed   chan struct{}
	stop     chan struct{}
	wg       sync.WaitGroup
	closed   atomic.Bool
	stopper  sync.Once
	timers   sync.Pool // *time.Timer for waitFor
	calls    sync.Pool // *call of one request, returned once answered
	// answered is when Redis last answered anything (unix nanoseconds).
	answered atomic.Int64
}

// New returns a Limiter using rdb (a *redis.Client, *redis.ClusterClient,
// failover client or anything else implementing redis.UniversalClient). An
// option with a value it cannot use is an error wrapping ErrInvalidOption.
func New(rdb redis.UniversalClient, opts ...Option) (*Limiter, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.instanceID == "" {
		cfg.instanceID = randomID()
	}
	_, cluster := rdb.(*redis.ClusterClient)
	l := &Limiter{
		rdb:     rdb,
		cluster: cluster,
		cfg:     cfg,
		s:       newScripts(),
		local:   newLocal(cfg.localMaxKeys),
		queue:   make(chan *call, cfg.flushMax*cfg.flushers*4),
		turn:    make(chan struct{}, 1),
		landed:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	if cfg.denyCache {
		l.deny = &denyCache{}
	}
	if cfg.allotHold > 0 {
		if !cfg.flushing {
			return nil, invalid("allotments need flushing (WithFlushing(true))")
		}
		l.allot = newAllotments(cfg.allotHold, l.local.instances.Load)
	}
	obs := cfg.observer
	l.br = newBreaker(cfg.breakerFailures, cfg.breakerCooldown, func(from, to BreakerState) {
		obs.ObserveBreaker(to)
		if from == BreakerClosed || to == BreakerClosed {
			obs.ObserveFallback(to != BreakerClosed)
		}
	})
	if cfg.flushing {
		for range cfg.flushers {
			l.wg.Add(1)
			go l.flusher()
		}
	}
	l.wg.Add(1)
	go l.janitor()
	if l.keepsLocal() {
		l.wg.Add(1)
		go l.heartbeat()
	}
	return l, nil
}

// Close stops the background goroutines and removes this instance from the
// heartbeat set. Decisions made after Close return ErrClosed.
func (l *Limiter) Close() error {
	l.stopper.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	l.wg.Wait()
	if l.allot != nil {
		l.allot.dropAll()
	}
	if l.keepsLocal() {
		ctx, cancel := context.WithTimeout(context.Background(), l.cfg.closeHeartbeatTO)
		defer cancel()
		_ = l.rdb.ZRem(ctx, l.instancesKey(), l.cfg.instanceID).Err()
	}
	return nil
}

// Breaker returns the circuit breaker's current state.
func (l *Limiter) Breaker() BreakerState { return l.br.State() }

// Instances returns the number of live instances last learned from the
// heartbeat set (ModeLocal only; 1 before the first heartbeat).
func (l *Limiter) Instances() int { return int(l.local.instances.Load()) }

// AllotmentDropped returns how many units of their limits (a decision
// counts its cost) Redis granted to allotments (WithAllotment) that were
// never used: their hold ended first, or the
// Limiter closed while holding them. They count against their keys' limits
// as if admitted; a steadily busy key drops few, a key whose traffic
// stops drops what it held.
func (l *Limiter) AllotmentDropped() int64 {
	if l.allot == nil {
		return 0
	}
	return l.allot.dropped.Load()
}

// Allow decides whether a request of the given cost on key may proceed
// under limit lim. An error means no decision was made: an invalid limit or
// cost, ctx ended, or (ModeClosed) ErrUnavailable.
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit, cost int) (Result, error) {
	if l.allot != nil && !l.closed.Load() {
		if res, ok := l.allotted(key, lim, cost); ok {
			return res, nil
		}
	}
	reqs := [1]Request{{Key: key, Limit: lim, Cost: cost}}
	res, err := l.AllowAll(ctx, reqs[:])
	if len(res) == 0 {
		return Result{Limit: lim.normalize()}, err
	}
	return res[0], err
}

// AllowAll decides several requests in one round trip, all-or-nothing: if
// any is denied, all are denied (with their RetryAfter, in the order of
// reqs) and none consumes anything. Within one cluster slot this is one
// atomic script; across slots the allowed ones are refunded when another
// denies, which can briefly under-admit, never over-admit.
func (l *Limiter) AllowAll(ctx context.Context, reqs []Request) ([]Result, error) {
	start := time.Now()
	if l.closed.Load() {
		return nil, ErrClosed
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	results := make([]Result, len(reqs))
	c := l.newCall(len(reqs))
	if len(reqs) == 1 {
		c.ukey = reqs[0].Key
	}
	keys, slots := c.keys, c.slots
	over := false
	for i, r := range reqs {
		lim := r.Limit.normalize()
		if err := lim.Validate(); err != nil {
			return nil, fmt.Errorf("allow %q: %w", r.Key, err)
		}
		if lim.Algorithm == Concurrency {
			return nil, fmt.Errorf("allow %q: %w: concurrency limits use Acquire", r.Key, ErrInvalidLimit)
		}
		if r.Cost < 1 {
			return nil, fmt.Errorf("allow %q: %w: cost %d must be at least 1", r.Key, ErrInvalidCost, r.Cost)
		}
		results[i].Limit = lim
		c.lims[i], c.costs[i] = lim, r.Cost
		var tag string
		keys[i], tag = redisKey(l.cfg.prefix, lim.Algorithm, lim, r.Key)
		if l.cluster {
			slots[i] = slot(tag)
		}
		if r.Cost > lim.capacity() {
			results[i].RetryAfter = -1
			over = true
		}
	}
	alg := results[0].Limit.Algorithm
	if over {
		l.recycle(c)
		return l.finish(results, nil, SourceLocal, alg, start)
	}
	if l.deny != nil {
		for i, r := range reqs {
			if cached, ok := l.deny.get(keys[i], r.Cost, start); ok {
				results[i] = cached
				l.recycle(c)
				return l.finish(results, nil, SourceDenyCache, alg, start)
			}
		}
	}
	if !l.br.allow(start) {
		results, err := l.fallback(reqs, keys, results, fmt.Errorf("circuit breaker %s", l.br.State()), alg, start)
		l.recycle(c)
		return results, err
	}
	out, err := l.exec(ctx, c)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("allow %q: %w", reqs[0].Key, ctx.Err())
		}
		if errors.Is(err, ErrClosed) {
			return nil, err
		}
		// A decision left queued is Redis's failure only once Redis has
		// failed already: then the flushers are stuck on it. Otherwise the
		// queue was this process's own backlog.
		if !errors.Is(err, errQueued) || !l.br.patient() {
			l.br.failure(time.Now())
			l.cfg.observer.ObserveBackendError("decide", err)
		}
		return l.fallback(reqs, keys, results, err, alg, start)
	}
	if l.local.owes() {
		// Before the breaker lets everyone back to Redis, tell it what
		// the fallbacks admitted, or its refilled state would admit a
		// burst on top of them.
		l.repay()
	}
	l.br.success()
	for i := range results {
		o := out[i*4 : i*4+4]
		results[i].Allowed = o[0] == 1
		results[i].Remaining = int(o[1])
		results[i].RetryAfter = time.Duration(o[2]) * time.Microsecond
		results[i].ResetAfter = time.Duration(o[3]) * time.Microsecond
		// RetryAfter counts from when Redis decided, which is after start:
		// timed from start, the cached denial never outlives it. A key that
		// came earlier in this call was decided on state its earlier
		// request had consumed (then rolled back): its RetryAfter is not
		// the key's own, so it is not cached.
		if l.deny != nil && !results[i].Allowed && !slices.Contains(keys[:i], keys[i]) {
			l.deny.put(keys[i], reqs[i].Cost, results[i], start)
		}
	}
	l.recycle(c)
	return l.finish(results, nil, SourceRedis, alg, start)
}

// finish applies shadow mode and reports the decision. In shadow mode
// nothing is denied, not even by ModeClosed's ErrUnavailable.
func (l *Limiter) finish(results []Result, err error, src Source, alg Algorithm, start time.Time) ([]Result, error) {
	if l.cfg.shadow && errors.Is(err, ErrUnavailable) {
		err = nil
	}
	outcome := OutcomeAllowed
	switch {
	case err != nil:
		outcome = OutcomeError
	case !allAllowed(results):
		outcome = OutcomeDenied
		if l.cfg.shadow {
			outcome = OutcomeShadowDenied
			for i := range results {
				results[i].Allowed = true
			}
		}
	}
	l.cfg.observer.ObserveDecision(Decision{Algorithm: alg, Outcome: outcome, Source: src, Latency: time.Since(start)})
	return results, err
}

func allAllowed(rs []Result) bool {
	for _, r := range rs {
		if !r.Allowed {
			return false
		}
	}
	return true
}

// keepsLocal reports whether the Limiter keeps local state for its
// fallback: per-key buckets learned from Redis's answers and the number of
// live instances (ModeOpen and ModeLocal).
func (l *Limiter) keepsLocal() bool { return l.cfg.mode != ModeClosed }

// fallback decides without Redis, as the Mode says. A key Redis denied
// stays denied until its RetryAfter in every mode (the deny cache); a key
// with local state (ModeLocal: every key) gets at most this instance's
// share of its limit, starting from what Redis last said of it.
func (l *Limiter) fallback(reqs []Request, keys []string, results []Result, cause error, alg Algorithm, start time.Time) ([]Result, error) {
	if l.deny != nil {
		for i, r := range reqs {
			if cached, ok := l.deny.get(keys[i], r.Cost, start); ok {
				results[i] = cached
				return l.finish(results, nil, SourceDenyCache, alg, start)
			}
		}
	}
	switch l.cfg.mode {
	case ModeClosed:
		retry := max(l.br.retryAfter(time.Now()), l.cfg.deadline)
		for i := range results {
			results[i].Allowed = false
			results[i].Fallback = true
			results[i].RetryAfter = retry
		}
		err := fmt.Errorf("allow %q: %w: %w", reqs[0].Key, ErrUnavailable, cause)
		return l.finish(results, err, SourceFallback, alg, start)
	default:
		lr := make([]localReq, len(reqs))
		for i, r := range reqs {
			lr[i] = localReq{key: keys[i], lim: results[i].Limit, cost: r.Cost}
		}
		l.local.allow(lr, start, results, l.cfg.mode == ModeOpen)
		return l.finish(results, nil, SourceFallback, alg, start)
	}
}

// exec runs the decide script for reqs and returns 4 integers per request.
func (l *Limiter) exec(ctx context.Context, c *call) ([]int64, error) {
	slots := c.slots
	sameSlot := true
	for _, s := range slots {
		sameSlot = sameSlot && s == slots[0]
	}
	if l.cluster && !sameSlot {
		return l.decide(ctx, func(ctx context.Context) ([]int64, error) {
			out, err := l.crossSlot(ctx, c)
			l.learn(c, out, err)
			return out, err
		})
	}
	if !l.cfg.flushing {
		return l.decide(ctx, func(ctx context.Context) ([]int64, error) {
			keys, args := compose([]entry{{c}}, false)
			out, err := runScript(ctx, l.rdb, l.s.decide, keys, args...)
			l.learn(c, out, err)
			return out, err
		})
	}
	c.slot = slots[0]
	return l.await(ctx, c)
}

// learn lets the local fallback state learn from c's answer, if it has
// one (the flushers do it once per flush for the calls they send).
func (l *Limiter) learn(c *call, out []int64, err error) {
	if err == nil && len(out) == 4*len(c.keys) && l.keepsLocal() {
		l.local.learn([]entry{{c}}, out, time.Now())
	}
}
