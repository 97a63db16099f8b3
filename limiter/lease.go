package limiter

import (
	"context"
	"fmt"
	"time"
)

// Lease is a slot taken by Acquire under a Concurrency limit. Give it back
// with Release; if its holder dies, it expires after the limit's Period.
type Lease struct {
	Key string
	ID  string
	// Fallback reports a lease granted without Redis (ModeOpen or
	// ModeLocal); Release of such a lease never touches Redis.
	Fallback bool

	redisKey string
	granted  bool
}

// Acquire takes one of at most lim.Rate leases on key, each expiring after
// lim.Period unless released (use Concurrent to build lim). When the key is
// full, the Result is denied with RetryAfter until the oldest lease expires
// (an upper bound: a release frees a slot sooner), and the Lease is empty.
func (l *Limiter) Acquire(ctx context.Context, key string, lim Limit) (Lease, Result, error) {
	start := time.Now()
	lim = lim.normalize()
	if l.closed.Load() {
		return Lease{}, Result{Limit: lim}, ErrClosed
	}
	if err := lim.Validate(); err != nil {
		return Lease{}, Result{Limit: lim}, fmt.Errorf("acquire %q: %w", key, err)
	}
	if lim.Algorithm != Concurrency {
		return Lease{}, Result{Limit: lim}, fmt.Errorf("acquire %q: %w: want a Concurrency limit", key, ErrInvalidLimit)
	}
	rk, _ := redisKey(l.cfg.prefix, Concurrency, lim, key)
	lease := Lease{Key: key, ID: randomID(), redisKey: rk}
	res := Result{Limit: lim}
	var err error
	if l.br.allow(start) {
		var v []int64
		v, err = l.decide(ctx, func(ctx context.Context) ([]int64, error) {
			return runScript(ctx, l.rdb, l.s.acquire, []string{rk}, lim.Rate, lim.Period.Microseconds(), lease.ID)
		})
		if err == nil && len(v) != 4 {
			err = fmt.Errorf("acquire script returned %d integers, want 4", len(v))
		}
		if err == nil {
			l.br.success()
			res.Allowed = v[0] == 1
			res.Remaining = int(v[1])
			res.RetryAfter = time.Duration(v[2]) * time.Microsecond
			res.ResetAfter = time.Duration(v[3]) * time.Microsecond
			return l.finishLease(lease, res, nil, SourceRedis, start)
		}
		if ctx.Err() != nil {
			return Lease{}, res, fmt.Errorf("acquire %q: %w", key, ctx.Err())
		}
		l.br.failure(time.Now())
		l.cfg.observer.ObserveBackendError("acquire", err)
	} else {
		err = fmt.Errorf("circuit breaker %s", l.br.State())
	}
	lease.Fallback = true
	switch l.cfg.mode {
	case ModeClosed:
		res.Fallback = true
		res.RetryAfter = max(l.br.retryAfter(time.Now()), l.cfg.deadline)
		return l.finishLease(Lease{}, res, fmt.Errorf("acquire %q: %w: %w", key, ErrUnavailable, err), SourceFallback, start)
	case ModeLocal:
		res = l.local.acquire(rk, lease.ID, lim, start)
	default:
		res = Result{Allowed: true, Limit: lim, Fallback: true, ResetAfter: lim.Period}
	}
	return l.finishLease(lease, res, nil, SourceFallback, start)
}

func (l *Limiter) finishLease(lease Lease, res Result, err error, src Source, start time.Time) (Lease, Result, error) {
	held := res.Allowed
	rs, err := l.finish([]Result{res}, err, src, Concurrency, start)
	res = rs[0]
	if !res.Allowed || err != nil {
		return Lease{}, res, err
	}
	lease.granted = true
	if !held {
		lease.Fallback = true // shadow mode allowed it: nothing is held anywhere
	}
	return lease, res, nil
}

// Release gives a lease back early. Releasing an empty, expired or already
// released lease is not an error. If Redis cannot be reached the lease
// simply expires at its deadline; the error says so.
func (l *Limiter) Release(ctx context.Context, lease Lease) error {
	if !lease.granted {
		return nil
	}
	if lease.Fallback {
		l.local.release(lease.redisKey, lease.ID)
		return nil
	}
	_, err := l.decide(ctx, func(ctx context.Context) ([]int64, error) {
		return runScript(ctx, l.rdb, l.s.release, []string{lease.redisKey}, lease.ID)
	})
	if err != nil {
		l.cfg.observer.ObserveBackendError("release", err)
		return fmt.Errorf("release lease on %q: %w", lease.Key, err)
	}
	return nil
}
