package limiter

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

var algorithms = []Algorithm{GCRA, SlidingWindow, FixedWindow}

func TestAllowUntilDenied(t *testing.T) {
	_, rdb := startRedis(t)
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			l := newTestLimiter(t, rdb, WithDenyCache(false))
			lim := Limit{Algorithm: alg, Rate: 5, Period: time.Hour}
			for i := range 5 {
				res := mustAllow(t, l, t.Context(), "user:1", lim, 1)
				if !res.Allowed || res.Remaining != 4-i {
					t.Fatalf("request %d: %+v, want allowed with %d remaining", i, res, 4-i)
				}
				if res.ResetAfter <= 0 || res.ResetAfter > 2*time.Hour {
					t.Fatalf("request %d: ResetAfter %s", i, res.ResetAfter)
				}
			}
			res := mustAllow(t, l, t.Context(), "user:1", lim, 1)
			if res.Allowed || res.RetryAfter <= 0 || res.RetryAfter > 2*time.Hour || res.Remaining != 0 {
				t.Fatalf("6th request: %+v, want denied with a RetryAfter", res)
			}
			if res.Limit.Burst != 5 {
				t.Fatalf("Result.Limit = %+v, want burst filled in", res.Limit)
			}
		})
	}
}

func TestGCRABurstAndRate(t *testing.T) {
	_, rdb := startRedis(t)
	l := newTestLimiter(t, rdb)
	lim := Limit{Rate: 10, Period: time.Hour, Burst: 3}
	for i := range 3 {
		if res := mustAllow(t, l, t.Context(), "k", lim, 1); !res.Allowed {
			t.Fatalf("burst request %d denied: %+v", i, res)
		}
	}
	res := mustAllow(t, l, t.Context(), "k", lim, 1)
	if res.Allowed {
		t.Fatalf("request over burst allowed: %+v", res)
	}
	// One token every 6 minutes.
	if res.RetryAfter < 5*time.Minute || res.RetryAfter > 6*time.Minute {
		t.Fatalf("RetryAfter = %s, want about 6m", res.RetryAfter)
	}
}

func TestSubSecondPeriods(t *testing.T) {
	_, rdb := startRedis(t)
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			l := newTestLimiter(t, rdb)
			lim := Limit{Algorithm: alg, Rate: 3, Period: 50 * time.Millisecond}
			key := "sub-second-" + alg.String()
			admitted := 0
			for admitted < 3 {
				if mustAllow(t, l, t.Context(), key, lim, 1).Allowed {
					admitted++
				}
			}
			var denied Result
			eventually(t, time.Second, "a denial", func() bool {
				denied = mustAllow(t, l, t.Context(), key, lim, 1)
				return !denied.Allowed
			})
			if denied.RetryAfter <= 0 || denied.RetryAfter > 100*time.Millisecond {
				t.Fatalf("RetryAfter = %s, want within (0, 100ms]", denied.RetryAfter)
			}
			eventually(t, time.Second, "allowed again after the period", func() bool {
				return mustAllow(t, l, t.Context(), key, lim, 1).Allowed
			})
		})
	}
}

func TestAnyKeyBytes(t *testing.T) {
	_, rdb := startRedis(t)
	l := newTestLimiter(t, rdb)
	keys := []string{"a:b:c", "2001:db8::1", "[::1]:8080", "ключ-🔑", "{tag}", "}{", "", "\x00\xff", "tenant:{acme}:route"}
	lim := Limit{Rate: 2, Period: time.Hour}
	for _, key := range keys {
		for i := range 3 {
			res := mustAllow(t, l, t.Context(), key, lim, 1)
			if res.Allowed != (i < 2) {
				t.Fatalf("key %q request %d: allowed=%v", key, i, res.Allowed)
			}
		}
	}
	// Each key got its own state: len(keys) GCRA keys in Redis.
	n, err := rdb.Keys(t.Context(), "rl:{[0-9a-f]*}:*").Result() // not the heartbeat set
	if err != nil || len(n) != len(keys) {
		t.Fatalf("redis keys = %q, %v; want %d", n, err, len(keys))
	}
}

func TestCostOverBurst(t *testing.T) {
	_, rdb := startRedis(t)
	rec := newRecorder()
	l := newTestLimiter(t, rdb, WithObserver(rec))
	for _, alg := range algorithms {
		res, err := l.Allow(t.Context(), "k", Limit{Algorithm: alg, Rate: 5, Period: time.Second}, 6)
		if err != nil || res.Allowed || res.RetryAfter >= 0 {
			t.Fatalf("%s cost 6 over 5: %+v, %v; want denied, RetryAfter < 0", alg, res, err)
		}
	}
	if rec.count(OutcomeDenied, SourceLocal) != 3 {
		t.Fatalf("decisions: %v", rec.decisions)
	}
	for _, tc := range []struct {
		lim  Limit
		cost int
		err  error
	}{
		{PerSecond(1), 0, ErrInvalidCost},
		{PerSecond(1), -1, ErrInvalidCost},
		{Limit{Rate: 0, Period: time.Second}, 1, ErrInvalidLimit},
		{Concurrent(1, time.Second), 1, ErrInvalidLimit},
	} {
		if _, err := l.Allow(t.Context(), "k", tc.lim, tc.cost); !errors.Is(err, tc.err) {
			t.Errorf("Allow(%+v, %d) error = %v, want %v", tc.lim, tc.cost, err, tc.err)
		}
	}
}

func TestKeysExpireAtReset(t *testing.T) {
	_, rdb := startRedis(t)
	l := newTestLimiter(t, rdb)
	for _, alg := range algorithms {
		lim := Limit{Algorithm: alg, Rate: 10, Period: 10 * time.Second}
		res := mustAllow(t, l, t.Context(), "ttl", lim, 1)
		key, _ := redisKey("rl:", alg, lim.normalize(), "ttl")
		ttl, err := rdb.PTTL(t.Context(), key).Result()
		if err != nil || ttl <= 0 || ttl > 20*time.Second {
			t.Fatalf("%s: PTTL %s, %v", alg, ttl, err)
		}
		if d := ttl - res.ResetAfter; d > 10*time.Millisecond || d < -time.Second {
			t.Fatalf("%s: PTTL %s vs ResetAfter %s", alg, ttl, res.ResetAfter)
		}
	}
}

func TestAllowAllIsAllOrNothing(t *testing.T) {
	_, rdb := startRedis(t)
	l := newTestLimiter(t, rdb, WithDenyCache(false))
	tenant := Limit{Rate: 100, Period: time.Hour}
	route := Limit{Algorithm: FixedWindow, Rate: 2, Period: time.Hour}
	reqs := []Request{{Key: "tenant", Limit: tenant, Cost: 1}, {Key: "route", Limit: route, Cost: 1}}
	for i := range 2 {
		res, err := l.AllowAll(t.Context(), reqs)
		if err != nil || !res[0].Allowed || !res[1].Allowed {
			t.Fatalf("call %d: %+v, %v", i, res, err)
		}
	}
	for range 3 {
		res, err := l.AllowAll(t.Context(), reqs)
		if err != nil || res[0].Allowed || res[1].Allowed || res[1].RetryAfter <= 0 {
			t.Fatalf("over route limit: %+v, %v", res, err)
		}
	}
	// The denied calls consumed nothing from the tenant limit: 98 left.
	if res := mustAllow(t, l, t.Context(), "tenant", tenant, 1); res.Remaining != 97 {
		t.Fatalf("tenant remaining = %d, want 97", res.Remaining)
	}
	// The same key twice in one call counts twice.
	dup := []Request{{Key: "dup", Limit: route, Cost: 1}, {Key: "dup", Limit: route, Cost: 1}}
	if res, _ := l.AllowAll(t.Context(), dup); !res[0].Allowed || !res[1].Allowed || res[1].Remaining != 0 {
		t.Fatalf("dup: %+v", res)
	}
	if res, _ := l.AllowAll(t.Context(), dup[:1]); res[0].Allowed {
		t.Fatalf("dup exhausted but allowed: %+v", res)
	}
}

func TestDenyCacheAnswersWithoutRedis(t *testing.T) {
	_, rdb := startRedis(t)
	rec := newRecorder()
	l := newTestLimiter(t, rdb, WithObserver(rec))
	lim := Limit{Rate: 1, Period: time.Hour}
	mustAllow(t, l, t.Context(), "k", lim, 1)
	first := mustAllow(t, l, t.Context(), "k", lim, 1)
	if first.Allowed {
		t.Fatal("second request allowed")
	}
	var calls atomic.Int64
	rdb.AddHook(countHook{&calls})
	for range 10 {
		res := mustAllow(t, l, t.Context(), "k", lim, 1)
		if res.Allowed || res.RetryAfter <= 0 || res.RetryAfter > first.RetryAfter {
			t.Fatalf("cached: %+v", res)
		}
	}
	if calls.Load() != 0 || rec.count(OutcomeDenied, SourceDenyCache) != 10 {
		t.Fatalf("redis calls %d, decisions %v", calls.Load(), rec.decisions)
	}
}

func TestShadowNeverDenies(t *testing.T) {
	_, rdb := startRedis(t)
	rec := newRecorder()
	l := newTestLimiter(t, rdb, WithShadow(true), WithObserver(rec))
	lim := Limit{Rate: 2, Period: time.Hour}
	for i := range 5 {
		if res := mustAllow(t, l, t.Context(), "k", lim, 1); !res.Allowed {
			t.Fatalf("request %d denied in shadow mode", i)
		}
	}
	if got := rec.count(OutcomeShadowDenied, SourceRedis) + rec.count(OutcomeShadowDenied, SourceDenyCache); got != 3 {
		t.Fatalf("shadow denials = %d (%v), want 3", got, rec.decisions)
	}
}

func TestFlushingManyCallers(t *testing.T) {
	_, rdb := startRedis(t)
	l := newTestLimiter(t, rdb, WithDenyCache(false))
	lim := Limit{Rate: 500, Period: time.Hour}
	var sent atomic.Int64
	rdb.AddHook(countHook{&sent})
	errs := make(chan error, 64)
	allowed := make(chan int, 64)
	for g := range 64 {
		go func() {
			n := 0
			for i := range 20 {
				res, err := l.Allow(t.Context(), fmt.Sprintf("k%d", (g+i)%4), lim, 1)
				if err != nil {
					errs <- err
					return
				}
				if res.Allowed {
					n++
				}
			}
			allowed <- n
			errs <- nil
		}()
	}
	total := 0
	for range 64 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for range 64 {
		total += <-allowed
	}
	if total != 64*20 {
		t.Fatalf("allowed %d of %d", total, 64*20)
	}
	// Flushed: 64 concurrent callers share script calls (about 100
	// commands here; one per decision without flushing).
	if n := sent.Load(); 2*n > 64*20 {
		t.Fatalf("%d Redis commands for %d decisions: hardly flushed together", n, 64*20)
	}
	t.Logf("%d Redis commands for %d decisions", sent.Load(), 64*20)
	for k := range 4 {
		res := mustAllow(t, l, t.Context(), fmt.Sprintf("k%d", k), lim, 1)
		if res.Remaining != 500-320-1 {
			t.Fatalf("k%d remaining %d, want %d", k, res.Remaining, 500-320-1)
		}
	}
}

func TestNoScriptFallback(t *testing.T) {
	_, rdb := startRedis(t)
	for _, flushing := range []bool{true, false} {
		l := newTestLimiter(t, rdb, WithFlushing(flushing))
		if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		if res := mustAllow(t, l, t.Context(), fmt.Sprint("noscript", flushing), PerSecond(5), 1); !res.Allowed {
			t.Fatalf("after SCRIPT FLUSH: %+v", res)
		}
	}
}

// A denial decided after an earlier request of the same call on the same
// key (rolled back with the group) says nothing about the key alone: the
// deny cache must not keep it.
func TestDenyCacheIgnoresDenialsBehindTheSameKey(t *testing.T) {
	_, rdb := startRedis(t)
	l := newTestLimiter(t, rdb)
	lim := Limit{Rate: 1, Period: time.Hour}
	dup := []Request{{Key: "k", Limit: lim, Cost: 1}, {Key: "k", Limit: lim, Cost: 1}}
	res, err := l.AllowAll(t.Context(), dup)
	if err != nil || res[0].Allowed || res[1].Allowed {
		t.Fatalf("two requests on a limit of one: %+v, %v; want both denied", res, err)
	}
	if res := mustAllow(t, l, t.Context(), "k", lim, 1); !res.Allowed {
		t.Fatalf("the key alone, untouched by the denied call: %+v, want allowed", res)
	}
}
