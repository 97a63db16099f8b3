package limiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
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
// concurrent use; concurrent decisions are coalesced into few round trips.
// Call Close to stop its background goroutines.
type Limiter struct {
	rdb     redis.UniversalClient
	cluster bool
	cfg     config
	s       scripts
	br      *breaker
	deny    *denyCache
	local   *local
	queue   chan *call
	stop    chan struct{}
	wg      sync.WaitGroup
	closed  atomic.Bool
	stopper sync.Once
	timers  sync.Pool // *time.Timer for await
	calls   sync.Pool // *call of one request, returned once answered
}

// errDeadline is a decision whose Redis answer did not come in time.
var errDeadline = errors.New("redis did not answer within the deadline")

// New returns a Limiter using rdb (a *redis.Client, *redis.ClusterClient,
// failover client or anything else implementing redis.UniversalClient).
func New(rdb redis.UniversalClient, opts ...Option) *Limiter {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	cfg.prefix = strings.NewReplacer("{", "_", "}", "_").Replace(cfg.prefix)
	if cfg.observer == nil {
		cfg.observer = NopObserver{}
	}
	cfg.maxBatch = max(cfg.maxBatch, 1)
	cfg.flushers = max(cfg.flushers, 1)
	if cfg.deadline <= 0 {
		cfg.deadline = defaultConfig().deadline
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
		queue:   make(chan *call, cfg.maxBatch*cfg.flushers*4),
		stop:    make(chan struct{}),
	}
	if cfg.denyCache {
		l.deny = &denyCache{}
	}
	obs := cfg.observer
	l.br = newBreaker(cfg.breakerFailures, cfg.breakerCooldown, func(from, to BreakerState) {
		obs.ObserveBreaker(to)
		if from == BreakerClosed || to == BreakerClosed {
			obs.ObserveFallback(to != BreakerClosed)
		}
	})
	if cfg.coalesce {
		for range cfg.flushers {
			l.wg.Add(1)
			go l.flusher()
		}
	}
	l.wg.Add(1)
	go l.janitor()
	if cfg.mode == ModeLocal {
		l.wg.Add(1)
		go l.heartbeat()
	}
	return l
}

// Close stops the background goroutines and removes this instance from the
// heartbeat set. Decisions made after Close return ErrClosed.
func (l *Limiter) Close() error {
	l.stopper.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	l.wg.Wait()
	if l.cfg.mode == ModeLocal {
		_, _ = l.within(context.Background(), l.cfg.closeHeartbeatTO, func(ctx context.Context) ([]int64, error) {
			return nil, l.rdb.ZRem(ctx, l.instancesKey(), l.cfg.instanceID).Err()
		})
	}
	return nil
}

// Breaker returns the circuit breaker's current state.
func (l *Limiter) Breaker() BreakerState { return l.br.State() }

// Instances returns the number of live instances last learned from the
// heartbeat set (ModeLocal only; 1 before the first heartbeat).
func (l *Limiter) Instances() int { return int(l.local.instances.Load()) }

// Allow decides whether a request of the given cost on key may proceed
// under limit lim. An error means no decision was made: an invalid limit or
// cost, ctx ended, or (ModeClosed) ErrUnavailable.
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit, cost int) (Result, error) {
	reqs := [1]Request{{Key: key, Limit: lim, Cost: cost}}
	res, err := l.AllowAll(ctx, reqs[:])
	if len(res) == 0 {
		return Result{Limit: lim.normalize()}, err
	}
	return res[0], err
}

// AllowAll decides several requests in one round trip, all-or-nothing: if
// any is denied, all are reported denied and none consumes anything. The
// results are in the order of reqs; the denied ones carry their RetryAfter.
// On a single Redis (or when all keys share a cluster slot) this is one
// atomic script. Across cluster slots each slot is atomic and the allowed
// slots are refunded when another denies, which can briefly under-admit,
// never over-admit.
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
		l.br.failure(time.Now())
		l.cfg.observer.ObserveBackendError("decide", err)
		return l.fallback(reqs, keys, results, err, alg, start)
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

// fallback decides without Redis, as the Mode says.
func (l *Limiter) fallback(reqs []Request, keys []string, results []Result, cause error, alg Algorithm, start time.Time) ([]Result, error) {
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
	case ModeLocal:
		lr := make([]localReq, len(reqs))
		for i, r := range reqs {
			lr[i] = localReq{key: keys[i], lim: results[i].Limit, cost: r.Cost}
		}
		l.local.allow(lr, start, results)
		return l.finish(results, nil, SourceFallback, alg, start)
	default:
		for i := range results {
			results[i].Allowed = true
			results[i].Fallback = true
		}
		return l.finish(results, nil, SourceFallback, alg, start)
	}
}

// exec runs the decide script for reqs within the deadline and returns 4
// integers per request.
func (l *Limiter) exec(ctx context.Context, c *call) ([]int64, error) {
	slots := c.slots
	sameSlot := true
	for _, s := range slots {
		sameSlot = sameSlot && s == slots[0]
	}
	if l.cluster && !sameSlot {
		return l.within(ctx, l.cfg.deadline, func(ctx context.Context) ([]int64, error) {
			return l.crossSlot(ctx, c, slots)
		})
	}
	if !l.cfg.coalesce {
		return l.within(ctx, l.cfg.deadline, func(ctx context.Context) ([]int64, error) {
			keys, args := compose([]*call{c}, false)
			return runScript(ctx, l.rdb, l.s.decide, keys, args...)
		})
	}
	c.slot = slots[0]
	c.expires = time.Now().Add(l.cfg.deadline)
	return l.await(ctx, c)
}

// within runs fn in its own goroutine so that the deadline holds even when
// the client does not honour context deadlines (go-redis does not unless
// ContextTimeoutEnabled is set).
func (l *Limiter) within(ctx context.Context, d time.Duration, fn func(context.Context) ([]int64, error)) ([]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type answer struct {
		v   []int64
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		v, err := fn(ctx)
		ch <- answer{v, err}
	}()
	select {
	case a := <-ch:
		return a.v, a.err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, errDeadline
		}
		return nil, ctx.Err()
	}
}

// crossSlot is AllowAll across Redis Cluster slots: one atomic group per
// slot in one pipeline, then refunds for the allowed slots if any denied.
func (l *Limiter) crossSlot(ctx context.Context, c *call, slots []uint16) ([]int64, error) {
	type group struct {
		idx []int
		c   *call
		cmd *redis.Cmd
	}
	var groups []*group
	bySlot := map[uint16]*group{}
	for i, s := range slots {
		g := bySlot[s]
		if g == nil {
			g = &group{c: &call{}}
			bySlot[s] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.c.keys = append(g.c.keys, c.keys[i])
		g.c.lims = append(g.c.lims, c.lims[i])
		g.c.costs = append(g.c.costs, c.costs[i])
	}
	run := func(gs []*group, refund bool) error {
		pipe := l.rdb.Pipeline()
		for _, g := range gs {
			keys, args := compose([]*call{g.c}, refund)
			g.cmd = l.s.decide.EvalSha(ctx, pipe, keys, args...)
		}
		_, _ = pipe.Exec(ctx)
		for _, g := range gs {
			if isNoScript(g.cmd.Err()) {
				if err := l.s.decide.Load(ctx, l.rdb).Err(); err != nil {
					return fmt.Errorf("load decide script: %w", err)
				}
				return errRetry
			}
			if err := g.cmd.Err(); err != nil {
				return err
			}
		}
		return nil
	}
	err := run(groups, false)
	if errors.Is(err, errRetry) {
		err = run(groups, false)
	}
	if err != nil {
		return nil, err
	}
	out := make([]int64, 4*len(c.keys))
	denied := false
	var allowed []*group
	for _, g := range groups {
		v, err := toInts(g.cmd.Val())
		if err != nil {
			return nil, err
		}
		for k, i := range g.idx {
			copy(out[i*4:i*4+4], v[k*4:k*4+4])
		}
		if v[0] == 1 {
			allowed = append(allowed, g)
		} else {
			denied = true
		}
	}
	if denied && len(allowed) > 0 {
		if err := run(allowed, true); err != nil {
			return nil, fmt.Errorf("refund after cross-slot denial: %w", err)
		}
		for _, g := range allowed {
			for k, i := range g.idx {
				out[i*4] = 0
				out[i*4+1] += int64(g.c.costs[k])
			}
		}
	}
	return out, nil
}

var errRetry = errors.New("retry")

// call is one AllowAll on its way to Redis.
type call struct {
	keys    []string
	lims    []Limit // normalized
	costs   []int
	slots   []uint16 // cluster clients only
	slot    uint16
	expires time.Time
	out     []int64
	err     error
	done    chan struct{} // receives one value when out and err are set
	// queued: c was handed to the flushers; answered: the caller then
	// received done, so no flusher holds c any more.
	queued, answered bool

	// Storage for the common single-request call: one allocation.
	key1  [1]string
	lim1  [1]Limit
	cost1 [1]int
	slot1 [1]uint16
}

func (l *Limiter) newCall(n int) *call {
	if n == 1 {
		if c, _ := l.calls.Get().(*call); c != nil {
			return c
		}
	}
	c := &call{done: make(chan struct{}, 1)}
	if n == 1 {
		c.keys, c.lims, c.costs, c.slots = c.key1[:], c.lim1[:], c.cost1[:], c.slot1[:]
		return c
	}
	c.keys, c.lims, c.costs, c.slots = make([]string, n), make([]Limit, n), make([]int, n), make([]uint16, n)
	return c
}

// recycle returns a single-request call to the pool: one never handed to
// the flushers (answered locally, or by a script call that returned), or
// one whose answer was received. A call abandoned at the deadline may still
// be written by a flusher and is left to the garbage collector.
func (l *Limiter) recycle(c *call) {
	if c.queued && !c.answered || len(c.keys) != 1 {
		return
	}
	c.out, c.err, c.queued, c.answered, c.expires, c.slot = nil, nil, false, false, time.Time{}, 0
	c.key1, c.lim1, c.cost1, c.slot1 = [1]string{}, [1]Limit{}, [1]int{}, [1]uint16{}
	l.calls.Put(c)
}

func (c *call) finish(out []int64, err error) {
	c.out, c.err = out, err
	c.done <- struct{}{} // buffered: never blocks, even if the caller left
}

// await hands c to the flushers and waits for its answer until the deadline.
func (l *Limiter) await(ctx context.Context, c *call) ([]int64, error) {
	t, _ := l.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(l.cfg.deadline)
	} else {
		t.Reset(l.cfg.deadline)
	}
	// Since Go 1.23 a stopped timer delivers nothing stale: safe to reuse.
	defer func() { t.Stop(); l.timers.Put(t) }()
	c.queued = true
	select {
	case l.queue <- c: // fast path: room in the queue
	default:
		select {
		case l.queue <- c:
		case <-t.C:
			return nil, errDeadline
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.stop:
			return nil, ErrClosed
		}
	}
	select {
	case <-c.done:
		c.answered = true
		return c.out, c.err
	case <-t.C:
		return nil, errDeadline
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.stop:
		return nil, ErrClosed
	}
}

// flusher takes whatever calls queued up (up to maxBatch, waiting at most
// maxDelay for more) and decides them in one round trip.
func (l *Limiter) flusher() {
	defer l.wg.Done()
	batch := make([]*call, 0, l.cfg.maxBatch)
	for {
		select {
		case c := <-l.queue:
			batch = append(batch, c)
		case <-l.stop:
			return
		}
		batch = l.fill(batch)
		l.flush(batch)
		clear(batch)
		batch = batch[:0]
	}
}

func (l *Limiter) fill(batch []*call) []*call {
	for len(batch) < l.cfg.maxBatch {
		select {
		case c := <-l.queue:
			batch = append(batch, c)
			continue
		default:
		}
		break
	}
	if l.cfg.maxDelay <= 0 || len(batch) >= l.cfg.maxBatch {
		return batch
	}
	t := time.NewTimer(l.cfg.maxDelay)
	defer t.Stop()
	for len(batch) < l.cfg.maxBatch {
		select {
		case c := <-l.queue:
			batch = append(batch, c)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// flush runs one batch: on a single Redis one script for all calls (each
// call its own all-or-nothing group); on a cluster one script per slot, in
// one pipeline. Calls whose caller already gave up are dropped, so a Redis
// that comes back does not consume for answers nobody waits for.
func (l *Limiter) flush(batch []*call) {
	now := time.Now()
	live := batch[:0]
	for _, c := range batch {
		if now.After(c.expires) {
			c.finish(nil, errDeadline)
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.deadline)
	defer cancel()
	if !l.cluster {
		l.flushGroup(ctx, live, l.rdb)
		return
	}
	bySlot := map[uint16][]*call{}
	var order []uint16
	for _, c := range live {
		if _, ok := bySlot[c.slot]; !ok {
			order = append(order, c.slot)
		}
		bySlot[c.slot] = append(bySlot[c.slot], c)
	}
	if len(order) == 1 {
		l.flushGroup(ctx, live, l.rdb)
		return
	}
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(order))
	for i, s := range order {
		keys, args := compose(bySlot[s], false)
		cmds[i] = l.s.decide.EvalSha(ctx, pipe, keys, args...)
	}
	_, _ = pipe.Exec(ctx)
	for i, s := range order {
		calls := bySlot[s]
		v, err := cmds[i].Result()
		if isNoScript(err) {
			keys, args := compose(calls, false)
			v, err = l.s.decide.Eval(ctx, l.rdb, keys, args...).Result()
		}
		var out []int64
		if err == nil {
			out, err = toInts(v)
		}
		distribute(calls, out, err)
	}
}

func (l *Limiter) flushGroup(ctx context.Context, calls []*call, rdb redis.Scripter) {
	keys, args := compose(calls, false)
	out, err := runScript(ctx, rdb, l.s.decide, keys, args...)
	distribute(calls, out, err)
}

// compose lays calls out as one decide script invocation (see
// lua/decide.lua): the distinct limits once, then (group, limit, cost) per
// decision; each call is its own group. refund negates the costs.
func compose(calls []*call, refund bool) ([]string, []any) {
	n := countKeys(calls)
	keys := make([]string, 0, n)
	var limits []Limit
	seen := map[Limit]int{}
	index := func(lim Limit) int {
		if i, ok := seen[lim]; ok {
			return i
		}
		limits = append(limits, lim)
		seen[lim] = len(limits)
		return len(limits)
	}
	decisions := make([]any, 0, n*3)
	for i, c := range calls {
		keys = append(keys, c.keys...)
		for k := range c.keys {
			cost := c.costs[k]
			if refund {
				cost = -cost
			}
			decisions = append(decisions, i, index(c.lims[k]), cost)
		}
	}
	args := make([]any, 0, 1+4*len(limits)+len(decisions))
	args = append(args, len(limits))
	for _, l := range limits {
		args = append(args, int(l.Algorithm), l.Rate, l.Period.Microseconds(), l.Burst)
	}
	return keys, append(args, decisions...)
}

func distribute(calls []*call, out []int64, err error) {
	if want := 4 * countKeys(calls); err == nil && len(out) != want {
		err = fmt.Errorf("decide script returned %d integers, want %d", len(out), want)
	}
	off := 0
	for _, c := range calls {
		if err != nil {
			c.finish(nil, err)
			continue
		}
		n := 4 * len(c.keys)
		c.finish(out[off:off+n:off+n], nil)
		off += n
	}
}

func countKeys(calls []*call) int {
	n := 0
	for _, c := range calls {
		n += len(c.keys)
	}
	return n
}

// janitor sweeps expired deny-cache entries and idle local state.
func (l *Limiter) janitor() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			if l.deny != nil {
				l.deny.sweep(now)
			}
			l.local.sweep(now)
		}
	}
}

func (l *Limiter) instancesKey() string { return l.cfg.prefix + "{instances}" }

// heartbeat keeps this instance in the Redis heartbeat set and learns how
// many instances are alive, for ModeLocal's share of each limit.
func (l *Limiter) heartbeat() {
	defer l.wg.Done()
	beat := func() {
		timeout := max(l.cfg.deadline, 100*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		ttl := 3 * l.cfg.heartbeat
		v, err := l.within(ctx, timeout, func(ctx context.Context) ([]int64, error) {
			return runScript(ctx, l.rdb, l.s.heartbeat, []string{l.instancesKey()}, l.cfg.instanceID, ttl.Microseconds())
		})
		if err != nil {
			l.cfg.observer.ObserveBackendError("heartbeat", err)
			return
		}
		if len(v) == 1 && v[0] > 0 {
			l.local.instances.Store(v[0])
		}
	}
	beat()
	t := time.NewTicker(l.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			beat()
		}
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
