package limiter

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// callBound is how long any decision may take while Redis is dead or
// paused: the deadline plus scheduling slack, asserted generously.
const callBound = time.Second

func timedAllow(t *testing.T, l *Limiter, key string, lim Limit) (Result, error) {
	t.Helper()
	start := time.Now()
	res, err := l.Allow(t.Context(), key, lim, 1)
	if took := time.Since(start); took > callBound {
		t.Fatalf("Allow took %s with Redis down, want under %s", took, callBound)
	}
	return res, err
}

func TestFaultRedisKilled(t *testing.T) {
	for _, mode := range []Mode{ModeOpen, ModeClosed, ModeLocal} {
		t.Run(mode.String(), func(t *testing.T) {
			srv, rdb := startRedis(t)
			rec := newRecorder()
			opts := []Option{
				WithMode(mode), WithObserver(rec), WithDeadline(50 * time.Millisecond),
				WithBreaker(3, 100*time.Millisecond), WithInstance("", 20*time.Millisecond),
			}
			l := newTestLimiter(t, rdb, opts...)
			lim := Limit{Rate: 10, Period: time.Hour}
			var peer *Limiter
			if mode == ModeLocal {
				// A second instance: the local fallback enforces half the rate.
				peer = newTestLimiter(t, redis.NewClient(&redis.Options{Addr: srv.Addr()}), opts...)
				eventually(t, 5*time.Second, "both instances see 2 live instances", func() bool {
					return l.Instances() == 2 && peer.Instances() == 2
				})
			}
			if res := mustAllow(t, l, t.Context(), "before", lim, 1); !res.Allowed || res.Fallback {
				t.Fatalf("before the fault: %+v", res)
			}

			srv.Kill()
			allowed := 0
			for i := range 8 {
				res, err := timedAllow(t, l, "during", lim)
				switch mode {
				case ModeOpen:
					if err != nil || !res.Allowed || !res.Fallback {
						t.Fatalf("open mode call %d: %+v, %v; want allowed fallback", i, res, err)
					}
				case ModeClosed:
					if !errors.Is(err, ErrUnavailable) || res.Allowed || res.RetryAfter <= 0 {
						t.Fatalf("closed mode call %d: %+v, %v; want ErrUnavailable", i, res, err)
					}
				case ModeLocal:
					if err != nil || !res.Fallback {
						t.Fatalf("local mode call %d: %+v, %v", i, res, err)
					}
					if res.Allowed {
						allowed++
					}
				}
			}
			if mode == ModeLocal && allowed != 5 {
				t.Fatalf("local mode allowed %d of 8, want 10/2 instances = 5", allowed)
			}
			eventually(t, 5*time.Second, "breaker opens", func() bool { return l.Breaker() == BreakerOpen })
			if rec.errorCount() < 3 || !rec.sawBreaker(BreakerOpen) || rec.count(OutcomeAllowed, SourceFallback)+rec.count(OutcomeDenied, SourceFallback)+rec.count(OutcomeError, SourceFallback) < 8 {
				t.Fatalf("observer: errors %d, breaker %v, decisions %v", rec.errorCount(), rec.breaker, rec.decisions)
			}

			if err := srv.Restart(t.Context()); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "breaker closes after restart", func() bool {
				_, _ = l.Allow(t.Context(), "probe", lim, 1)
				return l.Breaker() == BreakerClosed
			})
			if !rec.sawBreaker(BreakerHalfOpen) || rec.fallbackActive() {
				t.Fatalf("breaker states %v, fallback %v", rec.breaker, rec.fallback)
			}
			// Exact limiting again (the restarted server lost its scripts:
			// NOSCRIPT falls back to EVAL).
			for i := range 12 {
				res, err := l.Allow(t.Context(), "after", lim, 1)
				if err != nil || res.Fallback || res.Allowed != (i < 10) {
					t.Fatalf("after restart, request %d: %+v, %v", i, res, err)
				}
			}
		})
	}
}

func TestFaultRedisPaused(t *testing.T) {
	srv, rdb := startRedis(t)
	rec := newRecorder()
	// The production default deadline: the point is that it holds.
	l := mustNew(t, rdb, WithObserver(rec), WithBreaker(3, 100*time.Millisecond))
	lim := Limit{Rate: 1000, Period: time.Hour}
	eventually(t, 5*time.Second, "a decision from Redis", func() bool {
		res, err := l.Allow(t.Context(), "k", lim, 1)
		return err == nil && !res.Fallback
	})
	srv.Pause()
	t.Cleanup(srv.Resume)
	fallbacks := 0
	for i := range 20 {
		res, err := timedAllow(t, l, fmt.Sprint("paused", i%3), lim)
		if err != nil || !res.Allowed {
			t.Fatalf("call %d while paused: %+v, %v", i, res, err)
		}
		if res.Fallback {
			fallbacks++
		}
	}
	// (The first call may race the SIGSTOP and still be answered.)
	if fallbacks < 19 {
		t.Fatalf("%d of 20 calls fell back while Redis was paused", fallbacks)
	}
	if l.Breaker() == BreakerClosed {
		t.Fatal("breaker still closed after 20 timeouts")
	}
	srv.Resume()
	eventually(t, 10*time.Second, "decisions from Redis after resume", func() bool {
		res, err := l.Allow(t.Context(), "k", lim, 1)
		return err == nil && !res.Fallback
	})
}

func TestFaultAcquireModes(t *testing.T) {
	srv, rdb := startRedis(t)
	lim := Concurrent(2, time.Minute)
	// The open limiter counts its instances under another prefix: local's
	// share is of one live instance.
	open := newTestLimiter(t, rdb, WithDeadline(50*time.Millisecond), WithMode(ModeOpen), WithPrefix("open:"))
	closed := newTestLimiter(t, rdb, WithDeadline(50*time.Millisecond), WithMode(ModeClosed))
	local := newTestLimiter(t, rdb, WithDeadline(50*time.Millisecond), WithMode(ModeLocal))
	srv.Kill()
	if lease, res, err := open.Acquire(t.Context(), "k", lim); err != nil || !res.Allowed || !lease.Fallback {
		t.Fatalf("open: %+v %+v %v", lease, res, err)
	}
	if _, res, err := closed.Acquire(t.Context(), "k", lim); !errors.Is(err, ErrUnavailable) || res.Allowed {
		t.Fatalf("closed: %+v %v", res, err)
	}
	var leases []Lease
	for i := range 3 {
		lease, res, err := local.Acquire(t.Context(), "k", lim)
		if err != nil || res.Allowed != (i < 2) {
			t.Fatalf("local acquire %d: %+v %v", i, res, err)
		}
		if res.Allowed {
			leases = append(leases, lease)
		}
	}
	if err := local.Release(t.Context(), leases[0]); err != nil {
		t.Fatal(err)
	}
	if _, res, _ := local.Acquire(t.Context(), "k", lim); !res.Allowed {
		t.Fatalf("local lease not freed by Release: %+v", res)
	}
}

func TestBreakerStates(t *testing.T) {
	var seen []BreakerState
	b := newBreaker(2, time.Second, func(_, to BreakerState) { seen = append(seen, to) })
	t0 := time.Unix(1000, 0)
	b.failure(t0)
	if b.State() != BreakerClosed || !b.allow(t0) {
		t.Fatal("opened after one failure")
	}
	b.failure(t0)
	if b.State() != BreakerOpen || b.allow(t0.Add(999*time.Millisecond)) {
		t.Fatal("not open after two failures")
	}
	if !b.allow(t0.Add(time.Second)) || b.State() != BreakerHalfOpen {
		t.Fatal("no probe after the cooldown")
	}
	if b.allow(t0.Add(time.Second)) {
		t.Fatal("second concurrent probe allowed")
	}
	b.failure(t0.Add(time.Second))
	if b.State() != BreakerOpen {
		t.Fatal("failed probe did not reopen")
	}
	if !b.allow(t0.Add(2 * time.Second)) {
		t.Fatal("no probe after the second cooldown")
	}
	b.success()
	if b.State() != BreakerClosed || !b.allow(t0.Add(2*time.Second)) {
		t.Fatal("successful probe did not close")
	}
	want := []BreakerState{BreakerOpen, BreakerHalfOpen, BreakerOpen, BreakerHalfOpen, BreakerClosed}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("transitions %v, want %v", seen, want)
	}
}

func TestFaultShadowClosedNeverDenies(t *testing.T) {
	srv, rdb := startRedis(t)
	rec := newRecorder()
	l := newTestLimiter(t, rdb, WithMode(ModeClosed), WithShadow(true), WithObserver(rec), WithDeadline(50*time.Millisecond))
	srv.Kill()
	res, err := timedAllow(t, l, "k", PerSecond(1))
	if err != nil || !res.Allowed || !res.Fallback {
		t.Fatalf("shadow + closed with Redis down: %+v, %v; want allowed", res, err)
	}
	if _, res, err := l.Acquire(t.Context(), "k", Concurrent(1, time.Second)); err != nil || !res.Allowed {
		t.Fatalf("shadow + closed acquire: %+v, %v", res, err)
	}
	if rec.count(OutcomeShadowDenied, SourceFallback) != 2 {
		t.Fatalf("decisions %v", rec.decisions)
	}
}
