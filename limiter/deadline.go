package limiter

import (
	"context"
	"errors"
	"runtime"
	"time"
)

// How long a decision waits for Redis. Its clock starts when its command is
// sent, not when queued. Past the deadline a late answer is still awaited,
// up to the late-answer bound, while Redis is healthy: its decision is
// worth more than a fallback. Once Redis has failed a decision waits only
// the deadline. Only errors and sent commands left unanswered count as
// failures for the breaker; a late answer is a success.

var (
	// errQueued: no flusher sent the decision within its bound; Redis was
	// not asked, so it is not a failure of Redis.
	errQueued = errors.New("no flusher was free to send the decision in time")
	// errNoAnswer: the command was sent and no answer came in time.
	errNoAnswer = errors.New("redis did not answer in time")
)

// patience is how long a decision may wait now: the late-answer bound
// while Redis is healthy, else the deadline.
func (l *Limiter) patience() time.Duration {
	if l.br.patient() {
		return max(l.cfg.lateAnswer, l.cfg.deadline)
	}
	return l.cfg.deadline
}

// waitFor waits for done, counting bound() from when c was sent (from
// start while c is queued, or always when c is nil: sent at start). A
// queued call whose bound passed is abandoned, so no flusher sends it.
func (l *Limiter) waitFor(ctx context.Context, done <-chan struct{}, c *call, start time.Time, bound func() time.Duration) error {
	t, _ := l.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(l.cfg.deadline)
	} else {
		t.Reset(l.cfg.deadline)
	}
	// Since Go 1.23 a stopped timer delivers nothing stale: safe to reuse.
	defer func() { t.Stop(); l.timers.Put(t) }()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			if c != nil {
				c.abandon()
			}
			return ctx.Err()
		case <-l.stop:
			return ErrClosed
		case <-t.C:
			from, sent := start, true
			if c != nil {
				if at, ok := c.sent(); ok {
					from = at
				} else {
					sent = false
				}
			}
			if left := l.left(bound(), from); left > 0 {
				t.Reset(left)
				continue
			}
			// About to give up: let a flusher that is ready to deliver the
			// answer run first (on a saturated machine this goroutine and
			// the flusher wake together).
			runtime.Gosched()
			select {
			case <-done:
				return nil
			default:
			}
			if sent {
				return errNoAnswer
			}
			if c.abandon() {
				return errQueued
			}
			t.Reset(l.cfg.deadline) // sent just now: its own clock starts
		}
	}
}

// left is how much longer a decision sent (or handed over) at from may
// wait with bound: until Redis has answered nothing at all for bound, and
// at most 4 × bound since from. While Redis answers other decisions it is
// not stalled, only busy, and neither is this one lost.
func (l *Limiter) left(bound time.Duration, from time.Time) time.Duration {
	quiet := from
	if at := time.Unix(0, l.answered.Load()); at.After(quiet) {
		quiet = at
	}
	now := time.Now()
	return min(quiet.Add(bound).Sub(now), from.Add(4*bound).Sub(now))
}

// heard records that Redis answered (anything, to anyone) just now.
func (l *Limiter) heard() { l.answered.Store(time.Now().UnixNano()) }

// roundTrip runs fn (one command sent at once) in its own goroutine and
// waits for it as waitFor does with bound, so that the bound holds even
// when the client does not honour context deadlines (go-redis does not
// unless ContextTimeoutEnabled is set).
func (l *Limiter) roundTrip(ctx context.Context, bound func() time.Duration, fn func(context.Context) ([]int64, error)) ([]int64, error) {
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, max(bound(), l.cfg.lateAnswer, l.cfg.deadline))
	defer cancel()
	var v []int64
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		v, err = fn(fctx)
		if err == nil {
			l.heard()
		}
	}()
	if werr := l.waitFor(ctx, done, nil, start, bound); werr != nil {
		return nil, werr
	}
	return v, err
}

// decide is roundTrip for a decision: bounded by the patience.
func (l *Limiter) decide(ctx context.Context, fn func(context.Context) ([]int64, error)) ([]int64, error) {
	return l.roundTrip(ctx, l.patience, fn)
}

// within is roundTrip with a fixed bound, for background work.
func (l *Limiter) within(ctx context.Context, d time.Duration, fn func(context.Context) ([]int64, error)) ([]int64, error) {
	return l.roundTrip(ctx, func() time.Duration { return d }, fn)
}
