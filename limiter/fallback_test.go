package limiter

import (
	"testing"
	"time"
)

// While Redis is stalled, a fallback keeps what Redis said: a key it was
// denying stays denied (the deny cache), a key it had decided gets only
// what was left of its limit (ModeOpen too: only keys the limiter knows
// nothing of are admitted freely). When Redis answers again it is charged
// what the fallback admitted, so the key gets its limit in all.
func TestFallbackKeepsState(t *testing.T) {
	srv, rdb := startRedis(t)
	rec := newRecorder()
	l := newTestLimiter(t, rdb, WithMode(ModeOpen), WithObserver(rec), WithDeadline(20*time.Millisecond),
		WithBreaker(3, time.Second))
	known, denied := Limit{Rate: 10, Period: time.Hour}, Limit{Rate: 2, Period: time.Hour}
	for i := range 8 {
		if res := mustAllow(t, l, t.Context(), "known", known, 1); !res.Allowed || res.Fallback {
			t.Fatalf("known, request %d before the stall: %+v", i, res)
		}
	}
	for i := range 3 {
		if res := mustAllow(t, l, t.Context(), "denied", denied, 1); res.Allowed != (i < 2) || res.Fallback {
			t.Fatalf("denied, request %d before the stall: %+v", i, res)
		}
	}

	srv.Pause()
	t.Cleanup(srv.Resume)
	count := func(key string, lim Limit, n int) (allowed, fallbacks int) {
		for range n {
			res := mustAllow(t, l, t.Context(), key, lim, 1)
			if res.Allowed {
				allowed++
			}
			if res.Fallback {
				fallbacks++
			}
		}
		return allowed, fallbacks
	}
	// Decisions on another key wait for Redis until the late-answer bound,
	// then fail fast until the breaker opens; from then on (for its second
	// of cooldown) nothing is sent to Redis, so the stalled Redis will not
	// decide anything of what follows when it resumes.
	probe := Limit{Rate: 1_000_000, Period: time.Hour}
	eventually(t, 10*time.Second, "breaker opens while Redis is stalled", func() bool {
		_, _ = l.Allow(t.Context(), "probe", probe, 1)
		return l.Breaker() == BreakerOpen
	})
	if a, _ := count("known", known, 6); a != 2 {
		t.Errorf("known key while Redis is stalled: %d of 6 allowed, want the 2 left of its limit", a)
	}
	if a, _ := count("denied", denied, 4); a != 0 || rec.count(OutcomeDenied, SourceDenyCache) < 4 {
		t.Errorf("denied key while Redis is stalled: %d allowed, %d denials from the deny cache; want all denied from it",
			a, rec.count(OutcomeDenied, SourceDenyCache))
	}
	if a, f := count("unknown", known, 12); a != 12 || f != 12 {
		t.Errorf("unknown key while Redis is stalled: %d of 12 allowed, %d fallbacks; want all allowed (open)", a, f)
	}
	if l.Breaker() != BreakerOpen {
		t.Fatalf("breaker %v: the decisions above may have reached Redis", l.Breaker())
	}

	srv.Resume()
	eventually(t, 10*time.Second, "breaker closes once Redis answers", func() bool {
		_, _ = l.Allow(t.Context(), "probe", probe, 1)
		return l.Breaker() == BreakerClosed
	})
	// Redis was charged the 2 the fallback admitted: 8 + 2 of 10 used.
	if a, f := count("known", known, 4); a != 0 || f != 0 {
		t.Errorf("known key after Redis is back: %d of 4 allowed, %d fallbacks; want none allowed, all by Redis", a, f)
	}
}
