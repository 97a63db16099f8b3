package limiter

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-ingest/sluice/limiter/redistest"
)

// Four processes with allotments on one key admit no more than the limit,
// Redis grants nearly all of it (admitted, or dropped unused), and most
// admissions come from allotments (so the test exercises them).
func TestAllotmentExactFourProcesses(t *testing.T) {
	srv, _ := startRedis(t)
	for _, lim := range fourProcessLimits {
		t.Run(lim.Algorithm.String(), func(t *testing.T) {
			var allotted, admitted int
			exactly(t, lim, func() hammerReport {
				spec := exactnessSpec(lim, []string{"allot:" + lim.Algorithm.String() + ":" + strconv.Itoa(int(time.Now().UnixNano()))}, 12)
				spec.Addrs = []string{srv.Addr()}
				spec.Allot = 10 * time.Millisecond
				rep := runHammer(t, 4, spec)
				allotted, admitted = rep.Allotted, 0
				for _, n := range rep.Admitted {
					admitted += n
				}
				return rep
			})
			t.Logf("%d of %d admissions from allotments", allotted, admitted)
			if allotted == 0 {
				t.Errorf("no admission came from an allotment")
			}
		})
	}
}

// A key below its limit, decided often, is answered mostly from its
// allotment; every answer is allowed and its RateLimit fields are sane.
func TestAllotmentAnswersBusyKey(t *testing.T) {
	_, rdb := startRedis(t)
	rec := newRecorder()
	l := newTestLimiter(t, rdb, WithAllotment(50*time.Millisecond), WithObserver(rec))
	lim := Limit{Rate: 1_000_000, Period: time.Second, Burst: 1_000_000}
	var denied, bad atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 500 {
				res, err := l.Allow(context.Background(), "busy", lim, 1)
				switch {
				case err != nil || !res.Allowed:
					denied.Add(1)
				case res.Remaining < 0 || res.Remaining > lim.Burst || res.ResetAfter < 0 || res.ResetAfter > time.Second:
					if bad.Add(1) == 1 {
						t.Logf("first answer out of range: %+v", res)
					}
				}
			}
		})
	}
	wg.Wait()
	local, remote := rec.count(OutcomeAllowed, SourceAllotment), rec.count(OutcomeAllowed, SourceRedis)
	t.Logf("8000 decisions: %d from allotments, %d by Redis", local, remote)
	if denied.Load() > 0 || bad.Load() > 0 {
		t.Fatalf("%d denied or failed, %d with RateLimit fields out of range", denied.Load(), bad.Load())
	}
	if local < 4000 {
		t.Errorf("only %d of 8000 decisions from allotments", local)
	}
}

// A key decided less often than minAllotment times per hold gets no
// allotment: Redis decides each call.
func TestAllotmentNotForQuietKey(t *testing.T) {
	_, rdb := startRedis(t)
	rec := newRecorder()
	l := newTestLimiter(t, rdb, WithAllotment(100*time.Millisecond), WithObserver(rec))
	lim := Limit{Rate: 1000, Period: time.Second}
	for range 30 {
		if _, err := l.Allow(context.Background(), "quiet", lim, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // 10 per hold, under minAllotment
	}
	if n := rec.count(OutcomeAllowed, SourceAllotment); n > 0 {
		t.Errorf("%d decisions of a quiet key from an allotment", n)
	}
	if n := rec.count(OutcomeAllowed, SourceRedis); n != 30 {
		t.Errorf("Redis decided %d of 30", n)
	}
}

// Units are never used past their hold: once it ends, what is left is
// dropped (and counted: AllotmentDropped) and the next decision goes to
// Redis.
func TestAllotmentExpires(t *testing.T) {
	_, rdb := startRedis(t)
	rec := newRecorder()
	hold := 100 * time.Millisecond
	l := newTestLimiter(t, rdb, WithAllotment(hold), WithObserver(rec))
	lim := Limit{Rate: 100_000, Period: time.Second}
	k := lineKey{key: "expiring", lim: lim.normalize(), cost: 1}
	decideConcurrently(l, k.key, lim, 8, 50)
	// Wait until a grant has landed, then until its hold has ended.
	var held int
	eventually(t, 2*time.Second, "units held", func() bool { held = heldUnits(l, k, time.Now()); return held > 0 })
	time.Sleep(hold + 10*time.Millisecond)
	if n := heldUnits(l, k, time.Now()); n != 0 {
		t.Fatalf("%d units held after their hold", n)
	}
	if d := l.AllotmentDropped(); d < int64(held) {
		t.Errorf("%d units dropped, want at least the %d held when the decisions stopped", d, held)
	}
	before := rec.count(OutcomeAllowed, SourceRedis)
	if _, err := l.Allow(context.Background(), k.key, lim, 1); err != nil {
		t.Fatal(err)
	}
	if rec.count(OutcomeAllowed, SourceRedis) != before+1 {
		t.Errorf("the first decision after the hold was not Redis's")
	}
}

// A key of a small limit shared by instances holds at most an eighth of
// its capacity per instance.
func TestAllotmentBoundedByCapacity(t *testing.T) {
	_, rdb := startRedis(t)
	l := newTestLimiter(t, rdb, WithAllotment(time.Second))
	lim := Limit{Rate: 160, Period: time.Second}
	k := lineKey{key: "small", lim: lim.normalize(), cost: 1}
	decideConcurrently(l, k.key, lim, 8, 10)
	eventually(t, 2*time.Second, "units held", func() bool { return heldUnits(l, k, time.Now()) > 0 })
	if n := heldUnits(l, k, time.Now()); n > 160/8 {
		t.Errorf("%d units held, more than 160/8", n)
	}
}

// On a cluster, refills go to the node of their key's slot: busy keys on
// every master are answered mostly from their allotments.
func TestAllotmentOnCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	rdb := cl.Client(t)
	rec := newRecorder()
	l := newTestLimiter(t, rdb, WithAllotment(50*time.Millisecond), WithObserver(rec))
	lim := Limit{Rate: 1_000_000, Period: time.Second}
	keys := keysOnEveryNode("allot:cluster:", 3)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() { decideConcurrently(l, k, lim, 4, 400) })
	}
	wg.Wait()
	local, remote := rec.count(OutcomeAllowed, SourceAllotment), rec.count(OutcomeAllowed, SourceRedis)
	t.Logf("4800 decisions on 3 masters: %d from allotments, %d by Redis", local, remote)
	if local+remote != 4800 {
		t.Fatalf("%d of 4800 decisions allowed", local+remote)
	}
	if local < 2400 {
		t.Errorf("only %d of 4800 decisions from allotments", local)
	}
}

func TestAllotmentOptions(t *testing.T) {
	_, rdb := startRedis(t)
	for name, opts := range map[string][]Option{
		"zero hold":     {WithAllotment(0)},
		"negative hold": {WithAllotment(-time.Millisecond)},
		"no flushing":   {WithAllotment(time.Millisecond), WithFlushing(false)},
		"flushing off":  {WithFlushing(false), WithAllotment(time.Millisecond)},
	} {
		if _, err := New(rdb, opts...); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: New returned %v, want ErrInvalidOption", name, err)
		}
	}
}

func heldUnits(l *Limiter, k lineKey, now time.Time) int {
	s := l.allot.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	al := s.keys[k]
	if al == nil {
		return 0
	}
	l.allot.expire(al, k, now, false)
	return al.held()
}

// decideConcurrently runs each decisions on key from each of goroutines.
func decideConcurrently(l *Limiter, key string, lim Limit, goroutines, each int) {
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				_, _ = l.Allow(context.Background(), key, lim, 1)
			}
		})
	}
	wg.Wait()
}

// A dropped unit counts its decision's cost: what Redis counted against
// the limit.
func TestAllotmentDroppedCountsCost(t *testing.T) {
	a := newAllotments(time.Millisecond, func() int64 { return 1 })
	now := time.Now()
	k := lineKey{key: "k", lim: Limit{Rate: 100, Period: time.Second}.normalize(), cost: 3}
	al := &allotment{epoch: now, chunks: []chunk{{units: 4, expires: now}, {units: 5, expires: now.Add(time.Hour)}}}
	a.shard(k).keys[k] = al
	a.expire(al, k, now, false)
	if got := a.dropped.Load(); got != 12 {
		t.Fatalf("dropped %d after the first hold ended, want 4 units × cost 3", got)
	}
	a.dropAll()
	if got := a.dropped.Load(); got != 27 || al.held() != 0 {
		t.Fatalf("dropped %d and %d held after dropAll, want 27 and 0", got, al.held())
	}
}
