package limiter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/limiter/redistest"
)

// A Redis that is slow but answers (every command waits behind a DEBUG
// SLEEP of 20ms, four times the deadline) keeps deciding: the breaker never
// leaves closed and every decision is Redis's. A Redis that answers at once but with errors (out of memory) opens
// the breaker, and closes it again once it answers properly.
func TestBreakerLatencyVersusErrors(t *testing.T) {
	srv := redistest.Start(t, "--enable-debug-command", "yes")
	rdb := srv.Client(t)
	rec := newRecorder()
	// The production deadline (5ms) and breaker (5 failures, 500ms).
	l := mustNew(t, rdb, WithObserver(rec), WithMode(ModeOpen))
	lim := Limit{Rate: 1_000_000, Period: time.Hour}
	mustAllow(t, l, t.Context(), "warm-up", lim, 1)

	t.Run("latency", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		slow := srv.Client(t)
		var sleeps atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := slow.Do(ctx, "DEBUG", "SLEEP", "0.02").Err(); err == nil {
					sleeps.Add(1)
				}
			}
		})
		var decided, fallbacks atomic.Int64
		var callers sync.WaitGroup
		for g := range 16 {
			callers.Go(func() {
				for i := 0; sleeps.Load() < 25; i++ {
					res, err := l.Allow(t.Context(), "slow", lim, 1)
					if err != nil {
						t.Errorf("caller %d, decision %d: %v", g, i, err)
						return
					}
					decided.Add(1)
					if res.Fallback {
						fallbacks.Add(1)
					}
				}
			})
		}
		callers.Wait()
		cancel()
		wg.Wait()
		fromRedis := rec.count(OutcomeAllowed, SourceRedis) - 1 // the warm-up
		t.Logf("%d decisions behind %d DEBUG SLEEPs of 20ms: %d from Redis, %d fallbacks, breaker %v",
			decided.Load(), sleeps.Load(), fromRedis, fallbacks.Load(), rec.breaker)
		if int64(fromRedis) != decided.Load() || fallbacks.Load() != 0 || rec.sawBreaker(BreakerOpen) || rec.errorCount() != 0 {
			t.Errorf("slow Redis: %d of %d decisions from Redis, %d fallbacks, %d backend errors, breaker states %v; want every decision Redis's",
				fromRedis, decided.Load(), fallbacks.Load(), rec.errorCount(), rec.breaker)
		}
	})

	t.Run("errors", func(t *testing.T) {
		cfg := srv.Client(t)
		if err := cfg.ConfigSet(t.Context(), "maxmemory", "1").Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cfg.ConfigSet(context.Background(), "maxmemory", "0").Err() })
		for i := range 8 {
			res, err := l.Allow(t.Context(), fmt.Sprint("oom", i), lim, 1)
			if err != nil || !res.Fallback {
				t.Fatalf("decision %d with Redis out of memory: %+v, %v; want a fallback", i, res, err)
			}
		}
		if l.Breaker() != BreakerOpen || rec.errorCount() < 5 {
			t.Fatalf("breaker %v after %d backend errors; want open", l.Breaker(), rec.errorCount())
		}
		if err := cfg.ConfigSet(t.Context(), "maxmemory", "0").Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "breaker closes once Redis answers properly", func() bool {
			_, _ = l.Allow(t.Context(), "probe", lim, 1)
			return l.Breaker() == BreakerClosed
		})
		if !rec.sawBreaker(BreakerHalfOpen) {
			t.Errorf("breaker states %v: no half-open probe", rec.breaker)
		}
	})
}
