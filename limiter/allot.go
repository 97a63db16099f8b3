package limiter

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Allotments (WithAllotment): a key decided often is given, on the line that
// decides its calls, some units more, held for at most the hold time to
// answer its next calls without a round trip; a refill asks for more in the
// background. Redis granted every unit first, so no key gets more than its
// limit in total; units are used up to a hold time late, and dropped when
// their hold ends. Quiet keys (under minAllotment) get none.

// minAllotment is the least demand per hold time that makes a key's
// decisions allotted (with the default hold of the gateway, 20ms, 800
// decisions a second).
const minAllotment = 16

const allotShards = 16

type allotments struct {
	hold   time.Duration
	seed   maphash.Seed
	shards [allotShards]allotShard
	// instances divides a key's capacity among the live instances.
	instances func() int64
	// dropped counts the units (of the limits, cost included) whose hold
	// ended before they were used.
	dropped atomic.Int64
}

type allotShard struct {
	mu   sync.Mutex
	keys map[lineKey]*allotment
}

// allotment is one key's units held (lineKey: the caller's key, limit and
// cost), oldest grant first.
type allotment struct {
	chunks []chunk
	// demand counts decisions of the key in the current hold period and
	// the one before, from epoch on.
	demand [2]int
	epoch  time.Time
	// asking is set while a refill of the key is on its way to Redis;
	// quietUntil holds off refills after one failed.
	asking     bool
	quietUntil time.Time
}

// chunk is the units of one grant, usable until expires. remaining and
// reset are the line's answer after the grant, at granted.
type chunk struct {
	units            int
	granted, expires time.Time
	remaining, reset int64
}

func newAllotments(hold time.Duration, instances func() int64) *allotments {
	a := &allotments{hold: hold, seed: maphash.MakeSeed(), instances: instances}
	for i := range a.shards {
		a.shards[i].keys = map[lineKey]*allotment{}
	}
	return a
}

func (a *allotments) shard(k lineKey) *allotShard {
	return &a.shards[maphash.String(a.seed, k.key)%allotShards]
}

// count rolls the demand periods forward to now and adds n decisions.
func (al *allotment) count(n int, now time.Time, hold time.Duration) {
	switch since := now.Sub(al.epoch); {
	case since >= 2*hold:
		al.demand = [2]int{}
		al.epoch = now
	case since >= hold:
		al.demand = [2]int{0, al.demand[0]}
		al.epoch = al.epoch.Add(hold)
	}
	al.demand[0] += n
}

// expire drops k's chunks whose hold ended (all of them with every)
// and counts their units, in the limit's units, as dropped. The
// caller holds k's shard lock.
func (a *allotments) expire(al *allotment, k lineKey, now time.Time, every bool) {
	n, units := 0, 0
	for n < len(al.chunks) && (every || !now.Before(al.chunks[n].expires)) {
		units += al.chunks[n].units
		n++
	}
	if n == 0 {
		return
	}
	al.chunks = append(al.chunks[:0], al.chunks[n:]...)
	if units > 0 {
		a.dropped.Add(int64(units * k.cost))
	}
}

func (al *allotment) held() int {
	n := 0
	for _, c := range al.chunks {
		n += c.units
	}
	return n
}

// target is how many units k should hold: its demand over half a hold
// period (so that a steady key spends them well before their hold ends),
// within its share of the capacity; 0 for a quiet key.
func (a *allotments) target(al *allotment, k lineKey) int {
	want := max(al.demand[0], al.demand[1])
	if want < minAllotment {
		return 0
	}
	share := k.lim.capacity() / (8 * int(max(a.instances(), 1)) * k.cost)
	return min(want/2, share)
}

// take answers one decision on k from its allotment: the answer's 4
// integers (as the decide script's), and how many units to ask Redis for
// in the background (0: none now). ok is false when k holds no units.
func (a *allotments) take(k lineKey, now time.Time) (out [4]int64, refill int, ok bool) {
	s := a.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	al := s.keys[k]
	if al == nil {
		return out, 0, false
	}
	a.expire(al, k, now, false)
	if len(al.chunks) == 0 {
		return out, 0, false // counted as demand when it reaches a flush
	}
	al.count(1, now, a.hold)
	al.chunks[0].units--
	if al.chunks[0].units == 0 {
		al.chunks = append(al.chunks[:0], al.chunks[1:]...)
	}
	left := al.held()
	if len(al.chunks) > 0 {
		// Redis's answer to the latest grant, plus what is still held here
		// (which it counted as used), aged by the time since; within the
		// capacity, as Redis may have refilled earlier grants meanwhile.
		last := al.chunks[len(al.chunks)-1]
		used := int64(left * k.cost)
		reset := last.reset - k.lim.fillMicros(used) - now.Sub(last.granted).Microseconds()
		out = [4]int64{1, min(last.remaining+used, int64(k.lim.capacity())), 0, max(reset, 0)}
	} else {
		out = [4]int64{1, 0, 0, 0}
	}
	if t := a.target(al, k); !al.asking && left*4 < t*3 && !now.Before(al.quietUntil) {
		al.asking = true
		refill = t - left
	}
	return out, refill, true
}

// extra counts the decisions of a line going to Redis as k's demand and
// returns how many units more the line should ask for (0 for a quiet key,
// or when a refill is on its way already).
func (a *allotments) extra(k lineKey, decisions int, now time.Time) int {
	s := a.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	al := s.keys[k]
	if al == nil {
		al = &allotment{epoch: now}
		s.keys[k] = al
	}
	al.count(decisions, now, a.hold)
	if al.asking || now.Before(al.quietUntil) {
		return 0
	}
	a.expire(al, k, now, false)
	n := a.target(al, k) - al.held()
	if n <= 0 {
		return 0
	}
	al.asking = true
	return n
}

// granted records the answer to a refill of k asked at sent: units
// granted (0 when Redis had none to spare) and the line's remaining and
// reset after them.
func (a *allotments) granted(k lineKey, units int, remaining, reset int64, sent time.Time) {
	s := a.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	al := s.keys[k]
	if al == nil {
		return
	}
	al.asking = false
	if units > 0 {
		// The hold counts from the send: Redis counted the units then, at
		// the latest.
		al.chunks = append(al.chunks, chunk{units: units, granted: sent, expires: sent.Add(a.hold), remaining: remaining, reset: reset})
	}
}

// failed records that a refill of k got no answer: the next one waits a
// hold period.
func (a *allotments) failed(k lineKey, now time.Time) {
	s := a.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if al := s.keys[k]; al != nil {
		al.asking = false
		al.quietUntil = now.Add(a.hold)
	}
}

// dropAll drops every unit held, as if every hold ended now.
func (a *allotments) dropAll() {
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		for k, al := range s.keys {
			a.expire(al, k, time.Time{}, true)
		}
		s.mu.Unlock()
	}
}

// sweep forgets keys that hold nothing and were not decided for two hold
// periods.
func (a *allotments) sweep(now time.Time) {
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		for k, al := range s.keys {
			a.expire(al, k, now, false)
			if len(al.chunks) == 0 && !al.asking && now.Sub(al.epoch) >= 2*a.hold {
				delete(s.keys, k)
			}
		}
		s.mu.Unlock()
	}
}

// allotted answers Allow from key's allotment, if it holds a unit, and
// sends a refill when it runs low.
func (l *Limiter) allotted(key string, lim Limit, cost int) (Result, bool) {
	start := time.Now()
	lim = lim.normalize()
	k := lineKey{key: key, lim: lim, cost: cost}
	out, refill, ok := l.allot.take(k, start)
	if !ok {
		return Result{}, false
	}
	if refill > 0 {
		l.refill(k, refill, start)
	}
	res := [1]Result{{Allowed: true, Limit: lim, Remaining: int(out[1]), ResetAfter: time.Duration(out[3]) * time.Microsecond}}
	l.finish(res[:], nil, SourceAllotment, lim.Algorithm, start)
	return res[0], true
}

// refill queues a call asking Redis for units more of k, unless Redis is
// failing or the queue is full.
func (l *Limiter) refill(k lineKey, units int, now time.Time) {
	if l.br.State() != BreakerClosed {
		l.allot.failed(k, now)
		return
	}
	c := l.refillCall(k, units)
	select {
	case l.queue <- c:
	default:
		l.allot.failed(k, now)
	}
}

// refillCall is a call for units more of k. It is never recycled: no
// caller receives its answer.
func (l *Limiter) refillCall(k lineKey, units int) *call {
	c := l.newCall(1)
	c.ukey, c.extra = k.key, units
	var tag string
	c.keys[0], tag = redisKey(l.cfg.prefix, k.lim.Algorithm, k.lim, k.key)
	c.lims[0], c.costs[0] = k.lim, k.cost
	if l.cluster {
		c.slot = slot(tag)
		c.slots[0] = c.slot
	}
	return c
}

// attach adds a refill to each line of single-request calls on a key
// busy enough for an allotment, unless one is on its way already, and
// puts each line's refills after its callers' calls, where distribute
// expects them.
func (l *Limiter) attach(entries []entry, now time.Time) []entry {
	if l.allot == nil {
		return entries
	}
	for i, e := range entries {
		c := e[0]
		if len(c.keys) != 1 || c.ukey == "" {
			continue
		}
		decisions := e.decisions()
		if decisions < len(e) {
			slices.SortStableFunc(e, func(a, b *call) int { return cmp.Compare(min(a.extra, 1), min(b.extra, 1)) })
		}
		if decisions == 0 {
			continue // a refill alone
		}
		k := lineKey{key: c.ukey, lim: c.lims[0], cost: c.costs[0]}
		if n := l.allot.extra(k, decisions, now); n > 0 {
			r := l.refillCall(k, n)
			r.send(now)
			entries[i] = append(e, r) // e's capacity ends at its last call: this copies
		}
	}
	return entries
}

// allotRefills hands refills, the refills of a line that decided
// decisions callers' calls, the units the line granted beyond those (line
// nil: it failed).
func (l *Limiter) allotRefills(refills entry, decisions int, line []int64) {
	granted := -1
	if line != nil {
		granted = max(int(line[0])-decisions, 0)
	}
	for _, c := range refills {
		k := lineKey{key: c.ukey, lim: c.lims[0], cost: c.costs[0]}
		if granted < 0 {
			l.allot.failed(k, time.Now())
			continue
		}
		g := min(granted, c.extra)
		granted -= g
		sent, _ := c.sent()
		l.allot.granted(k, g, line[1], line[3], sent)
	}
}
