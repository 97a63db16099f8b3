package limiter

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testCall builds the call AllowAll would send for reqs.
func testCall(l *Limiter, reqs ...Request) *call {
	c := l.newCall(len(reqs))
	for i, r := range reqs {
		lim := r.Limit.normalize()
		c.lims[i], c.costs[i] = lim, r.Cost
		c.keys[i], _ = redisKey(l.cfg.prefix, lim.Algorithm, lim, r.Key)
	}
	return c
}

// answer is one key's decision as the script returned it.
type answer struct {
	allowed      bool
	remaining    int64
	retry, reset int64 // µs
}

// answers waits for c's answer (once: done holds one value).
func answers(t *testing.T, c *call) []answer {
	t.Helper()
	<-c.done
	if c.err != nil {
		t.Fatal(c.err)
	}
	out := make([]answer, len(c.keys))
	for i := range out {
		o := c.out[i*4 : i*4+4]
		out[i] = answer{o[0] == 1, o[1], o[2], o[3]}
	}
	return out
}

// decideAlone decides each call on its own, one script call each, in
// order: what the calls would get one after the other.
func decideAlone(t *testing.T, l *Limiter, calls []*call) [][]answer {
	t.Helper()
	out := make([][]answer, len(calls))
	for i, c := range calls {
		l.flushGroup(t.Context(), []*call{c}, l.rdb)
		out[i] = answers(t, c)
	}
	return out
}

// One flush of 100 single decisions on one key and limit is one line, and
// admits exactly what 100 decisions one after the other admit, each call
// with the answer it would have had alone.
func TestAggregatedLineIsSequential(t *testing.T) {
	_, rdb := startRedis(t)
	for _, alg := range algorithms {
		for _, cost := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/cost=%d", alg, cost), func(t *testing.T) {
				// 37 per 37h: an emission interval of exactly one hour.
				lim := Limit{Algorithm: alg, Rate: 37, Period: 37 * time.Hour}
				agg := newTestLimiter(t, rdb, WithPrefix("agg:"))
				alone := newTestLimiter(t, rdb, WithPrefix("alone:"))
				key := "k-" + alg.String() + strconv.Itoa(cost)
				var flushed, one []*call
				for range 100 {
					flushed = append(flushed, testCall(agg, Request{Key: key, Limit: lim, Cost: cost}))
					one = append(one, testCall(alone, Request{Key: key, Limit: lim, Cost: cost}))
				}
				if keys, _ := compose(aggregate(flushed), false); len(keys) != 1 {
					t.Fatalf("100 decisions on one key and limit sent as %d lines, want 1", len(keys))
				}
				agg.flushGroup(t.Context(), flushed, agg.rdb)
				want := decideAlone(t, alone, one)
				fit := 37 / cost
				admitted := 0
				var denied answer
				got1 := make([]answer, len(flushed))
				for i, c := range flushed {
					got1[i] = answers(t, c)[0]
				}
				for i, got := range got1 {
					w := want[i][0]
					if got.allowed != w.allowed || got.remaining != w.remaining {
						t.Fatalf("decision %d: %+v, one after the other %+v", i, got, w)
					}
					if got.allowed {
						admitted++
						if wantRem := int64(37 - (i+1)*cost); got.remaining != wantRem {
							t.Fatalf("decision %d: remaining %d, want %d", i, got.remaining, wantRem)
						}
						continue
					}
					if got.retry <= 0 || got.reset <= 0 {
						t.Fatalf("denied decision %d: %+v, want a retry and a reset", i, got)
					}
					if i > fit && got != denied {
						t.Fatalf("denied decision %d: %+v, the first denied one %+v: want alike", i, got, denied)
					}
					denied = got
				}
				if admitted != fit {
					t.Fatalf("admitted %d of 100 on a limit of 37 at cost %d, want %d", admitted, cost, fit)
				}
				// Each allowed call's reset: GCRA fills one emission interval
				// per unit sooner for every allowed call after it; a window
				// resets at its end for all.
				em := float64(lim.Period.Microseconds()) / 37 * float64(cost)
				for i := 1; i < fit; i++ {
					prev, cur := got1[i-1].reset, got1[i].reset
					step := float64(cur - prev)
					if alg != GCRA {
						em = 0
					}
					if step < em-1 || step > em+1 {
						t.Fatalf("reset of allowed %d: %dµs after %dµs, want %.0fµs more", i, cur, prev, em)
					}
				}
			})
		}
	}
}

// A flush mixing keys, limits, costs and all-or-nothing groups decides
// each call as it would have been decided alone, in the order the flush
// lays them out; a group with a denied member consumes nothing.
func TestAggregationMixedFlush(t *testing.T) {
	_, rdb := startRedis(t)
	hourly := Limit{Rate: 20, Period: 24 * time.Hour}
	sliding := Limit{Algorithm: SlidingWindow, Rate: 6, Period: 24 * time.Hour}
	fixed := Limit{Algorithm: FixedWindow, Rate: 4, Period: 24 * time.Hour}
	one := Limit{Rate: 1, Period: 24 * time.Hour}
	build := func(l *Limiter) []*call {
		var cs []*call
		add := func(n int, reqs ...Request) {
			for range n {
				cs = append(cs, testCall(l, reqs...))
			}
		}
		add(1, Request{Key: "solo", Limit: one, Cost: 1}) // exhausts "solo"
		add(10, Request{Key: "a", Limit: hourly, Cost: 1})
		add(1, Request{Key: "c", Limit: hourly, Cost: 1}, Request{Key: "a", Limit: hourly, Cost: 1})
		add(5, Request{Key: "a", Limit: hourly, Cost: 2})
		add(8, Request{Key: "b", Limit: sliding, Cost: 1})
		add(3, Request{Key: "a", Limit: fixed, Cost: 2}) // same key, other limit
		add(2, Request{Key: "d", Limit: hourly, Cost: 1}, Request{Key: "solo", Limit: one, Cost: 1})
		add(6, Request{Key: "e", Limit: fixed, Cost: 1})
		return cs
	}
	agg := newTestLimiter(t, rdb, WithPrefix("agg:"))
	alone := newTestLimiter(t, rdb, WithPrefix("alone:"))
	flushed := build(agg)
	entries := aggregate(flushed)
	// Lines: solo, a×10, the group's 2, a at cost 2, b, a (fixed), each
	// solo group's 2, e.
	if keys, _ := compose(entries, false); len(keys) != 12 {
		t.Fatalf("%d calls sent as %d lines, want 12", len(flushed), len(keys))
	}
	var laidOut []*call
	for _, e := range entries {
		laidOut = append(laidOut, e...)
	}
	ref := build(alone)
	refOf := map[*call]*call{}
	for i := range flushed {
		refOf[flushed[i]] = ref[i]
	}
	agg.flushGroup(t.Context(), flushed, agg.rdb)
	seq := make([]*call, len(laidOut))
	for i, c := range laidOut {
		seq[i] = refOf[c]
	}
	want := decideAlone(t, alone, seq)
	for i, c := range laidOut {
		got := answers(t, c)
		for k := range got {
			g, w := got[k], want[i][k]
			if g.allowed != w.allowed || g.remaining != w.remaining {
				t.Fatalf("call %d (%v) key %d: %+v, alone %+v", i, c.keys, k, g, w)
			}
		}
	}
	// The groups with "solo" were denied and took nothing from "d".
	res := mustAllow(t, agg, t.Context(), "d", hourly, 1)
	if res.Remaining != 19 {
		t.Fatalf("d after two denied groups: remaining %d, want 19", res.Remaining)
	}
	// "a" under the hourly limit: 10, then 1 in the group, then 4 of the 5
	// at cost 2 (the fifth would make 21 of 20): one unit is left.
	if res := mustAllow(t, agg, t.Context(), "a", hourly, 1); !res.Allowed || res.Remaining != 0 {
		t.Fatalf("a after the flush: %+v, want its last unit", res)
	}
	if res := mustAllow(t, agg, t.Context(), "a", hourly, 1); res.Allowed {
		t.Fatalf("a after its limit was used up: %+v", res)
	}
}

// lineHook counts, for decide script calls, the lines sent and the
// decisions they carry.
type lineHook struct {
	sha              string
	lines, decisions atomic.Int64
}

func (h *lineHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *lineHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd.Args())
		return next(ctx, cmd)
	}
}

func (h *lineHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			h.count(cmd.Args())
		}
		return next(ctx, cmds)
	}
}

func (h *lineHook) count(args []any) {
	if lines, decisions, ok := decideArgs(h.sha, args); ok {
		h.lines.Add(lines)
		h.decisions.Add(decisions)
	}
}

// decideArgs reads a decide script call ("evalsha sha numkeys keys... L
// limits×4 lines×4"): its lines and the decisions they carry.
func decideArgs(sha string, args []any) (lines, decisions int64, ok bool) {
	if len(args) < 3 || args[0] != "evalsha" || args[1] != sha {
		return 0, 0, false
	}
	n := int(toInt(args[2]))
	argv := args[3+n:]
	base := 1 + 4*int(toInt(argv[0]))
	for i := range n {
		decisions += toInt(argv[base+4*i+3])
	}
	return int64(n), decisions, true
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

// 100 concurrent callers on one key with a limit of 37: exactly 37
// allowed, each allowed one told a distinct remaining capacity, and the
// decisions reach Redis as far fewer lines than decisions.
func TestAggregationUnderConcurrency(t *testing.T) {
	srv, _ := startRedis(t)
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			hook := &lineHook{sha: newScripts().decide.Hash()}
			rdb := srv.Client(t)
			rdb.AddHook(hook)
			// One flusher that lingers for more: the callers share flushes.
			l := newTestLimiter(t, rdb, WithDenyCache(false), WithFlush(128, 50*time.Millisecond, 1))
			lim := Limit{Algorithm: alg, Rate: 37, Period: 37 * time.Hour}
			start := make(chan struct{})
			var wg sync.WaitGroup
			results := make([]Result, 100)
			errs := make([]error, 100)
			for i := range 100 {
				wg.Go(func() {
					<-start
					results[i], errs[i] = l.Allow(t.Context(), "flood-"+alg.String(), lim, 1)
				})
			}
			close(start)
			wg.Wait()
			seen := map[int]bool{}
			for i, res := range results {
				if errs[i] != nil || res.Fallback {
					t.Fatalf("decision %d: %+v, %v", i, res, errs[i])
				}
				if !res.Allowed {
					if res.Remaining != 0 || res.RetryAfter <= 0 {
						t.Fatalf("denied decision %d: %+v", i, res)
					}
					continue
				}
				if seen[res.Remaining] || res.Remaining < 0 || res.Remaining > 36 {
					t.Fatalf("allowed decision %d: remaining %d (seen before or out of [0, 36])", i, res.Remaining)
				}
				seen[res.Remaining] = true
			}
			if len(seen) != 37 {
				t.Fatalf("allowed %d of 100 on a limit of 37", len(seen))
			}
			lines, decisions := hook.lines.Load(), hook.decisions.Load()
			t.Logf("%d decisions sent as %d lines", decisions, lines)
			if decisions != 100 || 4*lines > decisions {
				t.Fatalf("%d decisions sent as %d lines: want 100 decisions in at most 25 lines", decisions, lines)
			}
		})
	}
}

// gateHook holds the first decide script call until gate is closed, and
// records the decisions of each.
type gateHook struct {
	sha        string
	held, gate chan struct{}
	mu         sync.Mutex
	decisions  []int64
}

func (h *gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if _, d, ok := decideArgs(h.sha, cmd.Args()); ok {
			h.mu.Lock()
			h.decisions = append(h.decisions, d)
			first := len(h.decisions) == 1
			h.mu.Unlock()
			if first {
				close(h.held)
				<-h.gate
			}
		}
		return next(ctx, cmd)
	}
}

func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *gateHook) sent() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.decisions)
}

// While one flush is in flight, the next flusher holds what queues up and
// sends it in one round trip once the first lands, rather than each
// arrival on its own.
func TestNextFlushWaitsForTheOneInFlight(t *testing.T) {
	srv, _ := startRedis(t)
	rdb := srv.Client(t)
	hook := &gateHook{sha: newScripts().decide.Hash(), held: make(chan struct{}), gate: make(chan struct{})}
	rdb.AddHook(hook)
	l := newTestLimiter(t, rdb, WithDeadline(time.Minute), WithDenyCache(false), WithFlush(128, 0, 2))
	lim := Limit{Rate: 100, Period: time.Hour}
	first := testCall(l, Request{Key: "busy", Limit: lim, Cost: 1})
	l.queue <- first
	<-hook.held // the first flush is in flight
	// One after the other, each taken by the next flusher before the
	// following one arrives.
	var next []*call
	for range 20 {
		c := testCall(l, Request{Key: "busy", Limit: lim, Cost: 1})
		next = append(next, c)
		l.queue <- c
		eventually(t, 10*time.Second, "the call taken from the queue", func() bool { return len(l.queue) == 0 })
	}
	close(hook.gate)
	for i, c := range append([]*call{first}, next...) {
		if a := answers(t, c)[0]; !a.allowed {
			t.Fatalf("decision %d: %+v", i, a)
		}
	}
	if sent := hook.sent(); !slices.Equal(sent, []int64{1, 20}) {
		t.Fatalf("decisions per round trip %v, want [1 20]: the second flush waits for the first", sent)
	}
}
